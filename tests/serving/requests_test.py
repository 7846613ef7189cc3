"""serving_default requests from raw examples: padding, missing values, row and column forms."""

from __future__ import annotations

import json
import math

import pytest

from serving import requests
from transforms import features

ITEM = features.ITEM_ID.name
DEVICE = "device"
PRICE = "item_price"
YEAR = "item_year"
TIME = features.TIMESTAMP.name
HISTORY = features.HISTORY_ITEMS.name
GAPS = features.HISTORY_TIME_GAPS.name
NAMES = [ITEM, DEVICE, PRICE, TIME, HISTORY, GAPS]

EXAMPLES = [
    {ITEM: ["i1"], DEVICE: ["ios"], PRICE: [9.5], TIME: [100], HISTORY: ["a", "b", "c"], GAPS: [30, 20, 10]},
    {ITEM: ["i2"], DEVICE: [], PRICE: [], TIME: [200], HISTORY: [], GAPS: []},
    {ITEM: ["i3"], TIME: [300], HISTORY: ["d"], GAPS: [5]},  # optional fields absent altogether
]


def _same(left, right):
    """Equality that treats NaN as equal to NaN, through nested lists and dicts."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return left == right and type(left) is type(right)


def test_dense_request_pads_ragged_histories_and_fills_missing_values():
    request = requests.dense_request(EXAMPLES, NAMES)
    expected = {
        ITEM: ["i1", "i2", "i3"],
        DEVICE: ["ios", "", ""],
        PRICE: [9.5, float("nan"), float("nan")],
        TIME: [100, 200, 300],
        HISTORY: [["a", "b", "c"], ["", "", ""], ["d", "", ""]],
        GAPS: [[30, 20, 10], [0, 0, 0], [5, 0, 0]],
    }
    assert _same(request, expected)
    assert list(request) == NAMES


def test_all_empty_histories_get_width_one():
    request = requests.dense_request([{ITEM: ["i"], HISTORY: []}, {ITEM: ["j"]}], [HISTORY, GAPS])
    assert request == {HISTORY: [[""], [""]], GAPS: [[0], [0]]}


def test_a_fixed_history_width_pads_short_histories_and_keeps_the_newest_of_long_ones():
    request = requests.dense_request(EXAMPLES, [ITEM, HISTORY, GAPS], history_width=2)
    assert request[HISTORY] == [["b", "c"], ["", ""], ["d", ""]]
    assert request[GAPS] == [[20, 10], [0, 0], [5, 0]]
    assert request[ITEM] == ["i1", "i2", "i3"]  # scalars unchanged
    rows = requests.instances(EXAMPLES[1:], [HISTORY], history_width=4)
    assert rows == [{HISTORY: ["", "", "", ""]}, {HISTORY: ["d", "", "", ""]}]
    for bad in (0, -1, 2.5, True, "30"):
        with pytest.raises(ValueError, match=r"`history_width` must be an integer >= 1 or None. Received: "):
            requests.dense_request(EXAMPLES, [HISTORY], history_width=bad)


def test_row_and_column_forms_agree_and_serialize_to_json():
    columns = requests.dense_request(EXAMPLES, NAMES)
    rows = requests.instances(EXAMPLES, NAMES)
    assert len(rows) == 3
    for row, instance in enumerate(rows):
        assert list(instance) == NAMES
        assert _same(instance, {name: columns[name][row] for name in NAMES})
    # histories share one width in row form too: TF Serving stacks instances into [B, T]
    assert {len(r[HISTORY]) for r in rows} == {3}
    body = json.loads(json.dumps({"instances": rows}))  # NaN written and read as NaN
    assert math.isnan(body["instances"][1][PRICE]) and body["instances"][0][HISTORY] == ["a", "b", "c"]


def test_from_tf_examples_reads_what_ingest_writes():
    from tfx_pipeline.ingest.pipeline import encode_examples

    written = [{k: v for k, v in e.items() if v} for e in EXAMPLES]
    written[0][features.CLICK_LABEL.name] = [1]
    parsed = requests.from_tf_examples(encode_examples(written), NAMES)
    assert parsed[0] == {ITEM: ["i1"], DEVICE: ["ios"], PRICE: [9.5], TIME: [100], HISTORY: ["a", "b", "c"],
                         GAPS: [30, 20, 10]}
    assert parsed[1] == {ITEM: ["i2"], DEVICE: [], PRICE: [], TIME: [200], HISTORY: [], GAPS: []}
    assert isinstance(parsed[0][ITEM][0], str) and isinstance(parsed[0][TIME][0], int)
    assert _same(requests.dense_request(parsed, NAMES), requests.dense_request(EXAMPLES, NAMES))


def test_bytes_values_are_decoded_and_numpy_strings_accepted():
    import numpy as np

    request = requests.dense_request([{ITEM: [b"caf\xc3\xa9"], HISTORY: list(np.array(["x", "y"]))}],
                                     [ITEM, HISTORY])
    assert request == {ITEM: ["café"], HISTORY: [["x", "y"]]}
    assert type(request[HISTORY][0][0]) is str


def test_to_tensors_matches_signature_dtypes():
    import tensorflow as tf

    from serving import signatures

    specs = signatures.input_signature(NAMES)
    tensors = requests.to_tensors(requests.dense_request(EXAMPLES, NAMES), specs)
    assert tensors[PRICE].dtype == tf.float32 and tensors[TIME].dtype == tf.int64
    assert tensors[HISTORY].shape == (3, 3) and tensors[GAPS].dtype == tf.int64
    assert tensors[DEVICE].numpy().tolist() == [b"ios", b"", b""]
    with pytest.raises(ValueError, match=r"lacks inputs \['item_price'\]"):
        requests.to_tensors(requests.dense_request(EXAMPLES, [ITEM]), {ITEM: tf.string, PRICE: tf.float32})


def test_errors_say_what_was_received():
    with pytest.raises(ValueError, match="Unknown feature 'colour'"):
        requests.dense_request(EXAMPLES, ["colour"])
    with pytest.raises(ValueError, match=r"scalar, but example 0 holds 2 values"):
        requests.dense_request([{ITEM: ["a", "b"]}], [ITEM])
    with pytest.raises(ValueError, match="Integer feature 'item_year' is missing in example 1"):
        requests.dense_request([{YEAR: [1999]}, {YEAR: []}], [YEAR])
    with pytest.raises(ValueError, match=r"'item_price' of example 0 must hold float numbers. Received: '9'"):
        requests.dense_request([{PRICE: ["9"]}], [PRICE])
    with pytest.raises(ValueError, match="not UTF-8"):
        requests.dense_request([{ITEM: [b"\xff"]}], [ITEM])
    with pytest.raises(ValueError, match="at least one example"):
        requests.dense_request([], [ITEM])


def test_from_tf_examples_rejects_wrong_value_types_and_garbage():
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    example.features.feature[TIME].float_list.value.append(1.5)
    with pytest.raises(ValueError, match="'timestamp' of record 0 is stored as float_list.*int64_list"):
        requests.from_tf_examples([example.SerializeToString()], [TIME])
    with pytest.raises(ValueError, match="Record 0 is not a serialized tf.Example"):
        requests.from_tf_examples([b"\xff\xff\xff"], [TIME])
