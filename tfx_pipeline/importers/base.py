"""What the dataset importers share: finding the source, the output directory, the sink.

An importer reads one public dataset row by row and hands each row to an ``ImportSink``
as a record of canonical log fields (names from ``transforms.features``). The sink

* validates it with ``validate_record`` (optionally against the dataset's time window),
* rejects a repeat of an event already written to the same span as ``duplicate_row``
  (``dedupe_key`` says what "the same" means; the importer says how long the memory of
  seen events lasts, see ``new_dedupe_scope``),
* writes good events through ``LogWriter`` (span by timestamp, at the log's UTC offset)
  and bad rows as dead letters to ``LOG/_rejected/``,
* counts every input row exactly once, as good or under one ``Reason``, so that
  good + bad = input rows, and
* writes the ``Manifest`` last, so its presence means the import finished.

The counts in the manifest are per input row. They equal the written events, except where
an importer derives extra events from one row (MovieLens: a ``buy`` for a rating >= 4);
``details['events_written']`` and ``details['derived_events']`` then say how many.

Errors the user can fix (a missing source file, a non-empty output directory, a header
that is not the dataset's) raise ``ImporterError`` with what was received, what was
expected and how to fix it; the ``ctrflow import`` command prints it without a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Tuple, Union

from tfx_pipeline.eventlog import spans
from tfx_pipeline.eventlog.formats import DeadLetter, FileFormat
from tfx_pipeline.eventlog.logdir import MANIFEST, REJECTED_DIR, LogWriter, Manifest
from tfx_pipeline.eventlog.validation import (
    Counts,
    Event,
    Reason,
    Rejection,
    Window,
    dedupe_key,
    validate_record,
)
from transforms import features

# Category of an item the dataset gives no category for (documented per importer).
UNKNOWN_CATEGORY = "unknown"


class ImporterError(Exception):
    """A problem with an importer's source or output that the user can fix."""


@dataclasses.dataclass
class ImportResult:
    """The outcome of one import: where the log is, its manifest, the per-row counts."""

    log_dir: str
    manifest: Manifest
    counts: Counts

    @property
    def dead_letter_path(self) -> Optional[str]:
        """The dead-letter file (importers write one shard), or None when every row was good."""
        directory = os.path.join(self.log_dir, REJECTED_DIR)
        names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
        return os.path.join(directory, names[0]) if names else None

    def report(self) -> str:
        """A human-readable summary: rows by reason, events by type and span."""
        details = self.manifest.details
        offset = format_utc_offset(self.manifest.utc_offset_seconds)
        fmt = FileFormat(self.manifest.file_format).value
        lines = [
            f"imported {self.manifest.source} from {details.get('source_path', '?')}",
            f"  into {self.log_dir} ({fmt}, spans are days at {offset})",
            f"input unit: {details.get('input_unit', 'rows')}",
            self.counts.format(),
        ]
        span_names = list(self.manifest.events_per_span)
        total_events = sum(self.manifest.events_per_type.values())
        where = f"{span_names[0]} .. {span_names[-1]}" if span_names else "none"
        plural = "" if len(span_names) == 1 else "s"
        lines.append(f"events written {total_events:,} in {len(span_names)} span{plural} ({where})")
        if self.manifest.events_per_type:
            lines.append(
                "  " + ", ".join(f"{kind} {n:,}" for kind, n in self.manifest.events_per_type.items())
            )
        for kind, n in details.get("derived_events", {}).items():
            lines.append(f"  of which derived {kind} {n:,} ({details.get('derived_rule', '')})")
        for note in details.get("warnings", []):
            lines.append(f"warning: {note}")
        if self.dead_letter_path:
            lines.append(f"dead letters: {self.dead_letter_path}")
        return "\n".join(lines)


def format_utc_offset(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    hours, rest = divmod(abs(seconds), 3600)
    return f"UTC{sign}{hours:02d}:{rest // 60:02d}"


def local_time(timestamp: int, utc_offset_seconds: int) -> str:
    """ISO time of `timestamp` at the offset, or a note when it is no representable time."""
    try:
        zone = dt.timezone(dt.timedelta(seconds=utc_offset_seconds))
        return dt.datetime.fromtimestamp(timestamp, zone).isoformat()
    except (OverflowError, OSError, ValueError):
        return "not a representable time"


# ----------------------------------------------------------------------------- sources


def require_file(path: str, what: str, how: str) -> str:
    """`path` as an absolute path if it is a readable file, else an ImporterError."""
    if not os.path.exists(path):
        raise ImporterError(f"{what} not found: {path!r} does not exist. {how}")
    if not os.path.isfile(path):
        raise ImporterError(f"{what}: {path!r} is not a file. {how}")
    if not os.access(path, os.R_OK):
        raise ImporterError(f"{what}: {path!r} is not readable; check its permissions.")
    return os.path.abspath(path)


def require_dir_with(src: str, names: Sequence[str], dataset: str, how: str) -> Dict[str, str]:
    """The files `names` inside the folder `src`, as absolute paths, or an ImporterError.

    The error names what was received (a missing path, a file, a folder lacking some of
    the files, and what the folder does hold) and what is expected.
    """
    expected = f"the {dataset} folder holding {', '.join(names)}"
    if not os.path.exists(src):
        raise ImporterError(f"SRC {src!r} does not exist. Expected {expected}. {how}")
    if not os.path.isdir(src):
        raise ImporterError(
            f"SRC {src!r} is a file. Expected {expected}; pass its folder "
            f"{os.path.dirname(os.path.abspath(src))!r} instead if it holds them."
        )
    missing = [n for n in names if not os.path.isfile(os.path.join(src, n))]
    if missing:
        present = sorted(os.listdir(src))
        shown = present[:10] + (["..."] if len(present) > 10 else [])
        raise ImporterError(
            f"SRC folder {src!r} lacks {missing} (it holds {shown or 'nothing'}). "
            f"Expected {expected}. {how}"
        )
    return {n: require_file(os.path.join(src, n), f"{dataset} file {n}", how) for n in names}


def prepare_out_dir(out_dir: str) -> str:
    """Creates `out_dir` (absolute path returned); refuses one that already holds anything.

    An import never writes into an existing log: mixing two imports in one directory would
    double events and leave a manifest that describes only one of them.
    """
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ImporterError(
                f"--out {out_dir!r} is a file. Expected a new or empty directory for the event log; "
                "pass another path."
            )
        entries = sorted(os.listdir(out_dir))
        if entries:
            kind = "an event log" if MANIFEST in entries else f"{len(entries)} entries"
            shown = entries[:5] + (["..."] if len(entries) > 5 else [])
            raise ImporterError(
                f"--out {out_dir!r} already holds {kind} ({shown}). Expected a new or empty "
                "directory; pass another path or delete this one first."
            )
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as err:
        raise ImporterError(
            f"Cannot create --out {out_dir!r}: {err.strerror}. Pass a writable path."
        ) from None
    return out_dir


# -------------------------------------------------------------------------------- sink


def _whole_number(value: Any) -> int:
    """A timestamp that ``validate_record`` accepted ("881250949", "881250949.0", 881250949)."""
    try:
        return int(value)
    except ValueError:
        return int(float(value))


def _digest(key: Tuple) -> bytes:
    """A 128-bit digest of a dedupe key: far smaller than the key, collisions negligible."""
    return hashlib.blake2b(repr(key).encode("utf-8"), digest_size=16).digest()


class ImportSink:
    """Validates, deduplicates, writes and counts the rows of one import (see module doc)."""

    def __init__(
        self,
        out_dir: str,
        fmt: FileFormat = FileFormat.CSV,
        utc_offset_seconds: int = 0,
        side_fields: Iterable[str] = (),
        window: Optional[Window] = None,
    ):
        self.out_dir = prepare_out_dir(out_dir)
        self.window = window
        self.utc_offset_seconds = utc_offset_seconds
        self.log = LogWriter(self.out_dir, FileFormat(fmt), utc_offset_seconds, side_fields)
        self.counts = Counts()
        self.derived: Dict[str, int] = {}
        # span (as its day number) -> digest of the dedupe key -> the line that first had it.
        self._seen: Dict[int, Dict[bytes, int]] = {}

    def new_dedupe_scope(self) -> None:
        """Forgets the events seen so far: later rows are compared only with later rows.

        Importers that stream large sources call it where no duplicate can cross (Taobao:
        when the user changes, since the file is grouped by user), to keep memory bounded.
        """
        self._seen.clear()

    def reject(self, source: str, line: int, raw: bytes, reason: Reason, detail: str) -> None:
        """Counts one input row as rejected and writes its dead letter."""
        self.log.reject(DeadLetter(source, line, Reason(reason).value, detail, raw))
        self.counts.add_rejected(reason)

    def accept(
        self,
        record: Mapping[str, Any],
        source: str,
        line: int,
        raw: bytes,
        derived_events: Sequence[str] = (),
    ) -> Optional[Event]:
        """Validates one input row and writes it, or its dead letter. Returns the event or None.

        Args:
          record: canonical field name -> raw value.
          source, line, raw: where the row came from and its bytes, for the dead letter.
          derived_events: event types to write as well, as copies of the validated event
            with only the event type changed (counted in ``derived``, not as input rows).
        """
        result = validate_record(record, self.window)
        if isinstance(result, Rejection):
            detail = result.detail
            if result.reason == Reason.TIMESTAMP_OUT_OF_SPAN:
                timestamp = _whole_number(record[features.TIMESTAMP.name])
                detail += f" (the dataset window), at {local_time(timestamp, self.utc_offset_seconds)}"
            self.reject(source, line, raw, result.reason, detail)
            return None
        day = (result[features.TIMESTAMP.name] + self.utc_offset_seconds) // spans.SECONDS_PER_DAY
        seen = self._seen.setdefault(day, {})
        key = _digest(dedupe_key(result))
        first = seen.get(key)
        if first is not None:
            span = spans.span_of(result[features.TIMESTAMP.name], self.utc_offset_seconds)
            self.reject(
                source, line, raw, Reason.DUPLICATE_ROW,
                f"the same event as line {first} of this source, in {span.name}",
            )
            return None
        seen[key] = line
        self.log.write(result)
        for kind in derived_events:
            self.log.write({**result, features.EVENT.name: kind})
            self.derived[kind] = self.derived.get(kind, 0) + 1
        self.counts.add_good()
        return result

    def finish(self, source: str, details: Mapping[str, Any]) -> ImportResult:
        """Closes the span files, then writes the manifest (last) and returns the result."""
        self.log.close()
        manifest = self.log.manifest(source, details)
        manifest.counts = self.counts.to_dict()
        manifest.details["input_rows"] = self.counts.total
        manifest.details["events_written"] = sum(manifest.events_per_type.values())
        if self.derived:
            manifest.details["derived_events"] = dict(sorted(self.derived.items()))
        manifest.write(self.out_dir)
        return ImportResult(self.out_dir, manifest, Counts.from_dict(manifest.counts))

    def abort(self) -> None:
        """Removes the half-written span files; no manifest is written."""
        self.log.abort()

    def __enter__(self) -> "ImportSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def read_lines(path: str) -> Iterator[Tuple[int, bytes]]:
    """(line number, bytes without terminator) of each non-blank line of `path`.

    Blank lines are layout, not rows: they are neither events nor dead letters. A read
    error is an ImporterError that names the file and the line reached.
    """
    number = 0
    try:
        with open(path, "rb") as stream:
            for number, raw in enumerate(stream, start=1):
                raw = raw.rstrip(b"\r\n")
                if raw.strip():
                    yield number, raw
    except OSError as err:
        raise ImporterError(
            f"Cannot read {path!r} after line {number}: {err.strerror or err}. "
            "Check the file and its permissions, then run the import again into a new --out directory."
        ) from None


def decode(raw: bytes) -> Union[str, Rejection]:
    """`raw` as UTF-8 text, or the bad_encoding rejection that says where it fails."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(
            Reason.BAD_ENCODING,
            f"not UTF-8 at byte {err.start}: {raw[err.start:err.start + 4]!r}; expected UTF-8 text",
        )


def is_decimal(text: str) -> bool:
    """True for a non-empty string of ASCII digits (how these datasets write ids)."""
    return text.isascii() and text.isdigit()

