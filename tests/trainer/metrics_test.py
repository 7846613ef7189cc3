import itertools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.metrics import Calibration, GroupAUC, auc, gauc

# u1: one positive (0.9) between two negatives (0.5 below, 0.95 above): AUC 1/2, 3 impressions.
# u2: positives 0.8, 0.3 against negatives 0.3, 0.1: pairs 1 + 1 + 0.5 (tie) + 1 = 3.5 of 4, 4 impressions.
# u3: only positives: skipped.
GROUPS = ["u1", "u1", "u1", "u2", "u2", "u2", "u2", "u3", "u3"]
LABELS = [1, 0, 0, 1, 1, 0, 0, 1, 1]
SCORES = [0.9, 0.5, 0.95, 0.8, 0.3, 0.3, 0.1, 0.2, 0.7]
EXPECTED_GAUC = (3 * 0.5 + 4 * 0.875) / 7


def _pairwise_auc(labels, scores, weights):
    """Brute force: every positive-negative pair, ties 0.5."""
    wins = total = 0.0
    for (yi, si, wi), (yj, sj, wj) in itertools.product(zip(labels, scores, weights), repeat=2):
        if yi == 1 and yj == 0:
            wins += wi * wj * (1.0 if si > sj else 0.5 if si == sj else 0.0)
            total += wi * wj
    return wins / total


def _random_log(seed, size=300, num_groups=25):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, num_groups, size)
    labels = (rng.random(size) < 0.3).astype(np.int64)
    scores = np.round(rng.random(size), 1).astype(np.float32)  # many ties
    return groups, labels, scores


def test_hand_computed_gauc():
    assert gauc(GROUPS, LABELS, SCORES) == pytest.approx(EXPECTED_GAUC)
    assert gauc([3, 3, 1, 1], [1, 0, 0, 1], [0.2, 0.1, 0.5, 0.5]) == pytest.approx((2 * 1.0 + 2 * 0.5) / 4)


def test_auc_ties_count_half():
    assert auc([1, 0], [0.5, 0.5]) == 0.5
    assert auc([1, 1, 0, 0], [0.8, 0.3, 0.3, 0.1]) == 0.875
    assert auc([0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8]) == 0.5
    assert np.isnan(auc([1, 1], [0.1, 0.2]))


def test_auc_matches_brute_force_with_weights():
    _, labels, scores = _random_log(1, size=60)
    weights = np.random.default_rng(2).integers(0, 4, 60).astype(float)
    assert auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores, np.ones(60)))
    assert auc(labels, scores, weights) == pytest.approx(_pairwise_auc(labels, scores, weights))


def test_weights_count_exactly_as_repeated_impressions():
    weights = np.array([1, 2, 1, 3, 1, 1, 2, 1, 1])
    repeated = [np.repeat(np.asarray(a), weights) for a in (GROUPS, LABELS, SCORES)]
    assert gauc(GROUPS, LABELS, SCORES, weights) == pytest.approx(gauc(*repeated), abs=1e-12)
    # u1 weighs 4 impressions, u2 7. In u1 the 0.5 negative counts twice: AUC_u1 = (1 * 2 + 0 * 1) / (1 * 3).
    u1 = _pairwise_auc(LABELS[:3], SCORES[:3], weights[:3])
    u2 = _pairwise_auc(LABELS[3:7], SCORES[3:7], weights[3:7])
    assert u1 == pytest.approx(2 / 3)
    assert gauc(GROUPS, LABELS, SCORES, weights) == pytest.approx((4 * u1 + 7 * u2) / 11)


def test_gauc_without_two_class_groups_is_nan():
    assert np.isnan(gauc(["a", "b"], [1, 0], [0.3, 0.4]))


@pytest.mark.parametrize("call, message", [
    (lambda: gauc(["a"], [1, 0], [0.1, 0.2]), r"`groups` must have one id per row. Received: 1 groups for 2 labels"),
    (lambda: auc([1, 2], [0.1, 0.2]), r"`labels` must be 0 or 1. Received: values \[1. 2.\]"),
    (lambda: auc([1, 0], [0.1]), r"must have the same number of values. Received: 2, 1 and 2 values"),
    (lambda: auc([1, 0], [0.1, 0.2], [1, -1]), r"`sample_weight` must be finite and non-negative"),
])
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_streaming_metric_on_the_hand_computed_example():
    metric = GroupAUC()
    metric.update_state(LABELS[:4], SCORES[:4], groups=GROUPS[:4])
    metric.update_state(LABELS[4:], SCORES[4:], groups=GROUPS[4:])
    assert metric.result().numpy() == pytest.approx(EXPECTED_GAUC, rel=1e-6)


@pytest.mark.parametrize("as_strings", [False, True])
def test_streaming_metric_equals_numpy_over_several_batches(as_strings):
    groups, labels, scores = _random_log(3)
    weights = np.random.default_rng(4).integers(0, 3, groups.size).astype(np.float32)
    if as_strings:
        groups = np.array([f"user-{g}" for g in groups])
    metric, weighted = GroupAUC(), GroupAUC()
    for start, stop in [(0, 7), (7, 8), (8, 100), (100, 101), (101, 300)]:  # growing buffers
        metric.update_state(labels[start:stop, None], scores[start:stop, None], groups[start:stop, None])
        weighted.update_state(labels[start:stop], scores[start:stop], groups[start:stop],
                              sample_weight=weights[start:stop])
    assert metric.result().numpy() == pytest.approx(gauc(groups, labels, scores), rel=1e-6)
    assert weighted.result().numpy() == pytest.approx(gauc(groups, labels, scores, weights), rel=1e-6)


def test_streaming_metric_under_tf_function_and_reset():
    groups, labels, scores = _random_log(5, size=200)
    metric = GroupAUC()
    @tf.function
    def update(labels, scores, groups):
        metric.update_state(labels, scores, groups)

    result = tf.function(metric.result)
    for start in range(0, 200, 64):
        update(tf.constant(labels[start:start + 64]), tf.constant(scores[start:start + 64]),
               tf.constant(groups[start:start + 64]))
    assert result().numpy() == pytest.approx(gauc(groups, labels, scores), rel=1e-6)
    assert int(metric.count.numpy()) == 200
    metric.reset_state()
    assert int(metric.count.numpy()) == 0 and np.isnan(result().numpy())
    update(tf.constant(LABELS), tf.constant(SCORES), tf.constant(GROUPS))
    assert result().numpy() == pytest.approx(EXPECTED_GAUC, rel=1e-6)


def test_streaming_metric_in_a_keras_evaluation_loop():
    class Ranker(keras.Model):
        """Scores the feature "x"; evaluation reports GAUC per "user"."""

        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")
            self.group_auc = GroupAUC()

        def call(self, features):
            return self.dense(features["x"])

        def test_step(self, data):
            features, labels = data
            self.group_auc.update_state(labels, self(features), groups=features["user"])
            return {"gauc": self.group_auc.result()}

        @property
        def metrics(self):
            return [self.group_auc]

    groups, labels, scores = _random_log(6, size=120)
    model = Ranker()
    model.compile()
    data = tf.data.Dataset.from_tensor_slices(({"x": scores[:, None], "user": groups}, labels)).batch(32)
    result = model.evaluate(data, verbose=0, return_dict=True)
    # sigmoid(x) is monotone: GAUC of the model equals GAUC of the raw scores.
    assert result["gauc"] == pytest.approx(gauc(groups, labels, scores), rel=1e-6)


def test_config_round_trip():
    metric = GroupAUC(name="ctr_gauc")
    assert GroupAUC.from_config(metric.get_config()).get_config() == metric.get_config()


def test_calibration_is_predicted_over_observed_positives():
    metric = Calibration()
    metric.update_state([1, 0, 0, 1], [0.5, 0.25, 0.25, 0.5])  # 1.5 predicted for 2 observed
    assert metric.result().numpy() == pytest.approx(0.75)
    metric.update_state([[0], [1]], [[0.5], [0.5]], sample_weight=[[2.0], [0.0]])  # adds 1.0 and 0
    assert metric.result().numpy() == pytest.approx(2.5 / 2)
    metric.reset_state()
    assert metric.result().numpy() == 0.0
    assert Calibration.from_config(metric.get_config()).get_config() == metric.get_config()
