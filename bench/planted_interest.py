"""Sequence models against the baseline on the simulator's planted-interest logs.

The simulator's click probability rises with the user's latent interest in the candidate's
category and with how often and how recently the user clicked that category
(tfx_pipeline/simulator.py). A model that attends over the click history with the
candidate as query (DIN, DIEN, INFNet) can read that directly; the baseline sums the
history into one vector first. With few categories the summed embeddings still separate
them and the baseline keeps up, so this benchmark uses 200 categories.

Steps: simulate, ingest (impressions protocol, `last_day` split: the newest day
evaluates), Transform, then train each model on the same examples once per training seed
and report click AUC and GAUC on the eval day, each at its best epoch (early stopping on
eval GAUC, patience 1; the same rule for every model: AUC and GAUC often peak at different
epochs), as the mean and range over seeds and the difference of the means to the
baseline's. Seeds change initialization and shuffling; differences within the seeds'
ranges are noise.

    .venv/bin/python bench/planted_interest.py --work /tmp/planted
    .venv/bin/python bench/planted_interest.py --work /tmp/planted --reuse --models baseline,dien \
        --variant 'dien-alpha0={"name": "dien", "aux_loss_weight": 0}'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import common  # noqa: E402


def prepare(work: str, args) -> None:
    from tfx_pipeline import simulator
    from tfx_pipeline.ingest.config import IngestConfig

    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    simulator.simulate(simulator.SimulatorConfig(users=args.users, items=args.items, days=args.days, seed=args.seed,
                                                 categories=args.categories), os.path.join(work, "log"), workers=2)
    _, report = common.ingest_and_transform(work, IngestConfig(max_history=args.max_history))
    print(f"prepared {report['examples']} in {time.perf_counter() - started:.0f} s", flush=True)


def variants(args) -> List[Tuple[str, Dict[str, Any]]]:
    """(label, model config overrides) per model to train: --models names, then --variant ones."""
    shared = json.loads(args.model_overrides)
    chosen = [(name, {"name": name, **shared}) for name in args.models.split(",") if name]
    for spec in args.variant:
        label, _, overrides = spec.partition("=")
        values = json.loads(overrides or "{}")
        if not label or "name" not in values:
            raise SystemExit(f"--variant must be LABEL={{\"name\": MODEL, ...}}. Received: {spec!r}")
        chosen.append((label, {**shared, **values}))
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="scratch folder (log, examples, Transform output)")
    parser.add_argument("--reuse", action="store_true", help="reuse the prepared data under --work")
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--categories", type=int, default=200)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--seed", type=int, default=5, help="the simulator's seed")
    parser.add_argument("--max-history", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--training-seeds", default="1,2,3",
                        help="each model trains once per seed (initialization and shuffling)")
    parser.add_argument("--models", default="baseline,din,dien,infnet")
    parser.add_argument("--variant", action="append", default=[], metavar='LABEL={"name": MODEL, ...}',
                        help="also train MODEL with these config overrides, reported as LABEL (repeatable)")
    parser.add_argument("--model-overrides", default="{}", help="JSON merged into every model config")
    parser.add_argument("--length-sort-window", type=int, default=0,
                        help="training.length_sort_window of every model (0 = random batches)")
    args = parser.parse_args()

    from trainer import config as experiment
    from trainer.train import train_and_evaluate

    if not (args.reuse and common.is_prepared(args.work)):
        prepare(args.work, args)
    prepared = common.paths(args.work)
    seeds = [int(s) for s in args.training_seeds.split(",")]
    runs: Dict[str, List[Tuple[float, float, int]]] = {}
    for label, model in variants(args):
        for seed in seeds:
            started = time.perf_counter()
            config = experiment.with_defaults(
                model={"embedding_dim": 8, "hidden_units": [64, 32], "attention_units": [32, 16],
                       "side_features": ["device", "page", "user_segment", "item_price"], **model},
                training={"epochs": args.epochs, "batch_size": 256, "early_stopping_patience": 1, "seed": seed,
                          "length_sort_window": args.length_sort_window})
            history = train_and_evaluate(config, prepared["graph"], prepared["transformed"], verbose=0).history
            auc, gauc = history["val_click_auc"], history["val_click_gauc"]
            runs.setdefault(label, []).append((max(auc), max(gauc), len(auc)))
            print(f"{label} seed {seed}: click AUC by epoch {[round(v, 4) for v in auc]}, "
                  f"GAUC {[round(v, 4) for v in gauc]}, {time.perf_counter() - started:.0f} s", flush=True)
    print_table(runs)
    return 0


def print_table(runs: Dict[str, List[Tuple[float, float, int]]]) -> None:
    """Mean and range over seeds per model, and the mean difference to the baseline."""
    def mean(values):
        return sum(values) / len(values)

    reference = runs.get("baseline")
    print("\n| model | click AUC, mean (min-max) | vs baseline | click GAUC, mean (min-max) | vs baseline "
          "| epochs run |\n|---|---:|---:|---:|---:|---|")
    for label, rows in runs.items():
        cells = [label]
        for k in (0, 1):
            values = [r[k] for r in rows]
            cells.append(f"{mean(values):.4f} ({min(values):.4f}-{max(values):.4f})")
            cells.append(f"{mean(values) - mean([r[k] for r in reference]):+.4f}" if reference else "")
        cells.append(", ".join(str(r[2]) for r in rows))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
