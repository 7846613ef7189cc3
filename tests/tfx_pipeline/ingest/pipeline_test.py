"""The Beam ingest pipeline against the pure per-user builder, malformed input and span plans."""

import collections
import glob
import json
import os
import random

import pytest

from tfx_pipeline.beam_args import in_memory
from tfx_pipeline.eventlog import logdir, spans
from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.ingest import pipeline as ingest
from tfx_pipeline.ingest.config import IngestConfig

DAY = 86400
T0 = 19000 * DAY  # 2022-01-08 00:00 UTC


def read_examples(examples_dir, split):
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(ingest.split_dir(examples_dir, split), "*.gz")))
    out = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        values = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            raw = list(getattr(feature, kind).value)
            values[name] = [v.decode() for v in raw] if kind == "bytes_list" else raw
        out.append(values)
    return out


def canonical(values):
    return json.dumps(values, sort_keys=True)


def write_random_log(log_dir, num_users=30, seed=0):
    rng = random.Random(seed)
    writer = logdir.LogWriter(str(log_dir), FileFormat.CSV, side_fields=["device", "item_price"])
    for user in range(num_users):
        t = T0 + rng.randrange(DAY)
        for _ in range(rng.randrange(5, 40)):
            t += rng.randrange(1, 4000)
            item = rng.randrange(60)
            event = {"user_id": f"u{user}", "item_id": f"i{item}", "category_id": f"c{item % 7}",
                     "event": "impression", "timestamp": t, "device": rng.choice(["ios", "web"]),
                     "item_price": float(item)}
            writer.write(event)
            if rng.random() < 0.3:
                writer.write({**event, "event": "click", "timestamp": t + 2})
                if rng.random() < 0.3:
                    writer.write({**event, "event": "buy", "timestamp": t + 50})
    writer.close()
    writer.manifest("test").write(str(log_dir))
    return writer


def test_beam_output_equals_the_per_user_builder(tmp_path):
    from tfx_pipeline.ingest import examples as ex

    log = tmp_path / "log"
    write_random_log(log)
    config = IngestConfig(seed=5, max_history=7).resolved(True)
    outputs = ingest.IngestOutputs(str(tmp_path / "ex"), str(tmp_path / "dead"))
    report = ingest.run_ingest(str(log), outputs, config, in_memory())

    # The same examples, built without Beam.
    manifest = logdir.read_manifest(str(log))
    plan = ingest.plan_spans(spans.list_spans(str(log)))
    by_user = collections.defaultdict(list)
    for result in logdir.read_log(str(log)):
        user, event = ex.compact(result, "", 0)
        by_user[user].append(event)
    items = collections.defaultdict(list)
    for events in by_user.values():
        for event in events:
            if event.event in ("click", "cart", "fav", "buy"):
                key, value = ex.item_info(event)
                items[key].append(value)
    table = ex.item_table([(k, ex.combine_item_info(v)) for k, v in items.items()], config.negative_sampling)
    builder = ex.UserExampleBuilder(config, table, plan.target_window, plan.eval_window)
    expected = collections.defaultdict(list)
    for user, events in by_user.items():
        for out in builder.build(user, events):
            expected[out.split].append(canonical(out.features))

    for split in ("train", "eval"):
        got = sorted(canonical(v) for v in read_examples(outputs.examples_dir, split))
        assert got == sorted(expected[split]), split
    assert report["rows"]["input"] == manifest.counts["good"]
    assert report["examples"] == {s: len(expected[s]) for s in ("train", "eval")}
    assert report["target_spans"] == [s.name for s in plan.target]


def test_malformed_input_is_counted_never_lost(tmp_path):
    log = tmp_path / "log"
    day = spans.span_of(T0)
    directory = log / day.name
    directory.mkdir(parents=True)
    header = b"user_id,item_id,category_id,event,timestamp\n"
    good = [f"u{u},i{i},c1,click,{T0 + 10 * i + u}\n".encode() for u in range(3) for i in range(20)]
    (directory / "events-00000.csv").write_bytes(header + b"".join(good))
    (directory / "events-00001.csv").write_bytes(
        header
        + b"u1,i1,c1,click\n"  # truncated
        + b"u1,i1,c1,click,yesterday\n"  # wrong type
        + b"u1,i1,c1,teleport,%d\n" % (T0 + 5)  # unknown event
        + b"u1,i\xff,c1,click,%d\n" % (T0 + 6)  # not UTF-8
        + b"u1,i2,c1,click,%d\n" % (T0 - 1)  # belongs to the day before
        + good[0]  # duplicate of a row in the other file
        + b'u1,"i3'  # truncated inside a quoted field, no newline
    )
    (directory / "events-00002.csv").write_bytes(b"")  # empty file
    (directory / "events-00003.jsonl").write_bytes(b'{"user_id": "u9", "item_id": 3}\n')
    logdir.Manifest("test", FileFormat.CSV).write(str(log))
    outputs = ingest.IngestOutputs(str(tmp_path / "ex"), str(tmp_path / "dead"))
    config = IngestConfig(protocol="sampled", split="last_event", max_bad_fraction=0.5)
    report = ingest.run_ingest(str(log), outputs, config, in_memory())

    rows = report["rows"]
    assert rows["input"] == 60 + 7 + 1
    assert rows["good"] == 60
    assert {k: v for k, v in rows["rejected"].items() if v} == {
        "malformed_row": 2, "unparsable_number": 1, "unknown_event": 1, "bad_encoding": 1,
        "timestamp_out_of_span": 1, "duplicate_row": 1, "missing_field": 1}
    letters = [json.loads(line) for path in glob.glob(os.path.join(outputs.dead_letters_dir, "dead_letters*"))
               for line in open(path, encoding="utf-8")]
    assert len(letters) == 8
    assert {l["reason"] for l in letters} == set(k for k, v in rows["rejected"].items() if v)
    encoded = [l for l in letters if l["reason"] == "bad_encoding"][0]
    assert "raw_b64" in encoded and encoded["line"] == 5


def test_too_many_bad_rows_fail_with_the_counts(tmp_path):
    log = tmp_path / "log"
    directory = log / spans.span_of(T0).name
    directory.mkdir(parents=True)
    (directory / "e.csv").write_text(
        "user_id,item_id,category_id,event,timestamp\n"
        + "".join(f"u,i{i},c,click,{T0 + i}\n" for i in range(5)) + "u,i,c,jump,1\n")
    logdir.Manifest("test", FileFormat.CSV).write(str(log))
    outputs = ingest.IngestOutputs(str(tmp_path / "ex"), str(tmp_path / "dead"))
    with pytest.raises(ingest.IngestError, match=r"1 of 6 rows \(16.67%\) were rejected \(unknown_event 1\)"):
        ingest.run_ingest(str(log), outputs, IngestConfig(protocol="sampled", split="last_event"), in_memory())
    assert os.path.exists(outputs.report_path), "the report and dead letters are kept for the user"


def test_last_day_split_needs_two_spans(tmp_path):
    log = tmp_path / "log"
    directory = log / spans.span_of(T0).name
    directory.mkdir(parents=True)
    (directory / "e.csv").write_text("user_id,item_id,category_id,event,timestamp\nu,i,c,click,%d\n" % T0)
    logdir.Manifest("test", FileFormat.CSV).write(str(log))
    outputs = ingest.IngestOutputs(str(tmp_path / "ex"), str(tmp_path / "dead"))
    with pytest.raises(ingest.IngestError, match="needs at least two target spans"):
        ingest.run_ingest(str(log), outputs, IngestConfig(protocol="sampled"), in_memory())


def test_plan_spans():
    days = [spans.span_of(T0 + k * DAY) for k in range(5)]
    plan = ingest.plan_spans(list(reversed(days)))
    assert plan.target == tuple(days) and plan.lookback == ()
    plan = ingest.plan_spans(days, span=days[3].number, num_spans=2, lookback_spans=1)
    assert plan.target == (days[2], days[3]) and plan.lookback == (days[1],)
    assert plan.eval_window.start == days[3].start
    assert ingest.plan_spans(days, num_spans=1, lookback_spans=10).lookback == tuple(days[:4])
    with pytest.raises(ingest.IngestError, match="not in the log"):
        ingest.plan_spans(days, span=1)
    with pytest.raises(ingest.IngestError, match="no span directories"):
        ingest.plan_spans([])
