"""The tf.Transform preprocessing_fn: every feature encoded as the registry says.

One loop over ``features.EXAMPLE_FEATURES``; nothing here names a feature. Outputs, per
example (B = batch, L = the sequence's max_len):

- ids and categories: int64 [B] embedding rows (``Vocabulary`` or ``Hashing``; 0 = missing);
- sequences of an id: int64 [B, L] rows (L = ``TransformSettings.max_history``) in the same table as the id they repeat, the
  newest L events kept, right-padded with 0; time gaps: int64 [B, L] log2 buckets;
- ``history_mask`` float32 [B, L] and ``history_length`` int64 [B];
- numeric side fields: float32 [B] z-scores, 0 where missing;
- ``hour_of_day`` and ``day_of_week`` int64 [B] from the candidate's timestamp;
- ``user_key`` string [B]: the raw user id, to group metrics by user (GAUC);
- labels: float32 [B], under their raw names.

Settings come from Transform's ``custom_config`` (see ``TransformSettings``): the previous
run's vocabulary files, so that ids keep their rows across retrains.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from transforms import features, ops
from transforms.vocabulary import append_only_vocabulary, hashed_rows, lookup_rows


@dataclasses.dataclass(frozen=True)
class TransformSettings:
    """What a Transform run needs beyond the data.

    Attributes:
      previous_vocabularies: table name -> vocabulary file of the previous run (from its
        TFTransformOutput, ``vocabulary_file_by_name(table + '.vocab')``); tables not
        listed start empty.
      max_history: length L histories are padded or truncated to (newest kept); the
        registry's ``max_len`` by default.
    """

    previous_vocabularies: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_history: int = features.MAX_HISTORY

    def __post_init__(self) -> None:
        if not isinstance(self.max_history, int) or self.max_history < 1:
            raise ValueError(f"`max_history` must be an integer >= 1. Received: max_history={self.max_history!r}")

    def to_custom_config(self) -> Dict[str, Any]:
        return {"previous_vocabularies": dict(self.previous_vocabularies), "max_history": self.max_history}

    @classmethod
    def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> "TransformSettings":
        if not custom_config:
            return cls()
        if isinstance(custom_config, str):
            custom_config = json.loads(custom_config)
        known = {"previous_vocabularies", "max_history"}
        unknown = sorted(set(custom_config) - known)
        if unknown:
            raise ValueError(f"Unknown Transform custom_config keys {unknown}; expected only {sorted(known)}.")
        tables = {f.name for f in features.EXAMPLE_FEATURES if isinstance(f.encoding, features.Vocabulary)}
        previous = dict(custom_config.get("previous_vocabularies", {}))
        bad = sorted(set(previous) - tables)
        if bad:
            raise ValueError(
                f"previous_vocabularies names tables {bad} that have no vocabulary; expected some of {sorted(tables)}."
            )
        return cls(previous_vocabularies=previous,
                   max_history=custom_config.get("max_history", features.MAX_HISTORY))


def _table_values(inputs: Mapping[str, Any]) -> Dict[str, list]:
    """Table name -> the input tensors whose tokens share that table's vocabulary.

    DIEN's sampled history negatives use the item table but do not count towards its
    vocabulary: they are drawn from items that occur elsewhere anyway.
    """
    grouped: Dict[str, list] = {}
    for feature in features.EXAMPLE_FEATURES:
        table = features.table_of(feature)
        if not isinstance(table.encoding, features.Vocabulary) or feature.name not in inputs:
            continue
        if feature.name in (features.HISTORY_NEGATIVE_ITEMS.name, features.HISTORY_NEGATIVE_CATEGORIES.name):
            continue
        grouped.setdefault(table.name, []).append(inputs[feature.name])
    return grouped


def _encode_ids(tokens: tf.Tensor, table: features.ExampleFeature, vocab_paths: Mapping[str, tf.Tensor]) -> tf.Tensor:
    if isinstance(table.encoding, features.Hashing):
        return hashed_rows(tokens, table.encoding)
    return lookup_rows(tokens, vocab_paths[table.name], table.encoding)


def _z_score(x) -> tf.Tensor:
    if isinstance(x, tf.SparseTensor):
        x = tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    else:
        x = tf.cast(x, tf.float32)
    scaled = ops.to_dense_scalar(tft.scale_to_z_score(x), 0.0)
    return tf.where(tf.math.is_finite(scaled), scaled, tf.zeros_like(scaled))


def preprocessing_fn(inputs: Dict[str, Any], custom_config: Optional[Mapping[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """Encodes raw example features; see the module docstring for the outputs."""
    settings = TransformSettings.from_custom_config(custom_config)
    vocab_paths = {
        table: append_only_vocabulary(
            values, table, features.example_feature(table).encoding, settings.previous_vocabularies.get(table))
        for table, values in _table_values(inputs).items()
    }
    outputs: Dict[str, tf.Tensor] = {}
    for feature in features.EXAMPLE_FEATURES:
        if feature.name not in inputs:
            continue
        x = inputs[feature.name]
        out = features.transformed_name(feature.name)
        if feature.kind == features.Kind.LABEL:
            outputs[out] = tf.cast(ops.to_dense_scalar(x, 0), tf.float32)
        elif feature.kind in (features.Kind.ID, features.Kind.CATEGORY):
            outputs[out] = _encode_ids(ops.to_dense_scalar(x, ""), feature, vocab_paths)
        elif feature.kind == features.Kind.SEQUENCE and isinstance(feature.encoding, features.LogBuckets):
            outputs[out] = ops.log2_buckets(ops.newest(x, settings.max_history, 0), feature.encoding.num_buckets)
        elif feature.kind == features.Kind.SEQUENCE:
            outputs[out] = _encode_ids(ops.newest(x, settings.max_history, ""), features.table_of(feature), vocab_paths)
        elif isinstance(feature.encoding, features.ZScore):
            outputs[out] = _z_score(x)
    history = inputs[features.HISTORY_ITEMS.name]
    length = ops.lengths(history, settings.max_history)
    outputs[features.HISTORY_LENGTH.name] = length
    outputs[features.HISTORY_MASK.name] = ops.mask_from_lengths(length, settings.max_history)
    timestamp = ops.to_dense_scalar(inputs[features.CANDIDATE_TIME.name], 0)
    outputs[features.HOUR_OF_DAY.name] = ops.hour_of_day(timestamp)
    outputs[features.DAY_OF_WEEK.name] = ops.day_of_week(timestamp)
    outputs[features.USER_KEY.name] = ops.to_dense_scalar(inputs[features.CANDIDATE_USER.name], "")
    return outputs
