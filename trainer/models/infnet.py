"""INFNet (v1): categorical, sequence and task tokens exchanging information through proxies."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from trainer.layers import InfnetBlock, TaskTokens
from trainer.models.base import CTRModel, pooled_sum

CANDIDATE_INTERACTIONS = ("none", "token", "sequence")


@keras.utils.register_keras_serializable(package="ctrflow")
class INFNet(CTRModel):
    """INFNet-style multi-task model.

    Tokens of width D: categorical tokens C (candidate item, candidate category, one per
    context feature, one for the summed history and, by default, one for candidate x summed
    history, each projected to D), sequence tokens S (each history event, item (+) category
    projected to D) and one learnable token per task T. The summed-history tokens carry how
    much of each kind the user did and how much of it matches the candidate, which softmax
    cross-attention (a weighted average) cannot count. ``num_blocks``
    InfnetBlocks let them attend to each other through proxies and Proxy Gated Units; the
    tower of task k reads the final token T_k.

    References:
      "INFNet: A Task-aware Information Flow Network for Large-Scale Recommendation
      Systems", arXiv:2508.11565 v1, §3.

    Args:
      num_blocks: stacked InfnetBlocks.
      num_categorical_proxies, num_sequence_proxies, num_shared_task_tokens: per block
        (paper defaults 4, 4, 2).
      block_hidden_units: the MLPs of proxies and gates inside a block.
      token_dim: the token width d; 0 = the embedding width. A wider d than the id
        embeddings gives the cross-attentions and the final task tokens (all a tower reads)
        room; the candidate's item and category embeddings are then projected to d too.
      candidate_interaction: how the candidate meets the history before the blocks:
        "token" (default: one more categorical token, candidate x summed history events,
        the product DIEN's official head also reads), "sequence" (each sequence token also
        carries event x candidate) or "none" (the paper's tokens). In the blocks the
        candidate reaches the history only through softmax cross-attention, a weighted
        mean that cannot count how many events match it; on the planted-interest log
        (docs/benchmarks.md) "none" trains no better than the baseline, "token" beats it
        by 0.014 AUC over two seeds ("sequence" as much on one).
      **kwargs: the shared arguments of ``CTRModel``.
    """

    def __init__(self, tasks, num_blocks: int = 2, num_categorical_proxies: int = 4, num_sequence_proxies: int = 4,
                 num_shared_task_tokens: int = 2, block_hidden_units: Sequence[int] = (64,), token_dim: int = 0,
                 candidate_interaction: str = "token", **kwargs):
        super().__init__(tasks, **kwargs)
        if candidate_interaction not in CANDIDATE_INTERACTIONS:
            raise ValueError(f"`candidate_interaction` must be one of {CANDIDATE_INTERACTIONS}. "
                             f"Received: candidate_interaction={candidate_interaction!r}")
        self.candidate_interaction = candidate_interaction
        self.num_blocks = int(num_blocks)
        self.num_categorical_proxies = int(num_categorical_proxies)
        self.num_sequence_proxies = int(num_sequence_proxies)
        self.num_shared_task_tokens = int(num_shared_task_tokens)
        self.block_hidden_units = [int(u) for u in block_hidden_units]
        if int(token_dim) < 0:
            raise ValueError(f"`token_dim` must be >= 0 (0 = the embedding width). Received: token_dim={token_dim}")
        self.token_dim = int(token_dim)
        dim = self.token_dim or self.embedding_dim
        self.candidate_projections = (
            [keras.layers.Dense(dim, name=f"candidate_token_{i}") for i in range(2)]
            if dim != self.embedding_dim else [])
        self.context_projections = [keras.layers.Dense(dim, name=f"context_token_{i}")
                                    for i in range(len(self.context_tables) + len(self.numeric_context))]
        self.sequence_projection = keras.layers.Dense(dim, name="sequence_token")
        self.history_projection = keras.layers.Dense(dim, name="history_token")
        self.interaction_projection = (keras.layers.Dense(dim, name="interaction_token")
                                       if candidate_interaction == "token" else None)
        self.task_tokens = TaskTokens(len(self.task_specs), dim, name="task_tokens")
        self.blocks = [
            InfnetBlock(num_categorical_proxies, num_sequence_proxies, num_shared_task_tokens,
                        hidden_units=self.block_hidden_units, update_features=i < self.num_blocks - 1,
                        name=f"infnet_block_{i}")
            for i in range(self.num_blocks)
        ]

    def encode(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> Tuple[List[tf.Tensor], tf.Tensor]:
        categorical, sequence, tasks, mask = self.tokens(inputs)
        for block in self.blocks:
            categorical, sequence, tasks = block(categorical, sequence, tasks, sequence_mask=mask, training=training)
        return [tasks[:, k] for k in range(len(self.task_specs))], tf.constant(0.0)

    def tokens(self, inputs: Mapping[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """The blocks' input: categorical [B, M, D], sequence [B, L, D], task [B, N_task, D] tokens and the mask."""
        behaviour = self.behaviour(inputs)
        width = self.embedding_dim
        tokens = [behaviour.candidate[:, :width], behaviour.candidate[:, width:]]
        if self.candidate_projections:
            tokens = [project(token) for project, token in zip(self.candidate_projections, tokens)]
        tokens += [project(part) for project, part in zip(self.context_projections, self.context_parts(inputs))]
        tokens.append(self.history_projection(pooled_sum(behaviour.keys, behaviour.mask)))
        if self.interaction_projection is not None:
            tokens.append(self.interaction_projection(
                behaviour.candidate * pooled_sum(behaviour.events, behaviour.mask)))
        categorical = tf.stack(tokens, axis=1)
        keys = behaviour.keys
        if self.candidate_interaction == "sequence":
            keys = tf.concat([keys, behaviour.events * behaviour.candidate[:, tf.newaxis, :]], axis=-1)
        sequence = self.sequence_projection(keys)
        return categorical, sequence, self.task_tokens(categorical), behaviour.mask

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "num_blocks": self.num_blocks,
                "num_categorical_proxies": self.num_categorical_proxies,
                "num_sequence_proxies": self.num_sequence_proxies,
                "num_shared_task_tokens": self.num_shared_task_tokens,
                "block_hidden_units": self.block_hidden_units, "token_dim": self.token_dim,
                "candidate_interaction": self.candidate_interaction}
