"""Taobao UserBehavior (Alibaba Tianchi dataset 649) -> the canonical event log.

Source: one CSV file without a header, ``user_id,item_id,category_id,behavior_type,timestamp``,
grouped by user and time-ordered within a user (``UserBehavior.csv`` or the shared
``UserBehavior_head.csv`` prefix). SRC is the file or the folder that holds it.

Mapping (``BEHAVIOR_EVENTS``):

=============  ===========  ====================================================
behavior_type  event        meaning
=============  ===========  ====================================================
``pv``         ``click``    item page view: the click
``buy``        ``buy``      purchase: the conversion (``features.CONVERSION_EVENT``)
``cart``       ``cart``     added to cart
``fav``        ``fav``      added to favourites
=============  ===========  ====================================================

There are no impressions: click-through negatives are sampled at ingest.

Time: the dataset covers 2017-11-25 .. 2017-12-03 in China time (UTC+8). The log is written
with ``utc_offset_seconds = 8 * 3600``, so its spans are China-time days
``span-20171125`` .. ``span-20171203``. Rows whose timestamp lies outside that 9-day window
(``WINDOW``; 35 in the shared prefix, as in the original) become ``timestamp_out_of_span``
dead letters.

Bad rows are counted dead letters, never silently dropped, one reason each, checked in
this order: ``bad_encoding`` (not UTF-8), ``malformed_row`` (not 5 comma-separated
columns, e.g. a truncated line), ``missing_field`` (an empty column), ``unknown_event``
(a behavior_type other than pv/buy/cart/fav), ``unparsable_number`` (an id or the
timestamp that is not a whole number), ``timestamp_out_of_span``, ``duplicate_row``.
Blank lines are not rows.

Duplicates: an exact repeat of an earlier row (same user, item, category, behaviour and
second) is a ``duplicate_row`` dead letter. The shared prefix has none (checked); the full
file may. Since the file is grouped by user, the importer remembers
the events of the current user only (``ImportSink.new_dedupe_scope`` when the user
changes): memory stays bounded by the largest user's history, whatever the file size. A
repeat separated from its original by another user's rows would not be caught here, but
``read_log`` still rejects it as ``duplicate_row`` when the span is read.

Memory: the file is streamed line by line; with ``csv`` or ``jsonl`` output only the open
span files and the current user's events are held. (Parquet output buffers each span file
in memory until it is closed: prefer csv/jsonl for the full 100-million-row file.)
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Dict, Optional

from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.eventlog.validation import Reason, Window
from tfx_pipeline.importers.base import (
    ImporterError,
    ImportResult,
    ImportSink,
    decode,
    is_decimal,
    local_time,
    read_lines,
    require_file,
)
from transforms import features

NAME = "taobao"
DATASET = "Taobao UserBehavior (Alibaba Tianchi dataset 649)"
FILE_NAMES = ("UserBehavior_head.csv", "UserBehavior.csv")
UTC_OFFSET_SECONDS = 8 * 3600  # China time
_CHINA = dt.timezone(dt.timedelta(seconds=UTC_OFFSET_SECONDS))
WINDOW = Window(
    int(dt.datetime(2017, 11, 25, tzinfo=_CHINA).timestamp()),
    int(dt.datetime(2017, 12, 4, tzinfo=_CHINA).timestamp()),
)

BEHAVIOR_EVENTS: Dict[str, str] = {
    "pv": features.CLICK_EVENT,
    "buy": features.CONVERSION_EVENT,
    "cart": features.EventType.CART.value,
    "fav": features.EventType.FAV.value,
}
# The source's columns, in file order, as canonical names; behavior_type becomes `event`.
COLUMNS = (
    features.USER_ID.name,
    features.ITEM_ID.name,
    features.CATEGORY_ID.name,
    features.EVENT.name,
    features.TIMESTAMP.name,
)
_SOURCE_COLUMNS = "user_id,item_id,category_id,behavior_type,timestamp"
_ID_COLUMNS = (features.USER_ID.name, features.ITEM_ID.name, features.CATEGORY_ID.name)
_HOW = "For the shared data, pass ../shared/data/taobao_userbehavior (the folder) or the CSV in it."


def find_source(src: str) -> str:
    """The CSV file named by SRC (the file itself, or the folder holding it)."""
    if os.path.isdir(src):
        for name in FILE_NAMES:
            if os.path.isfile(os.path.join(src, name)):
                return require_file(os.path.join(src, name), "Taobao file", _HOW)
        csvs = sorted(n for n in os.listdir(src) if n.lower().endswith(".csv"))
        if len(csvs) == 1:
            return require_file(os.path.join(src, csvs[0]), "Taobao file", _HOW)
        raise ImporterError(
            f"SRC folder {src!r} holds {'no CSV file' if not csvs else f'several CSV files {csvs}'}. "
            f"Expected one of {list(FILE_NAMES)} (no header; {_SOURCE_COLUMNS}). {_HOW}"
        )
    if not os.path.exists(src):
        raise ImporterError(
            f"SRC {src!r} does not exist. Expected the Taobao UserBehavior CSV file "
            f"(no header; {_SOURCE_COLUMNS}) or its folder. {_HOW}"
        )
    return require_file(src, "Taobao file", _HOW)


def import_taobao(
    src: str,
    out_dir: str,
    fmt: FileFormat = FileFormat.CSV,
    window: Window = WINDOW,
) -> ImportResult:
    """Converts the Taobao CSV at `src` (file or folder) into an event log in `out_dir`.

    Args:
      src: the CSV file, or a folder holding ``UserBehavior_head.csv``/``UserBehavior.csv``.
      out_dir: a new or empty directory for the log.
      fmt: the format of the span files.
      window: valid timestamps; rows outside it are ``timestamp_out_of_span`` dead letters.

    Returns:
      The ImportResult; its counts are per input line (good + bad = non-blank lines).
    """
    path = find_source(src)
    with ImportSink(out_dir, fmt, UTC_OFFSET_SECONDS, window=window) as sink:
        current_user: Optional[str] = None
        for line, raw in read_lines(path):
            text = decode(raw)
            if not isinstance(text, str):
                sink.reject(path, line, raw, text.reason, text.detail)
                continue
            values = [v.strip() for v in text.split(",")]
            if len(values) != len(COLUMNS):
                sink.reject(
                    path, line, raw, Reason.MALFORMED_ROW,
                    f"{len(values)} comma-separated columns; expected {len(COLUMNS)}: {_SOURCE_COLUMNS}",
                )
                continue
            record = dict(zip(COLUMNS, values))
            empty = [source for source, v in zip(_SOURCE_COLUMNS.split(","), values) if not v]
            if empty:
                sink.reject(path, line, raw, Reason.MISSING_FIELD, f"empty column(s) {empty}")
                continue
            behavior = record[features.EVENT.name]
            event = BEHAVIOR_EVENTS.get(behavior)
            if event is None:
                sink.reject(
                    path, line, raw, Reason.UNKNOWN_EVENT,
                    f"behavior_type={behavior!r}; expected one of {list(BEHAVIOR_EVENTS)}",
                )
                continue
            record[features.EVENT.name] = event
            bad_ids = [f"{name}={record[name]!r}" for name in _ID_COLUMNS if not is_decimal(record[name])]
            if bad_ids:
                sink.reject(
                    path, line, raw, Reason.UNPARSABLE_NUMBER,
                    f"{', '.join(bad_ids)}: Taobao ids are whole non-negative numbers",
                )
                continue
            user = record[features.USER_ID.name]
            if user != current_user:
                sink.new_dedupe_scope()
                current_user = user
            sink.accept(record, path, line, raw)
        details = {
            "dataset": DATASET,
            "source_path": path,
            "input_unit": "non-blank lines of the CSV file (one behaviour each)",
            "behavior_types": dict(BEHAVIOR_EVENTS),
            "labels": {
                features.CLICK_EVENT: "behavior_type pv (item page view)",
                features.CONVERSION_EVENT: "behavior_type buy: the conversion",
                features.EventType.CART.value: "behavior_type cart",
                features.EventType.FAV.value: "behavior_type fav",
                features.IMPRESSION_EVENT: "none in this dataset: sample negatives at ingest",
            },
            "window": {
                "start": window.start,
                "end": window.end,
                "start_local": local_time(window.start, UTC_OFFSET_SECONDS),
                "end_local": local_time(window.end, UTC_OFFSET_SECONDS),
                "rule": "rows outside [start, end) are timestamp_out_of_span dead letters",
            },
            "dedupe": "exact repeats of a row of the same user (the file is grouped by user) "
            "are duplicate_row dead letters",
        }
        return sink.finish(NAME, details)
