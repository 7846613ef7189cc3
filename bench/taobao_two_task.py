"""Two tasks on the Taobao log: click and conversion (as pCTR x pCVR), per-task AUC and GAUC.

Run from the repository root:

    .venv/bin/python bench/taobao_two_task.py                 # DIN and the baseline
    .venv/bin/python bench/taobao_two_task.py --models din

Steps: import ../shared/data/taobao into the canonical log (China time, one span a day),
ingest it with the sampled protocol (every click a positive with one popularity-sampled
negative at the same time and history; a buy of the clicked item within 7 days makes the
conversion label), evaluate on the newest day, run Transform, then train each model on
both tasks and print per-task AUC, GAUC, logloss and calibration on the eval day.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import common

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "taobao_userbehavior")


def prepare(work: str, max_history: int):
    from tfx_pipeline.importers import run_import
    from tfx_pipeline.ingest.config import IngestConfig

    run_import("taobao", DATA, os.path.join(work, "log"))
    prepared, report = common.ingest_and_transform(
        work, IngestConfig(protocol="sampled", max_history=max_history, seed=1))
    return report, prepared["graph"], prepared["transformed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="baseline,din")
    parser.add_argument("--max-history", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--work", default=None, help="keep intermediate data here (default: a temp dir)")
    args = parser.parse_args()

    from trainer import config as experiment
    from trainer.train import train_and_evaluate

    work = args.work or tempfile.mkdtemp(prefix="taobao_two_task-")
    report, graph, transformed = prepare(work, args.max_history)
    counts = report["examples"]
    print(f"examples: {counts}", flush=True)
    rows = []
    for name in args.models.split(","):
        config = experiment.with_defaults(
            model={"name": name, "embedding_dim": 16, "hidden_units": [200, 80]},
            tasks=[{"name": "click", "label": "click"},
                   {"name": "conversion", "label": "conversion", "ctcvr": True}],
            training={"epochs": args.epochs, "batch_size": 256, "early_stopping_patience": 0, "seed": 1})
        started = time.perf_counter()
        result = train_and_evaluate(config, graph, transformed, verbose=0)
        m = result.metrics
        rows.append((name, m))
        print(f"{name}: {m} ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\nTaobao, sampled protocol, eval = newest day, history {args.max_history}, embedding 16, "
          f"{args.epochs} epochs; conversion = pCTR x pCVR over all examples")
    print("| model | click AUC | click GAUC | click logloss | conversion AUC | conversion GAUC | conversion calibration |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, m in rows:
        print(f"| {name} | {m['click_auc']:.4f} | {m['click_gauc']:.4f} | {m['click_logloss']:.4f} | "
              f"{m['conversion_auc']:.4f} | {m['conversion_gauc']:.4f} | {m['conversion_calibration']:.3f} |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
