import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.layers.infnet import CrossAttention, InfnetBlock, ProxyGatedUnit, TaskTokens


def _random(shape, seed):
    return tf.random.stateless_normal(shape, seed=[seed, seed])


def test_hand_computed_cross_attention():
    attend = CrossAttention()
    attend.build([None, None, 2])
    attend(tf.zeros([1, 1, 2]), tf.zeros([1, 1, 2]))  # creates the key and value projections
    attend.set_weights([np.eye(2)] * 3)  # W_Q, W_K, W_V = I
    query = tf.constant([[[1.0, 0.0]]])
    keys = tf.constant([[[1.0, 0.0], [0.0, 1.0], [7.0, 7.0]]])
    out = attend(query, keys, key_mask=tf.constant([[1, 1, 0]]))
    # logits [1/sqrt(2), 0] over the real keys; the padded key is left out.
    w = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)
    np.testing.assert_allclose(out.numpy(), [[[w, 1 - w]]], rtol=1e-6)
    # Without a real key the output is zero.
    np.testing.assert_array_equal(attend(query, keys, key_mask=tf.zeros([1, 3])).numpy(), [[[0.0, 0.0]]])


def test_hand_computed_proxy_gated_unit():
    gate = ProxyGatedUnit(hidden_units=())
    gate(tf.zeros([1, 1, 2]), tf.zeros([1, 1, 2]))  # creates the gate MLP
    gate.set_weights([np.eye(2), np.zeros(2)])  # the gate MLP: flatten(1 x 2 proxies) -> 2
    out = gate(tf.constant([[[1.0, 1.0], [2.0, 4.0]]]), tf.constant([[[2.0, -1.0]]]))
    s2, s_1 = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))  # one gate for both tokens
    np.testing.assert_allclose(out.numpy(), [[[s2, s_1], [2 * s2, 4 * s_1]]], rtol=1e-6)


def test_task_tokens_repeat_over_the_batch():
    tokens = TaskTokens(num_tokens=2, dim=3)
    tokens.build(None)
    tokens.set_weights([np.arange(6.0).reshape(2, 3)])
    out = tokens(tf.zeros([4, 7]))
    assert out.shape == (4, 2, 3)
    np.testing.assert_array_equal(out.numpy()[3], np.arange(6.0).reshape(2, 3))


def _block_inputs():
    categorical, sequence, tasks = _random([2, 3, 4], 1), _random([2, 5, 4], 2), _random([2, 2, 4], 3)
    mask = tf.constant([[1, 1, 0, 1, 0], [1, 0, 0, 1, 1]]) > 0  # two behaviour types: 3 + 2
    return categorical, sequence, tasks, mask


def test_hand_computed_block_with_zero_weights():
    categorical, sequence, tasks, mask = _block_inputs()
    block = InfnetBlock(sequence_lengths=[3, 2], hidden_units=(8,))
    block(categorical, sequence, tasks, sequence_mask=mask)
    block.set_weights([np.zeros(w.shape) for w in block.get_weights()])
    c, s, t = block(categorical, sequence, tasks, sequence_mask=mask)
    # Zero value projections: every cross-attention output is 0, so all proxies and T^ are 0;
    # every gate is sigmoid(0) = 0.5: C' = C + 0.5 C, S' = 1.5 S (0 at padding), T' = 0.
    np.testing.assert_allclose(c.numpy(), 1.5 * categorical.numpy(), rtol=1e-6)
    np.testing.assert_allclose(s.numpy(), 1.5 * sequence.numpy() * mask.numpy()[..., None], rtol=1e-6)
    np.testing.assert_array_equal(t.numpy(), np.zeros([2, 2, 4]))


def test_block_proxy_counts():
    block = InfnetBlock(num_categorical_proxies=3, num_sequence_proxies=2, num_shared_task_tokens=5,
                        sequence_lengths=[3, 2], hidden_units=())
    categorical, sequence, tasks, mask = _block_inputs()
    block(categorical, sequence, tasks, sequence_mask=mask)
    assert block.sequence_projection(tf.zeros([1, 2, 4])).shape == (1, 2, 2 * 4)  # m_s * d per type
    assert block.categorical_proxy_mlp.output_units == 3 * 4
    assert block.shared_task_tokens.tokens.shape == (5, 4)


@pytest.mark.parametrize("sequence_lengths", [None, [3, 2]])
def test_padded_sequence_positions_have_no_effect(sequence_lengths):
    categorical, sequence, tasks, mask = _block_inputs()
    noisy = tf.where(mask[..., tf.newaxis], sequence, _random([2, 5, 4], 9) * 100.0)
    block = InfnetBlock(sequence_lengths=sequence_lengths, hidden_units=(8,), activation="dice")
    clean_outputs = block(categorical, sequence, tasks, sequence_mask=mask, training=True)
    noisy_outputs = block(categorical, noisy, tasks, sequence_mask=mask, training=True)
    for clean, noisy_out in zip(clean_outputs, noisy_outputs):
        np.testing.assert_array_equal(clean.numpy(), noisy_out.numpy())
    np.testing.assert_array_equal(clean_outputs[1].numpy()[~mask.numpy()], 0.0)


@pytest.mark.parametrize("make, message", [
    (lambda: InfnetBlock(num_categorical_proxies=0),
     r"`num_categorical_proxies` must be positive. Received: num_categorical_proxies=0"),
    (lambda: InfnetBlock(sequence_lengths=[]),
     r"`sequence_lengths` must be a non-empty list of positive lengths or None. Received: sequence_lengths=\[\]"),
    (lambda: InfnetBlock(activation="gelu"), r"`activation` must be one of .* Received: activation='gelu'"),
    (lambda: CrossAttention(key_dim=-1), r"`key_dim` must be positive. Received: key_dim=-1"),
    (lambda: TaskTokens(num_tokens=0, dim=2), r"`num_tokens` must be positive. Received: num_tokens=0"),
    (lambda: ProxyGatedUnit(activation="tanh"), r"`activation` must be one of .* Received: activation='tanh'"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_segment_lengths_must_add_up_to_the_sequence_length():
    categorical, sequence, tasks, mask = _block_inputs()
    with pytest.raises(ValueError, match=r"`sequence_lengths` must add up to the sequence length L. "
                                         r"Received: sequence_lengths=\[2, 2\], sequence.shape=\(2, 5, 4\)"):
        InfnetBlock(sequence_lengths=[2, 2])(categorical, sequence, tasks, sequence_mask=mask)


def test_token_widths_must_match():
    categorical, sequence, tasks, mask = _block_inputs()
    with pytest.raises(ValueError, match=r"`tasks` must be \[B, N, d\] with the width d=4 of `categorical`"):
        InfnetBlock()(categorical, sequence, tf.ones([2, 2, 3]), sequence_mask=mask)


@pytest.mark.parametrize("layer", [
    CrossAttention(key_dim=8, output_dim=4),
    ProxyGatedUnit(hidden_units=(16, 8), activation="prelu"),
    TaskTokens(num_tokens=3, dim=8),
    InfnetBlock(num_categorical_proxies=2, num_sequence_proxies=3, num_shared_task_tokens=1,
                sequence_lengths=[50, 50], key_dim=16, hidden_units=(32,), activation="dice"),
])
def test_config_round_trip(layer):
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_save_and_load(tmp_path):
    categorical, sequence = keras.Input([3, 4]), keras.Input([5, 4])
    mask = keras.Input([5], dtype="bool")
    tasks = TaskTokens(num_tokens=2, dim=4)(categorical)
    c, s, t = InfnetBlock(sequence_lengths=[3, 2], hidden_units=(8,))(categorical, sequence, tasks,
                                                                      sequence_mask=mask)
    model = keras.Model([categorical, sequence, mask], [c, s, t])
    inputs = list(_block_inputs())
    inputs = [inputs[0], inputs[1], inputs[3]]
    model.save(str(tmp_path / "model"))
    loaded = keras.models.load_model(str(tmp_path / "model"))
    for expected, actual in zip(model(inputs), loaded(inputs)):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)


def test_gradients_reach_every_trainable_weight():
    categorical, sequence, _, mask = _block_inputs()
    tokens = TaskTokens(num_tokens=2, dim=4)
    block = InfnetBlock(sequence_lengths=[3, 2], hidden_units=(8,))
    with tf.GradientTape() as tape:
        c, s, t = block(categorical, sequence, tokens(categorical), sequence_mask=mask, training=True)
        loss = sum(tf.reduce_sum(x * _random(x.shape, 20 + i)) for i, x in enumerate((c, s, t)))
    variables = tokens.trainable_variables + block.trainable_variables
    gradients = tape.gradient(loss, variables)
    assert len(variables) == 1 + 8 * 3 + 3 * 4 + 4 + 1 + 1
    for variable, gradient in zip(variables, gradients):
        assert gradient is not None and np.any(gradient.numpy() != 0), variable.name
