"""`ctrflow run` killed with SIGKILL during the Trainer: nothing under the push base changes, and the next
`ctrflow run` resumes from the cached upstream components and pushes.

A tiny simulated log (2 days) and a baseline model trained for one epoch keep the two runs to
a few minutes. The push base already serves a version, as in production; its files (names,
sizes, contents) are compared before the run and after the kill.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from tfx_pipeline.beam_args import in_memory

from .conftest import REPO

UPSTREAM = ("EventLogExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ExampleAnomalyGate",
            "Transform")
CONFIG = """
pipeline: {{name: killed, root: {root}/pipeline, log_dir: {root}/log, push_base: {root}/serving, model_name: ctr}}
ingest: {{max_history: 5}}
experiment:
  model: {{name: baseline, embedding_dim: 4, hidden_units: [8]}}
  tasks:
    - {{name: click, label: click}}
    - {{name: conversion, label: conversion, weight: 0.5, ctcvr: true}}
  training: {{epochs: 1, batch_size: 256, early_stopping_patience: 0}}
evaluation: {{thresholds: {{click: {{logloss_max: 5.0}}}}, max_regression: 0.5, slice_by_category: false}}
serving_validation: {{num_examples: 8, num_timing_requests: 2, latency_budget_ms: 10000,
                     batch_latency_budget_ms: 20000}}
"""


def snapshot(folder):
    """{relative path: (size, sha256)} of every file under `folder`."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as stream:
                digest = hashlib.sha256(stream.read()).hexdigest()
            files[os.path.relpath(path, folder)] = (os.path.getsize(path), digest)
    return files


def start_run(config_path):
    """`ctrflow run` in its own process group, its output lines in a queue."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "tfx_pipeline.cli", "run", "--config", str(config_path), "--",
                                *in_memory()], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    lines: "queue.Queue[str]" = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def wait_for(lines, marker, seconds):
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line == "":
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} line within {seconds} s; the last lines:\n{''.join(seen[-30:])}")


def drain(lines):
    out = []
    while True:
        line = lines.get(timeout=30)
        if line == "":
            return out
        out.append(line)


@pytest.mark.slow
def test_a_run_killed_in_the_trainer_resumes_from_the_cache_and_pushes(tmp_path):
    from serving import testing
    from tfx_pipeline import config as pipeline_config
    from tfx_pipeline import simulator
    from tfx_pipeline.components.pusher import atomic_push
    from tfx_pipeline.runners import local

    simulator.simulate(simulator.SimulatorConfig(users=60, items=120, days=2, seed=3), str(tmp_path / "log"),
                       workers=1)
    config_path = tmp_path / "pipeline.yaml"
    config_path.write_text(CONFIG.format(root=tmp_path))
    config = pipeline_config.load(str(config_path))
    served = os.path.join(config.pipeline.push_base, config.pipeline.model_name)
    atomic_push(testing.write_scoring_model(str(tmp_path / "served_model")), served, now=1)
    before = snapshot(config.pipeline.push_base)

    process, lines = start_run(config_path)
    try:
        wait_for(lines, "[train]", 300)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert snapshot(config.pipeline.push_base) == before
    (killed,) = local.list_runs(config)
    assert killed.states["Trainer"] == "RUNNING" and "Pusher" not in killed.states and killed.pushed_version is None
    assert all(killed.states[c] == "COMPLETE" for c in UPSTREAM), killed.states

    process, lines = start_run(config_path)
    try:
        code = process.wait(400)
        assert code == 0, "".join(drain(lines)[-40:])
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    runs = local.list_runs(config)
    assert [r.run_id for r in runs[:1]] == [killed.run_id] and len(runs) == 2
    resumed = runs[-1]
    assert all(resumed.states[c] == "CACHED" for c in UPSTREAM), resumed.states
    assert resumed.states["Trainer"] == "COMPLETE" and resumed.states["Pusher"] == "COMPLETE", resumed.states
    assert resumed.pushed_version and int(resumed.pushed_version) > 1
    after = snapshot(config.pipeline.push_base)
    assert {k: v for k, v in after.items() if k.startswith(os.path.join("ctr", "1") + os.sep)} == before
    assert os.path.exists(os.path.join(served, resumed.pushed_version, "saved_model.pb"))
    assert sorted(os.listdir(served)) == ["1", resumed.pushed_version]
