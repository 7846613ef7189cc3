"""The exported model carries its Transform graph: raw inputs score exactly as the training path."""

import os
import shutil

import numpy as np
import pytest

from serving import export, requests, signatures
from transforms import features

xf = features.transformed_name
INPUTS = [xf("item_id"), xf("category_id"), xf("history_item_id"), xf("history_time_gap"),
          features.HISTORY_MASK.name, xf("device"), xf("item_price"), features.HOUR_OF_DAY.name]


def tiny_model():
    """A small model over transformed features: item, history (masked mean), side fields."""
    import tensorflow as tf
    import tf_keras as keras

    inputs = {
        xf("item_id"): keras.Input([], dtype=tf.int64, name=xf("item_id")),
        xf("category_id"): keras.Input([], dtype=tf.int64, name=xf("category_id")),
        xf("history_item_id"): keras.Input([features.MAX_HISTORY], dtype=tf.int64, name=xf("history_item_id")),
        xf("history_time_gap"): keras.Input([features.MAX_HISTORY], dtype=tf.int64, name=xf("history_time_gap")),
        features.HISTORY_MASK.name: keras.Input([features.MAX_HISTORY], name=features.HISTORY_MASK.name),
        xf("device"): keras.Input([], dtype=tf.int64, name=xf("device")),
        xf("item_price"): keras.Input([], name=xf("item_price")),
        features.HOUR_OF_DAY.name: keras.Input([], dtype=tf.int64, name=features.HOUR_OF_DAY.name),
    }
    items = keras.layers.Embedding(features.ITEM_ENCODING.num_rows, 4)
    item = items(inputs[xf("item_id")])
    history = items(inputs[xf("history_item_id")]) + keras.layers.Embedding(25, 4)(inputs[xf("history_time_gap")])
    mask = inputs[features.HISTORY_MASK.name][..., None]
    pooled = tf.reduce_sum(history * mask, axis=1) / (tf.reduce_sum(mask, axis=1) + 1e-6)
    parts = [item, pooled, item * pooled,
             keras.layers.Embedding(features.CATEGORY_ENCODING.num_rows, 4)(inputs[xf("category_id")]),
             keras.layers.Embedding(features.SIDE_ENCODING.num_rows, 2)(inputs[xf("device")]),
             keras.layers.Embedding(25, 2)(inputs[features.HOUR_OF_DAY.name]),
             inputs[xf("item_price")][:, None]]
    hidden = keras.layers.Dense(8, activation="relu")(tf.concat(parts, axis=1))
    click = keras.layers.Dense(1, activation="sigmoid")(hidden)
    return keras.Model(inputs, {"click": tf.squeeze(click, 1)})


@pytest.mark.slow
def test_raw_serving_scores_equal_training_path_without_transform_output(analyze, make_raw, tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    items = [f"item{k}" for k in range(30)]
    examples = []
    for k in range(40):
        history = list(rng.choice(items, size=rng.integers(0, 12)))
        side = {"device": [str(rng.choice(["ios", "web"]))]} if k % 3 else {}
        if k % 4:
            side["item_price"] = [float(rng.uniform(1, 50))]
        examples.append(make_raw(f"u{k % 7}", str(rng.choice(items)), f"c{k % 5}", 1704069000 + 3600 * k,
                                 history=history, **side))
    # serving also sees what training never did: an unknown item and an over-long history
    examples.append(make_raw("u-new", "never-seen", "c-new", 1704069000,
                             history=[f"item{k % 30}" for k in range(features.MAX_HISTORY + 20)]))
    rows, transform_dir = analyze(examples[:-1])
    model = tiny_model()
    batch = {name: tf.constant(np.stack([r[name] for r in rows])) for name in INPUTS}
    training_scores = model(batch)["click"].numpy()

    export_dir = str(tmp_path / "model")
    export.export_serving_model(model, transform_dir, export_dir, INPUTS)
    shutil.rmtree(transform_dir)
    assert not os.path.exists(transform_dir)

    serve = export.load_signature(export_dir)
    names = signatures.raw_inputs(INPUTS)
    assert sorted(serve.structured_input_signature[1]) == sorted(names)
    tensors = requests.to_tensors(requests.dense_request(examples, names), serve.structured_input_signature[1])
    served = serve(**tensors)["click"].numpy()
    np.testing.assert_allclose(served[:-1], training_scores, atol=1e-5)
    assert np.all(np.isfinite(served)) and np.all((served > 0) & (served < 1))

    # The tf.Example signature gives the same scores too.
    from tfx_pipeline.ingest.pipeline import encode_examples

    by_example = export.load_signature(export_dir, signatures.SERVING_TF_EXAMPLE)
    serialized = encode_examples([{k: v for k, v in e.items() if v} for e in examples[:-1]])
    np.testing.assert_allclose(by_example(examples=tf.constant(serialized))["click"].numpy(), training_scores,
                               atol=1e-5)


def test_raw_inputs_are_derived_from_model_features():
    assert signatures.raw_inputs([xf("item_id"), features.HISTORY_MASK.name, "click", features.HOUR_OF_DAY.name]) == [
        "item_id", "history_item_id", "timestamp"]
    with pytest.raises(ValueError, match="Unknown transformed feature 'item_id'"):
        signatures.raw_inputs(["item_id"])
