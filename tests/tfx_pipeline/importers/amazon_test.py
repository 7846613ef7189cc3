"""Tests of the Amazon Beauty importer: the real shared files, then hand-made input."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from tfx_pipeline.eventlog.formats import FileFormat, read_dead_letters
from tfx_pipeline.eventlog.logdir import read_manifest
from tfx_pipeline.importers import ImporterError, amazon
from tfx_pipeline.importers.base import UNKNOWN_CATEGORY
from transforms import features

README_USERS = 22_363
README_INTERACTIONS = 198_502
README_ITEMS = 12_101


@pytest.fixture(scope="module")
def real(shared_data, read_log_back, tmp_path_factory):
    """The shared Amazon Beauty folder imported once (JSON Lines output) and read back."""
    source = shared_data("amazon_beauty")
    shared_data("amazon_beauty/" + amazon.SEQUENCES)
    shared_data("amazon_beauty/" + amazon.ATTRIBUTES)
    out = tmp_path_factory.mktemp("amazon") / "log"
    result = amazon.import_amazon(str(source), str(out), FileFormat.JSONL)
    return result, read_log_back(out), source


def test_real_counts_match_the_readme(real):
    result, log, _ = real
    assert result.counts.total == result.counts.good == README_INTERACTIONS
    assert result.counts.bad == 0 and result.dead_letter_path is None
    manifest = read_manifest(result.log_dir)
    assert manifest.file_format == FileFormat.JSONL
    assert manifest.events_per_type == {features.CLICK_EVENT: README_INTERACTIONS}
    assert manifest.events_per_span == {"span-20140101": README_INTERACTIONS}  # one span
    assert manifest.details["users"] == README_USERS
    assert manifest.details["items"] == README_ITEMS
    assert manifest.details["items_without_attributes"] == 0


def test_real_read_back_has_no_dead_letters(real):
    _, log, _ = real
    assert log.dead_letters == []
    assert len(log.events) == README_INTERACTIONS
    assert dict(log.per_type()) == {features.CLICK_EVENT: README_INTERACTIONS}
    assert log.distinct(features.USER_ID) == README_USERS
    assert log.distinct(features.ITEM_ID) == README_ITEMS


def test_real_position_is_time_and_first_attribute_is_category(real):
    _, log, source = real
    attributes = json.loads((source / amazon.ATTRIBUTES).read_text())
    with open(source / amazon.SEQUENCES) as stream:
        first_lines = [stream.readline().split() for _ in range(3)]
    by_user = collections.defaultdict(list)
    for event in log.events:
        by_user[event[features.USER_ID.name]].append(event)
    for user, *items in first_lines:
        events = sorted(by_user[user], key=lambda e: e[features.TIMESTAMP.name])
        assert [e[features.ITEM_ID.name] for e in events] == items
        assert [e[features.TIMESTAMP.name] for e in events] == [amazon.EPOCH + k for k in range(len(items))]
        assert [e[features.CATEGORY_ID.name] for e in events] == [str(attributes[i][0]) for i in items]


# ------------------------------------------------------------------ hand-made input


def write_source(folder: Path, lines, attributes=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / amazon.SEQUENCES).write_bytes(b"\n".join(lines) + b"\n")
    attributes = {"1": [7, 8], "2": [9], "3": [], "5": [11, 12]} if attributes is None else attributes
    (folder / amazon.ATTRIBUTES).write_text(json.dumps(attributes))
    return folder


MALFORMED = [
    b"1 1 2 3 4",  # 4 good clicks; item 4 has no attributes, 3 an empty list
    b"7",  # a user without items: one malformed row
    b"x 1 2",  # a bad user id spoils both interactions
    b"2 1 2\xff 5 abc",  # bad encoding and a bad number spoil only their own items
    b"",  # blank: not a row
    b"1 1 9",  # user 1 again: position 0 repeats the first line (duplicate), item 9 is new
]


@pytest.mark.parametrize("fmt", [FileFormat.CSV, FileFormat.PARQUET])
def test_malformed_input_becomes_counted_dead_letters(tmp_path, fmt, read_log_back):
    src = write_source(tmp_path / "src", MALFORMED)
    result = amazon.import_amazon(str(src), str(tmp_path / "out"), fmt)

    item_tokens = sum(max(len(line.split()) - 1, 0) for line in MALFORMED)
    rows = item_tokens + 1  # plus the line without items
    assert result.counts.total == rows == 13
    assert result.counts.good + result.counts.bad == rows
    assert dict(result.counts.rejected) == {
        "malformed_row": 1, "unparsable_number": 3, "bad_encoding": 1, "duplicate_row": 1,
    }
    letters = list(read_dead_letters(result.dead_letter_path))
    assert sorted((l.line, l.reason) for l in letters) == [
        (2, "malformed_row"), (3, "unparsable_number"), (3, "unparsable_number"),
        (4, "bad_encoding"), (4, "unparsable_number"), (6, "duplicate_row"),
    ]
    assert any(l.raw == b"2 2\xff" for l in letters)
    assert "user 1 on lines 1 and 6" in result.manifest.details["warnings"][0]

    log = read_log_back(result.log_dir)
    assert log.dead_letters == []
    got = sorted(
        (e[features.USER_ID.name], e[features.TIMESTAMP.name] - amazon.EPOCH, e[features.ITEM_ID.name],
         e[features.CATEGORY_ID.name])
        for e in log.events
    )
    assert got == [
        ("1", 0, "1", "7"), ("1", 1, "2", "9"), ("1", 1, "9", UNKNOWN_CATEGORY),
        ("1", 2, "3", UNKNOWN_CATEGORY), ("1", 3, "4", UNKNOWN_CATEGORY),
        ("2", 0, "1", "7"), ("2", 2, "5", "11"),
    ]
    assert result.manifest.details["items_without_attributes"] == 3


def test_missing_files_say_what_was_expected(tmp_path):
    with pytest.raises(ImporterError, match="does not exist. Expected the Amazon Beauty folder"):
        amazon.import_amazon(str(tmp_path / "nope"), str(tmp_path / "out"))
    src = write_source(tmp_path / "src", [b"1 1"])
    (src / amazon.ATTRIBUTES).unlink()
    expected = r"lacks \['Beauty_item2attributes.json'\].*holds \['Beauty.txt'\]"
    with pytest.raises(ImporterError, match=expected):
        amazon.import_amazon(str(src), str(tmp_path / "out"))
    with pytest.raises(ImporterError, match="is a file.*pass its folder"):
        amazon.import_amazon(str(src / amazon.SEQUENCES), str(tmp_path / "out"))


def test_broken_attribute_file_is_an_error(tmp_path):
    src = write_source(tmp_path / "src", [b"1 1"])
    (src / amazon.ATTRIBUTES).write_text('{"1": [1,')
    with pytest.raises(ImporterError, match="not valid JSON"):
        amazon.import_amazon(str(src), str(tmp_path / "out"))
    (src / amazon.ATTRIBUTES).write_text("[1, 2]")
    with pytest.raises(ImporterError, match="JSON list; expected an object"):
        amazon.import_amazon(str(src), str(tmp_path / "out2"))
