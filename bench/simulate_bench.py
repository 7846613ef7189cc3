"""Benchmark: how fast the simulator writes an event log (about one million events by default).

Run from the repository root:

    .venv/bin/python bench/simulate_bench.py                 # ~1.1M events, csv, 2 workers
    .venv/bin/python bench/simulate_bench.py --format parquet --workers 1

It writes into a temporary directory (removed afterwards unless --keep DIR is given) and
prints the number of events, the wall-clock seconds and events per second. It is a
benchmark, not a test: the figure depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from tfx_pipeline import simulator


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2400, help="users (default: %(default)s; ~1.1M events)")
    parser.add_argument("--items", type=int, default=5000, help="items (default: %(default)s)")
    parser.add_argument("--days", type=int, default=7, help="days (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed (default: %(default)s)")
    parser.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    parser.add_argument("--shards", type=int, default=2, help="shards (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    parser.add_argument("--keep", metavar="DIR", help="write the log here and keep it (must be new or empty)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    config = simulator.SimulatorConfig(
        users=args.users, items=args.items, days=args.days, seed=args.seed,
        shards=args.shards, file_format=args.format,
    )
    scratch = None if args.keep else tempfile.mkdtemp(prefix="simulate_bench-")
    out = args.keep or os.path.join(scratch, "log")
    try:
        started = time.perf_counter()
        manifest = simulator.simulate(config, out, workers=args.workers)
        seconds = time.perf_counter() - started
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    events = manifest.counts["good"]
    print(
        f"simulate: users={args.users} items={args.items} days={args.days} format={args.format} "
        f"shards={args.shards} workers={args.workers} cpus={os.cpu_count()}"
    )
    print(f"events {events:,}  seconds {seconds:.1f}  events/s {events / seconds:,.0f}")
    print("  " + ", ".join(f"{kind} {count:,}" for kind, count in manifest.events_per_type.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
