"""MovieLens-100K (GroupLens, as packed by RecBole) -> the canonical event log.

Source (SRC = the folder holding the three RecBole atomic files, tab-separated, each with a
``name:type`` header; columns are found by name, in any order):

* ``ml-100k.inter``: ``user_id, item_id, rating, timestamp`` (100,000 ratings, 1-5 stars,
  unix seconds);
* ``ml-100k.item``: ``item_id, movie_title, release_year, class`` (``class`` = space-
  separated genres);
* ``ml-100k.user``: ``user_id, age, gender, occupation, zip_code``.

Mapping (``LIKED_RATING`` = 4):

* every rating is a ``click`` at its timestamp (the user watched and rated the movie);
* a rating >= 4 additionally emits a ``buy`` event at the same timestamp. Here ``buy``
  stands for the second label, "liked", not a purchase: it is the event the conversion
  head learns. These ``buy`` events are derived: the manifest counts input rows
  (ratings), ``details['derived_events']`` the extra ``buy`` events and
  ``details['events_written']`` all events;
* ``category_id`` = the movie's FIRST genre (``class`` column); ``"unknown"`` when the
  movie has no row or no genre (two movies carry MovieLens' own genre ``unknown``);
* side fields: ``user_age``, ``user_gender``, ``user_occupation`` from ``ml-100k.user``;
  ``item_year`` from ``release_year``. A missing or unparsable value (``release_year`` is
  ``unkonwn`` for item 267 and ``V`` for item 1412 in the shared file) omits that side
  field on the row; it is not a rejection. ``zip_code`` and the title are not carried.

Time: UTC (offset 0), one span per UTC day (1997-09-20 .. 1998-04-22, 213 spans with data).

Input rows are the ratings: good + bad = data lines of ``ml-100k.inter``. Bad ratings are
counted dead letters: ``bad_encoding`` (not UTF-8), ``malformed_row`` (wrong column count),
``missing_field`` (an empty column), ``unparsable_number`` (rating or timestamp not a
number), ``duplicate_row`` (an exact repeat; its ``buy`` is not derived either). Blank
lines are not rows. A broken line in the item or user file is skipped with a warning in
the report and ``details['warnings']``: the ratings of that movie or user lose their side
fields (and category), nothing else. A header that lacks an expected column is an
ImporterError.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, Mapping, Sequence, Set, Tuple, Union

from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.eventlog.validation import Reason, Rejection
from tfx_pipeline.importers.base import (
    UNKNOWN_CATEGORY,
    ImporterError,
    ImportResult,
    ImportSink,
    decode,
    is_decimal,
    read_lines,
    require_dir_with,
)
from transforms import features

NAME = "movielens"
DATASET = "MovieLens-100K (GroupLens), RecBole atomic files"
INTER = "ml-100k.inter"
ITEM = "ml-100k.item"
USER = "ml-100k.user"
LIKED_RATING = 4.0

# Side fields carried, looked up in the registry (an unknown name fails at import time).
USER_AGE = features.log_field("user_age")
USER_GENDER = features.log_field("user_gender")
USER_OCCUPATION = features.log_field("user_occupation")
ITEM_YEAR = features.log_field("item_year")
SIDE_FIELDS = [
    f.name for f in features.SIDE_FIELDS if f in (USER_AGE, USER_GENDER, USER_OCCUPATION, ITEM_YEAR)
]

# Source column names (RecBole's), per file.
_INTER_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
_ITEM_COLUMNS = ("item_id", "release_year", "class")
_USER_COLUMNS = ("user_id", "age", "gender", "occupation")
_HOW = "Pass the movielens_100k folder, e.g. ../shared/data/movielens_100k."
_MAX_WARNINGS = 10


class _Table:
    """One RecBole atomic file: its header and its data lines."""

    def __init__(self, path: str, required: Sequence[str]):
        self.path = path
        lines = read_lines(path)
        first = next(lines, None)
        if first is None:
            raise ImporterError(
                f"{path!r} is empty. Expected a `name:type` header line with {list(required)}. {_HOW}"
            )
        self.header_line, header = first
        text = decode(header)
        if isinstance(text, Rejection):
            raise ImporterError(f"The header of {path!r} is not UTF-8 ({text.detail}). {_HOW}")
        self.columns = [c.split(":", 1)[0].strip().lstrip("\ufeff") for c in text.split("\t")]
        missing = [c for c in required if c not in self.columns]
        if missing:
            raise ImporterError(
                f"The header of {path!r} is {text!r}, which lacks {missing}. Expected a tab-separated "
                f"`name:type` header (RecBole atomic file) with {list(required)}. {_HOW}"
            )
        self.index = {name: self.columns.index(name) for name in required}
        self.lines = lines

    def split(self, raw: bytes) -> Union[List[str], Rejection]:
        """The stripped values of one data line, or why it cannot be split."""
        text = decode(raw)
        if isinstance(text, Rejection):
            return text
        values = [v.strip() for v in text.split("\t")]
        if len(values) != len(self.columns):
            return Rejection(
                Reason.MALFORMED_ROW,
                f"{len(values)} tab-separated columns; "
                f"the header has {len(self.columns)} ({', '.join(self.columns)})",
            )
        return values


def _warn(warnings: List[str], counter: Dict[str, int], message: str) -> None:
    counter["n"] = counter.get("n", 0) + 1
    if len(warnings) < _MAX_WARNINGS:
        warnings.append(message)


def _keyed_rows(table: "_Table", key: str, name: str, warnings: List[str]) -> Iterator[Tuple[str, List[str]]]:
    """(key value, values) of each usable line of a side table; unusable lines become warnings."""
    seen = set()
    skipped: Dict[str, int] = {}
    for line, raw in table.lines:
        values = table.split(raw)
        if isinstance(values, Rejection):
            _warn(warnings, skipped, f"{name} line {line} skipped: {values.detail}")
            continue
        value = values[table.index[key]]
        if not value or value in seen:
            problem = "empty" if not value else "repeated"
            _warn(warnings, skipped, f"{name} line {line} skipped: {problem} {key} {value!r}")
            continue
        seen.add(value)
        yield value, values
    if skipped:
        warnings.append(f"{name}: {skipped['n']} line(s) skipped in all")


def load_items(path: str, warnings: List[str]) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """item id -> {category_id, item_year?}; and the ids of movies without a usable year."""
    table = _Table(path, _ITEM_COLUMNS)
    items: Dict[str, Dict[str, Any]] = {}
    no_year: List[str] = []
    for item, values in _keyed_rows(table, "item_id", ITEM, warnings):
        genres = values[table.index["class"]].split()
        side: Dict[str, Any] = {features.CATEGORY_ID.name: genres[0] if genres else UNKNOWN_CATEGORY}
        year = values[table.index["release_year"]]
        if is_decimal(year):
            side[ITEM_YEAR.name] = int(year)
        else:
            no_year.append(item)
        items[item] = side
    return items, no_year


def load_users(path: str, warnings: List[str]) -> Dict[str, Dict[str, Any]]:
    """user id -> the user's side fields that have a usable value."""
    table = _Table(path, _USER_COLUMNS)
    users: Dict[str, Dict[str, Any]] = {}
    for user, values in _keyed_rows(table, "user_id", USER, warnings):
        side: Dict[str, Any] = {}
        try:
            age = float(values[table.index["age"]])
            if math.isfinite(age):
                side[USER_AGE.name] = age
        except ValueError:
            pass
        for column, field in (("gender", USER_GENDER), ("occupation", USER_OCCUPATION)):
            if values[table.index[column]]:
                side[field.name] = values[table.index[column]]
        users[user] = side
    return users


def _parse_rating(text: str) -> Union[float, Rejection]:
    if not text:
        return Rejection(Reason.MISSING_FIELD, "rating is missing or empty")
    try:
        rating = float(text)
    except ValueError:
        return Rejection(Reason.UNPARSABLE_NUMBER, f"rating={text!r} is not a number")
    if not math.isfinite(rating):
        return Rejection(Reason.UNPARSABLE_NUMBER, f"rating={text!r} is not a finite number")
    return rating


def import_movielens(src: str, out_dir: str, fmt: FileFormat = FileFormat.CSV) -> ImportResult:
    """Converts the MovieLens-100K folder `src` into an event log in `out_dir`.

    Returns:
      The ImportResult; its counts are per rating (see the module docstring).
    """
    paths = require_dir_with(src, (INTER, ITEM, USER), "MovieLens-100K", _HOW)
    warnings: List[str] = []
    items, no_year = load_items(paths[ITEM], warnings)
    users = load_users(paths[USER], warnings)
    inter = _Table(paths[INTER], _INTER_COLUMNS)
    index = inter.index
    empty: Mapping[str, Any] = {}
    seen_users: Set[str] = set()
    seen_items: Set[str] = set()
    without_item_row = without_user_row = without_year = 0
    with ImportSink(out_dir, fmt, 0, side_fields=SIDE_FIELDS) as sink:
        for line, raw in inter.lines:
            values = inter.split(raw)
            if isinstance(values, Rejection):
                sink.reject(inter.path, line, raw, values.reason, values.detail)
                continue
            rating = _parse_rating(values[index["rating"]])
            if isinstance(rating, Rejection):
                sink.reject(inter.path, line, raw, rating.reason, rating.detail)
                continue
            user, item = values[index["user_id"]], values[index["item_id"]]
            item_side = items.get(item, empty)
            user_side = users.get(user, empty)
            record: Dict[str, Any] = {
                features.USER_ID.name: user,
                features.ITEM_ID.name: item,
                features.CATEGORY_ID.name: UNKNOWN_CATEGORY,
                features.EVENT.name: features.CLICK_EVENT,
                features.TIMESTAMP.name: values[index["timestamp"]],
                **user_side,
                **item_side,  # the movie's category_id (and item_year) when it has a row
            }
            derived = (features.CONVERSION_EVENT,) if rating >= LIKED_RATING else ()
            if sink.accept(record, inter.path, line, raw, derived) is None:
                continue
            seen_users.add(user)
            seen_items.add(item)
            without_item_row += item not in items
            without_user_row += user not in users
            without_year += ITEM_YEAR.name not in item_side
        if without_item_row:
            warnings.append(
                f"{without_item_row} rating(s) of movies missing from {ITEM}: "
                f"category {UNKNOWN_CATEGORY!r}, no item_year"
            )
        if without_user_row:
            warnings.append(f"{without_user_row} rating(s) of users missing from {USER}: no user side fields")
        details: Dict[str, Any] = {
            "dataset": DATASET,
            "source_path": paths[INTER],
            "item_path": paths[ITEM],
            "user_path": paths[USER],
            "input_unit": f"ratings: data lines of {INTER}",
            "labels": {
                features.CLICK_EVENT: "every rating (the user watched and rated the movie)",
                features.CONVERSION_EVENT: f"the second label 'liked': rating >= {LIKED_RATING:g}, "
                "derived from the rating at the same timestamp; not a purchase",
                features.IMPRESSION_EVENT: "none in this dataset: sample negatives at ingest",
            },
            "derived_events": {features.CONVERSION_EVENT: sink.derived.get(features.CONVERSION_EVENT, 0)},
            "derived_rule": f"a {features.CONVERSION_EVENT} event for each rating >= {LIKED_RATING:g}",
            "counts_unit": "counts are per rating (input row); events_per_type and events_per_span "
            "count written events, derived buy events included",
            "category": f"first genre of the movie ({ITEM} class); {UNKNOWN_CATEGORY!r} when it has none",
            "users": len(seen_users),
            "items": len(seen_items),
            "items_without_year": sorted(no_year, key=lambda i: (len(i), i)),
            "ratings_without_item_year": without_year,
        }
        if warnings:
            details["warnings"] = warnings
        return sink.finish(NAME, details)
