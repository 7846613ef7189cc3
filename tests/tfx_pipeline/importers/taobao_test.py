"""Tests of the Taobao importer: the real shared file, then hand-made malformed input."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from tfx_pipeline.eventlog.formats import FileFormat, read_dead_letters
from tfx_pipeline.eventlog.logdir import read_manifest
from tfx_pipeline.importers import ImporterError, taobao
from transforms import features

TAOBAO = "taobao_userbehavior/UserBehavior_head.csv"

# README figures of the shared file.
README_ROWS = 84_287
README_OUT_OF_WINDOW = 35
README_PER_BEHAVIOR = {"pv": 75_693, "cart": 4_494, "fav": 2_351, "buy": 1_749}
README_USERS = 814
README_ITEMS = 55_233
README_CATEGORIES = 2_911
CHINA_DAYS = [f"span-201711{d}" for d in range(25, 31)] + [f"span-2017120{d}" for d in range(1, 4)]


@pytest.fixture(scope="module")
def real(shared_data, read_log_back, tmp_path_factory):
    """The shared Taobao file imported once (CSV output) and read back."""
    source = shared_data(TAOBAO)
    out = tmp_path_factory.mktemp("taobao") / "log"
    result = taobao.import_taobao(str(source.parent), str(out), FileFormat.CSV)
    return result, read_log_back(out), source


def test_real_counts_match_the_readme(real):
    result, _, _ = real
    assert result.counts.total == README_ROWS
    assert result.counts.good == README_ROWS - README_OUT_OF_WINDOW
    assert dict(result.counts.rejected) == {"timestamp_out_of_span": README_OUT_OF_WINDOW}
    manifest = read_manifest(result.log_dir)
    assert manifest.counts == result.counts.to_dict()
    assert manifest.details["input_rows"] == README_ROWS
    assert manifest.utc_offset_seconds == 8 * 3600
    assert list(manifest.events_per_span) == CHINA_DAYS


def test_real_events_per_type_are_the_readme_figures_minus_the_rejected(real):
    result, log, _ = real
    letters = list(read_dead_letters(result.dead_letter_path))
    rejected_per_behavior = collections.Counter(l.raw.decode().split(",")[3] for l in letters)
    expected = {
        taobao.BEHAVIOR_EVENTS[behavior]: n - rejected_per_behavior[behavior]
        for behavior, n in README_PER_BEHAVIOR.items()
    }
    assert read_manifest(result.log_dir).events_per_type == dict(sorted(expected.items()))
    assert dict(log.per_type()) == expected
    assert expected[features.CLICK_EVENT] == 75_658  # all 35 out-of-window rows are page views


def test_real_read_back_has_no_dead_letters_and_the_readme_entities(real):
    result, log, _ = real
    assert log.dead_letters == []
    assert len(log.events) == result.counts.good
    assert log.distinct(features.USER_ID) == README_USERS
    letters = list(read_dead_letters(result.dead_letter_path))
    items = {e[features.ITEM_ID.name] for e in log.events} | {l.raw.decode().split(",")[1] for l in letters}
    categories = {e[features.CATEGORY_ID.name] for e in log.events} | {
        l.raw.decode().split(",")[2] for l in letters
    }
    assert (len(items), len(categories)) == (README_ITEMS, README_CATEGORIES)


def test_real_out_of_window_rows_are_dead_letters_with_their_raw_row(real):
    result, _, source = real
    letters = list(read_dead_letters(result.dead_letter_path))
    assert len(letters) == README_OUT_OF_WINDOW
    lines = source.read_bytes().split(b"\n")
    for letter in letters:
        assert letter.reason == "timestamp_out_of_span"
        assert letter.raw == lines[letter.line - 1]
        timestamp = int(letter.raw.split(b",")[4])
        assert not taobao.WINDOW.contains(timestamp)


def test_real_manifest_documents_the_labels(real):
    result, _, source = real
    details = read_manifest(result.log_dir).details
    assert details["source_path"] == str(source)
    assert details["behavior_types"]["pv"] == features.CLICK_EVENT
    assert "conversion" in details["labels"][features.CONVERSION_EVENT]
    assert details["window"]["start_local"] == "2017-11-25T00:00:00+08:00"
    assert details["window"]["end_local"] == "2017-12-04T00:00:00+08:00"


# ------------------------------------------------------------------ hand-made input

T = 1511600000  # 2017-11-25 16:53:20 China time, inside the window
MALFORMED = [
    (f"1,100,10,pv,{T}".encode(), None),
    (b"1,100,1", "malformed_row"),  # truncated line
    (f"1,101,10,click,{T}".encode(), "unknown_event"),  # not a Taobao behaviour
    (f"1,10\xff2,10,pv,{T}".encode("latin-1"), "bad_encoding"),
    (f"1,102,10,pv,{T},extra".encode(), "malformed_row"),  # wrong column count
    (b"1,103,10,buy,15116000x3", "unparsable_number"),
    (f"1,1o4,10,pv,{T}".encode(), "unparsable_number"),
    (f"1,,10,pv,{T}".encode(), "missing_field"),
    (f"1,100,10,pv,{T}".encode(), "duplicate_row"),  # exact repeat of line 1
    (b"1,105,10,pv,1500000000", "timestamp_out_of_span"),
    (b"", None),  # blank: not a row
    (f"2,100,10,buy,{T}\r".encode(), None),  # CRLF line end
    (f"2,100,10,fav,{T + 86400}".encode(), None),
    (f"2,100,10,buy,{T}".encode(), "duplicate_row"),  # last line, no newline
]


def write_source(folder: Path, lines) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "UserBehavior.csv"
    path.write_bytes(b"\n".join(lines))
    return path


@pytest.mark.parametrize("fmt", list(FileFormat))
def test_malformed_rows_become_counted_dead_letters(tmp_path, fmt, read_log_back, dead_letter_reasons):
    path = write_source(tmp_path / "src", [line for line, _ in MALFORMED])
    result = taobao.import_taobao(str(path), str(tmp_path / "out"), fmt)

    expected_bad = {n: reason for n, (_, reason) in enumerate(MALFORMED, start=1) if reason}
    rows = sum(1 for line, _ in MALFORMED if line.strip())
    assert result.counts.total == rows == 13
    assert result.counts.good + result.counts.bad == rows
    assert result.counts.good == 3
    assert dict(result.counts.rejected) == dict(collections.Counter(expected_bad.values()))
    letters = list(read_dead_letters(result.dead_letter_path))
    assert dead_letter_reasons(letters) == expected_bad
    by_line = {l.line: l for l in letters}
    assert by_line[4].raw == MALFORMED[3][0]  # the non-UTF-8 bytes are kept as they were
    assert "behavior_type='click'" in by_line[3].detail
    assert "line 1" in by_line[9].detail

    log = read_log_back(result.log_dir)
    assert log.dead_letters == []
    assert sorted((e[features.USER_ID.name], e[features.EVENT.name]) for e in log.events) == [
        ("1", features.CLICK_EVENT), ("2", features.CONVERSION_EVENT), ("2", "fav"),
    ]
    assert list(read_manifest(result.log_dir).events_per_span) == ["span-20171125", "span-20171126"]


def test_repeat_across_users_is_left_to_read_log(tmp_path, read_log_back):
    """Dedupe memory is per user run (bounded); read_log still rejects a later repeat."""
    lines = [f"3,1,1,pv,{T}".encode(), f"4,1,1,pv,{T}".encode(), f"3,1,1,pv,{T}".encode()]
    path = write_source(tmp_path / "src", lines)
    result = taobao.import_taobao(str(path), str(tmp_path / "out"))
    assert result.counts.good == 3
    log = read_log_back(result.log_dir)
    assert [l.reason for l in log.dead_letters] == ["duplicate_row"]


def test_day_boundary_is_china_midnight(tmp_path, read_log_back):
    last_second_of_25th, first_second_of_26th = taobao.WINDOW.start + 86399, taobao.WINDOW.start + 86400
    path = write_source(
        tmp_path / "src",
        [f"1,1,1,pv,{last_second_of_25th}".encode(), f"1,1,1,pv,{first_second_of_26th}".encode()],
    )
    result = taobao.import_taobao(str(path), str(tmp_path / "out"))
    assert result.manifest.events_per_span == {"span-20171125": 1, "span-20171126": 1}
    assert read_log_back(result.log_dir).dead_letters == []


def test_report_lists_reasons(tmp_path):
    path = write_source(tmp_path / "src", [line for line, _ in MALFORMED])
    report = taobao.import_taobao(str(path), str(tmp_path / "out")).report()
    assert "rows read 13: good 3, rejected 10" in report
    assert "unknown_event" in report and "dead letters:" in report


def test_missing_source_says_what_was_expected(tmp_path):
    with pytest.raises(ImporterError, match="does not exist.*UserBehavior CSV file"):
        taobao.import_taobao(str(tmp_path / "nope.csv"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImporterError, match="holds no CSV file.*UserBehavior_head.csv"):
        taobao.import_taobao(str(tmp_path / "empty"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_non_empty_out_dir_is_refused(tmp_path):
    path = write_source(tmp_path / "src", [f"1,1,1,pv,{T}".encode()])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something").write_text("x")
    with pytest.raises(ImporterError, match="already holds.*new or empty directory"):
        taobao.import_taobao(str(path), str(tmp_path / "out"))


def test_manifest_is_json_with_counts_per_row(tmp_path):
    path = write_source(tmp_path / "src", [f"1,1,1,pv,{T}".encode(), b"junk"])
    result = taobao.import_taobao(str(path), str(tmp_path / "out"))
    data = json.loads((Path(result.log_dir) / "log.json").read_text())
    assert data["counts"]["input"] == 2 and data["counts"]["rejected"]["malformed_row"] == 1
