"""AUC and GAUC (impression-weighted per-user AUC): exact NumPy functions and a streaming Keras metric.

Also `Calibration`, the ratio of predicted to observed positives.

GAUC (DIN Eq. 10) = sum_u imp_u * AUC_u / sum_u imp_u over the users u whose impressions hold
both labels; users with one label class are skipped (as FuxiCTR's gAUC does). `imp_u` is the
number of impressions of u, or the sum of their sample weights when weights are given.

AUC is the tie-aware pair count: for positives i and negatives j (of one user, for GAUC),
`AUC = sum_{i,j} w_i w_j ([s_i > s_j] + 0.5 [s_i = s_j]) / (sum_i w_i * sum_j w_j)`. With unit
weights it is the Mann-Whitney statistic with average ranks for ties; a weight w is exactly
the same as repeating the row w times.

References:
    Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
    (arXiv:1706.06978), Eq. 10; reczoo/FuxiCTR fuxictr/metrics.py (gAUC).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras


def _as_arrays(labels, scores, sample_weight):
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    weights = (np.ones_like(labels) if sample_weight is None
               else np.asarray(sample_weight, dtype=np.float64).reshape(-1))
    if not labels.size == scores.size == weights.size:
        raise ValueError(
            "`labels`, `scores` and `sample_weight` must have the same number of values. "
            f"Received: {labels.size}, {scores.size} and {weights.size} values")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"`labels` must be 0 or 1. Received: values {np.unique(labels)[:10]}")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("`sample_weight` must be finite and non-negative.")
    return labels, scores, weights


def _weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """Tie-aware AUC of validated arrays; nan without both classes (by weight)."""
    positive_weight = np.sum(weights * labels)
    negative_weight = np.sum(weights * (1 - labels))
    if positive_weight == 0 or negative_weight == 0:
        return float("nan")
    # Blocks of equal scores, in increasing score order.
    distinct, block = np.unique(scores, return_inverse=True)
    positives = np.bincount(block, weights=weights * labels, minlength=distinct.size)
    negatives = np.bincount(block, weights=weights * (1 - labels), minlength=distinct.size)
    negatives_below = np.cumsum(negatives) - negatives
    wins = np.sum(positives * (negatives_below + 0.5 * negatives))
    return float(wins / (positive_weight * negative_weight))


def auc(labels, scores, sample_weight=None) -> float:
    """Exact ROC AUC, ties counting 0.5 (rank based, O(n log n)).

    Args:
        labels: 0/1 values, any shape.
        scores: predictions, same number of values.
        sample_weight: optional non-negative weights; weight w equals repeating the row w times.

    Returns:
        The AUC, or nan when one class is missing.

    Example:
        >>> auc([0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8])
        0.5
    """
    return _weighted_auc(*_as_arrays(labels, scores, sample_weight))


def gauc(groups, labels, scores, sample_weight=None) -> float:
    """Exact GAUC: impression-weighted AUC per group (user), skipping one-class groups.

    Args:
        groups: group (user) ids, strings or ints, one per row.
        labels: 0/1 values.
        scores: predictions.
        sample_weight: optional non-negative weights (impressions of the row).

    Returns:
        `sum_u imp_u * AUC_u / sum_u imp_u` over groups with both classes; nan if none has.

    Example:
        >>> gauc(["a", "a", "b", "b", "b"], [1, 0, 1, 0, 0], [0.9, 0.1, 0.2, 0.5, 0.1])
        0.7
    """
    labels, scores, weights = _as_arrays(labels, scores, sample_weight)
    groups = np.asarray(groups).reshape(-1)
    if groups.size != labels.size:
        raise ValueError(
            "`groups` must have one id per row. "
            f"Received: {groups.size} groups for {labels.size} labels")
    _, group_index = np.unique(groups, return_inverse=True)
    order = np.argsort(group_index, kind="stable")
    boundaries = np.flatnonzero(np.diff(group_index[order])) + 1
    weighted_sum = 0.0
    total_impressions = 0.0
    for rows in np.split(order, boundaries) if order.size else []:
        value = _weighted_auc(labels[rows], scores[rows], weights[rows])
        if not np.isnan(value):
            impressions = np.sum(weights[rows])
            weighted_sum += impressions * value
            total_impressions += impressions
    return weighted_sum / total_impressions if total_impressions > 0 else float("nan")


def _group_auc_tf(groups: tf.Tensor, labels: tf.Tensor, scores: tf.Tensor,
                  weights: tf.Tensor) -> tf.Tensor:
    """Vectorized exact GAUC in TensorFlow (float64); nan when no group has both classes."""
    unique_groups, group_index = tf.unique(groups)
    num_groups = tf.size(unique_groups)
    # Sort by (group, score): score first, then a stable sort by group.
    order = tf.argsort(scores, stable=True)
    order = tf.gather(order, tf.argsort(tf.gather(group_index, order), stable=True))
    sorted_groups = tf.gather(group_index, order)
    sorted_scores = tf.gather(scores, order)
    sorted_labels = tf.gather(labels, order)
    sorted_weights = tf.gather(weights, order)
    # Blocks of rows with the same group and the same score.
    starts = tf.concat([
        [True],
        tf.logical_or(sorted_groups[1:] != sorted_groups[:-1],
                      sorted_scores[1:] != sorted_scores[:-1]),
    ], axis=0)
    block = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    num_blocks = block[-1] + 1
    positives = tf.math.unsorted_segment_sum(sorted_weights * sorted_labels, block, num_blocks)
    negatives = tf.math.unsorted_segment_sum(sorted_weights * (1 - sorted_labels), block, num_blocks)
    block_group = tf.math.unsorted_segment_max(sorted_groups, block, num_blocks)
    # Negative weight in lower-score blocks of the same group.
    cumulative = tf.cumsum(negatives, exclusive=True)
    group_offset = tf.math.unsorted_segment_min(cumulative, block_group, num_groups)
    negatives_below = cumulative - tf.gather(group_offset, block_group)
    wins = tf.math.unsorted_segment_sum(
        positives * (negatives_below + 0.5 * negatives), block_group, num_groups)
    positive_weight = tf.math.unsorted_segment_sum(positives, block_group, num_groups)
    negative_weight = tf.math.unsorted_segment_sum(negatives, block_group, num_groups)
    valid = tf.logical_and(positive_weight > 0, negative_weight > 0)
    group_auc = tf.math.divide_no_nan(wins, positive_weight * negative_weight)
    impressions = tf.where(valid, positive_weight + negative_weight, tf.zeros_like(wins))
    total = tf.reduce_sum(impressions)
    return tf.where(total > 0, tf.reduce_sum(impressions * group_auc) / total,
                    tf.constant(float("nan"), tf.float64))


@keras.utils.register_keras_serializable(package="ctrflow")
class GroupAUC(keras.metrics.Metric):
    """Exact streaming GAUC: keeps every (group, label, score, weight) and computes GAUC on read.

    `update_state(y_true, y_pred, groups, sample_weight=None)` appends the batch to growing
    buffers (capacity doubles, so appending is amortized O(batch)); `result()` sorts all rows
    once and returns exactly `gauc(groups, labels, scores, sample_weight)` (float64 inside,
    nan while no group holds both classes); `reset_state()` empties the buffers.

    Why: GAUC is the offline metric DIN and BARS report, and no Keras, TFRS or TFMA metric
    computes it; approximate bucketed AUCs per user are biased on small users. Memory is
    linear in the rows seen, fine for validation sets; for larger evaluations use `gauc` on
    exported predictions. Groups are compared as strings (ints are converted exactly). It is a
    single-replica metric: under a multi-replica strategy compute it on the host.

    It does not fit `compile(metrics=...)`, which passes no groups: call it from a
    `train_step`/`test_step` or a TFRS task, e.g. `metric.update_state(labels, probs, user_ids)`.

    References:
        Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
        (arXiv:1706.06978), Eq. 10.

    Args:
        name: metric name.
        dtype: dtype of the result.

    Example:
        >>> metric = GroupAUC()
        >>> metric.update_state([1, 0, 1, 0], [0.9, 0.2, 0.3, 0.4], groups=["a", "a", "b", "b"])
        >>> float(metric.result())
        0.5
    """

    def __init__(self, name: str = "gauc", dtype=None) -> None:
        super().__init__(name=name, dtype=dtype)

        def buffer(dtype, name):
            return tf.Variable(tf.zeros([0], dtype=dtype), shape=tf.TensorShape(None),
                               validate_shape=False, trainable=False, name=name)

        self.groups_buffer = buffer(tf.string, "groups")
        self.labels_buffer = buffer(tf.float32, "labels")
        self.scores_buffer = buffer(tf.float32, "scores")
        self.weights_buffer = buffer(tf.float32, "weights")
        self.count = tf.Variable(0, dtype=tf.int32, trainable=False, name="count")

    def _buffers(self):
        return (self.groups_buffer, self.labels_buffer, self.scores_buffer, self.weights_buffer)

    def update_state(self, y_true, y_pred, groups, sample_weight=None):
        labels = tf.cast(tf.cast(tf.reshape(y_true, [-1]), tf.float32) > 0.5, tf.float32)
        scores = tf.cast(tf.reshape(y_pred, [-1]), tf.float32)
        groups = tf.reshape(groups, [-1])
        if groups.dtype != tf.string:
            groups = tf.strings.as_string(groups)
        if sample_weight is None:
            weights = tf.ones_like(scores)
        else:
            weights = tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
            weights = tf.broadcast_to(weights, tf.shape(scores))
        size = tf.size(scores)
        checks = [
            tf.debugging.assert_equal(tf.size(labels), size,
                                      message="GroupAUC: y_true and y_pred sizes differ"),
            tf.debugging.assert_equal(tf.size(groups), size,
                                      message="GroupAUC: groups and y_pred sizes differ"),
        ]
        with tf.control_dependencies(checks):
            end = self.count + size
        capacity = tf.shape(self.scores_buffer)[0]

        def grow():
            new_capacity = tf.maximum(end, 2 * capacity)
            for variable in self._buffers():
                padding = tf.zeros([new_capacity - capacity], dtype=variable.dtype)
                variable.assign(tf.concat([variable, padding], axis=0))
            return tf.constant(True)

        tf.cond(end > capacity, grow, lambda: tf.constant(False))
        indices = tf.range(self.count, end)
        for variable, values in zip(self._buffers(), (groups, labels, scores, weights)):
            variable.scatter_update(tf.IndexedSlices(values, indices))
        self.count.assign(end)

    def result(self):
        n = self.count
        value = tf.cond(
            n > 0,
            lambda: _group_auc_tf(
                self.groups_buffer[:n],
                tf.cast(self.labels_buffer[:n], tf.float64),
                tf.cast(self.scores_buffer[:n], tf.float64),
                tf.cast(self.weights_buffer[:n], tf.float64)),
            lambda: tf.constant(float("nan"), tf.float64))
        return tf.cast(value, self.dtype)

    def reset_state(self):
        for variable in self._buffers():
            variable.assign(tf.zeros([0], dtype=variable.dtype))
        self.count.assign(0)


@keras.utils.register_keras_serializable(package="ctrflow")
class Calibration(keras.metrics.Metric):
    """Calibration: sum of (weighted) predictions over sum of (weighted) labels.

    1.0 means the model predicts as many positives as occur; above 1 it over-predicts. Same
    definition as TFMA's `Calibration`; 0 while no positive label has been seen.

    Why: ranking metrics (AUC, GAUC) ignore the scale of the predictions, but bidding and
    ranking by pCTR x bid need calibrated probabilities.

    Args:
        name: metric name.
        dtype: dtype of the result.

    Example:
        >>> metric = Calibration()
        >>> metric.update_state([1, 0, 0, 1], [0.5, 0.25, 0.25, 0.5])
        >>> float(metric.result())
        0.75
    """

    def __init__(self, name: str = "calibration", dtype=None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.prediction_sum = self.add_weight(name="prediction_sum", initializer="zeros",
                                              dtype=tf.float64)
        self.label_sum = self.add_weight(name="label_sum", initializer="zeros", dtype=tf.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.float64)
        predictions = tf.cast(tf.reshape(y_pred, [-1]), tf.float64)
        if sample_weight is not None:
            weights = tf.broadcast_to(tf.cast(tf.reshape(sample_weight, [-1]), tf.float64),
                                      tf.shape(predictions))
            labels, predictions = labels * weights, predictions * weights
        self.prediction_sum.assign_add(tf.reduce_sum(predictions))
        self.label_sum.assign_add(tf.reduce_sum(labels))

    def result(self):
        return tf.cast(tf.math.divide_no_nan(self.prediction_sum, self.label_sum), self.dtype)
