import pytest

from tfx_pipeline.eventlog.validation import (
    REASONS,
    Counts,
    Reason,
    Rejection,
    Window,
    count_all,
    dedupe_key,
    validate_record,
)

GOOD = {"user_id": "u1", "item_id": "i9", "category_id": "c3", "event": "click", "timestamp": "1700000000"}


def test_good_record_is_typed():
    event = validate_record({**GOOD, "item_price": "12.5", "device": "ios", "item_year": "1997"})
    assert event == {
        "user_id": "u1", "item_id": "i9", "category_id": "c3", "event": "click",
        "timestamp": 1700000000, "item_price": 12.5, "device": "ios", "item_year": 1997,
    }


def test_ids_keep_unicode_and_separators_and_numbers_become_text():
    event = validate_record({**GOOD, "user_id": "ü;|,x", "item_id": 42, "timestamp": 1700000000.0})
    assert event["user_id"] == "ü;|,x"
    assert event["item_id"] == "42"
    assert event["timestamp"] == 1700000000


def test_empty_side_field_is_absent_not_rejected():
    event = validate_record({**GOOD, "device": "", "item_price": None})
    assert "device" not in event and "item_price" not in event


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"user_id": ""}, Reason.MISSING_FIELD),
        ({"item_id": None}, Reason.MISSING_FIELD),
        ({"timestamp": "12:00"}, Reason.UNPARSABLE_NUMBER),
        ({"timestamp": "1.5"}, Reason.UNPARSABLE_NUMBER),
        ({"timestamp": "nan"}, Reason.UNPARSABLE_NUMBER),
        ({"item_price": "cheap"}, Reason.UNPARSABLE_NUMBER),
        ({"event": "view"}, Reason.UNKNOWN_EVENT),
        ({"user_id": ["u1"]}, Reason.MALFORMED_ROW),
        ({"item_id": "a\nb"}, Reason.MALFORMED_ROW),
    ],
)
def test_each_bad_record_gets_its_reason(change, reason):
    result = validate_record({**GOOD, **change})
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail


def test_missing_key_is_missing_field():
    record = dict(GOOD)
    del record["category_id"]
    result = validate_record(record)
    assert result.reason == Reason.MISSING_FIELD
    assert "category_id" in result.detail


def test_window_is_half_open():
    window = Window(1700000000, 1700000001)
    assert not isinstance(validate_record(GOOD, window), Rejection)
    late = validate_record({**GOOD, "timestamp": "1700000001"}, window)
    assert late.reason == Reason.TIMESTAMP_OUT_OF_SPAN
    negative = validate_record({**GOOD, "timestamp": "-5"}, window)
    assert negative.reason == Reason.TIMESTAMP_OUT_OF_SPAN


def test_dedupe_key_covers_side_fields():
    a = validate_record({**GOOD, "device": "ios"})
    b = validate_record({**GOOD, "device": "android"})
    assert dedupe_key(a) != dedupe_key(b)
    assert dedupe_key(a) == dedupe_key(validate_record({**GOOD, "device": "ios"}))


def test_counts_merge_and_report():
    counts = count_all([validate_record(GOOD), validate_record({**GOOD, "event": "x"})])
    other = Counts(good=2, rejected={"duplicate_row": 1})
    counts.merge(other)
    assert (counts.good, counts.bad, counts.total) == (3, 2, 5)
    assert counts.to_dict()["rejected"]["unknown_event"] == 1
    assert set(counts.to_dict()["rejected"]) == set(REASONS)
    assert Counts.from_dict(counts.to_dict()) == counts
    report = counts.format()
    assert "rows read 5: good 3, rejected 2 (40.00%)" in report
    assert "duplicate_row" in report and "missing_field" not in report
