"""DIN: the history pooled with weights from a local activation unit on the candidate."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from trainer.layers import LocalActivationUnit
from trainer.models.base import CTRModel, with_context


@keras.utils.register_keras_serializable(package="ctrflow")
class DIN(CTRModel):
    """Deep Interest Network: v_U(A) = sum_j a(e_j, v_A) e_j, then an MLP per task.

    The weights come from a feed-forward unit on [q, k, q - k, q * k] and are not
    normalized by default (the paper keeps the intensity of interest); padding weighs 0.

    References:
      Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
      (arXiv:1706.06978), §4.3, Eq. 3.

    Args:
      attention_units, attention_activation, attention_normalization: the local
        activation unit ("none" or "softmax").
      **kwargs: the shared arguments of ``CTRModel``.
    """

    def __init__(self, tasks, attention_units: Sequence[int] = (80, 40), attention_activation: str = "dice",
                 attention_normalization: str = "none", **kwargs):
        super().__init__(tasks, **kwargs)
        self.attention_units = [int(u) for u in attention_units]
        self.attention_activation = attention_activation
        self.attention_normalization = attention_normalization
        self.attention = LocalActivationUnit(self.attention_units, attention_activation, attention_normalization,
                                             name="local_activation_unit")

    def encode(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> Tuple[List[tf.Tensor], tf.Tensor]:
        behaviour = self.behaviour(inputs)
        interest = self.attention(behaviour.candidate, behaviour.keys, behaviour.mask, training=training)
        x = with_context([behaviour.candidate, interest], self.context(inputs))
        return [x] * len(self.tasks), tf.constant(0.0)

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "attention_units": self.attention_units,
                "attention_activation": self.attention_activation,
                "attention_normalization": self.attention_normalization}
