"""Training on Transform's output, and every model through a SavedModel with its serving signature."""

import os

import numpy as np
import pytest

from trainer import config as experiment

MODELS = ["baseline", "din", "dien", "infnet"]
# Model variants that change the serving graph: (id, model config overrides).
VARIANTS = [pytest.param({"name": name}, id=name) for name in MODELS] + [
    pytest.param({"name": "dien", "dien_attention_scorer": "bilinear"}, id="dien-bilinear-scorer")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, simulated_and_transformed):
    """A tiny simulated log, ingested and transformed (histories of 10)."""
    from tfx_pipeline import simulator

    return simulated_and_transformed(tmp_path_factory.mktemp("prepared"),
                                     simulator.SimulatorConfig(users=40, items=120, days=2, seed=4), max_history=10)


def small_config(name, model=None, **training):
    return experiment.with_defaults(
        model={"name": name, **(model or {}), "embedding_dim": 4, "hidden_units": [8], "attention_units": [4], "num_blocks": 2,
               "side_features": ["device", "item_price"], "mba_lambda": 0.01},
        tasks=[{"name": "click", "label": "click"},
               {"name": "conversion", "label": "conversion", "ctcvr": True}],
        training={"epochs": 1, "batch_size": 64, "steps_per_epoch": 3, "eval_steps": 2,
                  "early_stopping_patience": 0, **training})


def eval_batch(prepared, size=16):
    """Raw eval examples as serving_default wants them, and their transformed features."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import data

    raw_files = tf.io.gfile.glob(os.path.join(prepared["examples"], "Split-eval", "*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(raw_files, compression_type="GZIP").take(size)]
    transformed_spec = tft.TFTransformOutput(prepared["graph"]).transformed_feature_spec()
    transformed = next(iter(data.make_dataset(data.split_pattern(prepared["transformed"], "eval"),
                                              transformed_spec, size, shuffle=False)))
    return records, transformed


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_model_trains_exports_and_serves_raw_features(prepared, tmp_path, variant):
    from trainer.train import train_and_evaluate

    result = train_and_evaluate(small_config(variant["name"], variant), prepared["graph"], prepared["transformed"], verbose=0)
    for task in ("click", "conversion"):
        for metric in ("auc", "logloss", "calibration", "gauc"):
            assert f"{task}_{metric}" in result.metrics
    assert result.train_examples == 3 * 64 and result.examples_per_second > 0
    assert_serves_raw_features_as_trained(result.model, prepared, tmp_path)


def assert_serves_raw_features_as_trained(model, prepared, tmp_path, atol=1e-5):
    """Exports `model` with the transform graph; both signatures score raw examples as the model does."""
    import tensorflow as tf

    from serving import export, requests, signatures

    records, transformed = eval_batch(prepared)
    expected = model(transformed)
    export_dir = str(tmp_path / "model")
    export.export_serving_model(model, prepared["graph"], export_dir, model.input_features)
    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures[signatures.SERVING_DEFAULT]
    names = list(serve.structured_input_signature[1])
    request = requests.dense_request(requests.from_tf_examples(records, names), names)
    served = serve(**requests.to_tensors(request, serve.structured_input_signature[1]))
    by_example = loaded.signatures[signatures.SERVING_TF_EXAMPLE](examples=tf.constant(records))
    for task in ("click", "conversion"):
        np.testing.assert_allclose(served[task].numpy(), expected[task].numpy(), atol=atol)
        np.testing.assert_allclose(by_example[task].numpy(), expected[task].numpy(), atol=atol)


@pytest.mark.slow
def test_trains_under_mirrored_strategy_and_with_mixed_precision_requested(prepared):
    import tensorflow as tf

    from trainer.train import train_and_evaluate

    strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0"])
    result = train_and_evaluate(small_config("din", mixed_precision=True), prepared["graph"],
                                prepared["transformed"], verbose=0, strategy=strategy)
    assert np.isfinite(result.metrics["click_logloss"])
    # mixed precision helps only on GPUs; on CPU the policy stays float32
    import tf_keras as keras

    expected = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    assert keras.mixed_precision.global_policy().name == expected
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_trains_with_loss_scaling_and_serves_under_mixed_float16(prepared, tmp_path, monkeypatch, caplog):
    """The float16 path `mixed_precision: true` takes on a GPU, forced on this CPU.

    ``use_mixed_precision`` turns the policy on only where a GPU is; replaced here, the rest
    of training runs as it would there: float16 compute, float32 variables, and the loss
    scaled by the LossScaleOptimizer Keras' compile wraps around Adam. DIEN, whose GRUs and
    auxiliary loss make it the model with the most float16 steps; every model's forward
    pass and gradients under the policy are tested in tests/trainer/models/models_test.py."""
    import tensorflow as tf
    import tf_keras as keras

    from trainer import train

    monkeypatch.setattr(train, "use_mixed_precision",
                        lambda enabled: keras.mixed_precision.set_global_policy("mixed_float16"))
    try:
        result = train.train_and_evaluate(small_config("dien", mixed_precision=True),
                                          prepared["graph"], prepared["transformed"], verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model = result.model
    assert model.compute_dtype == "float16" and all(v.dtype == tf.float32 for v in model.trainable_variables)
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    # What the optimizer logs when a step applies gradients of an unscaled loss.
    assert not [r for r in caplog.records if "forgot to call LossScaleOptimizer" in r.getMessage()]
    assert all(np.isfinite(result.metrics[f"{task}_logloss"]) for task in ("click", "conversion"))
    # float16 activations: the served model agrees with the trained one to float16 precision.
    assert_serves_raw_features_as_trained(model, prepared, tmp_path, atol=2e-3)


@pytest.mark.slow
def test_early_stopping_watches_eval_gauc(prepared):
    from trainer.train import monitored_metric, train_and_evaluate

    config = small_config("baseline", epochs=3, early_stopping_patience=1)
    result = train_and_evaluate(config, prepared["graph"], prepared["transformed"], verbose=0)
    assert monitored_metric(config) == "val_click_gauc"
    assert "val_click_gauc" in result.history and len(result.history["val_click_gauc"]) >= 2


@pytest.mark.slow
def test_length_sorted_batches_hold_every_example_once_and_train(prepared):
    import tensorflow_transform as tft

    from trainer import data
    from trainer.train import train_and_evaluate
    from transforms import features

    spec = tft.TFTransformOutput(prepared["graph"]).transformed_feature_spec()
    pattern = data.split_pattern(prepared["transformed"], "train")
    item = features.transformed_name(features.ITEM_ID.name)
    history = features.transformed_name(features.HISTORY_ITEMS.name)
    mask, user = features.HISTORY_MASK.name, features.USER_KEY.name

    def examples(**kwargs):
        batches = list(data.make_dataset(pattern, spec, 16, shuffle=True, seed=3, **kwargs))
        rows = sorted((batch[user].numpy()[i], tuple(batch[history].numpy()[i].tolist()), int(batch[item].numpy()[i]))
                      for batch in batches for i in range(len(batch[item])))
        return batches, rows

    plain, plain_rows = examples()
    ordered, ordered_rows = examples(length_sort_window=4)
    assert ordered_rows == plain_rows and len(ordered) == len(plain)

    def spread(batches):  # mean over batches of (longest - shortest history)
        lengths = [b[mask].numpy().sum(1) for b in batches]
        return np.mean([x.max() - x.min() for x in lengths])

    assert spread(ordered) < spread(plain)

    result = train_and_evaluate(small_config("dien", steps_per_epoch=0, length_sort_window=4),
                                prepared["graph"], prepared["transformed"], verbose=0)
    assert np.isfinite(result.metrics["click_logloss"]) and result.train_examples == len(plain_rows)
