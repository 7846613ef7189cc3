"""Reading transformed examples for training and evaluation."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import tensorflow as tf

from transforms import features


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
    length_sort_window: int = 0,
) -> tf.data.Dataset:
    """Batches of transformed features (labels included) from gzipped tf.Example files.

    Each element is a dict of dense tensors keyed by transformed name; the model's
    ``compute_loss`` reads the labels from it. With `num_epochs` None the data repeats.

    `shuffle_buffer` (serialized examples, about 1 KB each) must span many users: ingest
    stores each user's examples together in time order, and shuffled in a small window
    they train a model on the neighbourhood instead of the task: on Amazon Beauty, DIN
    through a 10,000 buffer reached a first-epoch train loss of 0.22 and eval GAUC 0.737;
    through 100,000, GAUC 0.773 (DeepCTR, trained fully shuffled: 0.769).

    `length_sort_window` > 0 groups examples of similar history length into the same batch
    (`sort_by_history_length`), so the models, which cut histories after a batch's longest,
    run attention and GRUs over far fewer steps.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]
    if not files:
        raise FileNotFoundError(f"No transformed examples match {file_pattern!r}; run Transform first.")
    dataset = tf.data.experimental.make_batched_features_dataset(
        file_pattern=sorted(files),
        batch_size=batch_size * max(length_sort_window, 1),
        features=transformed_feature_spec,
        reader=lambda filenames: tf.data.TFRecordDataset(filenames, compression_type="GZIP"),
        num_epochs=num_epochs,
        shuffle=shuffle,
        shuffle_seed=seed,
        shuffle_buffer_size=max(shuffle_buffer, batch_size),
        prefetch_buffer_size=tf.data.AUTOTUNE,
        drop_final_batch=False,
    )
    if length_sort_window <= 0:
        return dataset
    return sort_by_history_length(dataset, batch_size, length_sort_window, seed).prefetch(tf.data.AUTOTUNE)


def sort_by_history_length(windows: tf.data.Dataset, batch_size: int, window: int, seed: int = 0) -> tf.data.Dataset:
    """Splits each window of `window` batches into batches of similar history length, in random order.

    Each window (already a random draw of `batch_size * window` examples) is sorted by
    history length and cut into batches of `batch_size`; the batches of a window are then
    shuffled, so lengths keep alternating. Every example is kept once.

    Why: histories are padded to max_history, the models cut them after the batch's longest
    real history, and with random batches nearly every batch holds one long history (on
    Amazon Beauty, mean length 8.1 of 50, the longest in a random batch of 128 averages
    49.1). Sorted windows of 16 batches bring it to 9.7 (bench/history_steps.py): DIEN's
    GRUs and the attention units run about a fifth of the steps.
    """
    mask_key = features.HISTORY_MASK.name

    def split(examples):
        if mask_key not in examples:
            raise KeyError(f"Sorting by history length needs the `{mask_key}` feature. "
                           f"Received features: {sorted(examples)}; parse it or set the window to 0.")
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(examples[mask_key], 0), tf.int32), axis=1)
        order = tf.argsort(lengths, stable=True)
        ordered = {name: tf.gather(value, order) for name, value in examples.items()}
        count = tf.shape(order)[0]
        starts = tf.range(0, count, batch_size)
        return tf.data.Dataset.from_tensor_slices(starts).map(
            lambda start: {name: value[start:start + batch_size] for name, value in ordered.items()})

    return windows.flat_map(split).shuffle(window, seed=seed)
