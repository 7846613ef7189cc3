"""INFNet v1 blocks: proxy cross-attention between token types and proxy gated units.

Li et al., "INFNet: A Task-aware Information Flow Network for Large-Scale Recommendation
Systems", arXiv:2508.11565 v1 (2025), §3 and §4.4. Version 2 of the paper is a different
design (hub tokens); this module implements v1.

Reading of the paper (arXiv:2508.11565 v1; no public code) where it leaves a choice open:

- Proxies are built inside every block from the block's input tokens (C~ from C, S~ from S),
  and the shared task tokens T~ are learnable per block; blocks exchange only C, S and T.
- The sequence proxies: the projection phi_seq is linear without bias and shared by all
  behaviour types, so "project, then sum-pool per type" equals "sum-pool per type, then
  project"; the layer pools first (cheaper). Each behaviour type yields
  `num_sequence_proxies` proxies, so F types give `F * num_sequence_proxies` proxies.
- Cross-attention is single-head, without biases, exactly the paper's
  softmax(Q W_Q (K W_K)^T / sqrt(d_k)) V W_V; its output has the query's width d.
- The proxy updates (C~ <- CA(C~,S,S) + CA(C~,T,T), ...) replace the proxies (no residual);
  the token updates are residual: C <- C + PGU(C, C~), S <- S + PGU(S, S~),
  T <- T^ + PGU(T^, T~) with T^ = CA(T,C,C) + CA(T,S,S).
- The MLPs (categorical proxies, gates) share `hidden_units` and `activation`; their last
  layer is linear to the needed width, the gate's sigmoid is applied on top.
- Padded sequence positions are left out of the pooling and masked as keys, and the
  block's sequence output is zero there, so padding has no effect on any output.
"""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf
import tf_keras as keras

from trainer.layers.attention import mask_logits
from trainer.layers.mlp import ACTIVATIONS, MLP

def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ValueError(f"`{name}` must be positive. Received: {name}={value}")
    return int(value)


@keras.utils.register_keras_serializable(package="ctrflow")
class CrossAttention(keras.layers.Layer):
    """Single-head cross-attention `softmax(Q W_Q (K W_K)^T / sqrt(d_k)) V W_V` with a key mask.

    Why: INFNet lets a few proxy tokens query a large token set, so the cost grows with the
    number of proxies instead of the product of the token counts.

    References:
        INFNet (arXiv:2508.11565 v1), §3, cross-attention with proxies.

    Args:
        key_dim: width d_k of the projected queries and keys; `None` means the query width.
        output_dim: width of the projected values (the output); `None` means the query width.

    Call arguments:
        query: `[B, N_q, d_q]`.
        key: `[B, N_k, d_k_in]`.
        value: `[B, N_k, d_v_in]`; `None` means `key`.
        key_mask: `[B, N_k]`, true at real keys; `None` means all real. A query with no real
            key gets a zero output.

    Output shape:
        `[B, N_q, output_dim]`.

    Example:
        >>> attend = CrossAttention()
        >>> attend(tf.ones([2, 4, 8]), tf.ones([2, 10, 8])).shape
        TensorShape([2, 4, 8])
    """

    def __init__(self, key_dim: int | None = None, output_dim: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.key_dim = None if key_dim is None else _positive("key_dim", key_dim)
        self.output_dim = None if output_dim is None else _positive("output_dim", output_dim)

    def build(self, query_shape) -> None:
        query_shape = tf.TensorShape(query_shape)
        if query_shape.rank != 3 or query_shape[-1] is None:
            raise ValueError(
                "`CrossAttention` expects a query [B, N_q, d] with a known d. "
                f"Received: query.shape={query_shape}")
        width = query_shape[-1]
        key_dim = self.key_dim or width
        self.query_projection = keras.layers.Dense(key_dim, use_bias=False, name="query")
        self.key_projection = keras.layers.Dense(key_dim, use_bias=False, name="key")
        self.value_projection = keras.layers.Dense(
            self.output_dim or width, use_bias=False, name="value")
        self.query_projection.build(query_shape)
        super().build(query_shape)

    def call(self, query: tf.Tensor, key: tf.Tensor, value: tf.Tensor | None = None,
             key_mask: tf.Tensor | None = None) -> tf.Tensor:
        if key.shape.rank != 3:
            raise ValueError(f"`key` must be [B, N_k, d]. Received: key.shape={key.shape}")
        value = key if value is None else value
        # Keras autocasts only the first argument (mixed precision).
        key, value = tf.cast(key, query.dtype), tf.cast(value, query.dtype)
        q = self.query_projection(query)
        k = self.key_projection(key)
        v = self.value_projection(value)
        logits = tf.matmul(q, k, transpose_b=True) / math.sqrt(q.shape[-1])
        if key_mask is None:
            return tf.matmul(tf.nn.softmax(logits, axis=-1), v)
        mask = tf.cast(key_mask, tf.bool)[:, tf.newaxis, :]
        logits = mask_logits(logits, mask)
        weights = tf.where(mask, tf.nn.softmax(logits, axis=-1), tf.zeros_like(logits))
        v = tf.where(tf.cast(key_mask, tf.bool)[..., tf.newaxis], v, tf.zeros_like(v))
        return tf.matmul(weights, v)

    def get_config(self) -> dict:
        return {**super().get_config(), "key_dim": self.key_dim, "output_dim": self.output_dim}


@keras.utils.register_keras_serializable(package="ctrflow")
class ProxyGatedUnit(keras.layers.Layer):
    """Gates every token of one type by a d-wide gate computed from that type's proxies.

    `PGU(X, X~) = X * sigmoid(MLP(flatten(X~)))`: one gate `[B, d]` from all proxies,
    broadcast over the tokens of X.

    Why: after the cross-type exchange the proxies carry what the other token types know;
    the gate lets that select features of every token of the type at the cost of one MLP.

    References:
        INFNet (arXiv:2508.11565 v1), §3, Proxy Gated Unit.

    Args:
        hidden_units: hidden widths of the gate MLP (its last layer is linear to d).
        activation: activation of the hidden layers, one of `"relu"`, `"prelu"`, `"dice"`,
            `"sigmoid"`.

    Call arguments:
        tokens: X, `[B, N, d]`.
        proxies: X~, `[B, m, d_p]` with static m and d_p.

    Output shape:
        `[B, N, d]`.

    Example:
        >>> gate = ProxyGatedUnit()
        >>> gate(tf.ones([2, 6, 8]), tf.ones([2, 4, 8])).shape
        TensorShape([2, 6, 8])
    """

    def __init__(self, hidden_units: Sequence[int] = (), activation: str = "relu",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}")
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation

    def build(self, tokens_shape) -> None:
        tokens_shape = tf.TensorShape(tokens_shape)
        if tokens_shape.rank != 3 or tokens_shape[-1] is None:
            raise ValueError(
                "`ProxyGatedUnit` expects tokens [B, N, d] with a known d. "
                f"Received: tokens.shape={tokens_shape}")
        self.gate = MLP(self.hidden_units, activation=self.activation,
                        output_units=tokens_shape[-1], name="gate")
        super().build(tokens_shape)

    def call(self, tokens: tf.Tensor, proxies: tf.Tensor, training=None) -> tf.Tensor:
        if proxies.shape.rank != 3 or None in proxies.shape[1:]:
            raise ValueError(
                "`proxies` must be [B, m, d] with static m and d. "
                f"Received: proxies.shape={proxies.shape}")
        flat = tf.reshape(tf.cast(proxies, tokens.dtype), [-1, proxies.shape[1] * proxies.shape[2]])
        gate = tf.sigmoid(self.gate(flat, training=training))
        return tokens * tf.cast(gate, tokens.dtype)[:, tf.newaxis, :]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
        }


@keras.utils.register_keras_serializable(package="ctrflow")
class TaskTokens(keras.layers.Layer):
    """Learnable tokens `[num_tokens, dim]` repeated over the batch.

    Why: INFNet's task tokens (one per task) and shared task tokens are parameters, not
    features; this layer owns them and gives them the batch size of a reference tensor.

    References:
        INFNet (arXiv:2508.11565 v1), §3, task tokens.

    Args:
        num_tokens: how many tokens.
        dim: token width d.

    Call arguments:
        reference: any tensor whose first axis is the batch.

    Output shape:
        `[B, num_tokens, dim]`.

    Example:
        >>> TaskTokens(num_tokens=2, dim=8)(tf.ones([3, 5])).shape
        TensorShape([3, 2, 8])
    """

    def __init__(self, num_tokens: int, dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_tokens = _positive("num_tokens", num_tokens)
        self.dim = _positive("dim", dim)

    def build(self, input_shape) -> None:
        self.tokens = self.add_weight(
            name="tokens", shape=[self.num_tokens, self.dim],
            initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        super().build(input_shape)

    def call(self, reference: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(reference)[0]
        return tf.tile(self.tokens[tf.newaxis], [batch, 1, 1])

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tokens": self.num_tokens, "dim": self.dim}


@keras.utils.register_keras_serializable(package="ctrflow")
class InfnetBlock(keras.layers.Layer):
    """One INFNet v1 block: proxy cross-attention between token types, then proxy gated units.

    With categorical tokens C, sequence tokens S (padding masked) and task tokens T, all of
    width d, the block builds proxies C~ = reshape(MLP(flatten(C))), S~ = phi_seq(sum-pool of
    S per behaviour type) and learnable shared task tokens T~, then

        C~ <- CA(C~, S, S) + CA(C~, T, T)      S~ <- CA(S~, C, C) + CA(S~, T, T)
        T~ <- CA(T~, C, C) + CA(T~, S, S)      T^ <- CA(T, C, C) + CA(T, S, S)
        C <- C + PGU(C, C~)    S <- S + PGU(S, S~)    T <- T^ + PGU(T^, T~)

    with eight separately weighted cross-attentions. Stack N blocks; put a tower per task on
    its final task token. See the module docstring for how ambiguities of the paper are read.

    Why: categorical features, behaviour sequences and tasks exchange information through a
    few proxies (heterogeneous flow, cost linear in the token counts), and each type refines
    its own tokens with a cheap gate (homogeneous flow), so the tasks shape the interactions
    instead of sharing one late-fused representation.

    References:
        INFNet (arXiv:2508.11565 v1), §3; defaults from §4.4 (4 categorical and 4 sequence
        proxies, 2 shared task tokens).

    Args:
        num_categorical_proxies: m_c, proxies of the categorical tokens.
        num_sequence_proxies: m_s, proxies per behaviour type.
        num_shared_task_tokens: N_s, learnable shared task tokens.
        sequence_lengths: lengths of the behaviour-type segments concatenated in S (e.g.
            `[50, 50]` for clicks then likes); `None` means one behaviour type.
        key_dim: d_k of the cross-attentions; `None` means d.
        hidden_units: hidden widths of the proxy and gate MLPs.
        activation: their activation, one of `"relu"`, `"prelu"`, `"dice"`, `"sigmoid"`.
        update_features: also update C and S. The last block of a stack sets it false: only
            its task tokens reach the towers, so its C and S updates would be dead weights.

    Call arguments:
        categorical: C, `[B, M, d]` with static M.
        sequence: S, `[B, L, d]`.
        tasks: T, `[B, N_task, d]` (the first block gets `TaskTokens` output).
        sequence_mask: `[B, L]`, true at real positions; `None` means all real.

    Output shape:
        A tuple (C `[B, M, d]`, S `[B, L, d]` zero at padding, T `[B, N_task, d]`).

    Example:
        >>> block = InfnetBlock(hidden_units=(16,))
        >>> c, s, t = block(tf.ones([2, 3, 8]), tf.ones([2, 5, 8]), tf.ones([2, 2, 8]),
        ...                 sequence_mask=tf.ones([2, 5]))
        >>> t.shape
        TensorShape([2, 2, 8])
    """

    def __init__(
        self,
        num_categorical_proxies: int = 4,
        num_sequence_proxies: int = 4,
        num_shared_task_tokens: int = 2,
        sequence_lengths: Sequence[int] | None = None,
        key_dim: int | None = None,
        hidden_units: Sequence[int] = (64,),
        activation: str = "relu",
        update_features: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.update_features = bool(update_features)
        self.num_categorical_proxies = _positive("num_categorical_proxies", num_categorical_proxies)
        self.num_sequence_proxies = _positive("num_sequence_proxies", num_sequence_proxies)
        self.num_shared_task_tokens = _positive("num_shared_task_tokens", num_shared_task_tokens)
        if sequence_lengths is not None:
            sequence_lengths = [int(n) for n in sequence_lengths]
            if not sequence_lengths or any(n <= 0 for n in sequence_lengths):
                raise ValueError(
                    "`sequence_lengths` must be a non-empty list of positive lengths or None. "
                    f"Received: sequence_lengths={sequence_lengths}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}")
        self.sequence_lengths = sequence_lengths
        self.key_dim = None if key_dim is None else _positive("key_dim", key_dim)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        names = ("shared_from_categorical", "shared_from_sequence",
                 "tasks_from_categorical", "tasks_from_sequence")
        if self.update_features:
            names += ("categorical_from_sequence", "categorical_from_tasks",
                      "sequence_from_categorical", "sequence_from_tasks")
        self.attentions = {n: CrossAttention(key_dim=self.key_dim, name=n) for n in names}
        if self.update_features:
            self.categorical_gate = ProxyGatedUnit(self.hidden_units, activation, name="categorical_gate")
            self.sequence_gate = ProxyGatedUnit(self.hidden_units, activation, name="sequence_gate")
        self.task_gate = ProxyGatedUnit(self.hidden_units, activation, name="task_gate")

    def build(self, categorical_shape) -> None:
        categorical_shape = tf.TensorShape(categorical_shape)
        if categorical_shape.rank != 3 or None in categorical_shape[1:]:
            raise ValueError(
                "`categorical` must be [B, M, d] with static M and d. "
                f"Received: categorical.shape={categorical_shape}")
        width = categorical_shape[-1]
        if self.update_features:
            self.categorical_proxy_mlp = MLP(
                self.hidden_units, activation=self.activation,
                output_units=self.num_categorical_proxies * width, name="categorical_proxies")
            self.sequence_projection = keras.layers.Dense(
                self.num_sequence_proxies * width, use_bias=False, name="sequence_proxies")
        self.shared_task_tokens = TaskTokens(self.num_shared_task_tokens, width,
                                             name="shared_task_tokens")
        super().build(categorical_shape)

    def call(self, categorical: tf.Tensor, sequence: tf.Tensor, tasks: tf.Tensor,
             sequence_mask: tf.Tensor | None = None, training=None):
        width = categorical.shape[-1]
        for name, tensor in (("sequence", sequence), ("tasks", tasks)):
            if tensor.shape.rank != 3 or tensor.shape[-1] != width:
                raise ValueError(
                    f"`{name}` must be [B, N, d] with the width d={width} of `categorical`. "
                    f"Received: {name}.shape={tensor.shape}")
        # Keras autocasts only the first argument (mixed precision).
        sequence, tasks = tf.cast(sequence, categorical.dtype), tf.cast(tasks, categorical.dtype)
        if sequence_mask is None:
            sequence_mask = tf.ones(tf.shape(sequence)[:2], dtype=tf.bool)
        sequence_mask = tf.cast(sequence_mask, tf.bool)
        sequence = tf.where(sequence_mask[..., tf.newaxis], sequence, tf.zeros_like(sequence))

        attend = self.attentions
        shared_tokens = self.shared_task_tokens(categorical)
        shared_tokens = (
            attend["shared_from_categorical"](shared_tokens, categorical)
            + attend["shared_from_sequence"](shared_tokens, sequence, key_mask=sequence_mask))
        task_hat = (
            attend["tasks_from_categorical"](tasks, categorical)
            + attend["tasks_from_sequence"](tasks, sequence, key_mask=sequence_mask))

        tasks_out = task_hat + self.task_gate(task_hat, shared_tokens, training=training)
        if not self.update_features:
            return categorical, sequence, tasks_out

        categorical_proxies = tf.reshape(
            self.categorical_proxy_mlp(
                tf.reshape(categorical, [-1, categorical.shape[1] * width]), training=training),
            [-1, self.num_categorical_proxies, width])
        sequence_proxies = self._sequence_proxies(sequence, width)
        categorical_proxies = (
            attend["categorical_from_sequence"](categorical_proxies, sequence, key_mask=sequence_mask)
            + attend["categorical_from_tasks"](categorical_proxies, tasks))
        sequence_proxies = (
            attend["sequence_from_categorical"](sequence_proxies, categorical)
            + attend["sequence_from_tasks"](sequence_proxies, tasks))
        categorical = categorical + self.categorical_gate(
            categorical, categorical_proxies, training=training)
        sequence = sequence + self.sequence_gate(sequence, sequence_proxies, training=training)
        sequence = tf.where(sequence_mask[..., tf.newaxis], sequence, tf.zeros_like(sequence))
        return categorical, sequence, tasks_out

    def _sequence_proxies(self, sequence: tf.Tensor, width: int) -> tf.Tensor:
        """Sum-pools each behaviour type (padding already zero) and projects: [B, F * m_s, d]."""
        if self.sequence_lengths is None:
            pooled = tf.reduce_sum(sequence, axis=1, keepdims=True)
        else:
            if sequence.shape[1] is not None and sequence.shape[1] != sum(self.sequence_lengths):
                raise ValueError(
                    "`sequence_lengths` must add up to the sequence length L. "
                    f"Received: sequence_lengths={list(self.sequence_lengths)}, "
                    f"sequence.shape={sequence.shape}")
            segments = tf.split(sequence, self.sequence_lengths, axis=1)
            pooled = tf.concat([tf.reduce_sum(s, axis=1, keepdims=True) for s in segments], axis=1)
        num_types = 1 if self.sequence_lengths is None else len(self.sequence_lengths)
        return tf.reshape(self.sequence_projection(pooled),
                          [-1, num_types * self.num_sequence_proxies, width])

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_categorical_proxies": self.num_categorical_proxies,
            "num_sequence_proxies": self.num_sequence_proxies,
            "num_shared_task_tokens": self.num_shared_task_tokens,
            "sequence_lengths": (None if self.sequence_lengths is None
                                 else list(self.sequence_lengths)),
            "key_dim": self.key_dim,
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "update_features": self.update_features,
        }
