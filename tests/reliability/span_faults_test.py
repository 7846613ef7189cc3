"""Span directories that are empty, missing or duplicated: a clear message, and nothing trained or pushed from them.

Ingest (what EventLogExampleGen runs) refuses them before reading a row; `ctrflow run` stops
at the ExampleGen with that message and the push base stays empty. `ctrflow retrain` refuses
the same logs before running anything (tests/tfx_pipeline/retrain_test.py).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tfx_pipeline.beam_args import in_memory
from tfx_pipeline.eventlog import logdir, spans
from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.ingest import pipeline as ingest
from tfx_pipeline.ingest.config import IngestConfig

DAY = 86400
T0 = 19000 * DAY  # 2022-01-08 00:00 UTC
HEADER = "user_id,item_id,category_id,event,timestamp\n"


def write_day(log, day, users=5):
    span = spans.span_of(T0 + day * DAY)
    (log / span.name).mkdir(parents=True, exist_ok=True)
    rows = "".join(f"u{u},i{k},c{k % 3},{event},{span.start + 100 * u + 10 * k + (event == 'click')}\n"
                   for u in range(users) for k in range(4) for event in ("impression", "click"))
    (log / span.name / "events-00000.csv").write_text(HEADER + rows)
    return span


@pytest.fixture
def log(tmp_path):
    log = tmp_path / "log"
    for day in range(3):
        write_day(log, day)
    logdir.Manifest("test", FileFormat.CSV, events_per_type={"impression": 1}).write(str(log))
    return log


def run(log, tmp_path, **kwargs):
    outputs = ingest.IngestOutputs(str(tmp_path / "examples"), str(tmp_path / "dead"))
    return ingest.run_ingest(str(log), outputs, IngestConfig(), in_memory(), **kwargs), outputs


def test_the_log_as_delivered_ingests(log, tmp_path):
    report, _ = run(log, tmp_path)
    assert report["rows"] == {"input": 120, "good": 120, "bad": 0, "rejected": report["rows"]["rejected"]}
    assert report["target_spans"] == ["span-20220108", "span-20220109", "span-20220110"]


@pytest.mark.parametrize("newest", [True, False])
def test_an_empty_span_directory_is_refused_by_name(log, tmp_path, newest):
    span = spans.span_of(T0 + (2 if newest else 1) * DAY)
    os.remove(log / span.name / "events-00000.csv")
    (log / span.name / "notes.txt").write_text("not a log file")
    with pytest.raises(ingest.IngestError) as info:
        run(log, tmp_path)
    message = str(info.value)
    assert f"span directories ['{span.name}'] of {log} hold no log files" in message
    assert ".csv" in message and "Deliver the day's files" in message
    assert not os.path.exists(tmp_path / "examples"), "nothing was read or written"


@pytest.mark.parametrize("name", ["span-20220109 (1)", "span-20220109.bak", "span-2022011"])
def test_a_duplicated_or_half_copied_span_directory_is_refused_by_name(log, tmp_path, name):
    shutil.copytree(log / "span-20220109", log / name)
    with pytest.raises(ingest.IngestError) as info:
        run(log, tmp_path)
    assert f"holds ['{name}'], which look like span directories" in str(info.value)
    assert "Merge their files into the right span-YYYYMMDD/ directory" in str(info.value)


def test_a_span_delivered_twice_into_its_directory_is_counted_as_duplicates_and_refused(log, tmp_path):
    span_dir = log / "span-20220109"
    shutil.copy(span_dir / "events-00000.csv", span_dir / "events-00000-copy.csv")
    with pytest.raises(ingest.IngestError) as info:
        run(log, tmp_path)
    assert "40 of 160 rows (25.00%) were rejected (duplicate_row 40)" in str(info.value)
    report = ingest.read_report(ingest.IngestOutputs(str(tmp_path / "examples"), str(tmp_path / "dead")))
    assert report["rows"]["good"] + report["rows"]["bad"] == report["rows"]["input"] == 160


def test_a_missing_span_is_named_with_the_spans_present(log, tmp_path):
    shutil.rmtree(log / "span-20220110")
    with pytest.raises(ingest.IngestError, match=r"span 19002 is not in the log; present spans are 19000..19001 "
                                                 r"\(span-20220108..span-20220109\)"):
        run(log, tmp_path, span=19002)


def test_ctrflow_run_stops_at_the_example_gen_and_pushes_nothing(log, tmp_path, capsys):
    from tfx_pipeline import cli
    from tfx_pipeline.runners import local

    shutil.copytree(log / "span-20220109", log / "span-20220109 (1)")
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"pipeline: {{root: {tmp_path / 'root'}, log_dir: {log}, push_base: {tmp_path / 'serving'}}}\n")
    assert cli.main(["run", "--config", str(config), "--"] + in_memory()) == 2
    err = capsys.readouterr().err
    assert "the pipeline failed" in err and "['span-20220109 (1)'], which look like span directories" in err
    assert not os.path.exists(tmp_path / "serving")
    from tfx_pipeline import config as pipeline_config

    assert all(r.pushed_version is None for r in local.list_runs(pipeline_config.load(str(config))))
