"""EmbeddingTable: an id embedding with a padding row and mini-batch aware L2 regularization."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

PADDING_ID = 0


@keras.utils.register_keras_serializable(package="ctrflow")
class EmbeddingTable(keras.layers.Layer):
    """An embedding table shared by several lookups, with DIN's mini-batch aware (MBA) L2.

    Row 0 is reserved for padding: id 0 marks a padded position (see `padding_mask`) and is
    never regularized. Its vector is looked up like any other; use the mask downstream.

    MBA regularization (DIN Eq. 4-7): in training, with `mba_lambda > 0`, the layer adds
    `0.5 * mba_lambda * sum_{j in U} ||w_j||^2 / n_j` through `add_loss`, where `U` is the set of
    UNIQUE non-padding ids of all id tensors of the call and `n_j = row_counts[j]` is how often
    id j occurs in the training data. The factor 0.5 makes the gradient on row j exactly
    `mba_lambda * w_j / n_j`, the update of DIN Eq. 7. Rows not in `U` get no gradient from it.
    A row with count 0 (never seen in training data, e.g. an OOV bucket) uses `n_j = 1`.

    To count each row once per batch when a table serves several features (candidate item,
    history items, sampled negatives), look them up in ONE call with a list of id tensors:
    `item_emb, hist_emb, neg_emb = table([item_ids, hist_ids, neg_ids])`. Models that add
    losses themselves can call `regularization(ids_list)` instead (with `mba_lambda` set).

    Why: full L2 on a table of millions of rows costs a dense update of every row per step,
    and without it sparse ids overfit; MBA touches only the rows of the batch and shrinks
    rare ids (small n_j) harder than frequent ones.

    References:
        Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
        (arXiv:1706.06978), §5.1, Eq. 4-7 (lambda = 0.01 in the paper's Alibaba runs).

    Args:
        num_rows: rows of the table, padding row 0 included (vocabulary + OOV + 1).
        dim: embedding width D.
        mba_lambda: MBA regularization strength; 0 (the default) turns it off.
        row_counts: `n_j` per row, a list or 1-D array of length `num_rows` (e.g. tf.Transform
            vocabulary frequencies); `None` means all ones. Only used when `mba_lambda > 0`.
        mask_zero: also produce a Keras mask (`ids != 0`) for downstream mask-aware layers.
        embeddings_initializer: initializer of the table.

    Input shape:
        An int tensor of ids of any shape (`[B]`, `[B, T]`), or a list/tuple of them.

    Output shape:
        The ids' shape plus `[D]`; a list of those for a list input.

    Example:
        >>> table = EmbeddingTable(num_rows=10, dim=4, mba_lambda=0.01)
        >>> item, history = table([tf.constant([3, 5]), tf.constant([[3, 4, 0], [1, 0, 0]])])
        >>> history.shape
        TensorShape([2, 3, 4])
    """

    def __init__(
        self,
        num_rows: int,
        dim: int,
        mba_lambda: float = 0.0,
        row_counts: Sequence[float] | np.ndarray | None = None,
        mask_zero: bool = False,
        embeddings_initializer="uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_rows < 2:
            raise ValueError(
                "`num_rows` must be at least 2 (row 0 is the padding row). "
                f"Received: num_rows={num_rows}")
        if dim <= 0:
            raise ValueError(f"`dim` must be positive. Received: dim={dim}")
        if not mba_lambda >= 0:
            raise ValueError(f"`mba_lambda` must be non-negative. Received: mba_lambda={mba_lambda}")
        if row_counts is not None:
            counts = np.asarray(row_counts, dtype=np.float64)
            if counts.shape != (num_rows,):
                raise ValueError(
                    f"`row_counts` must have one count per row, shape ({num_rows},). "
                    f"Received: row_counts with shape {counts.shape}")
            if not np.all(np.isfinite(counts)) or np.any(counts < 0):
                raise ValueError(
                    "`row_counts` must be finite and non-negative. "
                    f"Received: row_counts with min={counts.min()}")
            row_counts = counts.tolist()
        self.num_rows = int(num_rows)
        self.dim = int(dim)
        self.mba_lambda = float(mba_lambda)
        self.row_counts = row_counts
        self.mask_zero = mask_zero
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape) -> None:
        self.embeddings = self.add_weight(
            name="embeddings", shape=[self.num_rows, self.dim],
            initializer=self.embeddings_initializer)
        if self.mba_lambda > 0:
            counts = (np.ones(self.num_rows) if self.row_counts is None
                      else np.maximum(np.asarray(self.row_counts), 1.0))
            # A weight, not a graph constant: one copy in the SavedModel whatever the traces.
            self.inverse_row_counts = self.add_weight(
                name="inverse_row_counts", shape=[self.num_rows], trainable=False,
                dtype=tf.float32, experimental_autocast=False,
                initializer=keras.initializers.Constant((1.0 / counts).astype(np.float32)))
        super().build(input_shape)

    def call(self, ids, training=None):
        ids_list = list(ids) if isinstance(ids, (list, tuple)) else [ids]
        outputs = [tf.nn.embedding_lookup(self.embeddings, tf.cast(i, tf.int64)) for i in ids_list]
        if self.mba_lambda > 0:
            if training is None:
                training = keras.backend.learning_phase()
            if isinstance(training, int):
                training = bool(training)
            if training is not False:
                self.add_loss(tf.__internal__.smart_cond.smart_cond(
                    training,
                    lambda: self.regularization(ids_list),
                    lambda: tf.constant(0.0, dtype=tf.float32)))
        return outputs if isinstance(ids, (list, tuple)) else outputs[0]

    def regularization(self, ids_list: Sequence[tf.Tensor] | tf.Tensor) -> tf.Tensor:
        """The MBA loss `0.5 * mba_lambda * sum_j ||w_j||^2 / n_j` over the unique non-padding ids.

        Args:
            ids_list: id tensors of any shapes, all of one batch (or a single id tensor).

        Returns:
            A float32 scalar; 0 when `mba_lambda` is 0.
        """
        if self.mba_lambda == 0:
            return tf.constant(0.0, dtype=tf.float32)
        if not self.built:
            self.build(None)
        if not isinstance(ids_list, (list, tuple)):
            ids_list = [ids_list]
        flat = tf.concat([tf.reshape(tf.cast(i, tf.int64), [-1]) for i in ids_list], axis=0)
        unique_ids, _ = tf.unique(flat)
        unique_ids = tf.boolean_mask(unique_ids, tf.not_equal(unique_ids, PADDING_ID))
        rows = tf.cast(tf.gather(self.embeddings, unique_ids), tf.float32)
        inverse_counts = tf.gather(self.inverse_row_counts, unique_ids)
        squared_norms = tf.reduce_sum(tf.square(rows), axis=-1)
        return 0.5 * self.mba_lambda * tf.reduce_sum(inverse_counts * squared_norms)

    @staticmethod
    def padding_mask(ids: tf.Tensor) -> tf.Tensor:
        """True where `ids` is a real id, false at the padding id 0."""
        return tf.not_equal(ids, tf.cast(PADDING_ID, ids.dtype))

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        if isinstance(inputs, (list, tuple)):
            return [self.padding_mask(i) for i in inputs]
        return self.padding_mask(inputs)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and not isinstance(
                input_shape[0], (int, type(None))):
            return [tf.TensorShape(s).concatenate([self.dim]) for s in input_shape]
        return tf.TensorShape(input_shape).concatenate([self.dim])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_rows": self.num_rows,
            "dim": self.dim,
            "mba_lambda": self.mba_lambda,
            # The counts live in the `inverse_row_counts` weight, restored with the weights;
            # a vocabulary-long list here would bloat every saved model's metadata.
            "mask_zero": self.mask_zero,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
