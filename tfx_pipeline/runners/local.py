"""Running the pipeline on TFX's LocalDagRunner, and reading past runs back from ML Metadata.

Everything lives under the config's ``pipeline.root``: ``metadata.sqlite`` (the embedded ML
Metadata store) and ``artifacts/`` (every component's outputs). A rerun with unchanged
inputs and settings is served from the cache: its executions are recorded as CACHED.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence

from tfx_pipeline.config import PipelineConfig

# Components in pipeline order, for display.
COMPONENT_ORDER = ("EventLogExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                   "ExampleAnomalyGate", "Transform", "latest_blessed_model", "Trainer", "Evaluator",
                   "ServingValidator", "Pusher")


def data_settings(config: PipelineConfig):
    """The data stage of `ctrflow run`: every span of the log, the newest evaluating."""
    from tfx_pipeline.pipeline import DataSettings

    return DataSettings(config.pipeline.log_dir, ingest=config.ingest)


def model_settings(config: PipelineConfig):
    """The model stage of `ctrflow run`: no warm start, vocabularies from scratch."""
    from tfx_pipeline.pipeline import ModelSettings

    settings = config.pipeline
    return ModelSettings(
        experiment=config.experiment,
        push_base=settings.push_base,
        model_name=settings.model_name,
        evaluation=config.evaluation,
        serving_validation=config.serving_validation,
    )


def build(config: PipelineConfig, beam_args: Optional[List[str]] = None, data=None, model=None):
    """The TFX pipeline a config describes, with its SQLite metadata connection.

    `data` and `model` (DataSettings, ModelSettings) replace ``data_settings(config)`` and
    ``model_settings(config)``, e.g. for a retrain's span window and warm start.
    """
    from tfx import v1 as tfx

    from tfx_pipeline.beam_args import default_beam_args
    from tfx_pipeline.pipeline import create_pipeline

    settings = config.pipeline
    os.makedirs(settings.root, exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(settings.metadata_path)
    args = list(beam_args or settings.beam_args or default_beam_args())
    return create_pipeline(
        settings.name,
        settings.artifacts_root,
        data or data_settings(config),
        metadata_connection_config=metadata,
        beam_pipeline_args=args,
        enable_cache=settings.enable_cache,
        model=model or model_settings(config),
    )


def run(config: PipelineConfig, beam_args: Optional[List[str]] = None, data=None, model=None) -> "RunRecord":
    """Runs the whole pipeline once on LocalDagRunner; returns the run as ML Metadata recorded it.

    A failing component raises (the run is recorded with that component FAILED).
    """
    from tfx import v1 as tfx

    pipeline = build(config, beam_args, data, model)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return list_runs(config)[-1]


@dataclasses.dataclass
class RunRecord:
    """One pipeline run as ML Metadata recorded it."""

    run_id: str
    started_ms: int
    states: Dict[str, str]  # component id -> COMPLETE / CACHED / FAILED / RUNNING
    blessed: Optional[bool]  # the Evaluator's verdict (None: it did not run)
    serving_ok: Optional[bool]  # the serving validation's verdict
    pushed_version: Optional[str]
    pushed_destination: Optional[str]
    evaluation_uri: Optional[str]
    metrics: Dict[str, float]  # "<task>/<metric>" on the overall slice
    already_served: Optional[str] = None  # the version that already serves this run's model
    span: Optional[int] = None  # the newest span of its examples (days since 1970-01-01)
    examples_uri: Optional[str] = None  # EventLogExampleGen's Examples (Split-train, Split-eval)
    model_uri: Optional[str] = None  # the Trainer's Model artifact
    model_run_uri: Optional[str] = None  # the Trainer's logs (metrics.json, warm_start.json)

    @property
    def status(self) -> str:
        if any(s == "FAILED" for s in self.states.values()):
            failed = [c for c, s in self.states.items() if s == "FAILED"]
            return f"failed at {failed[0]}"
        if any(s in ("RUNNING", "NEW") for s in self.states.values()):
            return "incomplete"
        if self.pushed_version:
            return f"pushed v{self.pushed_version}"
        if self.already_served:
            return f"already serving v{self.already_served}"
        if self.blessed is False:
            return "not blessed"
        if self.serving_ok is False:
            return "serving check failed"
        return "complete, not pushed"


def list_runs(config: PipelineConfig) -> List[RunRecord]:
    """Past runs of this config's pipeline, oldest first (empty if it never ran)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx

    from tfx_pipeline.components.pusher import ALREADY_SERVED_PROPERTY

    if not os.path.exists(config.pipeline.metadata_path):
        return []
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.pipeline.metadata_path))
    runs = []
    for context in store.get_contexts_by_type("pipeline_run"):
        executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
        if not executions:
            continue
        record = RunRecord(context.name, context.create_time_since_epoch, {}, None, None, None, None, None, {})
        for execution in executions:
            component = _component_id(store, execution)
            state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
            record.states[component] = state
            outputs = _output_artifacts(store, execution.id)
            for artifact, type_name in outputs:
                if type_name == "ModelBlessing":
                    record.blessed = _int_property(artifact, "blessed") == 1
                elif type_name == "InfraBlessing":
                    record.serving_ok = _int_property(artifact, "blessed") == 1
                elif type_name == "PushedModel" and _int_property(artifact, "pushed") == 1:
                    record.pushed_version = _string_property(artifact, "pushed_version")
                    record.pushed_destination = _string_property(artifact, "pushed_destination")
                elif type_name == "PushedModel" and _int_property(artifact, ALREADY_SERVED_PROPERTY):
                    record.already_served = str(_int_property(artifact, ALREADY_SERVED_PROPERTY))
                elif type_name == "ModelEvaluation":
                    record.evaluation_uri = artifact.uri
                elif type_name == "Examples" and component == "EventLogExampleGen":
                    record.span = _int_property(artifact, "span")
                    record.examples_uri = artifact.uri
                elif type_name == "Model" and component == "Trainer":
                    record.model_uri = artifact.uri
                elif type_name == "ModelRun" and component == "Trainer":
                    record.model_run_uri = artifact.uri
        if record.evaluation_uri:
            record.metrics = overall_metrics(record.evaluation_uri, [t.name for t in config.experiment.tasks])
        runs.append(record)
    return sorted(runs, key=lambda r: (r.started_ms, r.run_id))


@dataclasses.dataclass(frozen=True)
class BlessedModel:
    """A Model artifact the Evaluator blessed: what the pipeline's latest_blessed_model resolves."""

    artifact_id: int
    uri: str
    run_id: Optional[str]  # the pipeline run that trained it

    @property
    def serving_model_dir(self) -> str:
        """The exported SavedModel inside the artifact (what the Trainer gets as base_model)."""
        from tfx.utils import path_utils

        return path_utils.serving_model_path(self.uri)


def latest_blessed_model(config: PipelineConfig) -> Optional[BlessedModel]:
    """The newest Model of this pipeline with a blessing (LatestBlessedModelStrategy's choice), or None."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx

    if not os.path.exists(config.pipeline.metadata_path):
        return None
    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.pipeline.metadata_path))
    pipeline = store.get_context_by_type_and_name("pipeline", config.pipeline.name)
    if pipeline is None:
        return None
    artifacts = store.get_artifacts_by_context(pipeline.id)
    types = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    blessed = {_int_property(a, "current_model_id") for a in artifacts
               if types[a.type_id] == "ModelBlessing" and _int_property(a, "blessed") == 1}
    models = [a for a in artifacts if types[a.type_id] == "Model" and a.id in blessed
              and a.state == metadata_store_pb2.Artifact.LIVE]
    if not models:
        return None
    model = max(models, key=lambda a: a.id)
    run_id = None
    events = [e for e in store.get_events_by_artifact_ids([model.id]) if e.type == metadata_store_pb2.Event.OUTPUT]
    for event in events[:1]:
        for context in store.get_contexts_by_execution(event.execution_id):
            if store.get_context_types_by_id([context.type_id])[0].name == "pipeline_run":
                run_id = context.name
    return BlessedModel(model.id, model.uri, run_id)


def find_run(config: PipelineConfig, run_id: str) -> RunRecord:
    """A run by id, or 'latest'; a ValueError listing the ids otherwise."""
    runs = list_runs(config)
    if not runs:
        raise ValueError(f"No runs recorded in {config.pipeline.metadata_path}; run `ctrflow run` first.")
    if run_id == "latest":
        return runs[-1]
    for record in runs:
        if record.run_id == run_id:
            return record
    raise ValueError(f"No run {run_id!r}. Known runs: {[r.run_id for r in runs]} (or 'latest').")


def overall_metrics(evaluation_uri: str, task_names: Sequence[str] = ()) -> Dict[str, float]:
    """'<task>/<metric>' -> value on the overall slice of a TFMA evaluation (the candidate model)."""
    import tensorflow_model_analysis as tfma

    from tfx_pipeline.evaluation.eval_config import output_task

    values: Dict[str, float] = {}
    try:
        result = tfma.load_eval_result(evaluation_uri)
    except Exception:  # an evaluation that failed midway has no readable result
        return values
    for slice_key, by_output in result.slicing_metrics:
        if slice_key != ():
            continue
        for output, by_sub_key in by_output.items():
            for metric, value in by_sub_key.get("", {}).items():
                if "doubleValue" in value:  # JSON gives NaN and infinities as strings
                    values[f"{output_task(output, task_names)}/{metric}"] = float(value["doubleValue"])
    return values


def _component_id(store, execution) -> str:
    for context in store.get_contexts_by_execution(execution.id):
        if context.type == "node" or store.get_context_types_by_id([context.type_id])[0].name == "node":
            return context.name.split(".")[-1]
    return str(execution.type).split(".")[-1]


def _output_artifacts(store, execution_id: int):
    from ml_metadata.proto import metadata_store_pb2

    events = [e for e in store.get_events_by_execution_ids([execution_id])
              if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = store.get_artifacts_by_id([e.artifact_id for e in events])
    types = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    return [(a, types[a.type_id]) for a in artifacts]


def _int_property(artifact, name: str) -> Optional[int]:
    if name in artifact.custom_properties:
        return artifact.custom_properties[name].int_value
    if name in artifact.properties:
        return artifact.properties[name].int_value
    return None


def _string_property(artifact, name: str) -> Optional[str]:
    for properties in (artifact.custom_properties, artifact.properties):
        if name in properties:
            value = properties[name]
            return value.string_value or (str(value.int_value) if value.int_value else None)
    return None
