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
