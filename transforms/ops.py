"""TensorFlow ops used by the preprocessing_fn: sequences, time, dense defaults.

Each takes tensors as the Transform graph receives them from the raw-feature spec:
scalars as dense [B, 1] (required) or SparseTensor [B, <=1] (optional), histories as
SparseTensor [B, n] (oldest first).
"""

from __future__ import annotations

import tensorflow as tf

SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400
# 1970-01-01 was a Thursday: day 0 -> Thursday (4 with Monday = 1).
_EPOCH_WEEKDAY = 3


def to_dense_scalar(x, default) -> tf.Tensor:
    """A [B] tensor from a dense [B, 1] or sparse [B, <=1] feature; missing -> `default`."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.sparse.reset_shape(x, [x.dense_shape[0], 1]), default_value=default)
    return tf.reshape(x, [-1])


def is_present(x) -> tf.Tensor:
    """[B] bool: whether a scalar feature has a value (always true for dense inputs)."""
    if isinstance(x, tf.SparseTensor):
        counts = tf.math.bincount(tf.cast(x.indices[:, 0], tf.int32), minlength=tf.cast(x.dense_shape[0], tf.int32))
        return counts > 0
    return tf.ones([tf.shape(x)[0]], tf.bool)


def newest(x, max_len: int, default) -> tf.Tensor:
    """Keeps the last `max_len` values of each row (the newest) and right-pads to [B, max_len].

    Position 0 holds the oldest kept value; padding follows the newest. Accepts a
    SparseTensor, a RaggedTensor or a dense tensor (whose rows are then taken whole).
    """
    if isinstance(x, tf.SparseTensor):
        x = tf.RaggedTensor.from_sparse(x)
    elif not isinstance(x, tf.RaggedTensor):
        x = tf.RaggedTensor.from_tensor(x)
    kept = x[:, -max_len:]
    return kept.to_tensor(default_value=default, shape=[None, max_len])


def lengths(x, max_len: int) -> tf.Tensor:
    """[B] int64: number of values per row, at most `max_len`."""
    if isinstance(x, tf.SparseTensor):
        x = tf.RaggedTensor.from_sparse(x)
    elif not isinstance(x, tf.RaggedTensor):
        x = tf.RaggedTensor.from_tensor(x)
    return tf.minimum(tf.cast(x.row_lengths(), tf.int64), max_len)


def mask_from_lengths(length: tf.Tensor, max_len: int) -> tf.Tensor:
    """[B, max_len] float32: 1.0 at positions < length."""
    return tf.sequence_mask(length, max_len, dtype=tf.float32)


def log2_buckets(seconds: tf.Tensor, num_buckets: int) -> tf.Tensor:
    """1 + floor(log2(seconds)) clipped to [1, num_buckets]; 0 where seconds <= 0 (padding)."""
    seconds = tf.cast(seconds, tf.float64)
    bucket = 1 + tf.floor(tf.math.log(tf.maximum(seconds, 1.0)) / tf.math.log(tf.constant(2.0, tf.float64)))
    bucket = tf.clip_by_value(bucket, 1, num_buckets)
    return tf.where(seconds > 0, tf.cast(bucket, tf.int64), tf.zeros_like(bucket, tf.int64))


def hour_of_day(timestamp: tf.Tensor) -> tf.Tensor:
    """1..24: the UTC hour of a unix timestamp, plus one (0 stays free for padding)."""
    return tf.math.floormod(tf.cast(timestamp, tf.int64), SECONDS_PER_DAY) // SECONDS_PER_HOUR + 1


def day_of_week(timestamp: tf.Tensor) -> tf.Tensor:
    """1..7, Monday = 1: the UTC weekday of a unix timestamp."""
    days = tf.math.floordiv(tf.cast(timestamp, tf.int64), SECONDS_PER_DAY)
    return tf.math.floormod(days + _EPOCH_WEEKDAY, 7) + 1
