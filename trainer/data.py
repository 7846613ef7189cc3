"""Reading transformed examples for training and evaluation."""

from __future__ import annotations

import os
from typing import Optional

import tensorflow as tf


def split_pattern(transformed_examples_dir: str, split: str) -> str:
    """The files of one split of a transformed Examples artifact (TFX layout)."""
    return os.path.join(transformed_examples_dir, f"Split-{split}", "*")


def make_dataset(
    file_pattern: str,
    transformed_feature_spec,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_epochs: Optional[int] = 1,
) -> tf.data.Dataset:
    """Batches of transformed features (labels included) from gzipped tf.Example files.

    Each element is a dict of dense tensors keyed by transformed name; the model's
    ``compute_loss`` reads the labels from it. With `num_epochs` None the data repeats.
    """
    files = tf.io.gfile.glob(file_pattern)
    if not files:
        raise FileNotFoundError(f"No transformed examples match {file_pattern!r}; run Transform first.")
    return tf.data.experimental.make_batched_features_dataset(
        file_pattern=sorted(files),
        batch_size=batch_size,
        features=transformed_feature_spec,
        reader=lambda filenames: tf.data.TFRecordDataset(filenames, compression_type="GZIP"),
        num_epochs=num_epochs,
        shuffle=shuffle,
        shuffle_seed=seed,
        shuffle_buffer_size=max(10_000, 8 * batch_size),
        prefetch_buffer_size=tf.data.AUTOTUNE,
        drop_final_batch=False,
    )
