import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.layers.dice import Dice
from trainer.layers.mlp import MLP


def test_hand_computed_relu_tower():
    tower = MLP(hidden_units=[2], activation="relu", output_units=1)
    tower.build([None, 2])
    tower.set_weights([
        np.array([[1.0, -1.0], [2.0, 0.0]]), np.array([0.0, 1.0]),  # hidden
        np.array([[1.0], [3.0]]), np.array([0.5]),  # output
    ])
    # x = [1, 1]: hidden relu([3, 0]) = [3, 0] -> 3 + 0.5 = 3.5
    # x = [-1, 0.5]: hidden relu([0, 2]) = [0, 2] -> 6 + 0.5 = 6.5
    out = tower(tf.constant([[1.0, 1.0], [-1.0, 0.5]]))
    np.testing.assert_allclose(out.numpy(), [[3.5], [6.5]])


def test_output_width_without_output_layer_and_per_unit_activations():
    x = tf.ones([2, 5, 4])
    prelu = MLP([3, 2], activation="prelu")
    assert prelu(x).shape == (2, 5, 2)
    assert [w.shape for w in prelu.weights if "alpha" in w.name] == [(1, 3), (1, 2)]
    dice = MLP([3], activation="dice")
    dice(x)
    assert isinstance(dice.activation_layers[0], Dice)
    assert MLP([3], activation="sigmoid")(tf.ones([2, 4])).shape == (2, 3)


def test_padding_does_not_change_real_outputs_in_training():
    values = tf.random.stateless_normal([2, 4, 3], seed=[1, 1])
    mask = tf.constant([[1, 1, 1, 0], [1, 0, 0, 0]]) > 0
    noisy = tf.where(mask[..., tf.newaxis], values, tf.random.stateless_normal([2, 4, 3], seed=[2, 2]))
    tower = MLP([4], activation="dice", use_batch_norm=True, output_units=2)
    clean_out = tower(values, training=True, mask=mask)
    noisy_out = tower(noisy, training=True, mask=mask)
    np.testing.assert_array_equal(tf.boolean_mask(clean_out, mask), tf.boolean_mask(noisy_out, mask))


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden_units": [4], "activation": "tanh"},
     r"`activation` must be one of \('relu', 'prelu', 'dice', 'sigmoid'\). Received: activation='tanh'"),
    ({"hidden_units": [4, 0]}, r"`hidden_units` must all be positive. Received: hidden_units=\[4, 0\]"),
    ({"hidden_units": [4], "dropout_rate": 1.0}, r"`dropout_rate` must be in \[0, 1\). Received: dropout_rate=1.0"),
    ({"hidden_units": [], "output_units": None}, r"needs at least one layer"),
    ({"hidden_units": [], "output_units": 0}, r"`output_units` must be positive or None. Received: output_units=0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


def test_config_round_trip():
    tower = MLP([8, 4], activation="dice", dropout_rate=0.1, use_batch_norm=True, output_units=1)
    assert MLP.from_config(tower.get_config()).get_config() == tower.get_config()


def test_save_and_load(tmp_path):
    inputs = keras.Input([3])
    outputs = MLP([4], activation="dice", dropout_rate=0.2, use_batch_norm=True, output_units=1)(inputs)
    model = keras.Model(inputs, outputs)
    x = tf.random.stateless_normal([6, 3], seed=[3, 3])
    model(x, training=True)
    model.save(str(tmp_path / "model"))
    loaded = keras.models.load_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5)


@pytest.mark.parametrize("activation", ["prelu", "dice"])
def test_gradients_reach_every_trainable_weight(activation):
    tower = MLP([4, 3], activation=activation, use_batch_norm=True, output_units=2)
    x = tf.random.stateless_normal([8, 5], seed=[4, 4])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tower(x, training=True) * tf.constant([1.0, -2.0]))
    gradients = tape.gradient(loss, tower.trainable_variables)
    assert len(gradients) == len(tower.trainable_variables) > 0
    for variable, gradient in zip(tower.trainable_variables, gradients):
        assert gradient is not None and np.any(gradient.numpy() != 0), variable.name
