"""A whole event log on disk: the manifest, span directories, dead letters.

``LogWriter`` routes events to the span of their timestamp and writes one file per span
and shard; ``read_log`` reads a log back, validating each row against its span's day and
dropping nothing: every row comes back as an event or a dead letter.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Union

from tfx_pipeline.eventlog import formats, spans
from tfx_pipeline.eventlog.formats import DeadLetter, EventFileWriter, FileFormat
from tfx_pipeline.eventlog.validation import Counts, Event, Reason, Window, dedupe_key
from transforms import features

MANIFEST = "log.json"
REJECTED_DIR = "_rejected"
FORMAT_VERSION = 1


@dataclasses.dataclass
class Manifest:
    """What a log directory holds. Written last, so its presence means the log is complete."""

    source: str
    file_format: FileFormat
    utc_offset_seconds: int = 0
    side_fields: List[str] = dataclasses.field(default_factory=list)
    events_per_span: Dict[str, int] = dataclasses.field(default_factory=dict)
    events_per_type: Dict[str, int] = dataclasses.field(default_factory=dict)
    counts: Dict[str, Any] = dataclasses.field(default_factory=dict)
    details: Dict[str, Any] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        data["file_format"] = FileFormat(self.file_format).value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Manifest":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown keys {unknown} in {MANIFEST}; expected only {sorted(known)}.")
        values = dict(data)
        values["file_format"] = FileFormat(values["file_format"])
        return cls(**values)

    def write(self, log_dir: str) -> None:
        path = os.path.join(log_dir, MANIFEST)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as stream:
            json.dump(self.to_json(), stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(tmp, path)


def read_manifest(log_dir: str) -> Manifest:
    path = os.path.join(log_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{log_dir!r} has no {MANIFEST}: it is not a complete ctrflow event log. "
            "Write one with `ctrflow simulate` or `ctrflow import`, or check the path."
        )
    with open(path, encoding="utf-8") as stream:
        return Manifest.from_json(json.load(stream))


def span_window(span: spans.Span) -> Window:
    return Window(span.start, span.end)


class LogWriter:
    """Writes events into ``LOG/span-YYYYMMDD/events-<shard>.<ext>`` by their timestamp."""

    def __init__(
        self,
        log_dir: str,
        fmt: FileFormat = FileFormat.CSV,
        utc_offset_seconds: int = 0,
        side_fields: Iterable[str] = (),
        shard: int = 0,
    ):
        self.log_dir = log_dir
        self.format = FileFormat(fmt)
        self.utc_offset_seconds = utc_offset_seconds
        self.side_fields = list(side_fields)
        self.shard = shard
        self.events_per_span: Dict[str, int] = {}
        self.events_per_type: Dict[str, int] = {}
        self._writers: Dict[spans.Span, EventFileWriter] = {}
        self._dead = formats.DeadLetterWriter(
            os.path.join(log_dir, REJECTED_DIR, f"rejected-{shard:05d}.jsonl")
        )
        self.counts = Counts()

    def writer_for(self, span: spans.Span) -> EventFileWriter:
        writer = self._writers.get(span)
        if writer is None:
            path = os.path.join(
                self.log_dir, span.name, f"events-{self.shard:05d}{formats.EXTENSIONS[self.format]}"
            )
            writer = EventFileWriter(path, self.format, self.side_fields)
            self._writers[span] = writer
        return writer

    def write(self, event: Mapping[str, Any]) -> None:
        span = spans.span_of(event[features.TIMESTAMP.name], self.utc_offset_seconds)
        self.writer_for(span).write(event)
        self.events_per_span[span.name] = self.events_per_span.get(span.name, 0) + 1
        kind = event[features.EVENT.name]
        self.events_per_type[kind] = self.events_per_type.get(kind, 0) + 1
        self.counts.add_good()

    def reject(self, letter: DeadLetter) -> None:
        self._dead.write(letter)
        self.counts.add_rejected(Reason(letter.reason))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._dead.close()

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.abort()
        self._writers.clear()
        self._dead.close()

    def manifest(self, source: str, details: Optional[Mapping[str, Any]] = None) -> Manifest:
        return Manifest(
            source=source,
            file_format=self.format,
            utc_offset_seconds=self.utc_offset_seconds,
            side_fields=self.side_fields,
            events_per_span=dict(sorted(self.events_per_span.items())),
            events_per_type=dict(sorted(self.events_per_type.items())),
            counts=self.counts.to_dict(),
            details=dict(details or {}),
        )


def merge_manifests(parts: List[Manifest], details: Optional[Mapping[str, Any]] = None) -> Manifest:
    """One manifest for a log written by several shards."""
    first = parts[0]
    per_span: Dict[str, int] = {}
    per_type: Dict[str, int] = {}
    counts = Counts()
    for part in parts:
        for key, value in part.events_per_span.items():
            per_span[key] = per_span.get(key, 0) + value
        for key, value in part.events_per_type.items():
            per_type[key] = per_type.get(key, 0) + value
        counts.merge(Counts.from_dict(part.counts))
    return Manifest(
        source=first.source,
        file_format=first.file_format,
        utc_offset_seconds=first.utc_offset_seconds,
        side_fields=first.side_fields,
        events_per_span=dict(sorted(per_span.items())),
        events_per_type=dict(sorted(per_type.items())),
        counts=counts.to_dict(),
        details=dict(details or first.details),
    )


def span_files(log_dir: str, span: spans.Span) -> List[str]:
    """The log files of one span, sorted by name."""
    directory = os.path.join(log_dir, span.name)
    return sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if formats.is_log_file(name) and not name.startswith(".")
    )


def read_span(log_dir: str, span: spans.Span) -> Iterator[Union[Event, DeadLetter]]:
    """Every row of one span as an event or a dead letter; duplicates within the span rejected."""
    window = span_window(span)
    seen = set()
    for path in span_files(log_dir, span):
        for row in formats.read_rows(path):
            result = formats.validate_row(row, window)
            if isinstance(result, DeadLetter):
                yield result
                continue
            key = dedupe_key(result)
            if key in seen:
                yield DeadLetter(row.source, row.line, Reason.DUPLICATE_ROW.value,
                                 "the same event appears earlier in this span", row.raw)
                continue
            seen.add(key)
            yield result


def read_log(log_dir: str) -> Iterator[Union[Event, DeadLetter]]:
    """Every row of every span of a log, oldest span first."""
    manifest = read_manifest(log_dir)
    for span in spans.list_spans(log_dir, manifest.utc_offset_seconds):
        yield from read_span(log_dir, span)
