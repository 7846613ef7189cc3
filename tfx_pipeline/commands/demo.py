"""`ctrflow demo`: the main job on the embedded default data, as `make demo` runs it.

Simulates a small behaviour log, validates it, and ingests it into training examples
with the Beam ingest pipeline, printing what each step made.
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
    from tfx_pipeline.cli import CommandError
    from tfx_pipeline.commands.inspect import summarize
    from tfx_pipeline.ingest import pipeline as ingest
    from tfx_pipeline.ingest.config import IngestConfig

    log_dir = os.path.join(args.workdir, "log")
    ingest_dir = os.path.join(args.workdir, "ingest")
    for directory in (log_dir, ingest_dir):
        shutil.rmtree(directory, ignore_errors=True)

    started = _step(f"simulate {DEMO_USERS} users, {DEMO_ITEMS} items, {DEMO_DAYS} days -> {log_dir}")
    config = simulator.SimulatorConfig(users=DEMO_USERS, items=DEMO_ITEMS, days=DEMO_DAYS, seed=DEMO_SEED)
    simulator.simulate(config, log_dir, workers=args.workers)
    print(f"done in {time.monotonic() - started:.1f} s")

    started = _step(f"inspect {log_dir}")
    print(summarize(log_dir).format())

    started = _step(f"ingest with Beam ({args.workers} worker processes) -> {ingest_dir}")
    outputs = ingest.IngestOutputs(os.path.join(ingest_dir, "examples"), os.path.join(ingest_dir, "dead_letters"))
    try:
        report = ingest.run_ingest(log_dir, outputs, IngestConfig(), ingest.default_beam_args(args.workers))
    except ingest.IngestError as err:
        raise CommandError(str(err)) from None
    print(ingest.format_report(report))
    print(f"examples in {outputs.examples_dir}, done in {time.monotonic() - started:.1f} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulate a small log, validate and ingest it (what `make demo` runs)",
        description="Runs the main job end to end on a small simulated log and prints what "
        "each step made. Overwrites WORKDIR/log and WORKDIR/ingest.",
    )
    parser.add_argument("--workdir", default=".demo", help="where to write (default .demo)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.set_defaults(func=run)
