"""A synthetic batch of transformed features, shaped as Transform writes them."""

import numpy as np
import pytest

from transforms import features

xf = features.transformed_name
L = features.MAX_HISTORY


def transformed_batch(batch_size=8, seed=0, lengths=None):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths if lengths is not None else rng.integers(0, 12, size=batch_size))
    mask = (np.arange(L)[None, :] < lengths[:, None]).astype(np.float32)

    def ids(rows, shape):
        return rng.integers(1, rows, size=shape).astype(np.int64)

    history = ids(50, (batch_size, L)) * mask.astype(np.int64)
    batch = {
        xf("user_id"): ids(1000, batch_size),
        xf("item_id"): ids(50, batch_size),
        xf("category_id"): ids(10, batch_size),
        xf("history_item_id"): history,
        xf("history_category_id"): (history % 10 + 1) * mask.astype(np.int64),
        xf("history_time_gap"): ids(24, (batch_size, L)) * mask.astype(np.int64),
        xf("history_negative_item_id"): ids(50, (batch_size, L)) * mask.astype(np.int64),
        xf("history_negative_category_id"): ids(10, (batch_size, L)) * mask.astype(np.int64),
        features.HISTORY_MASK.name: mask,
        features.HISTORY_LENGTH.name: lengths.astype(np.int64),
        features.HOUR_OF_DAY.name: ids(25, batch_size),
        features.DAY_OF_WEEK.name: ids(8, batch_size),
        xf("device"): ids(3, batch_size),
        xf("item_price"): rng.normal(size=batch_size).astype(np.float32),
        features.USER_KEY.name: np.array([f"u{i % 3}".encode() for i in range(batch_size)]),
        "click": rng.integers(0, 2, size=batch_size).astype(np.float32),
        "conversion": np.zeros(batch_size, np.float32),
    }
    batch["conversion"] = batch["click"] * rng.integers(0, 2, size=batch_size).astype(np.float32)
    return {k: tf.constant(v) for k, v in batch.items()}


@pytest.fixture
def make_batch():
    return transformed_batch
