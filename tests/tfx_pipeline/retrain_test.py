"""Retraining: the span window, idempotence, the timer, and day-by-day retrains end to end.

The end-to-end scenario (marked slow) is also the suite's check of the whole pipeline on
LocalDagRunner: the first push with its warmed-up SavedModel, a model that regressed against
the blessed one, and the `runs` and `report` commands. (A rerun served from the cache is
checked by tests/reliability/pipeline_kill_test.py; a push of an already served model by
tests/tfx_pipeline/components/pusher_test.py.)
"""

import csv
import glob
import json
import os
import random
import shutil
import types

import numpy as np
import pytest

from tfx_pipeline import retrain
from tfx_pipeline.beam_args import in_memory
from transforms import features

COMPONENTS = ("EventLogExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ExampleAnomalyGate",
              "Transform", "Trainer", "Evaluator", "ServingValidator", "Pusher")


# ---------------------------------------------------------------- the window, without running anything


def write_log(log_dir, span_names, empty=()):
    from tfx_pipeline.eventlog.formats import FileFormat
    from tfx_pipeline.eventlog.logdir import Manifest

    log_dir.mkdir(parents=True)
    Manifest("simulator", FileFormat.CSV, events_per_type={"impression": 10}).write(str(log_dir))
    for name in span_names:
        (log_dir / name).mkdir()
        if name not in empty:
            (log_dir / name / "events-00000.csv").write_text("user_id\n")


def load_config(tmp_path, retrain_section):
    from tfx_pipeline import config as pipeline_config

    path = tmp_path / "pipeline.yaml"
    path.write_text(f"pipeline: {{root: runs, log_dir: log}}\nretrain: {retrain_section}\n")
    return pipeline_config.load(str(path))


def names(window_spans):
    return [s.name for s in window_spans]


def test_the_window_is_the_newest_spans_with_the_newest_for_eval_and_older_ones_for_histories(tmp_path):
    write_log(tmp_path / "log", [f"span-2024010{d}" for d in range(1, 8)])
    window = retrain.plan_window(load_config(tmp_path, "{window_spans: 3, lookback_spans: 2}"))
    assert window.newest.name == "span-20240107" and window.eval.name == "span-20240107"
    assert names(window.train) == ["span-20240104", "span-20240105", "span-20240106"]
    assert names(window.lookback) == ["span-20240102", "span-20240103"]
    assert window.num_spans == 4
    assert window.describe() == ("train on span-20240104..span-20240106 (3 spans), eval on span-20240107, "
                                 "histories from span-20240102..span-20240103 (2 spans)")


def test_a_short_log_trains_on_what_it_has(tmp_path):
    write_log(tmp_path / "log", ["span-20240101", "span-20240102"])
    window = retrain.plan_window(load_config(tmp_path, "{window_spans: 7, lookback_spans: 0}"))
    assert names(window.train) == ["span-20240101"] and window.lookback == [] and window.num_spans == 2


def test_a_missing_day_in_the_window_is_refused_unless_allowed(tmp_path):
    write_log(tmp_path / "log", ["span-20240101", "span-20240102", "span-20240105"])
    with pytest.raises(retrain.RetrainError) as err:
        retrain.plan_window(load_config(tmp_path, "{window_spans: 2, lookback_spans: 0}"))
    assert "['span-20240103', 'span-20240104']" in str(err.value) and "allow_missing_spans" in str(err.value)
    window = retrain.plan_window(load_config(tmp_path, "{window_spans: 2, lookback_spans: 0, allow_missing_spans: true}"))
    assert names(window.train) == ["span-20240101", "span-20240102"]
    # a hole older than the window and its lookback does not matter
    shutil.rmtree(tmp_path / "log")
    write_log(tmp_path / "log", ["span-20240101", "span-20240103", "span-20240104"])
    window = retrain.plan_window(load_config(tmp_path, "{window_spans: 1, lookback_spans: 0}"))
    assert names(window.train) == ["span-20240103"]


def test_an_empty_span_in_the_lookback_is_refused_too(tmp_path):
    write_log(tmp_path / "log", ["span-20240101", "span-20240102", "span-20240103"], empty=["span-20240101"])
    with pytest.raises(retrain.RetrainError, match=r"\['span-20240101'\] of .* hold no log files"):
        retrain.plan_window(load_config(tmp_path, "{window_spans: 1, lookback_spans: 1}"))
    assert retrain.plan_window(load_config(tmp_path, "{window_spans: 1, lookback_spans: 0}")).lookback == []


def test_a_span_counts_as_trained_only_when_a_run_for_it_finished():
    def run(run_id, span, states):
        return types.SimpleNamespace(run_id=run_id, span=span, states=states)

    records = [run("a", 5, {"Trainer": "COMPLETE", "Pusher": "COMPLETE"}),
               run("b", 6, {"Trainer": "FAILED"}),
               run("c", 6, {"Trainer": "RUNNING"}),
               run("d", 5, {"Trainer": "CACHED", "Evaluator": "COMPLETE"})]
    assert retrain.trained_by(records, 5).run_id == "d"
    assert retrain.trained_by(records, 6) is None
    assert retrain.trained_by(records, 7) is None


def test_run_every_keeps_the_schedule_through_failures_and_stops_after_max_runs(tmp_path, monkeypatch, capsys):
    (tmp_path / "pipeline.yaml").write_text("pipeline: {root: runs, log_dir: log}\n")
    outcomes = [RuntimeError("disk full"), retrain.RetrainResult(retrain.NOTHING_TO_DO, "span-20240102 already trained"),
                retrain.RetrainResult(retrain.FAILED, "failed at Trainer", error="OOM")]
    calls, sleeps = [], []

    def fake_retrain(config, beam_args=None):
        calls.append((config.pipeline.name, beam_args))
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(retrain, "retrain", fake_retrain)
    monkeypatch.setattr(retrain.time, "sleep", sleeps.append)
    assert retrain.run_every(str(tmp_path / "pipeline.yaml"), 5.0, max_runs=2, beam_args=["--x"]) == 0
    assert calls == [("ctrflow", ["--x"])] * 2 and len(sleeps) == 1 and 4.0 < sleeps[0] <= 5.0
    out = capsys.readouterr().out
    assert "retrain failed: RuntimeError: disk full" in out and "nothing to do: span-20240102 already trained" in out
    assert "attempt 2 of 2" in out

    calls.clear(), sleeps.clear()
    outcomes.pop(0)
    outcomes.pop(0)
    assert retrain.run_every(str(tmp_path / "pipeline.yaml"), 1.0, max_runs=1) == 1  # the last attempt failed
    assert sleeps == [] and "failed: OOM" in capsys.readouterr().out


# ---------------------------------------------------------------- day by day, end to end

CONFIG = """
pipeline: {name: retrain, root: pipeline, log_dir: log, push_base: serving, model_name: ctr}
ingest: {max_history: 10}
experiment:
  model: {name: din, embedding_dim: 8, hidden_units: [16], attention_units: [8], side_features: [device, page]}
  tasks:
    - {name: click, label: click}
    - {name: conversion, label: conversion, weight: 0.5, ctcvr: true}
  training: {epochs: 2, batch_size: 128, learning_rate: 0.005, early_stopping_patience: 0}
evaluation:
  thresholds: {click: {auc: 0.55}}
  max_regression: 0.05
serving_validation: {num_examples: 16, num_timing_requests: 5, latency_budget_ms: 5000,
                     batch_latency_budget_ms: 10000}
retrain: {window_spans: 2, lookback_spans: 1}
"""


def deliver(workdir, span):
    """The day's span directory arrives in the log, as a daily export would copy it."""
    shutil.copytree(workdir / "stage" / span, workdir / "log" / span)


def flip_clicks(span_dir, click_window_seconds):
    """Corrupts the day's labels: every clicked impression loses its click, every other one gets one.

    The downstream events (cart, fav, buy) go with the clicks. A model good on the true labels
    is as bad on these as it is good (AUC near 1 - AUC)."""
    event, user, item, time = (features.EVENT.name, features.USER_ID.name, features.ITEM_ID.name,
                               features.TIMESTAMP.name)
    impression = features.EventType.IMPRESSION.value
    for path in sorted(glob.glob(os.path.join(span_dir, "*.csv"))):
        with open(path, newline="") as stream:
            reader = csv.DictReader(stream)
            fields, rows = reader.fieldnames, list(reader)
        clicks = {}
        for row in rows:
            if row[event] == features.CLICK_EVENT:
                clicks.setdefault((row[user], row[item]), []).append(int(row[time]))
        flipped = []
        for row in rows:
            if row[event] != impression:
                continue
            flipped.append(row)
            shown = int(row[time])
            if not any(shown <= t <= shown + click_window_seconds for t in clicks.get((row[user], row[item]), [])):
                flipped.append({**row, event: features.CLICK_EVENT, time: str(shown + 2)})
        with open(path, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(flipped)


def shuffle_clicks(log_dir, spans, seed=0):
    """Moves each click in `spans` to a random impression the same user saw in the day before it,
    so each user clicks as often as before but which items is noise: a model trained on it ranks
    a user's impressions worse on the untouched newest span (its GAUC falls; its AUC keeps what
    users' click rates alone explain)."""
    rng = random.Random(seed)
    item, category, event = features.ITEM_ID.name, features.CATEGORY_ID.name, features.EVENT.name
    for path in sorted(p for span in spans for p in glob.glob(os.path.join(log_dir, span, "*.csv"))):
        with open(path, newline="") as stream:
            reader = csv.DictReader(stream)
            fields, rows = reader.fieldnames, list(reader)
        seen = {}
        for row in sorted(rows, key=lambda r: int(r[features.TIMESTAMP.name])):
            user, time = row[features.USER_ID.name], int(row[features.TIMESTAMP.name])
            if row[event] == features.EventType.IMPRESSION.value:
                seen.setdefault(user, []).append(row)
            elif row[event] == features.EventType.CLICK.value:
                recent = [r for r in seen.get(user, []) if time - 86400 < int(r[features.TIMESTAMP.name]) <= time]
                if recent:
                    chosen = rng.choice(recent)
                    row[item], row[category] = chosen[item], chosen[category]
        with open(path, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def versions(push_base):
    folder = os.path.join(push_base, "ctr")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def item_rows(model_dir):
    """(item vocabulary by position, item embedding table) of an exported model."""
    from trainer import warm_start
    from transforms.vocabulary import read_vocabulary

    base = warm_start.load_base(model_dir)
    return read_vocabulary(base.vocabularies[features.ITEM_ID.name]), base.model.item_table.embeddings.numpy()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Four simulated days staged aside; the log starts with day 0 (the seed day: the last_day
    split needs one older span to train on) and day 1."""
    from tfx_pipeline import simulator

    root = tmp_path_factory.mktemp("retrain")
    simulator.simulate(simulator.SimulatorConfig(users=150, items=300, days=4, seed=11), str(root / "stage"),
                       workers=1)
    (root / "log").mkdir()
    shutil.copy(root / "stage" / "log.json", root / "log" / "log.json")
    days = sorted(os.path.basename(p) for p in glob.glob(str(root / "stage" / "span-*")))
    for day in days[:2]:
        deliver(root, day)
    (root / "pipeline.yaml").write_text(CONFIG)
    return types.SimpleNamespace(root=root, days=days, results=[])


def config_of(workdir):
    from tfx_pipeline import config as pipeline_config

    return pipeline_config.load(str(workdir.root / "pipeline.yaml"))


@pytest.mark.slow
def test_day_1_pushes_a_first_blessed_model_and_retrain_is_idempotent(workdir):
    from tfx_pipeline.runners import local

    config = config_of(workdir)
    result = retrain.retrain(config, in_memory())
    workdir.results.append(result)
    record = result.record
    assert result.outcome == retrain.PUSHED, result.describe()
    assert result.span == workdir.days[1] and names(result.window.train) == [workdir.days[0]]
    assert result.base_model is None and result.warm_start is None and not result.model.warm_start
    for component in COMPONENTS:
        assert record.states.get(component) == "COMPLETE", (component, record.states)
    assert record.blessed is True and record.serving_ok is True and record.metrics["click/auc"] >= 0.55
    assert {"click/gauc", "conversion/auc", "click/logloss", "click/calibration"} <= set(record.metrics)
    pushed = versions(config.pipeline.push_base)
    assert len(pushed) == 1 and pushed[0].isdigit() and result.pushed_version == pushed[0]
    model_dir = os.path.join(config.pipeline.push_base, "ctr", pushed[0])
    assert record.pushed_destination == model_dir
    assert os.path.exists(os.path.join(model_dir, "saved_model.pb"))
    assert os.path.getsize(os.path.join(model_dir, "assets.extra", "tf_serving_warmup_requests")) > 0

    nothing = retrain.retrain(config, in_memory())
    assert nothing.outcome == retrain.NOTHING_TO_DO and nothing.record.run_id == record.run_id
    assert nothing.describe().startswith(f"nothing to do: {workdir.days[1]} already trained in run {record.run_id}")
    assert [r.run_id for r in local.list_runs(config)] == [record.run_id]


@pytest.mark.slow
def test_day_2_pushes_a_new_version_warm_started_from_the_last_with_id_rows_carried(workdir):
    config = config_of(workdir)
    day = workdir.days[2]
    previous = workdir.results[-1]
    previous_dir = previous.record.pushed_destination
    deliver(workdir.root, day)
    result = retrain.retrain(config, in_memory())
    workdir.results.append(result)
    assert result.outcome == retrain.PUSHED, result.describe()
    assert result.span == day and result.model.warm_start
    # warm-started from, and judged against, the model the previous retrain pushed
    assert result.base_run == previous.record.run_id
    assert result.warm_start["base_model"] == result.base_model
    assert result.model.previous_vocabularies[features.ITEM_ID.name].startswith(result.base_model)

    # Before training, every id the previous model knew held that model's row: the
    # checksum the Trainer took right after carrying equals the previous model's rows.
    old_tokens, old_rows = item_rows(previous_dir)
    new_tokens, _ = item_rows(result.record.pushed_destination)
    carried = [1 + i for i, t in enumerate(new_tokens) if t and i < len(old_tokens) and old_tokens[i] == t]
    assert len(carried) > 100
    item = result.warm_start["tables"][features.ITEM_ID.name]
    assert item["carried"] == len(carried)
    assert item["carried_sha256"] == warm_start_checksum(old_rows, carried)
    sample = item["sample"]
    assert old_tokens[sample["row"] - 1] == new_tokens[sample["row"] - 1] == sample["token"]
    np.testing.assert_array_equal(np.float32(sample["values"]), old_rows[sample["row"]])
    # no id changed its row between the two vocabularies
    old_position = {t: i for i, t in enumerate(old_tokens) if t}
    assert all(old_position[t] == i for i, t in enumerate(new_tokens) if t in old_position)
    assert len(versions(config.pipeline.push_base)) == 2
    assert [r.pushed_version for r in workdir.results] == versions(config.pipeline.push_base)


def warm_start_checksum(rows, carried):
    from trainer.warm_start import rows_checksum

    return rows_checksum(rows, carried)


@pytest.mark.slow
def test_a_day_with_flipped_labels_is_not_blessed_and_not_pushed(workdir, capsys):
    import tensorflow_model_analysis as tfma

    from tfx_pipeline import cli
    from tfx_pipeline.ingest.config import IngestConfig
    from tfx_pipeline.runners import local

    config = config_of(workdir)
    served = versions(config.pipeline.push_base)
    day = workdir.days[3]
    deliver(workdir.root, day)
    flip_clicks(workdir.root / "log" / day, IngestConfig().click_window_seconds)

    assert cli.main(["retrain", "--config", str(workdir.root / "pipeline.yaml"), "--"] + in_memory()) == 0
    out = capsys.readouterr().out
    assert f"retrain {day}: train on {workdir.days[1]}..{workdir.days[2]} (2 spans), eval on {day}" in out
    assert "warm-started from the latest blessed model" in out
    assert "blessed: no" in out and "not pushed: not blessed; the served model is unchanged" in out
    record = local.list_runs(config)[-1]
    assert record.span is not None and record.blessed is False and record.pushed_version is None
    assert versions(config.pipeline.push_base) == served
    validation = tfma.load_validation_result(record.evaluation_uri)
    failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
    assert any(f.metric_key.name == "auc" and f.metric_key.output_name == "click"
               and f.metric_threshold.HasField("value_threshold") for f in failures), failures

    # A second call: the day was trained (and judged), so there is nothing to do.
    assert cli.main(["retrain", "--config", str(workdir.root / "pipeline.yaml")]) == 0
    assert capsys.readouterr().out.startswith(f"nothing to do: {day} already trained in run {record.run_id} "
                                              "(not blessed)")
    workdir.flipped_run = record.run_id


@pytest.mark.slow
def test_a_model_trained_on_shuffled_clicks_regresses_against_the_blessed_one_and_is_not_pushed(workdir):
    """`ctrflow run`'s pipeline (every span, no warm start) on logs whose older days have noise for
    which items were clicked: judged against the last blessed model on the untouched newest day,
    its click GAUC fell by more than max_regression."""
    import tensorflow_model_analysis as tfma

    from tfx_pipeline.runners import local

    config = config_of(workdir)
    served = versions(config.pipeline.push_base)
    newest = workdir.days[3]
    shutil.rmtree(workdir.root / "log" / newest)
    deliver(workdir.root, newest)  # the corrected delivery of the flipped day
    shuffle_clicks(str(workdir.root / "log"), workdir.days[:3])

    record = local.run(config, in_memory())
    assert record.states["Trainer"] == "COMPLETE" and record.states["Evaluator"] == "COMPLETE"
    assert record.blessed is False, record.metrics
    validation = tfma.load_validation_result(record.evaluation_uri)
    failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
    assert any(f.metric_key.name == "gauc" and f.metric_key.output_name == "click"
               and f.metric_threshold.HasField("change_threshold") for f in failures), failures
    assert record.pushed_version is None and "not blessed" in record.status
    assert versions(config.pipeline.push_base) == served


@pytest.mark.slow
def test_runs_and_report_commands_show_every_retrain(workdir, capsys, tmp_path):
    from tfx_pipeline import cli

    config = str(workdir.root / "pipeline.yaml")
    assert cli.main(["runs", "--config", config]) == 0
    shown = capsys.readouterr().out
    assert shown.count("\nrun ") + shown.startswith("run ") == 4
    assert shown.count("pushed v") == 2 and shown.count("not blessed") == 2
    assert f"run {workdir.flipped_run} " in shown
    assert "click/auc" in shown and "Trainer complete" in shown

    first = workdir.results[0].record.run_id  # evaluated without a baseline
    for run, verdict in (("latest", "not blessed"), (first, "pushed v")):
        out = tmp_path / "report.html"
        assert cli.main(["report", run, "--config", config, "--out", str(out)]) == 0
        page = out.read_text()
        for part in ("<title>ROC</title>", "<title>calibration</title>", "GAUC by category",
                     "GAUC by history length", verdict, "conversion"):
            assert part in page, (run, part)
    assert cli.main(["report", "no-such-run", "--config", config]) == 2
    assert "Known runs:" in capsys.readouterr().err
