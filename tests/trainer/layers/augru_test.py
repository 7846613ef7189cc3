import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.layers.augru import AUGRU, AUGRUCell

SIGMOID_0 = 0.5


def _layer(gate, return_sequences=False):
    """units = 1, one input feature; block order reset, candidate[, update]."""
    layer = AUGRU(units=1, gate=gate, return_sequences=return_sequences)
    layer.build([None, None, 1])
    blocks = 2 if gate == "agru" else 3
    # kernel: reset 0, candidate 1, update 0; recurrent: candidate 1 only; bias 0.
    kernel = np.array([[0.0, 1.0, 0.0][:blocks]])
    recurrent = np.array([[0.0, 1.0, 0.0][:blocks]])
    layer.set_weights([kernel, recurrent, np.zeros(blocks)])
    return layer


X = tf.constant([[[1.0], [2.0]]])
SCORES = tf.constant([[0.5, 1.0]])


def test_hand_computed_augru():
    # Step 1 (h0 = 0): u = sigmoid(0) = 0.5, u~ = 0.5 * 0.5, h~ = tanh(1); h1 = u~ * h~.
    h1 = 0.25 * math.tanh(1.0)
    # Step 2: r = 0.5, h~ = tanh(2 + 0.5 * h1), u~ = 1.0 * 0.5; h2 = 0.5 * h1 + 0.5 * h~.
    h2 = 0.5 * h1 + 0.5 * math.tanh(2.0 + SIGMOID_0 * h1)
    out = _layer("augru", return_sequences=True)(X, SCORES)
    np.testing.assert_allclose(out.numpy(), [[[h1], [h2]]], rtol=1e-6)


def test_hand_computed_aigru():
    # The input is scaled: x~ = [0.5, 2.0]; plain GRU with u = 0.5.
    h1 = 0.5 * math.tanh(0.5)
    h2 = 0.5 * h1 + 0.5 * math.tanh(2.0 + SIGMOID_0 * h1)
    out = _layer("aigru")(X, SCORES)
    np.testing.assert_allclose(out.numpy(), [[h2]], rtol=1e-6)


def test_hand_computed_agru():
    # The update gate is the score: h1 = 0.5 * tanh(1); h2 = 0 * h1 + 1.0 * tanh(2 + 0.5 * h1).
    h1 = 0.5 * math.tanh(1.0)
    h2 = math.tanh(2.0 + SIGMOID_0 * h1)
    out = _layer("agru")(X, SCORES)
    np.testing.assert_allclose(out.numpy(), [[h2]], rtol=1e-6)


@pytest.mark.parametrize("gate", ["augru", "agru"])
def test_zero_score_keeps_the_state(gate):
    layer = AUGRU(units=3, gate=gate)
    x = tf.random.stateless_normal([2, 4, 5], seed=[1, 1])
    first_only = layer(x[:, :1], tf.ones([2, 1]))
    np.testing.assert_allclose(layer(x, tf.constant([[1.0, 0, 0, 0]] * 2)).numpy(), first_only.numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("gate", ["augru", "aigru", "agru"])
def test_padded_steps_have_no_effect(gate):
    layer = AUGRU(units=3, gate=gate, return_sequences=True)
    x = tf.random.stateless_normal([2, 5, 4], seed=[2, 2])
    scores = tf.random.stateless_uniform([2, 5], seed=[3, 3])
    mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]) > 0
    noisy_x = tf.where(mask[..., tf.newaxis], x, tf.random.stateless_normal([2, 5, 4], seed=[4, 4]))
    noisy_scores = tf.where(mask, scores, 0.9)
    clean = layer(x, scores, mask=mask)
    np.testing.assert_array_equal(clean.numpy(), layer(noisy_x, noisy_scores, mask=mask).numpy())
    np.testing.assert_array_equal(clean.numpy()[0, 3:], np.zeros([2, 3]))
    final = AUGRU(units=3, gate=gate)
    final.build([None, None, 4])
    final.set_weights(layer.get_weights())
    # The final state of a padded row is its state at the last real step.
    np.testing.assert_allclose(final(noisy_x, noisy_scores, mask=mask).numpy()[0], clean.numpy()[0, 2], rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"units": 0}, r"`units` must be positive. Received: units=0"),
    ({"units": 2, "gate": "lstm"}, r"`gate` must be one of \('augru', 'aigru', 'agru'\). Received: gate='lstm'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AUGRU(**kwargs)


def test_scores_of_wrong_rank_are_rejected():
    with pytest.raises(ValueError, match=r"`attention_scores` must be \[B, T\]. Received: attention_scores.shape=\(2,\)"):
        AUGRU(units=2)(tf.ones([2, 3, 4]), tf.ones([2]))


@pytest.mark.parametrize("gate", ["augru", "aigru", "agru"])
def test_config_round_trip(gate):
    layer = AUGRU(units=4, gate=gate, return_sequences=True)
    assert AUGRU.from_config(layer.get_config()).get_config() == layer.get_config()
    cell = AUGRUCell(units=4, gate=gate, kernel_initializer="zeros")
    assert AUGRUCell.from_config(cell.get_config()).get_config() == cell.get_config()


def test_save_and_load(tmp_path):
    states, scores, mask = keras.Input([5, 4]), keras.Input([5]), keras.Input([5], dtype="bool")
    model = keras.Model([states, scores, mask], AUGRU(units=3)(states, scores, mask=mask))
    inputs = [tf.random.stateless_normal([2, 5, 4], seed=[5, 5]),
              tf.random.stateless_uniform([2, 5], seed=[6, 6]),
              tf.sequence_mask([3, 5], 5)]
    model.save(str(tmp_path / "model"))
    loaded = keras.models.load_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded(inputs).numpy(), model(inputs).numpy(), rtol=1e-6)
    # The exported serving function runs without the Python classes.
    restored = tf.saved_model.load(str(tmp_path / "model"))
    np.testing.assert_allclose(restored(inputs).numpy(), model(inputs).numpy(), rtol=1e-6)


@pytest.mark.parametrize("gate", ["augru", "aigru", "agru"])
def test_gradients_reach_every_trainable_weight(gate):
    layer = AUGRU(units=3, gate=gate)
    x = tf.random.stateless_normal([3, 4, 2], seed=[7, 7])
    scores = tf.random.stateless_uniform([3, 4], seed=[8, 8])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, scores, mask=tf.sequence_mask([4, 2, 3], 4)) * tf.constant([1.0, -1.0, 2.0]))
    gradients = tape.gradient(loss, layer.trainable_variables)
    assert len(gradients) == 3
    for variable, gradient in zip(layer.trainable_variables, gradients):
        assert gradient is not None and np.any(gradient.numpy() != 0), variable.name
