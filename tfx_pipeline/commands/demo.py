"""`ctrflow demo`: the main job on the embedded default data, as `make demo` runs it.

Simulates a small behaviour log, writes a pipeline config (DIN on click and conversion,
``tfx_pipeline/configs/din_two_tasks.yaml``), runs the whole TFX pipeline on the local
orchestrator (ingest, validation, Transform, Trainer, Evaluator, serving check, push), and
scores a few raw requests with the pushed model over TF Serving's REST API (the local
server of `ctrflow serve` on a free port), printing what each step made.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

# A log small enough for a couple of minutes on two cores, large enough to mean something.
DEMO_USERS = 300
DEMO_ITEMS = 800
DEMO_DAYS = 4
DEMO_SEED = 7


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.monotonic()


def run(args: argparse.Namespace) -> int:
    from tfx_pipeline import simulator
    from tfx_pipeline.beam_args import default_beam_args
    from tfx_pipeline.cli import CommandError
    from tfx_pipeline.commands.inspect import summarize
    from tfx_pipeline.commands.run import format_runs
    from tfx_pipeline.config import load
    from tfx_pipeline.runners import local

    log_dir = os.path.join(args.workdir, "log")
    for name in ("log", "ingest", "pipeline", "serving"):
        shutil.rmtree(os.path.join(args.workdir, name), ignore_errors=True)

    started = _step(f"simulate {DEMO_USERS} users, {DEMO_ITEMS} items, {DEMO_DAYS} days -> {log_dir}")
    config = simulator.SimulatorConfig(users=DEMO_USERS, items=DEMO_ITEMS, days=DEMO_DAYS, seed=DEMO_SEED)
    simulator.simulate(config, log_dir, workers=args.workers)
    print(f"done in {time.monotonic() - started:.1f} s")

    started = _step(f"inspect {log_dir}")
    print(summarize(log_dir).format())

    config_path = write_config(args.workdir)
    config = load(config_path)
    started = _step(f"run the TFX pipeline (config {config_path}) on LocalDagRunner")
    try:
        record = local.run(config, default_beam_args(args.workers))
    except Exception as err:
        raise CommandError(f"the pipeline failed: {type(err).__name__}: {err}") from None
    print(format_runs([record]))
    print(f"done in {time.monotonic() - started:.1f} s")

    if not record.pushed_destination:
        raise CommandError(f"the model was not pushed ({record.status}); see `ctrflow report latest --config "
                           f"{config_path}`.")
    started = _step(f"score requests with the pushed model {record.pushed_destination} through the local REST "
                    "server (ctrflow serve)")
    print(score_examples(record.pushed_destination, config))
    print(f"\nnext: ctrflow runs --config {config_path}; ctrflow report latest --config {config_path}")
    return 0


def write_config(workdir: str) -> str:
    """The demo's pipeline config: the shipped DIN two-task config, paths under `workdir`."""
    source = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "din_two_tasks.yaml")
    target = os.path.join(workdir, "pipeline.yaml")
    shutil.copy(source, target)
    return target


def score_examples(model_dir: str, config, count: int = 4) -> str:
    """Scores the first `count` eval examples of the last run as a TF Serving client would: row-form
    JSON instances POSTed to the local REST server (serving/server.py, what `ctrflow serve` runs)
    serving the pushed version; shows request and response."""
    import glob
    import json

    import tensorflow as tf

    from serving import client, requests, server

    base, version = os.path.split(os.path.normpath(model_dir))
    name = config.pipeline.model_name
    pattern = os.path.join(config.pipeline.artifacts_root, "EventLogExampleGen", "examples", "*", "Split-eval", "*")
    files = sorted(glob.glob(pattern))
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(files[-1:], compression_type="GZIP").take(count)]
    app = server.build_app(base, name)
    with server.start(app, port=0, poll_seconds=0) as running:
        rest_client = client.RestClient(running.url, name, version=int(version))
        metadata = rest_client.metadata()
        names = client.input_names(metadata)
        instances = requests.instances(requests.from_tf_examples(serialized, names), names)
        response = rest_client.predict({"instances": instances})
        lines = [f"POST {rest_client.predict_url}"]
    for instance, scores in zip(instances, client.scores_by_row(response, client.output_names(metadata))):
        shown = {k: (v if not isinstance(v, list) or len(v) <= 4 else ["..."] + v[-4:]) for k, v in instance.items()}
        rounded = {task: round(float(value), 4) for task, value in scores.items()}
        lines.append(f"request {json.dumps(shown, default=str)}\n  -> {rounded}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulate a small log, run the whole pipeline, score requests (what `make demo` runs)",
        description="Runs the main job end to end on a small simulated log: the TFX pipeline "
        "with DIN on click and conversion, then scores a few requests with the pushed model. "
        "Overwrites WORKDIR/log, WORKDIR/pipeline, WORKDIR/serving and WORKDIR/pipeline.yaml.",
    )
    parser.add_argument("--workdir", default=".demo", help="where to write (default .demo)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.set_defaults(func=run)
