"""The Embedding&MLP baseline: the history sum-pooled, whatever the candidate."""

from __future__ import annotations

from typing import List, Mapping, Tuple

import tensorflow as tf
import tf_keras as keras

from trainer.models.base import CTRModel, pooled_sum, with_context


@keras.utils.register_keras_serializable(package="ctrflow")
class EmbeddingMLP(CTRModel):
    """Candidate (+) sum of history embeddings (+) context -> one MLP tower per task.

    The reference point of the DIN and DIEN papers ("BaseModel"): it sees the history but
    cannot weigh it by the candidate.
    """

    def encode(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> Tuple[List[tf.Tensor], tf.Tensor]:
        behaviour = self.behaviour(inputs)
        x = with_context([behaviour.candidate, pooled_sum(behaviour.keys, behaviour.mask)], self.context(inputs))
        return [x] * len(self.tasks), tf.constant(0.0)
