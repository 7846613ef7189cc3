import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.layers.interest import AuxiliaryLoss, InterestExtractor


def softplus(x):
    return math.log1p(math.exp(x))


def test_hand_computed_interest_state():
    extractor = InterestExtractor(units=1)
    extractor.build([None, None, 1])
    # Keras GRU blocks (update z, reset r, candidate); kernel 1 on the candidate only.
    extractor.set_weights([np.array([[0.0, 0.0, 1.0]]), np.zeros([1, 3]), np.zeros([2, 3])])
    out = extractor(tf.constant([[[1.0], [5.0]]]), mask=tf.constant([[1, 0]]))
    # h1 = z * h0 + (1 - z) * tanh(1) with z = sigmoid(0) = 0.5; the padded step outputs 0.
    np.testing.assert_allclose(out.numpy(), [[[0.5 * math.tanh(1.0)], [0.0]]], rtol=1e-6)


def test_extractor_ignores_padding():
    extractor = InterestExtractor(units=3)
    x = tf.random.stateless_normal([2, 5, 4], seed=[1, 1])
    mask = tf.sequence_mask([3, 5], 5)
    noisy = tf.where(mask[..., tf.newaxis], x, 7.0)
    clean = extractor(x, mask=mask)
    np.testing.assert_array_equal(clean.numpy(), extractor(noisy, mask=mask).numpy())
    np.testing.assert_array_equal(clean.numpy()[0, 3:], np.zeros([2, 3]))


def _sum_scorer():
    """A linear scorer whose logit is the sum of the target embedding: s(h, e) = sum(e)."""
    aux = AuxiliaryLoss(hidden_units=())
    aux.scorer.build([None, None, 2 + 2])
    aux.scorer.set_weights([np.array([[0.0], [0.0], [1.0], [1.0]]), np.zeros(1)])
    return aux


def test_hand_computed_auxiliary_loss():
    states = tf.random.stateless_normal([2, 3, 2], seed=[2, 2])
    clicked = tf.constant([[[9.0, 9.0], [1.0, 0.5], [7.0, 7.0]], [[0.0, 0.0], [2.0, 0.0], [-1.0, 0.0]]])
    negatives = tf.constant([[[9.0, 9.0], [0.5, 0.0], [7.0, 7.0]], [[0.0, 0.0], [1.0, 1.0], [0.0, -3.0]]])
    mask = tf.constant([[1, 1, 0], [1, 1, 1]])
    # Valid pairs: row 0 (t=1 -> 2); row 1 (1 -> 2) and (2 -> 3). Each pair costs
    # -log sigmoid(sum e_next) - log(1 - sigmoid(sum e^_next)) = softplus(-pos) + softplus(neg).
    expected = (softplus(-1.5) + softplus(0.5)
                + softplus(-2.0) + softplus(2.0)
                + softplus(1.0) + softplus(-3.0)) / 3
    loss = _sum_scorer()(states, clicked, negatives, mask=mask)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)


def test_auxiliary_loss_ignores_padding_and_is_zero_without_pairs():
    aux = AuxiliaryLoss(hidden_units=(4,))
    states = tf.random.stateless_normal([2, 4, 3], seed=[3, 3])
    clicked = tf.random.stateless_normal([2, 4, 2], seed=[4, 4])
    negatives = tf.random.stateless_normal([2, 4, 2], seed=[5, 5])
    mask = tf.sequence_mask([2, 3], 4)
    noise = tf.random.stateless_normal([2, 4, 2], seed=[6, 6])
    padded = mask[..., tf.newaxis]
    clean = aux(states, clicked, negatives, mask=mask, training=True)
    noisy = aux(tf.where(padded, states, 3.0), tf.where(padded, clicked, noise),
                tf.where(padded, negatives, noise), mask=mask, training=True)
    np.testing.assert_array_equal(clean.numpy(), noisy.numpy())
    assert aux(states, clicked, negatives, mask=tf.sequence_mask([1, 1], 4)).numpy() == 0.0


def test_auxiliary_loss_falls_when_the_next_click_is_predictable():
    keras.utils.set_random_seed(0)
    num_items, steps, batch = 20, 6, 64
    successor = np.roll(np.arange(1, num_items), 7)  # item i -> successor[i - 1], a fixed permutation
    rng = np.random.default_rng(0)

    def sample():
        ids = np.zeros([batch, steps], np.int64)
        ids[:, 0] = rng.integers(1, num_items, batch)
        for t in range(1, steps):
            ids[:, t] = successor[ids[:, t - 1] - 1]
        return ids, rng.integers(1, num_items, [batch, steps])

    table = keras.layers.Embedding(num_items, 8, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0))
    extractor = InterestExtractor(units=8)
    aux = AuxiliaryLoss(hidden_units=(16,))
    optimizer = keras.optimizers.Adam(0.03)

    @tf.function(autograph=False)  # the layers need no AutoGraph; converting tf_keras costs seconds
    def step(ids, negative_ids):
        with tf.GradientTape() as tape:
            clicked = table(ids)
            loss = aux(extractor(clicked), clicked, table(negative_ids), training=True)
        variables = table.trainable_variables + extractor.trainable_variables + aux.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses = [float(step(*sample())) for _ in range(120)]
    initial, final = np.mean(losses[:5]), np.mean(losses[-10:])
    assert initial > 1.2  # about 2 log 2 for an untrained scorer
    assert final < 0.4 * initial, (initial, final)


@pytest.mark.parametrize("make, message", [
    (lambda: InterestExtractor(units=0), r"`units` must be positive. Received: units=0"),
    (lambda: AuxiliaryLoss(activation="tanh"), r"`activation` must be one of .* Received: activation='tanh'"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_config_round_trip():
    extractor = InterestExtractor(units=5)
    assert InterestExtractor.from_config(extractor.get_config()).get_config() == extractor.get_config()
    aux = AuxiliaryLoss(hidden_units=(8, 4), activation="dice")
    assert AuxiliaryLoss.from_config(aux.get_config()).get_config() == aux.get_config()


def test_save_and_load_with_the_loss_added_to_the_model(tmp_path):
    clicked, negatives, mask = keras.Input([4, 3]), keras.Input([4, 3]), keras.Input([4], dtype="bool")
    states = InterestExtractor(units=2)(clicked, mask=mask)
    aux_loss = AuxiliaryLoss(hidden_units=(4,))(states, clicked, negatives, mask=mask)
    model = keras.Model([clicked, negatives, mask], states)
    model.add_loss(aux_loss)
    inputs = [tf.random.stateless_normal([2, 4, 3], seed=[7, 7]),
              tf.random.stateless_normal([2, 4, 3], seed=[8, 8]),
              tf.sequence_mask([2, 4], 4)]
    expected_states = model(inputs).numpy()
    expected_loss = model.losses[0].numpy()
    model.save(str(tmp_path / "model"))
    loaded = keras.models.load_model(str(tmp_path / "model"))
    np.testing.assert_allclose(loaded(inputs).numpy(), expected_states, rtol=1e-6)
    assert len(loaded.losses) == 1
    np.testing.assert_allclose(loaded.losses[0].numpy(), expected_loss, rtol=1e-6)


def test_gradients_reach_every_trainable_weight():
    extractor = InterestExtractor(units=3)
    aux = AuxiliaryLoss(hidden_units=(4,))
    clicked = tf.random.stateless_normal([3, 5, 2], seed=[9, 9])
    negatives = tf.random.stateless_normal([3, 5, 2], seed=[10, 10])
    mask = tf.sequence_mask([5, 3, 4], 5)
    with tf.GradientTape() as tape:
        loss = aux(extractor(clicked, mask=mask), clicked, negatives, mask=mask, training=True)
    variables = extractor.trainable_variables + aux.trainable_variables
    gradients = tape.gradient(loss, variables)
    assert len(variables) == 3 + 4
    for variable, gradient in zip(variables, gradients):
        assert gradient is not None and np.any(gradient.numpy() != 0), variable.name
