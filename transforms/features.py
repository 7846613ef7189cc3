"""The one registry of names: raw event-log fields, event types and (later) model features.

Everything downstream (importers, the simulator, ingest, Transform, Trainer, serving and
evaluation) reads names from here; no other module spells a field name or a label key.

The raw event log
-----------------
One row is one event of one user on one item at one time:

==============  =======  ========  =====================================================
field           type     required  meaning
==============  =======  ========  =====================================================
user_id         string   yes       who acted (opaque id; any UTF-8 text without newline)
item_id         string   yes       on what item
category_id     string   yes       the item's category
event           string   yes       one of ``EVENT_TYPES`` (impression, click, cart, fav, buy)
timestamp       int      yes       unix seconds (UTC) when it happened
==============  =======  ========  =====================================================

plus optional side fields (``SIDE_FIELDS``): user features, item features and request
context. A log need not carry any side field; a side field it carries may be empty on a row.
Columns that are neither required nor declared side fields are rejected when a file is
opened, so a misspelled column never vanishes silently: declare it here.

``buy`` is the conversion event. An ``impression`` says an item was shown; a ``click``,
``cart``, ``fav`` or ``buy`` of the same user and item after it is the outcome of that
impression. Logs without impressions (Taobao, Amazon, MovieLens) get sampled negatives
at ingest time.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Tuple


class FieldType(str, enum.Enum):
    """Value type of a raw log field."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"


class Scope(str, enum.Enum):
    """What a raw log field describes."""

    KEY = "key"  # the required fields of every event
    USER = "user"
    ITEM = "item"
    CONTEXT = "context"


@dataclasses.dataclass(frozen=True)
class LogField:
    """One column of the canonical event log."""

    name: str
    type: FieldType
    scope: Scope
    required: bool
    description: str

    @property
    def is_numeric(self) -> bool:
        return self.type in (FieldType.INT, FieldType.FLOAT)


USER_ID = LogField("user_id", FieldType.STRING, Scope.KEY, True, "who acted")
ITEM_ID = LogField("item_id", FieldType.STRING, Scope.KEY, True, "the item acted on")
CATEGORY_ID = LogField("category_id", FieldType.STRING, Scope.KEY, True, "the item's category")
EVENT = LogField("event", FieldType.STRING, Scope.KEY, True, "the event type, one of EVENT_TYPES")
TIMESTAMP = LogField("timestamp", FieldType.INT, Scope.KEY, True, "unix seconds, UTC")

REQUIRED_FIELDS: Tuple[LogField, ...] = (USER_ID, ITEM_ID, CATEGORY_ID, EVENT, TIMESTAMP)

SIDE_FIELDS: Tuple[LogField, ...] = (
    LogField("user_age", FieldType.FLOAT, Scope.USER, False, "age in years"),
    LogField("user_gender", FieldType.STRING, Scope.USER, False, "gender code"),
    LogField("user_occupation", FieldType.STRING, Scope.USER, False, "occupation code"),
    LogField("user_segment", FieldType.STRING, Scope.USER, False, "marketing segment"),
    LogField("item_price", FieldType.FLOAT, Scope.ITEM, False, "list price"),
    LogField("item_year", FieldType.INT, Scope.ITEM, False, "release or launch year"),
    LogField("device", FieldType.STRING, Scope.CONTEXT, False, "client device of the request"),
    LogField("page", FieldType.STRING, Scope.CONTEXT, False, "page or surface of the request"),
)

LOG_FIELDS: Tuple[LogField, ...] = REQUIRED_FIELDS + SIDE_FIELDS
LOG_FIELDS_BY_NAME = {f.name: f for f in LOG_FIELDS}


class EventType(str, enum.Enum):
    """The event types of the canonical log."""

    IMPRESSION = "impression"
    CLICK = "click"
    CART = "cart"
    FAV = "fav"
    BUY = "buy"  # the conversion


EVENT_TYPES: Tuple[str, ...] = tuple(e.value for e in EventType)
# Events that show the user chose the item: they make up behaviour histories.
POSITIVE_EVENTS: Tuple[str, ...] = (
    EventType.CLICK.value,
    EventType.CART.value,
    EventType.FAV.value,
    EventType.BUY.value,
)
CLICK_EVENT = EventType.CLICK.value
CONVERSION_EVENT = EventType.BUY.value
IMPRESSION_EVENT = EventType.IMPRESSION.value


def log_field(name: str) -> LogField:
    """Returns the declared field called `name`, or raises a ValueError that says how to fix it."""
    try:
        return LOG_FIELDS_BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"Unknown log field {name!r}. Expected one of {sorted(LOG_FIELDS_BY_NAME)}; "
            "declare new side fields in transforms/features.py (SIDE_FIELDS)."
        ) from None


# ------------------------------------------------------------------ ingested examples
#
# Ingest turns the event log into one tf.Example per candidate (see tfx_pipeline/ingest).
# Its features are the candidate's raw log fields, its point-in-time behaviour history
# (declared as a sequence of the field it repeats, so the history shares that field's
# vocabulary and embedding table) and its labels.


class Kind(str, enum.Enum):
    """What a feature of an ingested example is."""

    ID = "id"  # a raw id field of the candidate (user, item, category)
    SEQUENCE = "sequence"  # a history: a list of values of another feature, newest last
    NUMERIC = "numeric"  # a number (side fields, time)
    STRING = "string"  # a categorical side field
    LABEL = "label"  # a 0/1 training label


@dataclasses.dataclass(frozen=True)
class ExampleFeature:
    """One feature of an ingested tf.Example."""

    name: str
    kind: Kind
    dtype: FieldType
    description: str
    sequence_of: str = ""  # for SEQUENCE: the feature whose values (and vocabulary) it repeats

    @property
    def is_sequence(self) -> bool:
        return self.kind == Kind.SEQUENCE


CANDIDATE_USER = ExampleFeature(USER_ID.name, Kind.ID, FieldType.STRING, "the user")
CANDIDATE_ITEM = ExampleFeature(ITEM_ID.name, Kind.ID, FieldType.STRING, "the candidate item")
CANDIDATE_CATEGORY = ExampleFeature(CATEGORY_ID.name, Kind.ID, FieldType.STRING, "the candidate's category")
CANDIDATE_TIME = ExampleFeature(TIMESTAMP.name, Kind.NUMERIC, FieldType.INT, "when the candidate was shown")

HISTORY_ITEMS = ExampleFeature(
    "history_item_id", Kind.SEQUENCE, FieldType.STRING,
    "items the user clicked strictly before the candidate, newest last", sequence_of=ITEM_ID.name)
HISTORY_CATEGORIES = ExampleFeature(
    "history_category_id", Kind.SEQUENCE, FieldType.STRING,
    "categories of history_item_id", sequence_of=CATEGORY_ID.name)
HISTORY_TIME_GAPS = ExampleFeature(
    "history_time_gap", Kind.SEQUENCE, FieldType.INT,
    "seconds from each history click to the candidate (> 0)", sequence_of=TIMESTAMP.name)
HISTORY_NEGATIVE_ITEMS = ExampleFeature(
    "history_negative_item_id", Kind.SEQUENCE, FieldType.STRING,
    "one sampled item the user never chose, per history step (DIEN's auxiliary loss)",
    sequence_of=ITEM_ID.name)
HISTORY_NEGATIVE_CATEGORIES = ExampleFeature(
    "history_negative_category_id", Kind.SEQUENCE, FieldType.STRING,
    "categories of history_negative_item_id", sequence_of=CATEGORY_ID.name)

CLICK_LABEL = ExampleFeature("click", Kind.LABEL, FieldType.INT, "1 if the candidate was clicked")
CONVERSION_LABEL = ExampleFeature(
    "conversion", Kind.LABEL, FieldType.INT,
    "1 if the candidate was clicked and then bought (0 without a click)")

HISTORY_FEATURES: Tuple[ExampleFeature, ...] = (
    HISTORY_ITEMS, HISTORY_CATEGORIES, HISTORY_TIME_GAPS,
    HISTORY_NEGATIVE_ITEMS, HISTORY_NEGATIVE_CATEGORIES,
)
LABELS: Tuple[ExampleFeature, ...] = (CLICK_LABEL, CONVERSION_LABEL)


def _side_example_feature(field: LogField) -> ExampleFeature:
    kind = Kind.NUMERIC if field.is_numeric else Kind.STRING
    return ExampleFeature(field.name, kind, field.type, field.description)


SIDE_EXAMPLE_FEATURES: Tuple[ExampleFeature, ...] = tuple(_side_example_feature(f) for f in SIDE_FIELDS)

EXAMPLE_FEATURES: Tuple[ExampleFeature, ...] = (
    (CANDIDATE_USER, CANDIDATE_ITEM, CANDIDATE_CATEGORY, CANDIDATE_TIME)
    + HISTORY_FEATURES + SIDE_EXAMPLE_FEATURES + LABELS
)
EXAMPLE_FEATURES_BY_NAME = {f.name: f for f in EXAMPLE_FEATURES}
