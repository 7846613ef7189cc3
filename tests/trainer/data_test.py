import numpy as np
import pytest
import tensorflow as tf

from trainer.data import sort_by_history_length
from transforms import features

MASK = features.HISTORY_MASK.name
LENGTHS = np.array([5, 1, 3, 0, 2, 4, 5, 1, 2, 3, 4, 0, 1])


def windows(lengths, window_size):
    mask = (np.arange(lengths.max() + 1)[None, :] < lengths[:, None]).astype("float32")
    return tf.data.Dataset.from_tensor_slices({MASK: mask, "id": np.arange(len(lengths))}).batch(window_size)


def test_each_window_is_cut_into_batches_of_neighbouring_lengths_keeping_every_example_once():
    batches = list(sort_by_history_length(windows(LENGTHS, 6), batch_size=2, window=3, seed=1))
    ids = [b["id"].numpy().tolist() for b in batches]
    assert sorted(i for batch in ids for i in batch) == list(range(13))
    assert [len(batch) for batch in ids].count(1) == 1 and all(len(batch) <= 2 for batch in ids)
    for batch in batches:  # each example keeps its own features
        np.testing.assert_array_equal(batch[MASK].numpy().sum(1), LENGTHS[batch["id"].numpy()])
    # Window 1 holds examples 0-5 (lengths 5 1 3 0 2 4): sorted and cut, {0,1} {2,3} {4,5}.
    first_window = sorted(sorted(LENGTHS[b].tolist()) for b in ids if max(b) < 6)
    assert first_window == [[0, 1], [2, 3], [4, 5]]


def test_batches_are_shuffled_within_a_window():
    lengths = np.repeat(np.arange(8), 4)  # already sorted: only the shuffle can reorder batches
    orders = {tuple(int(b[MASK].numpy().sum(1).max()) for b in
                    sort_by_history_length(windows(lengths, 32), batch_size=4, window=8, seed=seed))
              for seed in range(4)}
    assert len(orders) > 1 and all(sorted(order) == list(range(8)) for order in orders)


def test_a_missing_mask_is_named():
    dataset = tf.data.Dataset.from_tensor_slices({"id": np.arange(4)}).batch(4)
    with pytest.raises(KeyError, match=r"needs the `history_mask` feature. Received features: \['id'\]"):
        list(sort_by_history_length(dataset, batch_size=2, window=2))
