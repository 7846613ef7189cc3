"""Tests of the MovieLens-100K importer: the real shared files, then hand-made input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfx_pipeline.eventlog.formats import FileFormat, read_dead_letters
from tfx_pipeline.eventlog.logdir import read_manifest
from tfx_pipeline.importers import ImporterError, movielens
from tfx_pipeline.importers.base import UNKNOWN_CATEGORY
from transforms import features

README_RATINGS = 100_000
README_USERS = 943
README_ITEMS = 1_682
USER, ITEM, CATEGORY, EVENT, TIMESTAMP = (
    features.USER_ID.name, features.ITEM_ID.name, features.CATEGORY_ID.name,
    features.EVENT.name, features.TIMESTAMP.name,
)
AGE, GENDER, OCCUPATION, YEAR = (
    movielens.USER_AGE.name, movielens.USER_GENDER.name, movielens.USER_OCCUPATION.name,
    movielens.ITEM_YEAR.name,
)


def liked_ratings(inter: Path) -> int:
    """Ratings >= 4 in the .inter file, counted straight from the text."""
    lines = inter.read_text().splitlines()[1:]
    return sum(1 for line in lines if line.strip() and float(line.split("\t")[2]) >= 4)


@pytest.fixture(scope="module")
def real(shared_data, read_log_back, tmp_path_factory):
    """The shared MovieLens folder imported once (Parquet output) and read back."""
    source = shared_data("movielens_100k")
    for name in (movielens.INTER, movielens.ITEM, movielens.USER):
        shared_data("movielens_100k/" + name)
    out = tmp_path_factory.mktemp("movielens") / "log"
    result = movielens.import_movielens(str(source), str(out), FileFormat.PARQUET)
    return result, read_log_back(out), source


def test_real_counts_match_the_readme(real):
    result, _, source = real
    liked = liked_ratings(source / movielens.INTER)
    assert liked == 55_375
    assert result.counts.total == result.counts.good == README_RATINGS
    assert result.counts.bad == 0 and result.dead_letter_path is None
    manifest = read_manifest(result.log_dir)
    assert manifest.file_format == FileFormat.PARQUET
    assert manifest.utc_offset_seconds == 0
    assert manifest.events_per_type == {
        features.CONVERSION_EVENT: liked, features.CLICK_EVENT: README_RATINGS,
    }
    assert manifest.details["derived_events"] == {features.CONVERSION_EVENT: liked}
    assert manifest.details["input_rows"] == README_RATINGS
    assert manifest.details["events_written"] == README_RATINGS + liked
    assert (manifest.details["users"], manifest.details["items"]) == (README_USERS, README_ITEMS)
    assert "liked" in manifest.details["labels"][features.CONVERSION_EVENT]
    assert len(manifest.events_per_span) == 213
    spans = sorted(manifest.events_per_span)
    assert (spans[0], spans[-1]) == ("span-19970920", "span-19980422")


def test_real_read_back_has_no_dead_letters(real):
    result, log, _ = real
    assert log.dead_letters == []
    assert len(log.events) == result.manifest.details["events_written"]
    per_type = log.per_type()
    assert per_type[features.CLICK_EVENT] == README_RATINGS
    derived = result.manifest.details["derived_events"]
    assert per_type[features.CONVERSION_EVENT] == derived[features.CONVERSION_EVENT]
    assert log.distinct(features.USER_ID) == README_USERS
    assert log.distinct(features.ITEM_ID) == README_ITEMS


def test_real_every_buy_has_its_click_and_side_fields(real):
    _, log, _ = real
    clicks = {(e[USER], e[ITEM], e[TIMESTAMP]) for e in log.events if e[EVENT] == features.CLICK_EVENT}
    buys = [e for e in log.events if e[EVENT] == features.CONVERSION_EVENT]
    assert all((e[USER], e[ITEM], e[TIMESTAMP]) in clicks for e in buys)
    user_1 = next(e for e in log.events if e[USER] == "1")
    assert (user_1[AGE], user_1[GENDER], user_1[OCCUPATION]) == (24.0, "M", "technician")
    toy_story = next(e for e in log.events if e[ITEM] == "1")
    assert (toy_story[CATEGORY], toy_story[YEAR]) == ("Animation", 1995)
    no_year = [e for e in log.events if e[ITEM] in ("267", "1412")]
    assert no_year and all(YEAR not in e for e in no_year)


# ------------------------------------------------------------------ hand-made input

INTER_HEADER = b"user_id:token\titem_id:token\trating:float\ttimestamp:float"
INTER_LINES = [
    b"1\t10\t4\t881250949",  # click + buy
    b"1\t11\t3\t881250950",  # click only
    b"1\t10\t4",  # wrong column count (truncated)
    b"2\t1\xe90\t5\t881250951",  # not UTF-8
    b"2\t10\tgood\t881250952",  # rating not a number
    b"2\t10\t5\t8812509xx",  # timestamp not a number
    b"\t10\t5\t881250953",  # empty user
    b"1\t10\t4\t881250949",  # duplicate of line 2 (its buy is not derived again)
    b"",  # blank: not a row
    b"3\t99\t4.5\t881337600",  # unknown movie, user with a broken row; next UTC day
    b"2\t12\t1\t881250954",  # movie with an unparsable year
]
ITEM_FILE = (
    b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    b"10\tA Film\t1995\tComedy Drama\n"
    b"11\tB Film\t1996\t\n"
    b"12\tC Film\tV\tWar\n"
)
USER_FILE = (
    b"user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
    b"1\t24\tM\ttechnician\t85711\n"
    b"2\tx\tF\t\t94043\n"
    b"3\t30\tM\n"
)


def write_source(folder: Path, inter_lines=INTER_LINES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / movielens.INTER).write_bytes(b"\n".join([INTER_HEADER, *inter_lines]) + b"\n")
    (folder / movielens.ITEM).write_bytes(ITEM_FILE)
    (folder / movielens.USER).write_bytes(USER_FILE)
    return folder


@pytest.mark.parametrize("fmt", [FileFormat.CSV, FileFormat.JSONL])
def test_malformed_ratings_become_counted_dead_letters(tmp_path, fmt, read_log_back, dead_letter_reasons):
    result = movielens.import_movielens(str(write_source(tmp_path / "src")), str(tmp_path / "out"), fmt)

    rows = sum(1 for line in INTER_LINES if line.strip())
    assert result.counts.total == rows == 10
    assert result.counts.good + result.counts.bad == rows
    assert result.counts.good == 4
    letters = list(read_dead_letters(result.dead_letter_path))
    assert dead_letter_reasons(letters) == {  # file lines: the header is line 1
        4: "malformed_row", 5: "bad_encoding", 6: "unparsable_number", 7: "unparsable_number",
        8: "missing_field", 9: "duplicate_row",
    }
    manifest = result.manifest
    assert manifest.details["derived_events"] == {features.CONVERSION_EVENT: 2}
    assert manifest.events_per_type == {features.CONVERSION_EVENT: 2, features.CLICK_EVENT: 4}
    assert manifest.counts["input"] == rows
    assert any("ml-100k.user line 4 skipped" in w for w in manifest.details["warnings"])
    assert manifest.details["items_without_year"] == ["12"]

    log = read_log_back(result.log_dir)
    assert log.dead_letters == []
    events = {(e[USER], e[ITEM], e[EVENT]): e for e in log.events}
    assert sorted(events) == [
        ("1", "10", "buy"), ("1", "10", "click"), ("1", "11", "click"),
        ("2", "12", "click"), ("3", "99", "buy"), ("3", "99", "click"),
    ]
    assert events["1", "10", "buy"] == {**events["1", "10", "click"], EVENT: features.CONVERSION_EVENT}
    assert events["1", "10", "click"][CATEGORY] == "Comedy" and events["1", "10", "click"][YEAR] == 1995
    assert events["1", "11", "click"][CATEGORY] == UNKNOWN_CATEGORY  # no genre
    assert YEAR not in events["2", "12", "click"] and AGE not in events["2", "12", "click"]  # 'V', 'x'
    assert events["2", "12", "click"][GENDER] == "F" and OCCUPATION not in events["2", "12", "click"]
    unknown = events["3", "99", "click"]
    assert unknown[CATEGORY] == UNKNOWN_CATEGORY and AGE not in unknown and YEAR not in unknown
    assert list(manifest.events_per_span) == ["span-19971204", "span-19971205"]


def test_header_without_expected_column_is_an_error(tmp_path):
    src = write_source(tmp_path / "src")
    (src / movielens.INTER).write_bytes(
        b"user_id:token\titem_id:token\tscore:float\ttimestamp:float\n1\t1\t1\t1\n"
    )
    with pytest.raises(ImporterError, match=r"lacks \['rating'\].*name:type"):
        movielens.import_movielens(str(src), str(tmp_path / "out"))


def test_missing_file_says_what_was_expected(tmp_path):
    src = write_source(tmp_path / "src")
    (src / movielens.USER).unlink()
    with pytest.raises(ImporterError, match=r"lacks \['ml-100k.user'\].*Expected the MovieLens-100K folder"):
        movielens.import_movielens(str(src), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
