"""`ctrflow inspect LOG`: read a whole event log, validate every row and summarize it."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
from typing import Dict, Set

from tfx_pipeline.eventlog import logdir, spans
from tfx_pipeline.eventlog.formats import DeadLetter
from tfx_pipeline.eventlog.validation import Counts, Reason
from transforms import features


@dataclasses.dataclass
class SpanSummary:
    events: Dict[str, int] = dataclasses.field(default_factory=collections.Counter)
    users: Set[str] = dataclasses.field(default_factory=set)
    items: Set[str] = dataclasses.field(default_factory=set)
    categories: Set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class LogSummary:
    """What a log holds, per span and overall, with its validation counts."""

    manifest: logdir.Manifest
    per_span: Dict[str, SpanSummary]
    counts: Counts
    dead_letter_examples: Dict[str, DeadLetter]

    @property
    def total(self) -> SpanSummary:
        total = SpanSummary()
        for summary in self.per_span.values():
            total.events.update(summary.events)
            total.users |= summary.users
            total.items |= summary.items
            total.categories |= summary.categories
        return total

    def format(self) -> str:
        kinds = features.EVENT_TYPES
        header = f"{'span':<15}" + "".join(f"{k:>12}" for k in kinds) + f"{'users':>9}{'items':>9}"
        lines = [
            f"log from {self.manifest.source!r}, {self.manifest.file_format.value} files, "
            f"UTC offset {self.manifest.utc_offset_seconds // 3600:+d}h, {len(self.per_span)} spans",
            header,
        ]
        for name, summary in self.per_span.items():
            lines.append(
                f"{name:<15}" + "".join(f"{summary.events.get(k, 0):>12,}" for k in kinds)
                + f"{len(summary.users):>9,}{len(summary.items):>9,}"
            )
        total = self.total
        lines.append(
            f"{'all':<15}" + "".join(f"{total.events.get(k, 0):>12,}" for k in kinds)
            + f"{len(total.users):>9,}{len(total.items):>9,}"
        )
        impressions = total.events.get(features.IMPRESSION_EVENT, 0)
        clicks = total.events.get(features.CLICK_EVENT, 0)
        buys = total.events.get(features.CONVERSION_EVENT, 0)
        if impressions:
            lines.append(f"click-through rate {clicks / impressions:.2%} of impressions")
        if clicks:
            lines.append(f"conversions {buys / clicks:.2%} of clicks")
        lines.append(f"{len(total.categories):,} categories")
        lines.append(self.counts.format())
        for reason, letter in self.dead_letter_examples.items():
            lines.append(f"  e.g. {reason}: {letter.source}:{letter.line}: {letter.detail}")
        return "\n".join(lines)


def summarize(log_dir: str) -> LogSummary:
    """Reads every row of the log at `log_dir` (events and dead letters) and summarizes it."""
    manifest = logdir.read_manifest(log_dir)
    per_span: Dict[str, SpanSummary] = {}
    counts = Counts()
    examples: Dict[str, DeadLetter] = {}
    for span in spans.list_spans(log_dir, manifest.utc_offset_seconds):
        summary = per_span.setdefault(span.name, SpanSummary())
        for result in logdir.read_span(log_dir, span):
            if isinstance(result, DeadLetter):
                counts.add_rejected(Reason(result.reason))
                examples.setdefault(result.reason, result)
                continue
            counts.add_good()
            summary.events[result[features.EVENT.name]] += 1
            summary.users.add(result[features.USER_ID.name])
            summary.items.add(result[features.ITEM_ID.name])
            summary.categories.add(result[features.CATEGORY_ID.name])
    return LogSummary(manifest, per_span, counts, examples)


def run(args: argparse.Namespace) -> int:
    from tfx_pipeline.cli import CommandError

    if not os.path.isdir(args.log):
        raise CommandError(f"log directory {args.log!r} does not exist; expected a folder written by "
                           "`ctrflow simulate` or `ctrflow import`.")
    try:
        summary = summarize(args.log)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(str(err)) from None
    print(summary.format())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="read and validate an event log, print what it holds",
        description="Reads every row of an event log, validates it against its span and prints "
        "events per span and type, users, items, and rejected rows by reason.",
    )
    parser.add_argument("log", metavar="LOG", help="log directory (holds log.json and span-YYYYMMDD/)")
    parser.set_defaults(func=run)
