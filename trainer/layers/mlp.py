"""MLP: the feed-forward tower used by heads, attention units and gates."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from trainer.layers.dice import Dice

ACTIVATIONS = ("relu", "prelu", "dice", "sigmoid")


@keras.utils.register_keras_serializable(package="ctrflow")
class MLP(keras.layers.Layer):
    """A stack of dense layers: Dense -> [BatchNorm] -> activation -> [Dropout], then an optional linear output.

    Why: every model of the package (DIN/DIEN heads, the local activation unit, the auxiliary
    loss network, INFNet gates) needs the same tower; one layer with flat arguments keeps those
    choices visible in the model config. `"dice"` and `"prelu"` are the activations of the
    DIN paper; they are per unit (the last axis), also on `[B, T, U]` inputs.

    References:
        Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
        (arXiv:1706.06978), §4.3 and §5.

    Args:
        hidden_units: widths of the hidden layers, e.g. `(200, 80)`; may be empty.
        activation: one of `"relu"`, `"prelu"`, `"dice"`, `"sigmoid"`.
        dropout_rate: dropout after every hidden activation, in `[0, 1)`.
        use_batch_norm: batch-normalize every hidden layer before its activation.
        output_units: width of a final linear layer (no activation), or `None` for none.

    Input shape:
        `[B, F]` or `[B, T, F]`; optional `mask` of the input shape without its last axis
        (`[B, T]`), true at real positions: masked positions are left out of batch-norm and
        Dice statistics, so padding cannot change the outputs at real positions.

    Output shape:
        The input shape with the last axis replaced by `output_units`, or by the last hidden
        width when `output_units` is `None`.

    Example:
        >>> tower = MLP(hidden_units=(200, 80), activation="dice", output_units=1)
        >>> tower(tf.ones([2, 16])).shape
        TensorShape([2, 1])
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        activation: str = "relu",
        dropout_rate: float = 0.0,
        use_batch_norm: bool = False,
        output_units: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = [int(u) for u in hidden_units]
        if any(u <= 0 for u in hidden_units):
            raise ValueError(
                f"`hidden_units` must all be positive. Received: hidden_units={hidden_units}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}")
        if not 0 <= dropout_rate < 1:
            raise ValueError(
                f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}")
        if output_units is not None and output_units <= 0:
            raise ValueError(
                f"`output_units` must be positive or None. Received: output_units={output_units}")
        if not hidden_units and output_units is None:
            raise ValueError(
                "`MLP` needs at least one layer: give `hidden_units` or `output_units`. "
                f"Received: hidden_units={hidden_units}, output_units={output_units}")
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout_rate = dropout_rate
        self.use_batch_norm = use_batch_norm
        self.output_units = output_units
        self.supports_masking = True

        self.dense_layers = [keras.layers.Dense(u, name=f"dense_{i}") for i, u in enumerate(hidden_units)]
        self.norm_layers = (
            [keras.layers.BatchNormalization(fused=False, name=f"batch_norm_{i}")
             for i in range(len(hidden_units))] if use_batch_norm else [])
        self.dropout_layers = (
            [keras.layers.Dropout(dropout_rate) for _ in hidden_units] if dropout_rate > 0 else [])
        self.output_layer = (
            keras.layers.Dense(output_units, name="output") if output_units is not None else None)
        self.activation_layers: list[keras.layers.Layer] = []

    def build(self, input_shape) -> None:
        rank = tf.TensorShape(input_shape).rank
        if rank is None or rank < 2:
            raise ValueError(
                f"`MLP` expects inputs of rank >= 2 ([B, F] or [B, T, F]). "
                f"Received: input_shape={input_shape}")
        # Per-unit activations: PReLU shares its slope over every axis but batch and units.
        self.activation_layers = []
        for i in range(len(self.hidden_units)):
            if self.activation == "prelu":
                layer = keras.layers.PReLU(shared_axes=list(range(1, rank - 1)) or None,
                                           name=f"prelu_{i}")
            elif self.activation == "dice":
                layer = Dice(name=f"dice_{i}")
            else:
                layer = keras.layers.Activation(self.activation, name=f"{self.activation}_{i}")
            self.activation_layers.append(layer)
        # Build the sublayers now so that weights exist (set_weights, checkpoint restore).
        shape = tf.TensorShape(input_shape)
        for i, dense in enumerate(self.dense_layers):
            dense.build(shape)
            shape = shape[:-1].concatenate([self.hidden_units[i]])
            if self.use_batch_norm:
                self.norm_layers[i].build(shape)
            self.activation_layers[i].build(shape)
        if self.output_layer is not None:
            self.output_layer.build(shape)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training=None, mask: tf.Tensor | None = None) -> tf.Tensor:
        x = inputs
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.use_batch_norm:
                x = self.norm_layers[i](x, training=training, mask=mask)
            if self.activation == "dice":
                x = self.activation_layers[i](x, training=training, mask=mask)
            else:
                x = self.activation_layers[i](x)
            if self.dropout_layers:
                x = self.dropout_layers[i](x, training=training)
        if self.output_layer is not None:
            x = self.output_layer(x)
        return x

    def compute_output_shape(self, input_shape):
        width = self.output_units if self.output_units is not None else self.hidden_units[-1]
        return tf.TensorShape(input_shape)[:-1].concatenate([width])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "dropout_rate": self.dropout_rate,
            "use_batch_norm": self.use_batch_norm,
            "output_units": self.output_units,
        }
