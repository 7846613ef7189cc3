"""The data stage of the TFX pipeline on LocalDagRunner: ingest, statistics, schema, validation, gate."""

import os

import pytest

from tfx_pipeline.beam_args import in_memory


def _run(log_dir, root, schema_path=None):
    from tfx import v1 as tfx

    from tfx_pipeline import pipeline as ctr_pipeline

    settings = ctr_pipeline.DataSettings(log_dir)
    if schema_path:
        settings = ctr_pipeline.DataSettings(log_dir, schema_path=schema_path)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(os.path.join(root, "metadata.db"))
    pipeline = ctr_pipeline.create_pipeline(
        "ctrflow-test", os.path.join(root, "pipeline"), settings,
        metadata_connection_config=metadata, beam_pipeline_args=in_memory())
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return metadata


def _executions(metadata):
    """Component id -> list of (state name, execution) in run order."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    store = metadata_store.MetadataStore(metadata)
    types = {t.id: t.name for t in store.get_execution_types()}
    by_component = {}
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
        name = types[execution.type_id].split(".")[-1]
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        by_component.setdefault(name, []).append((state, execution))
    return store, by_component


@pytest.fixture(scope="module")
def simulated_log(tmp_path_factory):
    from tfx_pipeline import simulator

    log_dir = str(tmp_path_factory.mktemp("sim") / "log")
    simulator.simulate(simulator.SimulatorConfig(users=60, items=200, days=3, seed=3), log_dir, workers=1)
    return log_dir


@pytest.mark.slow
def test_data_stage_runs_then_is_cached(simulated_log, tmp_path):
    from tfx_pipeline.components.event_log_example_gen import DeadLetters

    metadata = _run(simulated_log, str(tmp_path))
    store, runs = _executions(metadata)
    for component in ("EventLogExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                      "ExampleAnomalyGate"):
        assert [state for state, _ in runs[component]] == ["COMPLETE"], component
    examples = store.get_artifacts_by_type("Examples")
    assert len(examples) == 1
    props = examples[0].custom_properties
    assert props["rows_bad"].int_value == 0
    assert props["examples_train"].int_value > 0 and props["examples_eval"].int_value > 0
    assert props["span"].int_value == 19725  # 2024-01-03, the newest simulated day
    assert len(store.get_artifacts_by_type(DeadLetters.TYPE_NAME)) == 1

    _run(simulated_log, str(tmp_path))  # unchanged log and settings: served from the cache
    _, runs = _executions(metadata)
    assert [state for state, _ in runs["EventLogExampleGen"]] == ["COMPLETE", "CACHED"]
    assert [state for state, _ in runs["StatisticsGen"]] == ["COMPLETE", "CACHED"]


@pytest.mark.slow
def test_schema_violation_stops_at_the_gate_with_the_anomaly_named(simulated_log, tmp_path):
    from google.protobuf import text_format

    from tfx_pipeline import schema

    # A curated schema that requires a feature this log does not have.
    strict = schema.build_schema()
    for feature in strict.feature:
        if feature.name == "item_year":
            feature.presence.min_fraction = 1.0
    strict_path = tmp_path / "strict_schema.pbtxt"
    strict_path.write_text(text_format.MessageToString(strict))

    with pytest.raises(RuntimeError, match=r"(?s)anomalies.*feature 'item_year'.*Column dropped"):
        _run(simulated_log, str(tmp_path), schema_path=str(strict_path))
