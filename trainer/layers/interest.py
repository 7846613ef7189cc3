"""DIEN's interest extractor (a GRU over behaviours) and its auxiliary next-click loss."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from trainer.layers.mlp import ACTIVATIONS, MLP


@keras.utils.register_keras_serializable(package="ctrflow")
class InterestExtractor(keras.layers.Layer):
    """A GRU over time-ordered behaviour embeddings giving one interest state per step.

    Why: DIEN models the user's interests as hidden states of a GRU over the behaviour
    sequence; the auxiliary loss (`AuxiliaryLoss`) supervises each state with the next click.
    Padding steps (mask false) keep the GRU state and output zeros, so they have no effect.

    References:
        Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
        AAAI 2019 (arXiv:1809.03672), §4.2, Eq. 1-4.

    Args:
        units: width H of the interest states (the official code uses the embedding width, 36).

    Call arguments:
        inputs: behaviour embeddings `[B, T, D]`, oldest first.
        mask: `[B, T]`, true at real steps; `None` means all real.

    Output shape:
        `[B, T, units]`, zeros at padding steps.

    Example:
        >>> extractor = InterestExtractor(units=4)
        >>> extractor(tf.ones([2, 3, 5]), mask=tf.ones([2, 3])).shape
        TensorShape([2, 3, 4])
    """

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if units <= 0:
            raise ValueError(f"`units` must be positive. Received: units={units}")
        self.units = int(units)
        self.supports_masking = True
        self.gru = keras.layers.GRU(
            self.units, return_sequences=True, zero_output_for_mask=True, name="gru")

    def build(self, input_shape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[-1] is None:
            raise ValueError(
                "`InterestExtractor` expects inputs [B, T, D] with a known D. "
                f"Received: input_shape={input_shape}")
        self.gru.build(input_shape)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, mask: tf.Tensor | None = None, training=None) -> tf.Tensor:
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
        return self.gru(inputs, mask=mask, training=training)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.units])

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


@keras.utils.register_keras_serializable(package="ctrflow")
class AuxiliaryLoss(keras.layers.Layer):
    """DIEN's auxiliary loss: each interest state must tell the next click from a sampled negative.

    `L_aux = mean over valid pairs of -[log s(h_t, e_{t+1}) + log(1 - s(h_t, e^_{t+1}))]`, with
    `s(h, e) = sigmoid(MLP([h, e]))`, states `h_1..h_{T-1}` paired with the next clicked
    embeddings `e_2..e_T` and the negatives `e^_2..e^_T` (the layer does the shift). A pair
    counts only when both step t and step t + 1 are real; with no valid pair the loss is 0.
    Computed as binary cross-entropy with logits (stable for large logits).

    Why: the click label supervises only the last interest state; the auxiliary loss gives
    every state a target, which is where most of DIEN's gain comes from (Table 4 of the paper).
    The layer returns the scalar; the model adds it (times its weight alpha) to the loss.

    References:
        Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
        AAAI 2019 (arXiv:1809.03672), Eq. 6-7; official code mouna99/dien script/model.py
        (MLP 100-50 with sigmoid on `[h_t, e]`; the official 2-way softmax is replaced by the
        equivalent single logit, and the official batch norm is left out).

    Args:
        hidden_units: widths of the scoring MLP, `(100, 50)` as in the official code.
        activation: its activation, one of `"sigmoid"` (official), `"relu"`, `"prelu"`, `"dice"`.

    Call arguments:
        states: interest states `[B, T, H]`.
        clicked: the behaviour embeddings `[B, T, D]` (the same sequence the states came from).
        negatives: one sampled non-clicked embedding per step `[B, T, D]`, aligned with
            `clicked` (`negatives[:, t]` is the negative for step t).
        mask: `[B, T]`, true at real steps; `None` means all real.

    Output shape:
        A scalar.

    Example:
        >>> aux = AuxiliaryLoss(hidden_units=(8,))
        >>> aux(tf.ones([2, 3, 4]), tf.ones([2, 3, 5]), tf.zeros([2, 3, 5])).shape
        TensorShape([])
    """

    def __init__(self, hidden_units: Sequence[int] = (100, 50), activation: str = "sigmoid",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}")
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.scorer = MLP(self.hidden_units, activation=activation, output_units=1, name="scorer")

    def build(self, states_shape) -> None:
        states_shape = tf.TensorShape(states_shape)
        if states_shape.rank != 3 or states_shape[-1] is None:
            raise ValueError(
                "`AuxiliaryLoss` expects states [B, T, H] with a known H. "
                f"Received: states.shape={states_shape}")
        super().build(states_shape)

    def call(self, states: tf.Tensor, clicked: tf.Tensor, negatives: tf.Tensor,
             mask: tf.Tensor | None = None, training=None) -> tf.Tensor:
        if clicked.shape.rank != 3 or negatives.shape.rank != 3:
            raise ValueError(
                "`clicked` and `negatives` must be [B, T, D]. "
                f"Received: clicked.shape={clicked.shape}, negatives.shape={negatives.shape}")
        if mask is None:
            mask = tf.ones(tf.shape(states)[:2], dtype=tf.bool)
        mask = tf.cast(mask, tf.bool)
        # Only the valid pairs are scored: gathered into one [2N, H + D] matrix (the N
        # positives, then the N negatives), so padding costs nothing.
        pairs = tf.where(tf.logical_and(mask[:, :-1], mask[:, 1:]))
        current = tf.gather_nd(states[:, :-1], pairs)
        features = tf.concat([
            tf.concat([current, tf.cast(tf.gather_nd(clicked[:, 1:], pairs), current.dtype)], axis=-1),
            tf.concat([current, tf.cast(tf.gather_nd(negatives[:, 1:], pairs), current.dtype)], axis=-1),
        ], axis=0)
        logits = tf.squeeze(self.scorer(features, training=training), axis=-1)
        count = tf.shape(pairs)[0]
        labels = tf.concat([tf.ones([count], logits.dtype), tf.zeros([count], logits.dtype)], axis=0)
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.cast(count, losses.dtype))

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
        }
