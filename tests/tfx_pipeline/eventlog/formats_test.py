import json

import pytest

from tfx_pipeline.eventlog import formats
from tfx_pipeline.eventlog.formats import DeadLetter, EventFileWriter, FileFormat

HEADER = b"user_id,item_id,category_id,event,timestamp,device\n"


def _results(path):
    return [formats.validate_row(row) for row in formats.read_rows(str(path))]


def test_format_of_extension():
    assert formats.format_of("a/events.CSV") == FileFormat.CSV
    assert formats.format_of("x.ndjson") == FileFormat.JSONL
    with pytest.raises(ValueError, match="Cannot tell the format"):
        formats.format_of("x.txt")


def test_csv_bad_lines_become_dead_letters_with_reasons(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(
        HEADER
        + b"u1,i1,c1,click,100,ios\n"  # good
        + b"u1,i1,c1,click\n"  # truncated
        + b"u2,i\xff\xfe,c1,click,100,ios\n"  # not UTF-8
        + b"\n"  # blank line: layout, not a row
        + b"u3,i1,c1,teleport,100,\n"  # unknown event
        + b'u4,"i,1",c1,buy,200,web'  # quoted comma, no final newline
    )
    results = _results(path)
    assert len(results) == 5
    assert results[0]["device"] == "ios"
    letters = [r for r in results if isinstance(r, DeadLetter)]
    assert [(d.line, d.reason) for d in letters] == [
        (3, "malformed_row"), (4, "bad_encoding"), (6, "unknown_event")]
    assert results[4]["item_id"] == "i,1"
    # the dead letter keeps the row itself, also when it is not UTF-8
    assert letters[1].raw == b"u2,i\xff\xfe,c1,click,100,ios"
    assert DeadLetter.from_json(json.loads(json.dumps(letters[1].to_json()))) == letters[1]


def test_csv_bad_header_rejects_every_row_and_says_why(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"user_id;item_id;category_id;event;timestamp\nu1;i1;c1;click;100\nu2;i1;c1;click;100\n")
    results = _results(path)
    assert [r.reason for r in results] == ["malformed_row", "malformed_row"]
    assert "missing required columns" in results[0].detail
    assert "undeclared columns" in results[0].detail


def test_empty_file_has_no_rows(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"")
    assert _results(path) == []


def test_jsonl_rows(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"user_id": "u1", "item_id": 7, "category_id": "c", "event": "fav", "timestamp": 5}\n'
        b'[1, 2]\n'
        b'{"user_id": "u1", "item_id": 7, "category_id": "c", "event": "fav", "timestamp": 5, "colour": "red"}\n'
        b'{"user_id": "u1", "item_id"\n'
    )
    results = _results(path)
    assert results[0]["item_id"] == "7"
    assert [r.reason for r in results[1:]] == ["malformed_row"] * 3
    assert "undeclared fields ['colour']" in results[2].detail


@pytest.mark.parametrize("fmt", list(FileFormat))
def test_write_read_round_trip_every_format(tmp_path, fmt):
    events = [
        {"user_id": "u1", "item_id": "i1", "category_id": "c1", "event": "impression", "timestamp": 10,
         "device": "ios", "item_price": 3.25},
        {"user_id": "ü", "item_id": "i,2", "category_id": "c1", "event": "buy", "timestamp": 11,
         "item_price": 1.0},
    ]
    path = tmp_path / f"events{formats.EXTENSIONS[fmt]}"
    with EventFileWriter(str(path), fmt, ["device", "item_price"]) as writer:
        for event in events:
            writer.write(event)
        assert not path.exists(), "a file is visible only once complete"
    assert path.exists()
    assert _results(path) == events


def test_writer_refuses_undeclared_side_field(tmp_path):
    with pytest.raises(ValueError, match="declare new side fields"):
        EventFileWriter(str(tmp_path / "e.csv"), FileFormat.CSV, ["colour"])


def test_aborted_writer_leaves_nothing(tmp_path):
    path = tmp_path / "e.csv"
    with pytest.raises(RuntimeError):
        with EventFileWriter(str(path), FileFormat.CSV) as writer:
            writer.write({"user_id": "u", "item_id": "i", "category_id": "c", "event": "click", "timestamp": 1})
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
