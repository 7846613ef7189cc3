"""Requests for ``serving_default`` built from raw examples: the one place that knows the padding.

``serving_default`` (serving/signatures.py) takes one dense, JSON-friendly tensor per raw
feature. This module turns raw examples into exactly that, for tests, for the serving
validator (tfx_pipeline/components/serving_validator.py), for warmup requests and for
clients of TF Serving's REST API:

- ``dense_request(examples, names)``: the columnar form, ``{name: [value per example]}``,
  what ``{"inputs": ...}`` carries and what the signature is called with.
- ``instances(examples, names)``: the row form, ``[{name: value}, ...]``, what
  ``{"instances": [...]}`` carries. TF Serving stacks the rows into the same tensors, so a
  history is padded to the batch's widest history in both forms, or, with
  ``history_width=L``, to exactly L values: what TF Serving's server-side batching needs,
  since it merges requests only when their tensors have the same shape (docs/deploy.md).
- ``from_tf_examples(serialized, names)``: serialized raw tf.Examples (what ingest writes
  and ExampleGen's ``Split-eval`` holds) -> examples as dicts of lists.

An example is a mapping from feature name to a list of values (the form of tft_beam and
of the tests): one value or none for a scalar feature, any number for a history. A
feature an example lacks, or holds as an empty list, is missing.

Encoding, as ``serving_default`` expects it:

===============  ============================  ===================================
feature          value                          missing / padding
===============  ============================  ===================================
string scalar    the string                     "" (missing)
float scalar     the number                     NaN (missing)
int scalar       the number                     not representable: ValueError
history          values, newest last            right-padded with "" or 0 to the
                                                widest history of the batch (>= 1),
                                                or to ``history_width`` (the newest
                                                values kept, as Transform keeps them)
===============  ============================  ===================================

Strings are returned as ``str`` (tf.Example bytes are decoded as UTF-8), so every request
is JSON-serializable; ``json.dumps`` writes NaN as ``NaN``, which TF Serving accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence

from transforms import features

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

Example = Mapping[str, Sequence[Any]]

MISSING_STRING = ""
MISSING_NUMBER = float("nan")
STRING_PADDING = ""
NUMBER_PADDING = 0

_LIST_KINDS = {
    features.FieldType.STRING: "bytes_list",
    features.FieldType.INT: "int64_list",
    features.FieldType.FLOAT: "float_list",
}


def _as_str(value: Any, name: str, row: int) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"Feature {name!r} of example {row} is not UTF-8 text. Received: {value[:40]!r}. "
                "Ids and categories must be UTF-8 (see transforms/features.py); fix the log or the importer."
            ) from None
    if isinstance(value, str):
        return str(value)
    raise ValueError(f"Feature {name!r} of example {row} must hold strings. Received: {value!r} "
                     f"({type(value).__name__}).")


def _as_number(value: Any, dtype: features.FieldType, name: str, row: int) -> Any:
    if isinstance(value, (bytes, str)) or isinstance(value, bool):
        raise ValueError(f"Feature {name!r} of example {row} must hold {dtype.value} numbers. "
                         f"Received: {value!r} ({type(value).__name__}).")
    if dtype == features.FieldType.INT:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"Feature {name!r} of example {row} must hold integers. Received: {value!r}.")
        return int(value)
    return float(value)


def _values(example: Example, name: str, feature: features.ExampleFeature, row: int) -> List[Any]:
    raw = example.get(name)
    values = [] if raw is None else list(raw)
    if feature.dtype == features.FieldType.STRING:
        return [_as_str(v, name, row) for v in values]
    return [_as_number(v, feature.dtype, name, row) for v in values]


def _column(examples: Sequence[Example], name: str, history_width: Optional[int]) -> List[Any]:
    feature = features.example_feature(name)
    rows = [_values(example, name, feature, row) for row, example in enumerate(examples)]
    if feature.is_sequence:
        width = history_width or max([1] + [len(values) for values in rows])
        pad = STRING_PADDING if feature.dtype == features.FieldType.STRING else NUMBER_PADDING
        return [values[len(values) - width:] if len(values) > width else values + [pad] * (width - len(values))
                for values in rows]
    column = []
    for row, values in enumerate(rows):
        if len(values) > 1:
            raise ValueError(
                f"Feature {name!r} is a scalar, but example {row} holds {len(values)} values: {values[:5]}. "
                "Expected at most one; declare it as a sequence in transforms/features.py if it is a list.")
        if values:
            column.append(values[0])
        elif feature.dtype == features.FieldType.STRING:
            column.append(MISSING_STRING)
        elif feature.dtype == features.FieldType.FLOAT:
            column.append(MISSING_NUMBER)
        else:
            raise ValueError(
                f"Integer feature {name!r} is missing in example {row}, and serving_default has no value "
                "for an unknown integer (every int64 is a real value; only floats have NaN). Drop the "
                "example, fill the value, or declare the field as FLOAT in transforms/features.py.")
    return column


def dense_request(examples: Sequence[Example], names: Sequence[str],
                  history_width: Optional[int] = None) -> Dict[str, List[Any]]:
    """The columnar ``serving_default`` request: ``{name: [value per example]}``.

    Args:
      examples: raw examples, each a mapping from feature name to a list of values.
      names: the signature's inputs (``signatures.raw_inputs(model.input_features)``, or
        ``signature.structured_input_signature[1]`` of a loaded model).
      history_width: pad (or cut, keeping the newest values) every history to exactly this
        many values; None = the batch's widest history. Use the pipeline's
        ``ingest.max_history`` when TF Serving batches requests: a model sees at most that
        many values anyway, so the scores do not change.

    Returns:
      Strings [B], numbers [B] and histories [B, T] (T = `history_width`, or the widest
      history, at least 1) as nested Python lists, in the order of `names`.

    Raises:
      ValueError: a name not in transforms/features.py, a scalar with several values, a
        value of the wrong type, or a missing integer scalar.

    Example:
      >>> dense_request([{"item_id": ["i1"], "history_item_id": ["i0"]},
      ...                {"item_id": ["i2"], "history_item_id": []}],
      ...               ["item_id", "history_item_id"])
      {'item_id': ['i1', 'i2'], 'history_item_id': [['i0'], ['']]}
    """
    if not examples:
        raise ValueError("`examples` must hold at least one example. Received: 0 examples.")
    if history_width is not None and (isinstance(history_width, bool) or not isinstance(history_width, int)
                                      or history_width < 1):
        raise ValueError(f"`history_width` must be an integer >= 1 or None. Received: {history_width!r}. "
                         "Use the pipeline's ingest.max_history.")
    return {name: _column(examples, name, history_width) for name in names}


def instances(examples: Sequence[Example], names: Sequence[str],
              history_width: Optional[int] = None) -> List[Dict[str, Any]]:
    """The row form of ``dense_request``: one ``{name: value}`` per example, for ``{"instances": ...}``.

    Histories are padded as in the columnar form (to the batch's widest history, or to
    `history_width`): TF Serving stacks the instances into one [B, T] tensor and rejects rows
    of different lengths.
    """
    columns = dense_request(examples, names, history_width)
    return [{name: columns[name][row] for name in names} for row in range(len(examples))]


def from_tf_examples(serialized: Iterable[bytes], names: Sequence[str]) -> List[Dict[str, List[Any]]]:
    """Parses serialized raw tf.Examples into examples (dicts of lists) holding `names`.

    A feature absent from a tf.Example, or present with no value, comes back as ``[]``.
    Strings are decoded as UTF-8; ints and floats come back as Python numbers. Only the
    protobuf parser runs: no TensorFlow graph or session.

    Raises:
      ValueError: a record that is not a tf.Example, or a feature stored with a value type
        other than the one transforms/features.py declares.
    """
    from google.protobuf import message
    from tensorflow.core.example import example_pb2

    kinds = {name: _LIST_KINDS[features.example_feature(name).dtype] for name in names}
    result = []
    for row, record in enumerate(serialized):
        try:
            parsed = example_pb2.Example.FromString(record).features.feature
        except message.DecodeError as error:
            raise ValueError(f"Record {row} is not a serialized tf.Example ({error}). Received "
                             f"{len(record)} bytes starting {bytes(record[:16])!r}.") from None
        example = {}
        for name, kind in kinds.items():
            if name not in parsed:
                example[name] = []
                continue
            stored = parsed[name].WhichOneof("kind")
            if stored is not None and stored != kind:
                raise ValueError(
                    f"Feature {name!r} of record {row} is stored as {stored}, but transforms/features.py "
                    f"declares {features.example_feature(name).dtype.value} ({kind}). Re-ingest the data, "
                    "or fix the declaration.")
            values = list(getattr(parsed[name], kind).value) if stored else []
            if kind == "bytes_list":
                values = [_as_str(v, name, row) for v in values]
            example[name] = values
        result.append(example)
    return result


def to_tensors(request: Mapping[str, Sequence[Any]], specs: Mapping[str, Any]) -> Dict[str, "tf.Tensor"]:
    """Tensors for calling a loaded signature: ``signature(**to_tensors(request, specs))``.

    Args:
      request: a ``dense_request``.
      specs: the signature's ``structured_input_signature[1]`` (name -> tf.TensorSpec), or
        name -> tf.DType.
    """
    import tensorflow as tf

    missing = sorted(set(specs) - set(request))
    if missing:
        raise ValueError(f"The request lacks inputs {missing} of the signature. Received inputs "
                         f"{sorted(request)}; build it with dense_request(examples, list(specs)).")
    return {name: tf.constant(request[name], dtype=getattr(spec, "dtype", spec)) for name, spec in specs.items()}
