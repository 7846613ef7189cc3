"""Serving signatures: raw features in, Transform applied inside, one probability per task out.

Two signatures are exported with every model:

- ``serving_default`` takes one JSON-friendly dense tensor per raw feature the model needs
  (``raw_inputs``): ids and categorical fields as strings [B], numbers as [B], histories as
  [B, T] lists of any T (newest last), padded with "" (ids) or 0 (time gaps) when the
  rows of a batch differ in length. An unknown optional value is "" (text) or NaN
  (number). It rebuilds the raw features Transform was analyzed on, runs the Transform
  graph (vocabularies, padding, bucketizing, scaling: the very ops of training) and the
  model. This is what TF Serving's REST API and the local server call.
- ``serving_tf_example`` takes serialized tf.Examples, as TFMA's Evaluator sends them.

Both return ``{task: probability [B]}``. A third signature, ``slicing_features``, takes
serialized tf.Examples and returns the evaluation slices that are not raw fields (the
history-length bucket); TFMA calls it as a preprocessing function to slice by them.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Mapping, Sequence

import tensorflow as tf

from transforms import features

SERVING_DEFAULT = "serving_default"
SERVING_TF_EXAMPLE = "serving_tf_example"
SLICING_FEATURES = "slicing_features"
EXAMPLES_INPUT = "examples"

_DTYPES = {
    features.FieldType.STRING: tf.string,
    features.FieldType.INT: tf.int64,
    features.FieldType.FLOAT: tf.float32,
}


def raw_sources(transformed_names: Iterable[str]) -> List[str]:
    """The raw example features that the given transformed features are computed from."""
    by_output = {features.transformed_name(f.name): f.name for f in features.EXAMPLE_FEATURES}
    by_output.update({d.name: d.source for d in features.DERIVED_FEATURES})
    sources = []
    for name in transformed_names:
        if name not in by_output:
            raise ValueError(
                f"Unknown transformed feature {name!r}. Expected one of {sorted(by_output)} "
                "(see transforms/features.py)."
            )
        if by_output[name] not in sources:
            sources.append(by_output[name])
    return sources


def raw_inputs(transformed_names: Iterable[str]) -> List[str]:
    """The inputs of ``serving_default`` for a model that uses `transformed_names`: no labels."""
    return [name for name in raw_sources(transformed_names) if name not in features.LABEL_KEYS]


def input_signature(names: Sequence[str]) -> Dict[str, tf.TensorSpec]:
    """Dense JSON-friendly specs: [None] per scalar, [None, None] per history."""
    specs = {}
    for name in names:
        feature = features.example_feature(name)
        shape = [None, None] if feature.is_sequence else [None]
        specs[name] = tf.TensorSpec(shape, _DTYPES[feature.dtype], name=name)
    return specs


def _present(values: tf.Tensor) -> tf.Tensor:
    if values.dtype == tf.string:
        return tf.not_equal(values, "")
    if values.dtype.is_floating:
        return tf.math.is_finite(values)
    return tf.ones_like(values, tf.bool)


def _history_present(values: tf.Tensor) -> tf.Tensor:
    if values.dtype == tf.string:
        return tf.not_equal(values, "")
    return values > 0


def to_raw_features(dense: Mapping[str, tf.Tensor], raw_feature_spec: Mapping[str, object]) -> Dict[str, object]:
    """Dense serving tensors -> the parsed form of `raw_feature_spec` (what tf.io.parse_example gives)."""
    raw = {}
    for name, values in dense.items():
        spec = raw_feature_spec[name]
        if isinstance(spec, tf.io.FixedLenFeature):
            raw[name] = tf.reshape(tf.cast(values, spec.dtype), [-1, 1])
            continue
        if values.shape.rank == 1:
            present = _present(values)
            rows = tf.where(present)[:, 0]
            indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
            dense_shape = tf.stack([tf.shape(values, out_type=tf.int64)[0], tf.constant(1, tf.int64)])
        else:
            present = _history_present(values)
            indices = tf.where(present)
            dense_shape = tf.shape(values, out_type=tf.int64)
        # Real values first in each row: histories are right-padded, so positions are kept.
        raw[name] = tf.SparseTensor(indices, tf.cast(tf.boolean_mask(values, present), spec.dtype), dense_shape)
    return raw


def serving_feature_spec(raw_feature_spec: Mapping[str, object]) -> Dict[str, object]:
    """The raw feature spec without labels: what a tf.Example carries at serving time."""
    return {k: v for k, v in raw_feature_spec.items() if k not in features.LABEL_KEYS}


def make_serving_default(model, tft_layer, raw_feature_spec: Mapping[str, object],
                         names: Sequence[str]) -> Callable:
    """The ``serving_default`` function over the raw inputs `names`."""

    @tf.function(input_signature=[input_signature(names)])
    def serve(inputs):
        transformed = tft_layer(to_raw_features(inputs, raw_feature_spec))
        return model(transformed, training=False)

    return serve


def make_serving_tf_example(model, tft_layer, raw_feature_spec: Mapping[str, object]) -> Callable:
    """The ``serving_tf_example`` function: serialized tf.Examples -> probabilities."""
    spec = serving_feature_spec(raw_feature_spec)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve(serialized):
        transformed = tft_layer(tf.io.parse_example(serialized, spec))
        return model(transformed, training=False)

    return serve


def history_bucket_labels(boundaries: Sequence[int]) -> List[str]:
    """Readable labels of the ranges the increasing `boundaries` cut: (1, 5) -> ['0', '1-4', '5+']."""
    edges = [0, *boundaries]
    labels = []
    for low, high in zip(edges, edges[1:]):
        labels.append(str(low) if high - low == 1 else f"{low}-{high - 1}")
    labels.append(f"{edges[-1]}+")
    return labels


def make_slicing_features(raw_feature_spec: Mapping[str, object],
                          boundaries: Sequence[int] = features.HISTORY_LENGTH_BUCKETS) -> Callable:
    """The ``slicing_features`` function: serialized tf.Examples -> {history_length_bucket: label [B]}."""
    history = features.HISTORY_ITEMS.name
    spec = {history: raw_feature_spec[history]}
    labels = tf.constant(history_bucket_labels(boundaries))
    edges = [float(b) for b in boundaries]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def slicing_features(serialized):
        events = tf.io.parse_example(serialized, spec)[history]
        ones = tf.SparseTensor(events.indices, tf.ones_like(events.indices[:, 0]), events.dense_shape)
        lengths = tf.sparse.reduce_sum(ones, axis=1)
        bucket = tf.raw_ops.Bucketize(input=tf.cast(lengths, tf.float32), boundaries=edges)
        return {features.HISTORY_LENGTH_BUCKET.name: tf.gather(labels, bucket)}

    return slicing_features
