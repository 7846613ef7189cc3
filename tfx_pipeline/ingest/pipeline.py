"""The Beam ingest pipeline: event log spans -> tf.Examples, dead letters and a report.

Stages (each a Beam transform, so any runner can run it):

1. ``ReadLogFiles``: one element per log file, reshuffled so files spread over workers;
   each file is read line by line and every row is validated against its span's day.
   Good rows become ``(user_id, CompactEvent)``; bad rows become dead letters.
2. Item statistics: a CombinePerKey over chosen events gives each item's popularity and
   category; the whole table is one side input for negative sampling (memory O(items)).
3. ``GroupByKey`` on user, then ``UserExampleBuilder`` per user (see ``examples.py``):
   point-in-time histories, labels, negatives, split. Memory per worker is bounded by the
   largest single user's events, not by the data size.
4. Examples are written as gzipped TFRecords of tf.Example under ``Split-train/`` and
   ``Split-eval/`` (the layout TFX Examples artifacts use); dead letters as JSON Lines;
   counts per reason and per split as one ``ingest_report.json``. Files hold each user's
   examples together in time order: readers must shuffle widely (the trainer's
   ``training.shuffle_buffer``); Beam's Reshuffle does not reorder records on the local
   runners, so ingest does not pretend to.

Time is linear in events (plus examples x max_history for copying histories) and the
data are shuffled once by user.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from tfx_pipeline.beam_args import default_beam_args
from tfx_pipeline.eventlog import formats, logdir, spans
from tfx_pipeline.eventlog.formats import DeadLetter
from tfx_pipeline.eventlog.validation import Counts, Reason, Window
from tfx_pipeline.ingest import examples as ex
from tfx_pipeline.ingest.config import EVAL, SPLITS, TRAIN, IngestConfig, Split
from transforms import features

REPORT_FILE = "ingest_report.json"
DEAD_LETTER_PREFIX = "dead_letters"
EXAMPLES_FILE_PREFIX = "data_tfrecord"


class IngestError(Exception):
    """Ingest cannot go on; the message says what was found and how to fix it."""


def split_dir(examples_dir: str, split: str) -> str:
    """Where TFX Examples artifacts keep one split."""
    return os.path.join(examples_dir, f"Split-{split}")


@dataclasses.dataclass(frozen=True)
class SpanPlan:
    """Which spans to read: targets make examples, older lookback spans only feed histories."""

    target: Tuple[spans.Span, ...]
    lookback: Tuple[spans.Span, ...]

    @property
    def target_window(self) -> Window:
        return Window(self.target[0].start, self.target[-1].end)

    @property
    def eval_window(self) -> Window:
        return Window(self.target[-1].start, self.target[-1].end)

    def describe(self) -> Dict[str, Any]:
        return {
            "target_spans": [s.name for s in self.target],
            "lookback_spans": [s.name for s in self.lookback],
            "span": self.target[-1].number,
        }


def plan_spans(
    available: Sequence[spans.Span],
    span: Optional[int] = None,
    num_spans: Optional[int] = None,
    lookback_spans: Optional[int] = None,
) -> SpanPlan:
    """Chooses target and lookback spans.

    Args:
      available: the spans present in the log, any order.
      span: the newest target span's number (days since epoch); None = the newest present.
      num_spans: how many spans (newest first) make examples; None = every span up to `span`.
      lookback_spans: how many older spans feed histories only; None = all older ones.
    """
    ordered = sorted(available)
    if not ordered:
        raise IngestError("the log has no span directories (span-YYYYMMDD/); nothing to ingest.")
    if span is None:
        newest = len(ordered) - 1
    else:
        numbers = [s.number for s in ordered]
        if span not in numbers:
            raise IngestError(
                f"span {span} is not in the log; present spans are {numbers[0]}..{numbers[-1]} "
                f"({ordered[0].name}..{ordered[-1].name})."
            )
        newest = numbers.index(span)
    if num_spans is not None and num_spans < 1:
        raise IngestError(f"num_spans must be >= 1. Received: num_spans={num_spans}")
    first = 0 if num_spans is None else max(0, newest - num_spans + 1)
    older = ordered[:first]
    if lookback_spans is not None:
        older = older[-lookback_spans:] if lookback_spans > 0 else []
    return SpanPlan(tuple(ordered[first:newest + 1]), tuple(older))


def list_inputs(log_dir: str, plan: SpanPlan) -> List[Tuple[str, int, int]]:
    """(path, window start, window end) of every file of the planned spans.

    Raises:
      IngestError: entries that look like span directories but are not (a duplicated or
        half-copied span, whose rows would be skipped), or a planned span without log files
        (an incomplete day would train and judge a model on partial data).
    """
    odd = spans.lookalike_entries(log_dir)
    if odd:
        raise IngestError(
            f"{log_dir} holds {odd}, which look like span directories but are not directories named "
            "span-YYYYMMDD (a duplicated or half-copied span?); their rows would be skipped. Merge their files "
            "into the right span-YYYYMMDD/ directory or move them out of the log.")
    inputs, empty = [], []
    for span in plan.lookback + plan.target:
        files = logdir.span_files(log_dir, span)
        if not files:
            empty.append(span.name)
        inputs.extend((path, span.start, span.end) for path in files)
    if empty:
        raise IngestError(
            f"span directories {empty} of {log_dir} hold no log files ({', '.join(formats.READ_EXTENSIONS)}); "
            "an incomplete day would train and judge the model on partial data. Deliver the day's files, or "
            "remove the empty directory if the day has no events.")
    return inputs


class _ReadLogFile(beam.DoFn):
    """Reads one log file; emits (user, CompactEvent) and tagged dead letters."""

    DEAD = "dead"

    def process(self, element: Tuple[str, int, int]) -> Iterator[Any]:
        path, start, end = element
        window = Window(start, end)
        with FileSystems.open(path, compression_type="uncompressed") as stream:
            for row in formats.read_rows(path, stream):
                result = formats.validate_row(row, window)
                if isinstance(result, DeadLetter):
                    yield beam.pvalue.TaggedOutput(self.DEAD, result)
                else:
                    yield ex.compact(result, row.source, row.line)


class _BuildUserExamples(beam.DoFn):
    """Runs UserExampleBuilder on one user's grouped events."""

    DEAD = "dead"
    STATS = "stats"

    def __init__(self, config: IngestConfig, target: Window, eval_window: Window):
        self.config = config
        self.target = target
        self.eval_window = eval_window

    def process(self, element, items: ex.ItemTable) -> Iterator[Any]:
        user, events = element
        builder = ex.UserExampleBuilder(self.config, items, self.target, self.eval_window)
        for out in builder.build(user, events):
            if isinstance(out, DeadLetter):
                yield beam.pvalue.TaggedOutput(self.DEAD, out)
            else:
                yield out
        yield beam.pvalue.TaggedOutput(self.STATS, dict(builder.stats))


_ARROW_TYPES = None


def _arrow_types():
    global _ARROW_TYPES
    if _ARROW_TYPES is None:
        import pyarrow as pa

        _ARROW_TYPES = {
            features.FieldType.STRING: pa.large_list(pa.large_string()),
            features.FieldType.INT: pa.large_list(pa.int64()),
            features.FieldType.FLOAT: pa.large_list(pa.float32()),
        }
    return _ARROW_TYPES


def encode_examples(batch: List[Dict[str, List[Any]]]) -> List[bytes]:
    """Serializes a batch of examples as tf.Examples, typed by the registry.

    Columns go through Arrow and tfx_bsl's C++ encoder, which is an order of magnitude
    faster than building tf.train.Example messages in Python and needs no TensorFlow.
    A feature an example lacks is absent from its tf.Example.
    """
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    types = _arrow_types()
    names = [f.name for f in features.EXAMPLE_FEATURES if any(f.name in values for values in batch)]
    arrays = []
    for name in names:
        dtype = features.EXAMPLE_FEATURES_BY_NAME[name].dtype
        array = pa.array([values.get(name) for values in batch], type=types[dtype])
        if dtype == features.FieldType.STRING:
            array = array.cast(pa.large_list(pa.large_binary()))
        arrays.append(array)
    return example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(arrays, names=names))


def _sum_stats(dicts) -> Dict[str, int]:
    total: collections.Counter = collections.Counter()
    for d in dicts:
        total.update(d)
    return dict(total)


def _count_reasons(letters) -> Dict[str, int]:
    return dict(collections.Counter(letter.reason for letter in letters))


def build_report(good_rows: int, rejected: Dict[str, int], stats: Dict[str, int],
                 num_items: int, config: IngestConfig, plan: SpanPlan) -> Dict[str, Any]:
    """The ingest report: row counts by reason, examples by split, settings."""
    # Duplicates are found after grouping, among rows first counted as good.
    duplicates = rejected.get(Reason.DUPLICATE_ROW.value, 0)
    counts = Counts(good_rows - duplicates, rejected)
    report = {
        "rows": counts.to_dict(),
        "examples": {split: stats.get(f"examples_{split}", 0) for split in SPLITS},
        "clicks": {split: stats.get(f"clicks_{split}", 0) for split in SPLITS},
        "items_for_sampling": num_items,
        "candidates_without_negative": stats.get("candidates_without_negative", 0),
        "history_steps_without_negative": stats.get("history_steps_without_negative", 0),
        "config": json.loads(config.to_json()),
    }
    report.update(plan.describe())
    return report


def _write_report(report: Dict[str, Any], path: str) -> None:
    with FileSystems.create(path) as stream:
        stream.write(json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))


def _singleton(values: List[Any], default: Any) -> Any:
    return values[0] if values else default


@dataclasses.dataclass(frozen=True)
class IngestOutputs:
    """Where one ingest run writes."""

    examples_dir: str
    dead_letters_dir: str

    @property
    def report_path(self) -> str:
        return os.path.join(self.dead_letters_dir, REPORT_FILE)


def build_pipeline(
    pipeline: beam.Pipeline,
    inputs: List[Tuple[str, int, int]],
    config: IngestConfig,
    plan: SpanPlan,
    outputs: IngestOutputs,
) -> None:
    """Adds the ingest transforms to `pipeline`. `config` must be resolved."""
    parsed = (
        pipeline
        | "ListFiles" >> beam.Create(inputs)
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadFiles" >> beam.ParDo(_ReadLogFile()).with_outputs(_ReadLogFile.DEAD, main="events")
    )
    events = parsed.events

    items = (
        events
        | "ChosenEvents" >> beam.Filter(lambda kv: kv[1].event in features.POSITIVE_EVENTS)
        | "ItemInfo" >> beam.Map(lambda kv: ex.item_info(kv[1]))
        | "CombineItems" >> beam.CombinePerKey(ex.combine_item_info)
        | "ItemList" >> beam.combiners.ToList()
        | "ItemTable" >> beam.Map(ex.item_table, config.negative_sampling)
    )

    built = (
        events
        | "GroupByUser" >> beam.GroupByKey()
        | "BuildExamples" >> beam.ParDo(
            _BuildUserExamples(config, plan.target_window, plan.eval_window),
            beam.pvalue.AsSingleton(items),
        ).with_outputs(_BuildUserExamples.DEAD, _BuildUserExamples.STATS, main="examples")
    )

    by_split = built.examples | "BySplit" >> beam.Partition(lambda out, n: SPLITS.index(out.split), len(SPLITS))
    for index, split in enumerate(SPLITS):
        _ = (
            by_split[index]
            | f"Features{split}" >> beam.Map(lambda out: out.features)
            | f"Batch{split}" >> beam.BatchElements(min_batch_size=64, max_batch_size=2048)
            | f"Serialize{split}" >> beam.FlatMap(encode_examples)
            | f"Write{split}" >> beam.io.WriteToTFRecord(
                os.path.join(split_dir(outputs.examples_dir, split), EXAMPLES_FILE_PREFIX),
                file_name_suffix=".gz",
            )
        )

    dead = (parsed[_ReadLogFile.DEAD], built[_BuildUserExamples.DEAD]) | "AllDeadLetters" >> beam.Flatten()
    _ = (
        dead
        | "DeadLetterJson" >> beam.Map(lambda letter: json.dumps(letter.to_json(), ensure_ascii=False))
        | "WriteDeadLetters" >> beam.io.WriteToText(
            os.path.join(outputs.dead_letters_dir, DEAD_LETTER_PREFIX), file_name_suffix=".jsonl"
        )
    )

    good_rows = events | "CountRows" >> beam.combiners.Count.Globally()
    rejected = dead | "ToListDead" >> beam.combiners.ToList() | "CountReasons" >> beam.Map(_count_reasons)
    stats = built[_BuildUserExamples.STATS] | "StatsList" >> beam.combiners.ToList() | "SumStats" >> beam.Map(_sum_stats)
    num_items = items | "NumItems" >> beam.Map(len)
    _ = (
        pipeline
        | "ReportSeed" >> beam.Create([None])
        | "Report" >> beam.Map(
            lambda _, good, bad, st, n: build_report(
                good, _singleton(bad, {}), _singleton(st, {}), n, config, plan),
            beam.pvalue.AsSingleton(good_rows),
            beam.pvalue.AsList(rejected),
            beam.pvalue.AsList(stats),
            beam.pvalue.AsSingleton(num_items),
        )
        | "WriteReport" >> beam.Map(_write_report, outputs.report_path)
    )


def read_report(outputs: IngestOutputs) -> Dict[str, Any]:
    with FileSystems.open(outputs.report_path) as stream:
        return json.loads(stream.read().decode("utf-8"))


def check_report(report: Dict[str, Any], config: IngestConfig) -> None:
    """Raises IngestError when too many rows were bad or no example was made."""
    rows = report["rows"]
    bad, total = rows["bad"], rows["input"]
    if total == 0:
        raise IngestError("the log's planned spans hold no rows; check the log directory and span range.")
    if bad / total > config.max_bad_fraction:
        reasons = ", ".join(f"{k} {v:,}" for k, v in rows["rejected"].items() if v)
        raise IngestError(
            f"{bad:,} of {total:,} rows ({bad / total:.2%}) were rejected ({reasons}), more than the "
            f"allowed {config.max_bad_fraction:.2%}. The rows and reasons are in the dead-letter output; "
            "fix the log, or raise max_bad_fraction if these rows may be skipped."
        )
    if sum(report["examples"].values()) == 0:
        raise IngestError("no training examples were made from the planned spans; the log has no candidates.")
    for split in SPLITS:
        if report["examples"][split] == 0:
            raise IngestError(
                f"the {split} split is empty (examples per split: {report['examples']}). With split "
                f"{config.split.value!r} this means the planned spans give it nothing: "
                "use more spans, or another split mode."
            )


def format_report(report: Dict[str, Any]) -> str:
    rows = Counts.from_dict(report["rows"])
    lines = [
        rows.format(),
        f"examples: train {report['examples'][TRAIN]:,} (clicks {report['clicks'][TRAIN]:,}), "
        f"eval {report['examples'][EVAL]:,} (clicks {report['clicks'][EVAL]:,})",
        f"spans: examples from {', '.join(report['target_spans'])}"
        + (f"; histories also from {len(report['lookback_spans'])} older spans" if report["lookback_spans"] else ""),
        f"protocol {report['config']['protocol']}, split {report['config']['split']}, "
        f"max_history {report['config']['max_history']}",
    ]
    return "\n".join(lines)


def log_has_impressions(log_dir: str) -> bool:
    manifest = logdir.read_manifest(log_dir)
    return manifest.events_per_type.get(features.IMPRESSION_EVENT, 0) > 0


def run_ingest(
    log_dir: str,
    outputs: IngestOutputs,
    config: IngestConfig,
    beam_args: Optional[List[str]] = None,
    span: Optional[int] = None,
    num_spans: Optional[int] = None,
    lookback_spans: Optional[int] = None,
) -> Dict[str, Any]:
    """Runs ingest end to end outside TFX (CLI, benchmarks); returns the checked report."""
    from apache_beam.options.pipeline_options import PipelineOptions

    manifest = logdir.read_manifest(log_dir)
    config = config.resolved(log_has_impressions(log_dir))
    plan = plan_spans(spans.list_spans(log_dir, manifest.utc_offset_seconds), span, num_spans, lookback_spans)
    if config.split == Split.LAST_DAY and len(plan.target) < 2:
        raise IngestError(
            f"split 'last_day' needs at least two target spans (train on older days, evaluate on the "
            f"newest); the plan has {len(plan.target)} ({plan.target[0].name}). Use split 'last_event' "
            "or 'user_hash', or ingest more spans."
        )
    inputs = list_inputs(log_dir, plan)
    options = PipelineOptions(beam_args if beam_args is not None else default_beam_args())
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, inputs, config, plan, outputs)
    report = read_report(outputs)
    check_report(report, config)
    return report
