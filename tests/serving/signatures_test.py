"""Serving signatures: the slicing signature's history-length buckets."""

import pytest

from serving import signatures
from transforms import features


@pytest.mark.parametrize("boundaries, expected", [((1, 5, 20, 50), ["0", "1-4", "5-19", "20-49", "50+"]),
                                                  ((2,), ["0-1", "2+"])])
def test_history_bucket_labels(boundaries, expected):
    assert signatures.history_bucket_labels(boundaries) == expected


def test_slicing_features_bucket_raw_history_lengths():
    import tensorflow as tf

    history = features.HISTORY_ITEMS.name
    spec = {history: tf.io.VarLenFeature(tf.string)}
    examples = []
    for length in (0, 1, 4, 5, 19, 20, 60):
        example = tf.train.Example()
        example.features.feature[history].bytes_list.value.extend([b"i%d" % k for k in range(length)])
        examples.append(example.SerializeToString())
    slicing = signatures.make_slicing_features(spec)
    buckets = slicing(tf.constant(examples))[features.HISTORY_LENGTH_BUCKET.name].numpy()
    assert [b.decode() for b in buckets] == ["0", "1-4", "1-4", "5-19", "5-19", "20-49", "50+"]
