"""ServingValidator: the executor on real exported models and a real raw eval split, and its verdicts."""

from __future__ import annotations

import json
import os

import pytest

from serving import signatures
from tfx_pipeline.components import serving_validator as sv
from transforms import features

MAX_HISTORY = 10
xf = features.transformed_name
INPUTS = [xf(features.ITEM_ID.name), xf(features.HISTORY_ITEMS.name), features.HISTORY_MASK.name,
          features.HOUR_OF_DAY.name, xf("device"), xf("item_price")]
CLICK = "click"
CONVERSION = "conversion"
GENEROUS = dict(latency_budget_ms=5000.0, batch_latency_budget_ms=20000.0)


def tiny_model(broken: bool = False):
    """Two sigmoid heads over the candidate, a pooled history and context. Broken: click in (1, 2), conversion NaN."""
    import tensorflow as tf
    import tf_keras as keras

    item, history, mask, hour, device, price = INPUTS
    inputs = {
        item: keras.Input([], dtype=tf.int64, name=item),
        history: keras.Input([MAX_HISTORY], dtype=tf.int64, name=history),
        mask: keras.Input([MAX_HISTORY], name=mask),
        hour: keras.Input([], dtype=tf.int64, name=hour),
        device: keras.Input([], dtype=tf.int64, name=device),
        price: keras.Input([], name=price),
    }
    items = keras.layers.Embedding(features.ITEM_ENCODING.num_rows, 4)
    weights = inputs[mask][..., None]
    pooled = tf.reduce_sum(items(inputs[history]) * weights, axis=1) / (tf.reduce_sum(weights, axis=1) + 1e-6)
    parts = [items(inputs[item]), pooled, keras.layers.Embedding(25, 2)(inputs[hour]),
             keras.layers.Embedding(features.SIDE_ENCODING.num_rows, 2)(inputs[device]), inputs[price][:, None]]
    hidden = keras.layers.Dense(8, activation="relu")(tf.concat(parts, axis=1))
    click = tf.squeeze(keras.layers.Dense(1, activation="sigmoid")(hidden), 1)
    conversion = tf.squeeze(keras.layers.Dense(1, activation="sigmoid")(hidden), 1)
    if broken:
        click = click + 1.0
        conversion = tf.math.log(conversion - 2.0)
    return keras.Model(inputs, {CLICK: click, CONVERSION: conversion})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, simulated_and_transformed):
    """A simulated log ingested to raw examples, its Transform graph, and two exported tiny models."""
    from serving import export
    from tfx_pipeline import simulator

    root = tmp_path_factory.mktemp("serving_validator")
    data = simulated_and_transformed(root, simulator.SimulatorConfig(users=20, items=60, days=2, seed=5),
                                     max_history=MAX_HISTORY)
    models = {}
    for kind in ("good", "broken"):
        uri = str(root / f"model-{kind}")
        export.export_serving_model(tiny_model(broken=kind == "broken"), data["graph"],
                                    os.path.join(uri, "Format-Serving"), INPUTS)
        models[kind] = uri
    return {"root": root, "examples": data["examples"], "models": models}


def _artifacts(model_uri, examples_uri, blessing_uri):
    from tfx.types import artifact_utils, standard_artifacts

    model = standard_artifacts.Model()
    model.uri = model_uri
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = blessing_uri
    os.makedirs(blessing_uri, exist_ok=True)
    return {sv.MODEL_KEY: [model], sv.EXAMPLES_KEY: [examples]}, {sv.BLESSING_KEY: [blessing]}


def _validate(model_uri, examples_uri, blessing_uri, **settings):
    inputs, outputs = _artifacts(model_uri, examples_uri, blessing_uri)
    sv.Executor().Do(inputs, outputs, sv.ServingValidationConfig(**settings).exec_properties())
    blessing = outputs[sv.BLESSING_KEY][0]
    with open(os.path.join(blessing_uri, sv.REPORT_FILE)) as stream:
        return blessing, json.load(stream)


def _eval_records(examples_dir, count):
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(examples_dir, "Split-eval", "*")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]


@pytest.mark.slow
def test_a_good_model_is_blessed_with_a_warmed_up_copy(prepared, tmp_path, monkeypatch):
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    def not_here(*args, **kwargs):
        raise AssertionError("the pipeline process must not load the model")

    monkeypatch.setattr(tf.saved_model, "load", not_here)
    uri = str(tmp_path / "blessing")
    blessing, report = _validate(prepared["models"]["good"], prepared["examples"], uri,
                                 num_timing_requests=20, **GENEROUS)
    monkeypatch.undo()

    assert report["blessed"] is True and report["reasons"] == []
    assert os.path.exists(os.path.join(uri, sv.BLESSED_FILE))
    assert not os.path.exists(os.path.join(uri, sv.NOT_BLESSED_FILE))
    assert blessing.get_int_custom_property(sv.BLESSED_PROPERTY) == 1
    assert blessing.get_int_custom_property(sv.HAS_MODEL_PROPERTY) == 1
    assert report["num_examples"] == 64
    assert set(report["outputs"]) == {"1", "64"} and set(report["latency_ms"]) == {"1", "64"}
    for batch, outputs in report["outputs"].items():
        assert set(outputs) == {CLICK, CONVERSION}
        assert outputs[CLICK]["shapes"] == [[int(batch)]] and outputs[CLICK]["non_finite"] == 0
        assert 0.0 <= outputs[CLICK]["min"] <= outputs[CLICK]["max"] <= 1.0
        stats = report["latency_ms"][batch]
        assert 0 < stats["p50"] <= stats["p99"] <= stats["max"] and stats["count"] == 20
    assert sorted(report["inputs"]) == sorted(signatures.raw_inputs(INPUTS))

    stamped = os.path.join(uri, "stamped_model")
    assert os.path.exists(os.path.join(stamped, "saved_model.pb"))
    warmup = os.path.join(stamped, "assets.extra", "tf_serving_warmup_requests")
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    assert len(logs) == 64 + 1 == report["warmup_records"]

    # Replaying the warmup requests through the warmed-up model serves probabilities, and the
    # first one (the first eval example) scores as that example's tf.Example does.
    loaded = tf.saved_model.load(stamped)
    for log in logs[:3] + logs[-1:]:
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        tensors = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        scores = loaded.signatures[request.model_spec.signature_name](**tensors)
        batch = next(iter(tensors.values())).shape[0]
        assert batch in (1, 64)
        for task in (CLICK, CONVERSION):
            values = scores[task].numpy()
            assert values.shape == (batch,) and np.all((values >= 0) & (values <= 1))
    first = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in logs[0].predict_log.request.inputs.items()}
    by_example = loaded.signatures["serving_tf_example"](examples=tf.constant(_eval_records(prepared["examples"], 1)))
    np.testing.assert_allclose(loaded.signatures["serving_default"](**first)[CLICK].numpy(),
                               by_example[CLICK].numpy(), atol=1e-6)


@pytest.mark.slow
def test_nan_or_out_of_range_outputs_are_not_blessed(prepared, tmp_path):
    uri = str(tmp_path / "blessing")
    blessing, report = _validate(prepared["models"]["broken"], prepared["examples"], uri, num_examples=8,
                                 num_timing_requests=5, **GENEROUS)
    assert report["blessed"] is False
    assert os.path.exists(os.path.join(uri, sv.NOT_BLESSED_FILE))
    assert not os.path.exists(os.path.join(uri, sv.BLESSED_FILE))
    assert blessing.get_int_custom_property(sv.BLESSED_PROPERTY) == 0
    assert not blessing.has_custom_property(sv.HAS_MODEL_PROPERTY)
    assert not os.path.exists(os.path.join(uri, "stamped_model"))
    reasons = "\n".join(report["reasons"])
    assert "output 'conversion' had" in reasons and "non-finite value(s) (NaN or inf) at batch 1" in reasons
    assert "output 'click' had values outside [0, 1] at batch 64" in reasons


@pytest.mark.slow
def test_an_impossible_latency_budget_is_not_blessed(prepared, tmp_path):
    uri = str(tmp_path / "blessing")
    blessing, report = _validate(prepared["models"]["good"], prepared["examples"], uri, num_examples=8,
                                 num_timing_requests=5, latency_budget_ms=0.0001, batch_latency_budget_ms=1e9)
    assert report["blessed"] is False and blessing.get_int_custom_property(sv.BLESSED_PROPERTY) == 0
    assert len(report["reasons"]) == 1, report["reasons"]
    assert report["reasons"][0].startswith("p99 latency at batch 1 is ")
    assert report["reasons"][0].endswith("the budget is 0.0001 ms")
    assert report["latency_ms"]["1"]["p99"] > 0.0001
    assert report["latency_ms"]["64"]["budget_p99"] == 1e9


@pytest.mark.slow
def test_validator_and_pusher_run_in_a_local_dag(prepared, tmp_path):
    """ServingValidator -> AtomicPusher on LocalDagRunner: a version with the warmup file lands."""
    from tfx import v1 as tfx
    from tfx.types import standard_artifacts

    from tfx_pipeline.components.pusher import make_pusher

    model = tfx.dsl.Importer(source_uri=prepared["models"]["good"], artifact_type=standard_artifacts.Model
                             ).with_id("model_importer")
    examples = tfx.dsl.Importer(source_uri=prepared["examples"], artifact_type=standard_artifacts.Examples,
                                properties={"split_names": '["train", "eval"]'}).with_id("examples_importer")
    evaluation = tfx.dsl.Importer(source_uri=str(tmp_path / "evaluator-blessing"),
                                  artifact_type=standard_artifacts.ModelBlessing,
                                  custom_properties={"blessed": 1}).with_id("blessing_importer")
    validation = sv.serving_validation(model.outputs["result"], examples.outputs["result"],
                                       sv.ServingValidationConfig(num_examples=4, num_timing_requests=3, **GENEROUS))
    push_base = str(tmp_path / "serving")
    pusher = make_pusher(model.outputs["result"], evaluation.outputs["result"], validation.outputs["blessing"],
                         push_base, "ctr")
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.db"))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="serving-validation-test", pipeline_root=str(tmp_path / "root"),
        components=[model, examples, evaluation, validation, pusher], metadata_connection_config=metadata))

    versions = os.listdir(os.path.join(push_base, "ctr"))
    assert len(versions) == 1 and versions[0].isdigit(), versions
    pushed = os.path.join(push_base, "ctr", versions[0])
    assert os.path.exists(os.path.join(pushed, "saved_model.pb"))
    assert os.path.exists(os.path.join(pushed, "assets.extra", "tf_serving_warmup_requests"))


# ------------------------------------------------------------------ fast: failures, verdicts, wiring


@pytest.fixture
def fake_inputs(tmp_path):
    """A model directory and an eval split that exist, for runs where the worker never gets far."""
    model_uri = tmp_path / "model"
    (model_uri / "Format-Serving").mkdir(parents=True)
    (tmp_path / "examples" / "Split-eval").mkdir(parents=True)
    (tmp_path / "examples" / "Split-eval" / "data.gz").write_bytes(b"")
    return str(model_uri), str(tmp_path / "examples")


def test_a_crashing_worker_is_not_blessed_with_its_exit_status(fake_inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(sv, "WORKER_MODULE", "tfx_pipeline.components.no_such_worker")
    uri = str(tmp_path / "blessing")
    blessing, report = _validate(*fake_inputs, uri)
    assert report["blessed"] is False and blessing.get_int_custom_property(sv.BLESSED_PROPERTY) == 0
    assert os.path.exists(os.path.join(uri, sv.NOT_BLESSED_FILE))
    assert "exited with status 1 and wrote no result" in report["reasons"][0]
    assert "No module named tfx_pipeline.components.no_such_worker" in report["reasons"][0]


def test_a_worker_past_its_timeout_is_not_blessed(fake_inputs, tmp_path):
    blessing, report = _validate(*fake_inputs, str(tmp_path / "blessing"), timeout_seconds=1)
    assert report["blessed"] is False and report["worker"]["timed_out"] is True
    assert report["reasons"] == [
        "the worker did not finish within timeout_seconds=1 s (model load, requests and timing); raise "
        "timeout_seconds if the model is just slow to load"]


def test_a_missing_split_is_a_configuration_error(fake_inputs, tmp_path):
    with pytest.raises(ValueError, match=r"has no split 'test'; it has \['train', 'eval'\]"):
        _validate(*fake_inputs, str(tmp_path / "blessing"), split_name="test")


def test_output_problems_name_output_batch_and_value():
    good = {"dtype": "float32", "shapes": [[4]], "non_finite": 0, "min": 0.1, "max": 0.9}
    assert sv.output_problems({"4": {CLICK: good}}) == []
    problems = sv.output_problems({
        "4": {CLICK: dict(good, shapes=[[4, 1]]), CONVERSION: dict(good, dtype="int64", min=-0.5)},
        "1": {},
    })
    assert problems == [
        "output 'click' has shape(s) [[4, 1]] at batch 4; expected [4] (one probability per example)",
        "output 'conversion' has dtype int64 at batch 4; expected a floating-point probability",
        "output 'conversion' had values outside [0, 1] at batch 4 (min -0.5, max 0.9); expected probabilities",
        "the signature returned no outputs at batch 1; expected {task: probability}",
    ]


def test_judge_reports_worker_stage_errors():
    run = sv.WorkerRun({"error": {"stage": "load_model", "type": "KeyError", "message": "no signature 'x'"}},
                       0, False, 2.0, "log line")
    report = sv.judge(run, sv.ServingValidationConfig())
    assert report["blessed"] is False
    assert report["reasons"] == ["the worker failed at stage 'load_model': KeyError: no signature 'x'"]
    assert report["budgets_p99_ms"] == {"1": 50.0, "64": 200.0}


def test_latency_stats_percentiles():
    stats = sv.latency_stats([float(k) for k in range(1, 101)])
    assert stats["p50"] == pytest.approx(50.5) and stats["p99"] == pytest.approx(99.01)
    assert stats["max"] == 100.0 and stats["count"] == 100


def test_config_rejects_bad_settings_and_round_trips_exec_properties():
    with pytest.raises(ValueError, match=r"`mode` must be one of \['local', 'docker', 'kubernetes'\]. "
                                         r"Received: mode='podman'"):
        sv.ServingValidationConfig(mode="podman")
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer >= 2.*Received: batch_size=1"):
        sv.ServingValidationConfig(batch_size=1)
    with pytest.raises(ValueError, match="`latency_budget_ms` must be a positive number of ms"):
        sv.ServingValidationConfig(latency_budget_ms=0)
    config = sv.ServingValidationConfig(num_examples=8, latency_budget_ms=12.5, make_warmup=False)
    assert sv.ServingValidationConfig.from_exec_properties(config.exec_properties()) == config


def test_serving_validation_picks_the_component_by_mode():
    from tfx.components.infra_validator.component import InfraValidator
    from tfx.proto import infra_validator_pb2
    from tfx.types import channel_utils, standard_artifacts
    from tfx.utils import proto_utils

    model = channel_utils.as_channel([standard_artifacts.Model()])
    examples = channel_utils.as_channel([standard_artifacts.Examples()])
    local = sv.serving_validation(model, examples, sv.ServingValidationConfig(num_examples=16))
    assert isinstance(local, sv.ServingValidator)
    assert local.exec_properties[sv.NUM_EXAMPLES_KEY] == 16 and local.exec_properties[sv.MAKE_WARMUP_KEY] == 1
    assert local.outputs[sv.BLESSING_KEY].type == standard_artifacts.InfraBlessing

    docker = sv.serving_validation(model, examples, sv.ServingValidationConfig(mode="docker", docker_tag="2.16.1-gpu"))
    assert isinstance(docker, InfraValidator)
    serving_spec = proto_utils.json_to_proto(docker.exec_properties["serving_spec"], infra_validator_pb2.ServingSpec())
    assert serving_spec.tensorflow_serving.image_name == "tensorflow/serving"
    assert list(serving_spec.tensorflow_serving.tags) == ["2.16.1-gpu"]
    assert serving_spec.WhichOneof("serving_platform") == "local_docker"
    request_spec = proto_utils.json_to_proto(docker.exec_properties["request_spec"], infra_validator_pb2.RequestSpec())
    assert list(request_spec.tensorflow_serving.signature_names) == ["serving_tf_example"]
    assert request_spec.make_warmup and request_spec.num_examples == 64 and request_spec.split_name == "eval"
    with pytest.raises(ValueError, match="Received: mode='docker'"):
        sv.ServingValidator(model, examples, sv.ServingValidationConfig(mode="docker"))
