"""Benchmark: events per second of the Beam ingest on simulated logs, and how it scales.

Run from the repository root (after `make setup`):

    .venv/bin/python bench/ingest_bench.py                      # ~1M and ~4M events, 2 workers
    .venv/bin/python bench/ingest_bench.py --users 600 2400     # smaller sizes

For each size it simulates a log (same items, days and seed; only the number of users
grows), runs ingest with the default Beam settings (DirectRunner, multi-processing, one
worker per core) and prints events, examples, wall seconds and events per second, then the
ratio of time to the ratio of events between the smallest and each larger size (1.0 is
linear). Ingest time includes Beam's start-up of its worker processes. Logs and outputs go
to a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from tfx_pipeline import simulator
from tfx_pipeline.beam_args import default_beam_args
from tfx_pipeline.ingest import pipeline as ingest
from tfx_pipeline.ingest.config import IngestConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[2200, 8800],
                        help="users per size (default: %(default)s, about 1M and 4M events)")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="Beam worker processes (default: %(default)s)")
    args = parser.parse_args()

    rows = []
    scratch = tempfile.mkdtemp(prefix="ingest_bench-")
    try:
        for users in args.users:
            log_dir = os.path.join(scratch, f"log-{users}")
            config = simulator.SimulatorConfig(users=users, items=args.items, days=args.days, seed=args.seed)
            manifest = simulator.simulate(config, log_dir, workers=args.workers)
            events = manifest.counts["good"]
            outputs = ingest.IngestOutputs(os.path.join(scratch, f"ex-{users}"), os.path.join(scratch, f"dl-{users}"))
            started = time.perf_counter()
            report = ingest.run_ingest(log_dir, outputs, IngestConfig(), default_beam_args(args.workers))
            seconds = time.perf_counter() - started
            examples = sum(report["examples"].values())
            rows.append((users, events, examples, seconds))
            print(f"users {users:,}: events {events:,}, examples {examples:,}, "
                  f"{seconds:.1f} s, {events / seconds:,.0f} events/s", flush=True)
            shutil.rmtree(log_dir)
            shutil.rmtree(outputs.examples_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    base_users, base_events, _, base_seconds = rows[0]
    print(f"\ningest on {os.cpu_count()} cores, DirectRunner multi_processing x{args.workers}")
    print("| events | examples | seconds | events/s | time ratio / events ratio |")
    print("|---:|---:|---:|---:|---:|")
    for users, events, examples, seconds in rows:
        scaling = (seconds / base_seconds) / (events / base_events)
        print(f"| {events:,} | {examples:,} | {seconds:.0f} | {events / seconds:,.0f} | {scaling:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
