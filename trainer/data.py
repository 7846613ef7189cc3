"""Reading transformed examples for training and evaluation."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import tensorflow as tf


def split_pattern(transformed_examples_dir: str, split: str) -> str:
    """The files of one split of a transformed Examples artifact (TFX layout)."""
    return os.path.join(transformed_examples_dir, f"Split-{split}", "*")


def make_dataset(
    file_pattern: Union[str, Sequence[str]],
    transformed_feature_spec,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_epochs: Optional[int] = 1,
    shuffle_buffer: int = 100_000,
) -> tf.data.Dataset:
    """Batches of transformed features (labels included) from gzipped tf.Example files.

    Each element is a dict of dense tensors keyed by transformed name; the model's
    ``compute_loss`` reads the labels from it. With `num_epochs` None the data repeats.

    `shuffle_buffer` (serialized examples, about 1 KB each) must span many users: ingest
    stores each user's examples together in time order, and shuffled in a small window
    they train a model on the neighbourhood instead of the task: on Amazon Beauty, DIN
    through a 10,000 buffer reached a first-epoch train loss of 0.22 and eval GAUC 0.737;
    through 100,000, GAUC 0.773 (DeepCTR, trained fully shuffled: 0.769).
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]
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
        shuffle_buffer_size=max(shuffle_buffer, batch_size),
        prefetch_buffer_size=tf.data.AUTOTUNE,
        drop_final_batch=False,
    )
