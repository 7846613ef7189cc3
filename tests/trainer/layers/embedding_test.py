import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.layers.embedding import EmbeddingTable

WEIGHTS = np.array([[9.0, 9.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
COUNTS = [0, 1, 2, 4, 1]
IDS = [tf.constant([1, 2]), tf.constant([[2, 3, 0], [1, 0, 0]])]


def _table(**kwargs):
    table = EmbeddingTable(num_rows=5, dim=2, **kwargs)
    table.build(None)
    table.embeddings.assign(WEIGHTS)
    return table


def test_lookups_of_several_id_tensors():
    item, history = _table()(IDS)
    np.testing.assert_array_equal(item.numpy(), WEIGHTS[[1, 2]])
    np.testing.assert_array_equal(history.numpy(), WEIGHTS[[[2, 3, 0], [1, 0, 0]]])
    np.testing.assert_array_equal(_table()(tf.constant([4])).numpy(), WEIGHTS[[4]])


def test_hand_computed_mini_batch_aware_regularization():
    table = _table(mba_lambda=0.1, row_counts=COUNTS)
    table(IDS, training=True)
    # Unique non-padding ids {1, 2, 3}, each once although 1 and 2 occur in both tensors:
    # 0.5 * 0.1 * (|w1|^2 / 1 + |w2|^2 / 2 + |w3|^2 / 4) = 0.05 * (1 + 2 + 0.5) = 0.175.
    assert len(table.losses) == 1
    np.testing.assert_allclose(table.losses[0].numpy(), 0.175, rtol=1e-6)
    np.testing.assert_allclose(table.regularization(IDS).numpy(), 0.175, rtol=1e-6)


def test_regularization_gradient_is_the_update_of_din_eq_7_and_only_on_batch_rows():
    table = _table(mba_lambda=0.1, row_counts=COUNTS)
    with tf.GradientTape() as tape:
        table(IDS, training=True)
        loss = tf.add_n(table.losses)
    gradient = tf.convert_to_tensor(tape.gradient(loss, table.embeddings)).numpy()
    # lambda * w_j / n_j on rows 1, 2, 3; padding row 0 and absent row 4 get zero.
    expected = np.zeros_like(WEIGHTS)
    for j in (1, 2, 3):
        expected[j] = 0.1 * WEIGHTS[j] / COUNTS[j]
    np.testing.assert_allclose(gradient, expected, rtol=1e-6)


def test_no_regularization_at_inference_or_when_off():
    table = _table(mba_lambda=0.1)
    table(IDS, training=False)
    table(IDS)
    assert table.losses == []
    off = _table()
    off(IDS, training=True)
    assert off.losses == []
    assert off.regularization(IDS).numpy() == 0.0


def test_rows_never_seen_in_training_count_as_one():
    table = _table(mba_lambda=1.0, row_counts=[0, 0, 0, 0, 0])
    np.testing.assert_allclose(table.regularization([tf.constant([0, 4])]).numpy(), 0.5 * 9.0)


def test_padding_mask_and_keras_mask():
    ids = tf.constant([[3, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(EmbeddingTable.padding_mask(ids).numpy(),
                                  [[True, True, False], [False, False, False]])
    table = EmbeddingTable(num_rows=5, dim=2, mask_zero=True)
    masks = table.compute_mask(IDS)
    np.testing.assert_array_equal(masks[1].numpy(), [[True, True, False], [True, False, False]])
    assert table(ids)._keras_mask is not None
    assert EmbeddingTable(num_rows=5, dim=2).compute_mask(ids) is None


@pytest.mark.parametrize("kwargs, message", [
    ({"num_rows": 1, "dim": 2}, r"`num_rows` must be at least 2 \(row 0 is the padding row\). Received: num_rows=1"),
    ({"num_rows": 5, "dim": 0}, r"`dim` must be positive. Received: dim=0"),
    ({"num_rows": 5, "dim": 2, "mba_lambda": -0.1}, r"`mba_lambda` must be non-negative. Received: mba_lambda=-0.1"),
    ({"num_rows": 5, "dim": 2, "row_counts": [1, 2]},
     r"`row_counts` must have one count per row, shape \(5,\). Received: row_counts with shape \(2,\)"),
    ({"num_rows": 2, "dim": 2, "row_counts": [1, -2]}, r"`row_counts` must be finite and non-negative"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingTable(**kwargs)


def test_config_round_trip():
    table = EmbeddingTable(num_rows=4, dim=3, mba_lambda=0.01, row_counts=np.array([0, 5, 1, 2]),
                           mask_zero=True, embeddings_initializer="zeros")
    config = table.get_config()
    assert "row_counts" not in config, "counts travel as the inverse_row_counts weight, not in the config"
    clone = EmbeddingTable.from_config(config)
    assert clone.get_config() == config
    table.build(None)
    clone.build(None)
    clone.set_weights(table.get_weights())
    np.testing.assert_allclose(clone.inverse_row_counts.numpy(), [1.0, 0.2, 1.0, 0.5])


def test_save_and_load_keeps_lookups_and_the_regularization(tmp_path):
    item, history = keras.Input([], dtype="int64"), keras.Input([3], dtype="int64")
    table = EmbeddingTable(num_rows=5, dim=2, mba_lambda=0.1, row_counts=COUNTS)
    item_embedding, history_embedding = table([item, history])
    model = keras.Model([item, history], keras.layers.Concatenate(axis=1)(
        [item_embedding[:, tf.newaxis], history_embedding]))
    table.embeddings.assign(WEIGHTS)
    inputs = [tf.constant([1, 2], tf.int64), tf.constant([[2, 3, 0], [1, 0, 0]], tf.int64)]
    model.save(str(tmp_path / "model"))
    loaded = keras.models.load_model(str(tmp_path / "model"))
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    loaded(inputs, training=True)
    np.testing.assert_allclose(tf.add_n(loaded.losses).numpy(), 0.175, rtol=1e-6)


def test_gradients_reach_every_trainable_weight():
    table = EmbeddingTable(num_rows=6, dim=3, mba_lambda=0.01)
    with tf.GradientTape() as tape:
        item, history = table([tf.constant([1, 5]), tf.constant([[2, 3], [4, 0]])], training=True)
        loss = tf.reduce_sum(item) + tf.reduce_sum(history * 2.0) + tf.add_n(table.losses)
    gradients = tape.gradient(loss, table.trainable_variables)
    assert len(gradients) == 1
    assert np.any(tf.convert_to_tensor(gradients[0]).numpy() != 0)
