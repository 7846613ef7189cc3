"""The whole pipeline on LocalDagRunner: push, cache, and a worse model that is not blessed."""

import csv
import glob
import os
import random

import pytest

from transforms import features

pytestmark = pytest.mark.slow

COMPONENTS = ("EventLogExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ExampleAnomalyGate",
              "Transform", "Trainer", "Evaluator", "ServingValidator", "Pusher")
IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]


def config_text(log_dir):
    return f"""
pipeline: {{name: e2e, root: pipeline, log_dir: {log_dir}, push_base: serving, model_name: ctr}}
ingest: {{max_history: 20}}
experiment:
  model: {{name: din, embedding_dim: 8, hidden_units: [32, 16], attention_units: [16, 8],
          side_features: [device, page]}}
  tasks:
    - {{name: click, label: click}}
    - {{name: conversion, label: conversion, weight: 0.5, ctcvr: true}}
  training: {{epochs: 2, batch_size: 128, early_stopping_patience: 0}}
evaluation:
  thresholds: {{click: {{auc: 0.55}}}}
  max_regression: 0.01
serving_validation: {{num_examples: 32, num_timing_requests: 10, latency_budget_ms: 2000,
                     batch_latency_budget_ms: 5000}}
"""


def shuffle_clicks(log_dir, spans, seed=0):
    """Moves each click in `spans` to a random impression the same user saw in the hour before it,
    so as many impressions are clicked as before but which ones is noise: a model trained on it is
    worse on the untouched newest span."""
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
                recent = [r for r in seen.get(user, []) if time - 3600 < int(r[features.TIMESTAMP.name]) <= time]
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


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from tfx_pipeline import simulator

    root = tmp_path_factory.mktemp("e2e")
    simulator.simulate(simulator.SimulatorConfig(users=150, items=300, days=3, seed=11), str(root / "log"), workers=1)
    (root / "pipeline.yaml").write_text(config_text(root / "log"))
    return root


def test_first_run_pushes_a_warmed_up_blessed_model_then_a_rerun_is_cached(workdir):
    from tfx_pipeline import config as pipeline_config
    from tfx_pipeline.runners import local

    config = pipeline_config.load(str(workdir / "pipeline.yaml"))
    record = local.run(config, IN_MEMORY)
    for component in COMPONENTS:
        assert record.states.get(component) == "COMPLETE", (component, record.states)
    assert record.blessed is True and record.serving_ok is True
    assert record.metrics["click/auc"] >= 0.55
    assert {"click/gauc", "conversion/auc", "click/logloss", "click/calibration"} <= set(record.metrics)
    pushed = versions(config.pipeline.push_base)
    assert len(pushed) == 1 and pushed[0].isdigit()
    model_dir = os.path.join(config.pipeline.push_base, "ctr", pushed[0])
    assert record.pushed_destination == model_dir
    assert os.path.exists(os.path.join(model_dir, "saved_model.pb"))
    assert os.path.getsize(os.path.join(model_dir, "assets.extra", "tf_serving_warmup_requests")) > 0

    # Unchanged log and config: everything up to the Trainer comes from the cache. The
    # Evaluator runs again (its baseline is now the model just blessed) and the Pusher sees
    # the model is already served, so no second copy appears.
    again = local.run(config, IN_MEMORY)
    assert again.run_id != record.run_id
    for component in ("EventLogExampleGen", "StatisticsGen", "ExampleValidator", "Transform", "Trainer",
                      "ServingValidator"):
        assert again.states.get(component) == "CACHED", (component, again.states)
    assert again.blessed is True and again.pushed_version is None
    assert again.already_served == pushed[0] and again.status == f"already serving v{pushed[0]}"
    assert versions(config.pipeline.push_base) == pushed
    assert [r.run_id for r in local.list_runs(config)] == [record.run_id, again.run_id]


def test_a_model_trained_on_shuffled_clicks_is_not_blessed_and_not_pushed(workdir):
    from tfx_pipeline import config as pipeline_config
    from tfx_pipeline.runners import local

    config = pipeline_config.load(str(workdir / "pipeline.yaml"))
    before = versions(config.pipeline.push_base)
    assert before, "needs the first test's pushed model"
    spans = sorted(os.path.basename(p) for p in glob.glob(str(workdir / "log" / "span-*")))
    shuffle_clicks(str(workdir / "log"), spans[:-1])  # the newest span (eval) stays true

    record = local.run(config, IN_MEMORY)
    assert record.states["Trainer"] == "COMPLETE" and record.states["Evaluator"] == "COMPLETE"
    assert record.blessed is False, record.metrics
    # judged against the blessed model of the first run: AUC fell by more than max_regression
    import tensorflow_model_analysis as tfma

    validation = tfma.load_validation_result(record.evaluation_uri)
    failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
    assert any(f.metric_key.name == "auc" and f.metric_key.output_name == "click"
               and f.metric_threshold.HasField("change_threshold") for f in failures), failures
    assert record.pushed_version is None
    assert versions(config.pipeline.push_base) == before
    assert "not blessed" in record.status


def test_runs_and_report_commands_read_the_history(workdir, capsys, tmp_path):
    from tfx_pipeline import cli

    config = str(workdir / "pipeline.yaml")
    assert cli.main(["runs", "--config", config]) == 0
    shown = capsys.readouterr().out
    assert shown.count("\nrun ") + shown.startswith("run ") == 3
    assert "pushed v" in shown and "already serving v" in shown and "not blessed" in shown
    assert "click/auc" in shown and "Trainer complete" in shown

    from tfx_pipeline import config as pipeline_config
    from tfx_pipeline.runners import local

    first = local.list_runs(pipeline_config.load(config))[0].run_id  # evaluated without a baseline
    for run, verdict in (("latest", "not blessed"), (first, "pushed v")):
        out = tmp_path / "report.html"
        assert cli.main(["report", run, "--config", config, "--out", str(out)]) == 0
        page = out.read_text()
        for part in ("<title>ROC</title>", "<title>calibration</title>", "GAUC by category",
                     "GAUC by history length", verdict, "conversion"):
            assert part in page, (run, part)
    assert cli.main(["report", "no-such-run", "--config", config]) == 2
    assert "Known runs:" in capsys.readouterr().err
