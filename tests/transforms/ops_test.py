import numpy as np
import tensorflow as tf

from transforms import ops


def _sparse(rows, dtype=tf.string):
    indices = [[r, c] for r, row in enumerate(rows) for c in range(len(row))]
    values = [v for row in rows for v in row]
    width = max([len(r) for r in rows] + [1])
    return tf.SparseTensor(tf.constant(indices, tf.int64, shape=[len(indices), 2]),
                           tf.constant(values, dtype), [len(rows), width])


def test_newest_keeps_the_last_values_and_right_pads():
    x = _sparse([["a", "b", "c", "d"], [], ["e"]])
    out = ops.newest(x, 2, "").numpy().astype(str).tolist()
    assert out == [["c", "d"], ["", ""], ["e", ""]]
    assert ops.lengths(x, 2).numpy().tolist() == [2, 0, 1]
    assert ops.mask_from_lengths(ops.lengths(x, 2), 3).numpy().tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]


def test_log2_buckets_by_hand():
    seconds = tf.constant([0, 1, 2, 3, 4, 1023, 1024, 10**12], tf.int64)
    # 1 + floor(log2(s)): 1->1, 2->2, 3->2, 4->3, 1023->10, 1024->11, huge->clipped to 24; 0 is padding
    assert ops.log2_buckets(seconds, 24).numpy().tolist() == [0, 1, 2, 2, 3, 10, 11, 24]


def test_time_of_day_and_week():
    # 2024-01-01 00:30 UTC was a Monday; 2024-01-07 23:59 a Sunday.
    t = tf.constant([1704069000, 1704671940], tf.int64)
    assert ops.hour_of_day(t).numpy().tolist() == [1, 24]
    assert ops.day_of_week(t).numpy().tolist() == [1, 7]


def test_dense_scalars_from_sparse_and_presence():
    x = tf.SparseTensor([[1, 0]], tf.constant([2.5]), [3, 1])
    assert ops.to_dense_scalar(x, 0.0).numpy().tolist() == [0.0, 2.5, 0.0]
    assert ops.is_present(x).numpy().tolist() == [False, True, False]
    assert np.array_equal(ops.to_dense_scalar(tf.constant([[1], [2]]), 0).numpy(), [1, 2])
