"""Amazon 2014 Beauty 5-core reviews (as preprocessed by S3Rec) -> the canonical event log.

Source (SRC = the folder holding both files):

* ``Beauty.txt``: one user a line, ``user item item ...``, space-separated integer ids,
  items in review order (oldest first), no timestamps;
* ``Beauty_item2attributes.json``: ``{"item_id": [attribute ids]}`` (brand and category
  ids mixed, anonymous).

Mapping:

* every review (one item id on a line) is one ``click`` event; there are no conversions
  and no impressions (negatives are sampled at ingest);
* time: the order is the only time signal, so the item's position in the user's line
  stands in for time: ``timestamp = EPOCH + position`` with ``EPOCH`` =
  2014-01-01T00:00:00Z and position 0 for the oldest item. The whole log is one UTC day,
  ``span-20140101``; positions past 86,399 would leave it and become
  ``timestamp_out_of_span`` dead letters (the longest line has 204 items);
* ``category_id`` = the item's FIRST attribute id. An item missing from the attribute file,
  or with an empty list, gets category ``"unknown"`` (``base.UNKNOWN_CATEGORY``) and is
  still a good event: the review is real; ``details['items_without_attributes']`` counts
  them. The shared data has none: all 12,101 items have 1-6 ids.

Input rows are interactions: good + bad = the number of item ids in the file, plus one
for each line that has no item id at all (a ``malformed_row``). A bad id spoils only its
own interaction: an item id that is not UTF-8 is ``bad_encoding``, one that is not a whole
number ``unparsable_number``; a bad user id spoils every interaction of its line for the
same reasons. A repeat of an interaction (same user, item and position) is a
``duplicate_row``. A user on several lines keeps the lines' own positions (a warning).
Blank lines are not rows. The attribute file is read whole (it is small); a file that is
not a JSON object of lists is an ImporterError.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, List, Set

from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.eventlog.spans import SECONDS_PER_DAY
from tfx_pipeline.eventlog.validation import Reason, Rejection, Window
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

NAME = "amazon"
DATASET = "Amazon 2014 Beauty 5-core reviews (McAuley et al.), S3Rec preprocessing"
SEQUENCES = "Beauty.txt"
ATTRIBUTES = "Beauty_item2attributes.json"
EPOCH = int(dt.datetime(2014, 1, 1, tzinfo=dt.timezone.utc).timestamp())
WINDOW = Window(EPOCH, EPOCH + SECONDS_PER_DAY)
_HOW = "Pass the amazon_beauty folder, e.g. ../shared/data/amazon_beauty."


def load_categories(path: str) -> Dict[str, str]:
    """item id -> its first attribute id (as text); items with an empty list are left out."""
    try:
        with open(path, "rb") as stream:
            data: Any = json.loads(stream.read().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ImporterError(
            f"{path!r} is not UTF-8 (byte {err.start}); expected the S3Rec JSON file. {_HOW}"
        ) from None
    except ValueError as err:
        raise ImporterError(
            f"{path!r} is not valid JSON ({err}); expected {{\"item_id\": [attribute ids]}}. {_HOW}"
        ) from None
    if not isinstance(data, dict):
        raise ImporterError(
            f"{path!r} holds a JSON {type(data).__name__}; expected an object "
            f"{{\"item_id\": [attribute ids]}}. {_HOW}"
        )
    categories: Dict[str, str] = {}
    for item, attributes in data.items():
        if not isinstance(attributes, list):
            raise ImporterError(
                f"{path!r}: item {item!r} has {attributes!r}; expected a list of attribute ids. {_HOW}"
            )
        if attributes and isinstance(attributes[0], (int, str)) and not isinstance(attributes[0], bool):
            categories[str(item)] = str(attributes[0])
    return categories


def import_amazon(src: str, out_dir: str, fmt: FileFormat = FileFormat.CSV) -> ImportResult:
    """Converts the Amazon Beauty folder `src` into an event log in `out_dir`.

    Returns:
      The ImportResult; its counts are per interaction (see the module docstring).
    """
    paths = require_dir_with(src, (SEQUENCES, ATTRIBUTES), "Amazon Beauty", _HOW)
    categories = load_categories(paths[ATTRIBUTES])
    path = paths[SEQUENCES]
    users: Set[str] = set()
    items: Set[str] = set()
    uncategorised: Set[str] = set()
    lines_of_user: Dict[str, int] = {}
    repeated_users: List[str] = []
    with ImportSink(out_dir, fmt, 0, window=WINDOW) as sink:
        for line, raw in read_lines(path):
            tokens = raw.split()
            if len(tokens) < 2:
                sink.reject(
                    path, line, raw, Reason.MALFORMED_ROW,
                    f"{len(tokens)} space-separated id(s); "
                    "expected a user id followed by at least one item id",
                )
                continue
            user_token, item_tokens = tokens[0], tokens[1:]
            user = decode(user_token)
            user_problem = user if isinstance(user, Rejection) else None
            if user_problem is None and not is_decimal(user):
                user_problem = Rejection(Reason.UNPARSABLE_NUMBER, f"user id {user!r} is not a whole number")
            if user_problem is None:
                if user in lines_of_user and len(repeated_users) < 10:
                    repeated_users.append(f"user {user} on lines {lines_of_user[user]} and {line}")
                lines_of_user.setdefault(user, line)
            for position, item_token in enumerate(item_tokens):
                row = user_token + b" " + item_token
                where = f" (item {position + 1} of the line)"
                if user_problem is not None:
                    sink.reject(path, line, row, user_problem.reason, user_problem.detail + where)
                    continue
                item = decode(item_token)
                if isinstance(item, Rejection):
                    sink.reject(path, line, row, item.reason, item.detail + where)
                    continue
                if not is_decimal(item):
                    sink.reject(
                        path, line, row, Reason.UNPARSABLE_NUMBER,
                        f"item id {item!r} is not a whole number{where}",
                    )
                    continue
                category = categories.get(item)
                record = {
                    features.USER_ID.name: user,
                    features.ITEM_ID.name: item,
                    features.CATEGORY_ID.name: category or UNKNOWN_CATEGORY,
                    features.EVENT.name: features.CLICK_EVENT,
                    features.TIMESTAMP.name: EPOCH + position,
                }
                if sink.accept(record, path, line, row) is not None:
                    users.add(user)
                    items.add(item)
                    if category is None:
                        uncategorised.add(item)
        details: Dict[str, Any] = {
            "dataset": DATASET,
            "source_path": paths[SEQUENCES],
            "attributes_path": paths[ATTRIBUTES],
            "input_unit": "interactions: item ids in Beauty.txt (plus 1 per line without any)",
            "labels": {
                features.CLICK_EVENT: "every review: the user reviewed (in practice, bought) the item",
                features.CONVERSION_EVENT: "none in this dataset",
                features.IMPRESSION_EVENT: "none in this dataset: sample negatives at ingest",
            },
            "time": {
                "epoch": EPOCH,
                "epoch_utc": "2014-01-01T00:00:00+00:00",
                "rule": "timestamp = epoch + position of the item in the user's line (0 = oldest); "
                "order is the only time signal",
            },
            "category": f"first attribute id of the item; {UNKNOWN_CATEGORY!r} when it has none",
            "users": len(users),
            "items": len(items),
            "items_with_attributes": len(categories),
            "items_without_attributes": len(uncategorised),
        }
        if repeated_users:
            details["warnings"] = [
                "user ids on more than one line (positions restart on each): " + "; ".join(repeated_users)
            ]
        return sink.finish(NAME, details)
