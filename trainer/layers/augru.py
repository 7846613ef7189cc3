"""AUGRU: DIEN's interest evolving GRU driven by attention scores (and its AIGRU/AGRU variants)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

GATES = ("augru", "aigru", "agru")


@keras.utils.register_keras_serializable(package="ctrflow")
class AUGRUCell(keras.layers.Layer):
    """One step of a GRU whose update is controlled by an attention score `a_t`.

    The GRU of DIEN (Eq. 1-4): `u = sigmoid(W_u x + U_u h + b_u)`,
    `r = sigmoid(W_r x + U_r h + b_r)`, `h~ = tanh(W_h x + r * (U_h h) + b_h)`, and
    `h_t = (1 - u) * h_{t-1} + u * h~`, changed by `gate`:

    - `"augru"` (Eq. 11-12): the update gate is scaled, `u~ = a_t * u`, so
      `h_t = (1 - u~) * h_{t-1} + u~ * h~`; `a_t = 0` keeps the state.
    - `"aigru"`: the input is scaled, `x~ = a_t * x`, then a plain GRU step.
    - `"agru"`: the update gate is replaced by the score, `h_t = (1 - a_t) * h_{t-1} + a_t * h~`
      (this variant has no update-gate weights).

    Why: a `keras.layers.RNN` over this registered cell is an ordinary Keras RNN: it traces
    into a `tf.while_loop`, is serializable and exports in a SavedModel (peer DIEN code built on
    `tf.compat.v1` RNN cells cannot).

    References:
        Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
        AAAI 2019 (arXiv:1809.03672), Eq. 1-4 and 9-12.

    Args:
        units: width H' of the hidden state.
        gate: `"augru"`, `"aigru"` or `"agru"`.
        kernel_initializer: initializer of the input kernel.
        recurrent_initializer: initializer of the recurrent kernel.

    Input shape:
        `[B, F + 1]`: the step input `x_t` (F features) with the attention score `a_t` as its
        last feature; states: `[h_{t-1}]`, each `[B, units]`.

    Output shape:
        `[B, units]` (the new state, also returned as the new states list).

    Example:
        >>> rnn = keras.layers.RNN(AUGRUCell(4))
        >>> rnn(tf.ones([2, 3, 5 + 1])).shape
        TensorShape([2, 4])
    """

    def __init__(
        self,
        units: int,
        gate: str = "augru",
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if units <= 0:
            raise ValueError(f"`units` must be positive. Received: units={units}")
        if gate not in GATES:
            raise ValueError(f"`gate` must be one of {GATES}. Received: gate={gate!r}")
        self.units = int(units)
        self.gate = gate
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.state_size = self.units
        self.output_size = self.units
        # Reset gate and candidate always; the update gate unless AGRU replaces it by a_t.
        self.num_blocks = 2 if gate == "agru" else 3

    def build(self, input_shape) -> None:
        input_dim = tf.TensorShape(input_shape)[-1]
        if input_dim is None or input_dim < 2:
            raise ValueError(
                "`AUGRUCell` expects step inputs [B, F + 1] (features, then the attention score) "
                f"with F >= 1. Received: input_shape={input_shape}")
        width = self.num_blocks * self.units
        self.kernel = self.add_weight(
            name="kernel", shape=[input_dim - 1, width], initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=[self.units, width],
            initializer=self.recurrent_initializer)
        self.bias = self.add_weight(name="bias", shape=[width], initializer="zeros")
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, states, training=None):
        state = states[0] if isinstance(states, (list, tuple)) else states
        features, score = inputs[:, :-1], inputs[:, -1:]
        if self.gate == "aigru":
            features = score * features
        input_part = tf.matmul(features, self.kernel) + self.bias
        recurrent_part = tf.matmul(state, self.recurrent_kernel)
        blocks_x = tf.split(input_part, self.num_blocks, axis=-1)
        blocks_h = tf.split(recurrent_part, self.num_blocks, axis=-1)
        # Block order: reset, candidate[, update].
        reset = tf.sigmoid(blocks_x[0] + blocks_h[0])
        candidate = tf.tanh(blocks_x[1] + reset * blocks_h[1])
        if self.gate == "agru":
            update = score
        else:
            update = tf.sigmoid(blocks_x[2] + blocks_h[2])
            if self.gate == "augru":
                update = score * update
        new_state = (1.0 - update) * state + update * candidate
        return new_state, [new_state]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "gate": self.gate,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
        }


@keras.utils.register_keras_serializable(package="ctrflow")
class AUGRU(keras.layers.Layer):
    """DIEN's interest evolving layer: a GRU over interest states steered by attention scores.

    Runs `AUGRUCell` over the sequence inside `keras.layers.RNN`. Steps where `mask` is false
    keep the state (whatever the gate), so padding never changes the result, and their outputs
    are zeros in the returned sequence.

    Why: the interests relevant to the candidate evolve; steps with a low attention score
    should barely move the state (AUGRU) instead of being averaged in.

    References:
        Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
        AAAI 2019 (arXiv:1809.03672), §4.3, Eq. 9-12.

    Args:
        units: width H' of the hidden state.
        gate: `"augru"` (default, Eq. 11-12), `"aigru"` (score scales the input) or `"agru"`
            (score replaces the update gate).
        return_sequences: return every state `[B, T, H']` instead of the last `[B, H']`.

    Call arguments:
        inputs: interest states `[B, T, H]` (the interest extractor's output).
        attention_scores: `[B, T]`, `a_t` per step (e.g. softmax-normalized over real steps).
        mask: `[B, T]`, true at real steps; `None` means all real.

    Output shape:
        `[B, units]`, or `[B, T, units]` with `return_sequences=True`.

    Example:
        >>> evolve = AUGRU(units=4)
        >>> evolve(tf.ones([2, 3, 5]), tf.fill([2, 3], 0.5), mask=tf.ones([2, 3])).shape
        TensorShape([2, 4])
    """

    def __init__(self, units: int, gate: str = "augru", return_sequences: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.gate = gate
        self.return_sequences = return_sequences
        self.rnn = keras.layers.RNN(
            AUGRUCell(units, gate=gate, name="cell"),
            return_sequences=return_sequences,
            zero_output_for_mask=return_sequences,
            name="rnn",
        )

    def build(self, input_shape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 3 or input_shape[-1] is None:
            raise ValueError(
                "`AUGRU` expects inputs [B, T, H] with a known H. "
                f"Received: input_shape={input_shape}")
        self.rnn.build(input_shape[:-1].concatenate([input_shape[-1] + 1]))
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, attention_scores: tf.Tensor,
             mask: tf.Tensor | None = None, training=None) -> tf.Tensor:
        scores = tf.cast(attention_scores, inputs.dtype)
        if scores.shape.rank == 3:
            scores = tf.squeeze(scores, axis=-1)
        if scores.shape.rank != 2:
            raise ValueError(
                "`attention_scores` must be [B, T]. "
                f"Received: attention_scores.shape={attention_scores.shape}")
        steps = tf.concat([inputs, scores[..., tf.newaxis]], axis=-1)
        if mask is not None:
            mask = tf.cast(mask, tf.bool)
        return self.rnn(steps, mask=mask, training=training)

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "gate": self.gate,
            "return_sequences": self.return_sequences,
        }
