"""Validation of one event-log row, defined once and used by every reader.

A row is a mapping of field name to raw value (text from CSV, JSON values, Parquet
values). ``validate_record`` turns it into a typed event or a ``Rejection`` with one of the
named ``Reason`` values. Importers, the simulator's round trip, Beam ingest and the
reliability tests all call it, so a reason means the same thing everywhere and every
rejected row is counted under exactly one name.

Duplicates are the one check that needs state: ``dedupe_key`` defines what "the same row"
means, and the caller decides where the state lives (a set in a local reader, a GroupByKey
in Beam).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

from transforms import features

Event = Dict[str, Any]


class Reason(str, enum.Enum):
    """Why a row was rejected. The value is the name used in counts and dead letters."""

    MALFORMED_ROW = "malformed_row"  # not a row: wrong column count, not a JSON object, bad header
    BAD_ENCODING = "bad_encoding"  # bytes that are not UTF-8
    MISSING_FIELD = "missing_field"  # a required field absent or empty
    UNPARSABLE_NUMBER = "unparsable_number"  # timestamp or numeric side field is not a number
    UNKNOWN_EVENT = "unknown_event"  # event not in features.EVENT_TYPES
    TIMESTAMP_OUT_OF_SPAN = "timestamp_out_of_span"  # outside the span (or window) it belongs to
    DUPLICATE_ROW = "duplicate_row"  # the same event seen before in this span


REASONS: Tuple[str, ...] = tuple(r.value for r in Reason)


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A row that failed validation: why, and a human-readable detail."""

    reason: Reason
    detail: str


@dataclasses.dataclass(frozen=True)
class Window:
    """Half-open interval of valid unix seconds [start, end)."""

    start: int
    end: int

    def contains(self, timestamp: int) -> bool:
        return self.start <= timestamp < self.end


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError("not a whole finite number")
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        number = float(text)  # raises ValueError for text that is no number
        if not math.isfinite(number) or number != int(number):
            raise ValueError("not a whole finite number") from None
        return int(number)


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    number = float(value) if isinstance(value, (int, float)) else float(str(value).strip())
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _as_text(value: Any) -> str:
    """Ids and string fields: text as is, whole numbers as their decimal form."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected text, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise TypeError(f"expected text, got the number {value!r}")
        value = int(value)
    return str(value)


def validate_record(
    record: Mapping[str, Any], window: Optional[Window] = None
) -> Union[Event, Rejection]:
    """Returns the typed event for `record`, or the Rejection that says why it is not one.

    Args:
      record: field name -> raw value. Unknown keys are ignored here (files with undeclared
        columns are refused when opened, see ``formats``).
      window: the valid timestamps (a span's day, or a dataset's window); None accepts any.

    Returns:
      A dict with every required field typed (ids as str, timestamp as int) and each side
      field present in `record` and non-empty, typed per ``features.SIDE_FIELDS``; or a
      Rejection. The first failed check names the reason.
    """
    event: Event = {}
    for field in features.REQUIRED_FIELDS:
        value = record.get(field.name)
        if _is_empty(value):
            return Rejection(Reason.MISSING_FIELD, f"{field.name} is missing or empty")
        if field.is_numeric:
            try:
                event[field.name] = _parse_int(value)
            except (TypeError, ValueError):
                return Rejection(
                    Reason.UNPARSABLE_NUMBER,
                    f"{field.name}={value!r} is not a whole number of unix seconds",
                )
        else:
            try:
                event[field.name] = _as_text(value)
            except TypeError as err:
                return Rejection(Reason.MALFORMED_ROW, f"{field.name}={value!r}: {err}")
            if any(c in event[field.name] for c in "\n\r\x00"):
                return Rejection(Reason.MALFORMED_ROW, f"{field.name}={value!r} contains a line break or NUL")
    if event[features.EVENT.name] not in features.EVENT_TYPES:
        return Rejection(
            Reason.UNKNOWN_EVENT,
            f"event={event[features.EVENT.name]!r}; expected one of {list(features.EVENT_TYPES)}",
        )
    timestamp = event[features.TIMESTAMP.name]
    if window is not None and not window.contains(timestamp):
        return Rejection(
            Reason.TIMESTAMP_OUT_OF_SPAN,
            f"timestamp={timestamp} is outside [{window.start}, {window.end})",
        )
    for field in features.SIDE_FIELDS:
        value = record.get(field.name)
        if _is_empty(value):
            continue
        try:
            if field.type == features.FieldType.INT:
                event[field.name] = _parse_int(value)
            elif field.type == features.FieldType.FLOAT:
                event[field.name] = _parse_float(value)
            else:
                event[field.name] = _as_text(value)
        except ValueError:
            return Rejection(Reason.UNPARSABLE_NUMBER, f"{field.name}={value!r} is not a number")
        except TypeError as err:
            return Rejection(Reason.MALFORMED_ROW, f"{field.name}={value!r}: {err}")
    return event


def dedupe_key(event: Event) -> Tuple:
    """What makes two events the same row: every field, side fields included."""
    return tuple((f.name, event.get(f.name)) for f in features.LOG_FIELDS)


class Counts:
    """Good rows and rejected rows per reason. Mergeable, printable, JSON-friendly."""

    def __init__(self, good: int = 0, rejected: Optional[Mapping[str, int]] = None):
        self.good = good
        self.rejected: collections.Counter = collections.Counter(rejected or {})

    def add_good(self, n: int = 1) -> None:
        self.good += n

    def add_rejected(self, reason: Reason, n: int = 1) -> None:
        self.rejected[Reason(reason).value] += n

    def merge(self, other: "Counts") -> "Counts":
        self.good += other.good
        self.rejected.update(other.rejected)
        return self

    @property
    def bad(self) -> int:
        return sum(self.rejected.values())

    @property
    def total(self) -> int:
        return self.good + self.bad

    @property
    def bad_fraction(self) -> float:
        return self.bad / self.total if self.total else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "input": self.total,
            "good": self.good,
            "bad": self.bad,
            "rejected": {r: self.rejected.get(r, 0) for r in REASONS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Counts":
        return cls(int(data.get("good", 0)), {k: int(v) for k, v in data.get("rejected", {}).items() if v})

    def format(self) -> str:
        """A short report: totals, then one line per reason that occurred."""
        lines = [f"rows read {self.total:,}: good {self.good:,}, rejected {self.bad:,} ({self.bad_fraction:.2%})"]
        for reason in REASONS:
            if self.rejected.get(reason):
                lines.append(f"  {reason:<24} {self.rejected[reason]:,}")
        return "\n".join(lines)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counts) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Counts(good={self.good}, rejected={dict(self.rejected)})"


def count_all(results: Iterable[Union[Event, Rejection]]) -> Counts:
    """Counts a stream of validate_record results."""
    counts = Counts()
    for result in results:
        if isinstance(result, Rejection):
            counts.add_rejected(result.reason)
        else:
            counts.add_good()
    return counts
