"""Benchmark: why retraining matters when interests drift: a frozen model against daily retrains.

Run from the repository root:

    .venv/bin/python bench/retrain_drift.py                       # 300 users, 7 days, drift 0.5
    .venv/bin/python bench/retrain_drift.py --users 600 --days 8 --keep /tmp/drift

The simulator replaces one of a user's interest categories with probability ``--drift`` a
day, so what a model learnt about who clicks what goes stale. The log arrives day by day
(``span-YYYYMMDD`` directories copied into the log) and ``ctrflow retrain``
(``tfx_pipeline.retrain.retrain``, the whole TFX pipeline) runs after each day, from day
``--train-day`` on, with a rolling window of ``--window`` training spans, warm-started from
the latest blessed model. The model of the first retrain is kept frozen.

For every later day j, on the examples of day j (the eval split of run j):

- frozen: the model of the first retrain (trained up to day D-1, pushed at day D);
- served: the model serving on day j, pushed by the retrain of day j-1 (the frozen one on D+1);
- retrained: the candidate of run j, trained up to day j-1 (what the next day would serve).

AUC and GAUC of the click task are computed here, with the same code for every model
(``trainer.metrics``). Thresholds are lenient (``--max-regression``), so the numbers show
the models, not the blessing rules. It is a benchmark, not a test: it takes minutes per
day on two cores.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

from tfx_pipeline.beam_args import in_memory

CONFIG = """
pipeline: {{name: drift, root: pipeline, log_dir: log, push_base: serving, model_name: ctr}}
ingest: {{max_history: 20}}
experiment:
  model: {{name: din, embedding_dim: 8, hidden_units: [32, 16], attention_units: [16, 8],
          side_features: [device, page]}}
  tasks:
    - {{name: click, label: click}}
    - {{name: conversion, label: conversion, weight: 0.5, ctcvr: true}}
  training: {{epochs: {epochs}, batch_size: 128, learning_rate: 0.003, early_stopping_patience: 0}}
evaluation:
  thresholds: {{click: {{auc: 0.5}}}}
  max_regression: {max_regression}
  slice_by_category: false
serving_validation: {{num_examples: 16, num_timing_requests: 5, latency_budget_ms: 5000,
                     batch_latency_budget_ms: 10000}}
retrain: {{window_spans: {window}, lookback_spans: {window}}}
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300, help="users (default: %(default)s)")
    parser.add_argument("--items", type=int, default=600, help="items (default: %(default)s)")
    parser.add_argument("--days", type=int, default=7, help="simulated days (default: %(default)s)")
    parser.add_argument("--drift", type=float, default=0.5, help="daily interest drift (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=5, help="simulator seed (default: %(default)s)")
    parser.add_argument("--train-day", type=int, default=2,
                        help="0-based day D of the first retrain, whose model stays frozen (default: %(default)s)")
    parser.add_argument("--window", type=int, default=2, help="training spans per retrain (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per retrain (default: %(default)s)")
    parser.add_argument("--max-regression", type=float, default=0.2,
                        help="allowed AUC drop against the blessed model (default: %(default)s)")
    parser.add_argument("--keep", metavar="DIR", help="work here and keep it (must be new or empty)")
    args = parser.parse_args()
    if not 1 <= args.train_day < args.days - 1:
        parser.error(f"--train-day must be in [1, days - 2] = [1, {args.days - 2}]. Received: {args.train_day}")
    return args


def read_examples(examples_uri: str):
    """(serialized eval tf.Examples, click labels, user ids) of an ExampleGen output."""
    import tensorflow as tf

    from transforms import features

    files = sorted(glob.glob(os.path.join(examples_uri, "Split-eval", "*")))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    labels, users = [], []
    for record in records:
        example = tf.train.Example.FromString(record)
        labels.append(example.features.feature[features.CLICK_LABEL.name].int64_list.value[0])
        users.append(example.features.feature[features.USER_ID.name].bytes_list.value[0])
    return records, np.asarray(labels), np.asarray(users)


def click_scores(model_dir: str, records: List[bytes], batch: int = 512) -> np.ndarray:
    import tensorflow as tf

    from serving import signatures
    from transforms import features

    serve = tf.saved_model.load(model_dir).signatures[signatures.SERVING_TF_EXAMPLE]
    scores = []
    for start in range(0, len(records), batch):
        outputs = serve(tf.constant(records[start:start + batch]))
        scores.append(np.reshape(outputs[features.CLICK_LABEL.name].numpy(), [-1]))
    return np.concatenate(scores)


def measure(model_dir: str, records, labels, users) -> Dict[str, float]:
    from trainer import metrics

    scores = click_scores(model_dir, records)
    return {"auc": metrics.auc(labels, scores), "gauc": metrics.gauc(users, labels, scores)}


def main() -> int:
    args = parse_args()
    from tfx_pipeline import config as pipeline_config
    from tfx_pipeline import retrain, simulator

    work = args.keep or tempfile.mkdtemp(prefix="retrain-drift-")
    started = time.monotonic()
    try:
        stage, log = os.path.join(work, "stage"), os.path.join(work, "log")
        simulator.simulate(simulator.SimulatorConfig(users=args.users, items=args.items, days=args.days,
                                                     seed=args.seed, drift=args.drift), stage, workers=1)
        os.makedirs(log)
        shutil.copy(os.path.join(stage, "log.json"), log)
        days = sorted(d for d in os.listdir(stage) if d.startswith("span-"))
        path = os.path.join(work, "pipeline.yaml")
        with open(path, "w") as stream:
            stream.write(CONFIG.format(window=args.window, epochs=args.epochs, max_regression=args.max_regression))
        config = pipeline_config.load(path)

        def deliver(day: str) -> None:
            shutil.copytree(os.path.join(stage, day), os.path.join(log, day))

        for day in days[:args.train_day + 1]:
            deliver(day)
        first = retrain.retrain(config, in_memory())
        print(first.describe(), flush=True)
        if first.outcome != retrain.PUSHED:
            print(f"the first retrain was not pushed ({first.reason}); lower the thresholds or add users.")
            return 1
        frozen = served = first.record.pushed_destination
        rows = []
        for j in range(args.train_day + 1, args.days):
            deliver(days[j])
            result = retrain.retrain(config, in_memory())
            print(result.describe(), flush=True)
            record = result.record
            if result.outcome == retrain.FAILED or not record.examples_uri:
                print(f"{days[j]}: the retrain failed; stopping.")
                return 1
            records, labels, users = read_examples(record.examples_uri)
            candidate = os.path.join(record.model_uri, "Format-Serving")
            rows.append({"day": j, "span": days[j], "examples": len(records), "ctr": float(labels.mean()),
                         "frozen": measure(frozen, records, labels, users),
                         "served": measure(served, records, labels, users),
                         "retrained": measure(candidate, records, labels, users),
                         "pushed": result.outcome == retrain.PUSHED})
            if result.outcome == retrain.PUSHED:
                served = record.pushed_destination
        print()
        print(f"Frozen model of day {args.train_day} against daily retrains: {args.users} users, {args.items} items, "
              f"drift {args.drift}, window {args.window} spans, DIN, {args.epochs} epochs; click AUC / GAUC on "
              f"each day's examples")
        print()
        print("| day | examples | CTR | frozen (day D) | served (retrained up to j-2) | retrained (up to j-1) "
              "| retrained - frozen AUC |")
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            cells = [f"{row[k]['auc']:.4f} / {row[k]['gauc']:.4f}" for k in ("frozen", "served", "retrained")]
            print(f"| D+{row['day'] - args.train_day} ({row['span']}) | {row['examples']:,} | {row['ctr']:.3f} | "
                  + " | ".join(cells) + f" | {row['retrained']['auc'] - row['frozen']['auc']:+.4f} |")
        print()
        print(f"total {time.monotonic() - started:.0f} s")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
