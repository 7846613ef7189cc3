"""build_model: the one place where an experiment config becomes model and layer arguments."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from trainer.config import ExperimentConfig, ModelName
from trainer.models.base import CTRModel
from trainer.models.baseline import EmbeddingMLP
from trainer.models.dien import DIEN
from trainer.models.din import DIN
from trainer.models.infnet import INFNet
from trainer.tasks import TaskSpec
from transforms import features
from transforms.vocabulary import counts_asset_name


def table_row_counts(transform_output_dir: str) -> Dict[str, np.ndarray]:
    """Occurrences per embedding row of the item and category tables, from Transform's counts assets.

    Row r = 1 + vocabulary position holds that token's count; padding and OOV rows get 1.
    """
    import tensorflow_transform as tft

    output = tft.TFTransformOutput(transform_output_dir)
    counts = {}
    for feature in (features.CANDIDATE_ITEM, features.CANDIDATE_CATEGORY):
        rows = np.ones(feature.encoding.num_rows, np.float64)
        path = output.vocabulary_file_by_name(counts_asset_name(feature.name))
        with open(path, encoding="utf-8") as stream:
            values = [float(line) for line in stream.read().split()]
        rows[1:1 + len(values)] = np.maximum(values, 1.0)
        counts[feature.name] = rows
    return counts


def build_model(config: ExperimentConfig, row_counts: Optional[Dict[str, np.ndarray]] = None) -> CTRModel:
    """The model an experiment describes. `row_counts` (``table_row_counts``) feeds MBA regularization."""
    model = config.model
    row_counts = row_counts or {}
    common = dict(
        tasks=[TaskSpec(t.name, t.label, t.weight, t.ctcvr) for t in config.tasks],
        embedding_dim=model.embedding_dim,
        embedding_init_stddev=model.embedding_init_stddev,
        hidden_units=model.hidden_units,
        activation=model.activation.value,
        dropout=model.dropout,
        batch_norm=model.batch_norm,
        side_features=model.side_features,
        use_user_id=model.use_user_id,
        use_time_gaps=model.use_time_gaps,
        use_calendar=model.use_calendar,
        mba_lambda=model.mba_lambda,
        item_counts=row_counts.get(features.ITEM_ID.name) if model.mba_lambda else None,
        category_counts=row_counts.get(features.CATEGORY_ID.name) if model.mba_lambda else None,
    )
    if model.name == ModelName.BASELINE:
        return EmbeddingMLP(**common, name="baseline")
    # Unset attention options take each model's own default.
    attention = {key: value.value for key, value in (("attention_normalization", model.attention_normalization),
                                                     ("attention_activation", model.attention_activation))
                 if value is not None}
    if model.name == ModelName.DIN:
        return DIN(**common, attention_units=model.attention_units, **attention, name="din")
    if model.name == ModelName.DIEN:
        return DIEN(**common, gru_units=model.gru_units, aux_loss_weight=model.aux_loss_weight,
                    attention_scorer=model.dien_attention_scorer.value, attention_units=model.attention_units,
                    **attention, name="dien")
    return INFNet(**common, num_blocks=model.num_blocks, num_categorical_proxies=model.num_categorical_proxies,
                  num_sequence_proxies=model.num_sequence_proxies,
                  num_shared_task_tokens=model.num_shared_task_tokens, token_dim=model.infnet_token_dim,
                  candidate_interaction=model.infnet_candidate_interaction.value, name="infnet")


__all__ = ["build_model", "table_row_counts"]
