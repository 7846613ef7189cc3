"""DIEN: interests extracted by a GRU (with an auxiliary loss) and evolved by an AUGRU."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from trainer.layers import AUGRU, AuxiliaryLoss, InterestExtractor
from trainer.layers.attention import activation_unit_scores, mask_logits
from trainer.layers.mlp import MLP
from trainer.models.base import NEGATIVE_CATEGORIES, NEGATIVE_ITEMS, CTRModel, pooled_sum, with_context

ATTENTION_SCORERS = ("bilinear", "mlp")


@keras.utils.register_keras_serializable(package="ctrflow")
class DIEN(CTRModel):
    """Deep Interest Evolution Network.

    1. Interest extractor: a GRU over the time-ordered behaviour embeddings gives h_t.
    2. Auxiliary loss: h_t must tell the next clicked event e_{t+1} from a sampled
       negative (the history negatives made at ingest), alpha x L_aux in the total loss.
    3. Interest evolution: attention scores a_t of each h_t against the candidate e_a, and
       an AUGRU whose update gate is scaled by a_t; its last state is the evolved interest.
       The logit of step t is DIN's feed-forward unit on [e_a, h_t, e_a - h_t, e_a * h_t]
       (``attention_scorer="mlp"``, the default: the official code's ``din_fcn_attention``
       and DeepCTR's DIEN), which can express more than one bilinear form and scores real
       steps only; ``"bilinear"`` is the paper's Eq. 8, h_t W e_a. With
       ``attention_normalization="softmax"`` a_t is the paper's softmax over real steps; with
       "none" each a_t = sigmoid(h_t W e_a) on its own, which keeps how many steps match the
       candidate (the softmax spreads a fixed total over the history), the same reason DIN
       leaves its weights unnormalized.
    4. Towers on candidate (+) evolved interest (+) summed history (+) candidate * summed
       history (+) context, the head of the official code (mouna99/dien, script/model.py:
       ``item_eb * item_his_eb_sum``): the product lets the tower read how much of the
       history resembles the candidate, next to the evolved interest.

    References:
      Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
      AAAI 2019 (arXiv:1809.03672), Eq. 6-12.

    Args:
      gru_units: width H of both GRUs; 0 = the width of a behaviour embedding (2D).
      aux_hidden_units: the auxiliary network's MLP (the paper's code: 100-50, sigmoid).
      gate: "augru" (the paper's best), "aigru" or "agru".
      attention_normalization: "softmax" (the paper) or "none" (independent sigmoids).
      attention_scorer: "mlp" (DIN's unit, as the official code) or "bilinear" (Eq. 8).
      attention_units, attention_activation: the unit's MLP when ``attention_scorer="mlp"``.
      **kwargs: the shared arguments of ``CTRModel`` (``aux_loss_weight`` is alpha).
    """

    def __init__(self, tasks, gru_units: int = 0, aux_hidden_units: Sequence[int] = (100, 50),
                 gate: str = "augru", attention_normalization: str = "softmax", attention_scorer: str = "mlp",
                 attention_units: Sequence[int] = (80, 40), attention_activation: str = "relu", **kwargs):
        kwargs.setdefault("aux_loss_weight", 1.0)
        super().__init__(tasks, **kwargs)
        self.gru_units = int(gru_units)
        self.aux_hidden_units = [int(u) for u in aux_hidden_units]
        self.gate = gate
        if attention_normalization not in ("softmax", "none"):
            raise ValueError("`attention_normalization` must be 'softmax' or 'none'. "
                             f"Received: attention_normalization={attention_normalization!r}")
        self.attention_normalization = attention_normalization
        if attention_scorer not in ATTENTION_SCORERS:
            raise ValueError(f"`attention_scorer` must be one of {ATTENTION_SCORERS}. "
                             f"Received: attention_scorer={attention_scorer!r}")
        self.attention_scorer = attention_scorer
        self.attention_units = [int(u) for u in attention_units]
        self.attention_activation = attention_activation
        units = self.gru_units or 2 * self.embedding_dim
        self.extractor = InterestExtractor(units, name="interest_extractor")
        self.auxiliary = AuxiliaryLoss(self.aux_hidden_units, activation="sigmoid", name="auxiliary_loss")
        # bilinear: W e_a; mlp: the candidate brought to the width of h_t when the widths differ.
        self.attention_projection = (
            keras.layers.Dense(units, use_bias=False, name="attention_projection")
            if attention_scorer == "bilinear" or units != 2 * self.embedding_dim else None)
        self.attention_mlp = (MLP(self.attention_units, activation=attention_activation, output_units=1,
                                  name="attention_mlp") if attention_scorer == "mlp" else None)
        self.evolution = AUGRU(units, gate=gate, name="interest_evolution")

    def encode(self, inputs: Mapping[str, tf.Tensor], training: bool = False) -> Tuple[List[tf.Tensor], tf.Tensor]:
        with_negatives = bool(training) and self.aux_loss_weight > 0 and NEGATIVE_ITEMS in inputs
        behaviour = self.behaviour(inputs, with_negatives=with_negatives)
        states = self.extractor(behaviour.keys, mask=behaviour.mask, training=training)
        aux_loss = (self.auxiliary(states, behaviour.events, behaviour.negatives, mask=behaviour.mask,
                                   training=training)
                    if with_negatives else tf.constant(0.0))
        logits = self._attention_logits(behaviour.candidate, states, behaviour.mask, training)
        if self.attention_normalization == "softmax":
            scores = tf.nn.softmax(mask_logits(logits, behaviour.mask), axis=-1)
        else:
            scores = tf.nn.sigmoid(logits)
        scores = scores * tf.cast(behaviour.mask, logits.dtype)
        evolved = self.evolution(states, scores, mask=behaviour.mask, training=training)
        history = pooled_sum(behaviour.events, behaviour.mask)
        x = with_context([behaviour.candidate, evolved, history, behaviour.candidate * history], self.context(inputs))
        return [x] * len(self.tasks), tf.cast(aux_loss, tf.float32)

    def _attention_logits(self, candidate: tf.Tensor, states: tf.Tensor, mask: tf.Tensor, training) -> tf.Tensor:
        """The logit of each step's relevance to the candidate, [B, T]."""
        if self.attention_scorer == "bilinear":  # h_t . W e_a
            return tf.reduce_sum(states * self.attention_projection(candidate)[:, None, :], axis=-1)
        query = candidate if self.attention_projection is None else self.attention_projection(candidate)
        return activation_unit_scores(self.attention_mlp, query, states, tf.cast(mask, tf.bool), training=training)

    @property
    def training_features(self) -> List[str]:
        """Also the sampled history negatives of the auxiliary loss (training only, not served)."""
        negatives = [NEGATIVE_ITEMS, NEGATIVE_CATEGORIES] if self.aux_loss_weight > 0 else []
        return super().training_features + negatives

    def get_config(self) -> Dict[str, Any]:
        return {**super().get_config(), "gru_units": self.gru_units, "aux_hidden_units": self.aux_hidden_units,
                "gate": self.gate, "attention_normalization": self.attention_normalization,
                "attention_scorer": self.attention_scorer, "attention_units": self.attention_units,
                "attention_activation": self.attention_activation}
