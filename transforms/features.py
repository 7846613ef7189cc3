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
import typing
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
# vocabulary and embedding table) and its labels. Each feature also says how Transform
# encodes it (transforms/preprocessing.py) and how wide its embedding is.


class Kind(str, enum.Enum):
    """What a feature of an ingested example is."""

    ID = "id"  # an open-ended id of the candidate (user, item)
    CATEGORY = "category"  # a categorical value from a smaller set (category, device, ...)
    SEQUENCE = "sequence"  # a history: a list of values of another feature, newest last
    NUMERIC = "numeric"  # a number (side fields, time)
    LABEL = "label"  # a 0/1 training label


# Row 0 of every embedding table is padding: a history position with no event.
PADDING_ROW = 0


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """An append-only vocabulary of at most `capacity` tokens, plus hashed OOV buckets.

    Rows are stable across retrains: a token keeps its row in the next span's model; new
    tokens with at least `frequency_threshold` occurrences take the next free rows, most
    frequent first. When the vocabulary is full, tokens absent from the newest data are
    evicted and their rows reused; tokens that still find no row go to the OOV buckets.
    The table size never changes, so a model warm-starts by copying its tables.
    """

    capacity: int
    frequency_threshold: int = 1
    num_oov_buckets: int = 1

    @property
    def num_rows(self) -> int:
        """Padding row, vocabulary rows, OOV rows."""
        return 1 + self.capacity + self.num_oov_buckets


@dataclasses.dataclass(frozen=True)
class Hashing:
    """Ids hashed into `num_buckets` rows: stable forever, no vocabulary, some collisions."""

    num_buckets: int

    @property
    def num_rows(self) -> int:
        return 1 + self.num_buckets


@dataclasses.dataclass(frozen=True)
class ZScore:
    """A number scaled to mean 0 and variance 1 over the training data; missing -> 0 (the mean)."""


@dataclasses.dataclass(frozen=True)
class LogBuckets:
    """Seconds bucketized on a log2 scale: bucket 1 + floor(log2(s)), clipped to `num_buckets`.

    Fixed boundaries (no analyzer), so buckets mean the same in every span; 0 is padding.
    """

    num_buckets: int = 24

    @property
    def num_rows(self) -> int:
        return 1 + self.num_buckets


@dataclasses.dataclass(frozen=True)
class Passthrough:
    """Passed through unchanged (labels)."""


Encoding = typing.Union[Vocabulary, Hashing, ZScore, LogBuckets, Passthrough]


@dataclasses.dataclass(frozen=True)
class ExampleFeature:
    """One feature of an ingested tf.Example and how Transform encodes it."""

    name: str
    kind: Kind
    dtype: FieldType
    description: str
    encoding: Encoding = Passthrough()
    embedding_dim: int = 0  # width of its embedding (ids, categories, bucketized sequences)
    sequence_of: str = ""  # for SEQUENCE: the feature whose values (and table) it repeats
    max_len: int = 0  # for SEQUENCE: padded/truncated length, newest kept

    @property
    def is_sequence(self) -> bool:
        return self.kind == Kind.SEQUENCE


# Why each encoding:
# - user_id is hashed: users arrive every day and most have few events, so a vocabulary
#   would churn and its long tail would be OOV anyway; hashing needs no analyzer pass,
#   keeps every user's row across retrains, and collisions only blur a weak per-user signal
#   (the history carries the user).
# - item_id and category_id use append-only vocabularies: items and categories are the
#   signal of target attention, so they get collision-free rows, shared with the
#   histories that repeat them, stable across retrains; a capacity bounds memory and the
#   frequency threshold keeps one-off items out.
# - categorical side fields are small closed sets: a small vocabulary, one OOV bucket.
# - numeric side fields are z-scored; history time gaps use fixed log2 buckets.
USER_ENCODING = Hashing(num_buckets=100_000)
ITEM_ENCODING = Vocabulary(capacity=200_000, frequency_threshold=1, num_oov_buckets=10)
CATEGORY_ENCODING = Vocabulary(capacity=10_000, frequency_threshold=1, num_oov_buckets=1)
SIDE_ENCODING = Vocabulary(capacity=1_000, frequency_threshold=1, num_oov_buckets=1)
MAX_HISTORY = 100

CANDIDATE_USER = ExampleFeature(USER_ID.name, Kind.ID, FieldType.STRING, "the user",
                                USER_ENCODING, embedding_dim=16)
CANDIDATE_ITEM = ExampleFeature(ITEM_ID.name, Kind.ID, FieldType.STRING, "the candidate item",
                                ITEM_ENCODING, embedding_dim=16)
CANDIDATE_CATEGORY = ExampleFeature(CATEGORY_ID.name, Kind.CATEGORY, FieldType.STRING,
                                    "the candidate's category", CATEGORY_ENCODING, embedding_dim=16)
CANDIDATE_TIME = ExampleFeature(TIMESTAMP.name, Kind.NUMERIC, FieldType.INT,
                                "when the candidate was shown (unix seconds)")

HISTORY_ITEMS = ExampleFeature(
    "history_item_id", Kind.SEQUENCE, FieldType.STRING,
    "items the user clicked strictly before the candidate, newest last",
    sequence_of=ITEM_ID.name, max_len=MAX_HISTORY)
HISTORY_CATEGORIES = ExampleFeature(
    "history_category_id", Kind.SEQUENCE, FieldType.STRING,
    "categories of history_item_id", sequence_of=CATEGORY_ID.name, max_len=MAX_HISTORY)
HISTORY_TIME_GAPS = ExampleFeature(
    "history_time_gap", Kind.SEQUENCE, FieldType.INT,
    "seconds from each history click to the candidate (> 0)",
    LogBuckets(num_buckets=24), embedding_dim=8, max_len=MAX_HISTORY)
HISTORY_NEGATIVE_ITEMS = ExampleFeature(
    "history_negative_item_id", Kind.SEQUENCE, FieldType.STRING,
    "one sampled item the user never chose, per history step (DIEN's auxiliary loss)",
    sequence_of=ITEM_ID.name, max_len=MAX_HISTORY)
HISTORY_NEGATIVE_CATEGORIES = ExampleFeature(
    "history_negative_category_id", Kind.SEQUENCE, FieldType.STRING,
    "categories of history_negative_item_id", sequence_of=CATEGORY_ID.name, max_len=MAX_HISTORY)

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
    if field.is_numeric:
        return ExampleFeature(field.name, Kind.NUMERIC, field.type, field.description, ZScore())
    return ExampleFeature(field.name, Kind.CATEGORY, field.type, field.description, SIDE_ENCODING, embedding_dim=8)


SIDE_EXAMPLE_FEATURES: Tuple[ExampleFeature, ...] = tuple(_side_example_feature(f) for f in SIDE_FIELDS)

EXAMPLE_FEATURES: Tuple[ExampleFeature, ...] = (
    (CANDIDATE_USER, CANDIDATE_ITEM, CANDIDATE_CATEGORY, CANDIDATE_TIME)
    + HISTORY_FEATURES + SIDE_EXAMPLE_FEATURES + LABELS
)
EXAMPLE_FEATURES_BY_NAME = {f.name: f for f in EXAMPLE_FEATURES}
LABEL_KEYS: Tuple[str, ...] = tuple(f.name for f in LABELS)


# ---------------------------------------------------------------- transformed features
#
# Transform writes one output per example feature (labels unchanged, the rest encoded)
# plus a few derived ones. Names of transformed outputs come only from
# ``transformed_name``; labels keep their raw names so TFMA and Trainer see the same key.

TRANSFORMED_SUFFIX = "_xf"


def transformed_name(name: str) -> str:
    """The name of a feature after Transform; labels keep their name."""
    if name in LABEL_KEYS:
        return name
    return name + TRANSFORMED_SUFFIX


@dataclasses.dataclass(frozen=True)
class DerivedFeature:
    """A transformed feature computed from an example feature, not present in the raw data."""

    name: str
    source: str
    description: str
    num_rows: int = 0  # embedding rows for categorical derived features, 0 for dense ones
    embedding_dim: int = 0


HISTORY_MASK = DerivedFeature(
    "history_mask", HISTORY_ITEMS.name, "1.0 at positions holding a history event, 0.0 at padding")
HISTORY_LENGTH = DerivedFeature(
    "history_length", HISTORY_ITEMS.name, "number of history events kept (<= max_len)")
HOUR_OF_DAY = DerivedFeature(
    "hour_of_day", TIMESTAMP.name, "UTC hour of the candidate, 1..24 (0 is unused)", num_rows=25, embedding_dim=4)
DAY_OF_WEEK = DerivedFeature(
    "day_of_week", TIMESTAMP.name, "day of week of the candidate, 1..7 (Monday = 1)", num_rows=8, embedding_dim=4)
USER_KEY = DerivedFeature(
    "user_key", USER_ID.name, "the raw user id, to group metrics by user (GAUC); not a model input")
DERIVED_FEATURES: Tuple[DerivedFeature, ...] = (HISTORY_MASK, HISTORY_LENGTH, HOUR_OF_DAY, DAY_OF_WEEK, USER_KEY)

# Evaluation slices (not model inputs): computed by the exported model's slicing signature
# from the raw example, so TFMA can slice raw eval examples by them.
HISTORY_LENGTH_BUCKET = DerivedFeature(
    "history_length_bucket", HISTORY_ITEMS.name,
    "history length as a range label ('0', '1-4', ..., '50+'), for sliced evaluation")
# Boundaries of the history-length slices: cold-start users, light, medium and heavy ones.
HISTORY_LENGTH_BUCKETS: Tuple[int, ...] = (1, 5, 20, 50)


def table_of(feature: ExampleFeature) -> ExampleFeature:
    """The feature whose vocabulary and embedding table `feature` uses (itself unless a sequence of another)."""
    if feature.sequence_of:
        return EXAMPLE_FEATURES_BY_NAME[feature.sequence_of]
    return feature


def example_feature(name: str) -> ExampleFeature:
    """The registered example feature called `name`, or a ValueError saying what exists."""
    try:
        return EXAMPLE_FEATURES_BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"Unknown feature {name!r}. Expected one of {sorted(EXAMPLE_FEATURES_BY_NAME)}; "
            "features are declared in transforms/features.py."
        ) from None
