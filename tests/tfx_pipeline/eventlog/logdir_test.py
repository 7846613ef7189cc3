import pytest

from tfx_pipeline.eventlog import logdir, spans
from tfx_pipeline.eventlog.formats import DeadLetter, FileFormat

DAY = 86400


def _event(user, ts, event="click"):
    return {"user_id": user, "item_id": "i1", "category_id": "c1", "event": event, "timestamp": ts}


def test_writer_routes_by_span_and_manifest_counts(tmp_path):
    writer = logdir.LogWriter(str(tmp_path), FileFormat.CSV, utc_offset_seconds=0)
    for ts in (5, 6, DAY + 1):
        writer.write(_event("u", ts))
    writer.close()
    writer.manifest("test", {"seed": 1}).write(str(tmp_path))
    manifest = logdir.read_manifest(str(tmp_path))
    assert manifest.events_per_span == {"span-19700101": 2, "span-19700102": 1}
    assert manifest.counts["good"] == 3
    assert manifest.details == {"seed": 1}
    assert [s.name for s in spans.list_spans(str(tmp_path))] == ["span-19700101", "span-19700102"]
    assert len([r for r in logdir.read_log(str(tmp_path)) if not isinstance(r, DeadLetter)]) == 3


def test_read_span_flags_out_of_span_and_duplicates(tmp_path):
    directory = tmp_path / "span-19700101"
    directory.mkdir()
    (directory / "events-00000.csv").write_text(
        "user_id,item_id,category_id,event,timestamp\n"
        "u,i1,c1,click,5\n"
        f"u,i1,c1,click,{DAY}\n"  # belongs to the next day
        "u,i1,c1,click,5\n"  # duplicate of line 2
    )
    (directory / "events-00001.csv").write_text("user_id,item_id,category_id,event,timestamp\nu,i1,c1,click,5\n")
    logdir.Manifest("test", FileFormat.CSV).write(str(tmp_path))
    results = list(logdir.read_log(str(tmp_path)))
    assert [r.reason if isinstance(r, DeadLetter) else "ok" for r in results] == [
        "ok", "timestamp_out_of_span", "duplicate_row", "duplicate_row"]
    assert results[3].source.endswith("events-00001.csv")


def test_merge_manifests_adds_shards(tmp_path):
    parts = []
    for shard in range(2):
        writer = logdir.LogWriter(str(tmp_path), FileFormat.JSONL, shard=shard)
        writer.write(_event(f"u{shard}", 5, "impression"))
        writer.close()
        parts.append(writer.manifest("sim"))
    merged = logdir.merge_manifests(parts)
    assert merged.events_per_span == {"span-19700101": 2}
    assert merged.events_per_type == {"impression": 2}
    assert merged.counts["input"] == 2


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete ctrflow event log"):
        logdir.read_manifest(str(tmp_path))


def test_manifest_rejects_unknown_keys():
    with pytest.raises(ValueError, match="Unknown keys"):
        logdir.Manifest.from_json({"source": "x", "file_format": "csv", "colour": 1})
