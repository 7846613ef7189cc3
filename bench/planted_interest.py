"""Sequence models against the baseline on the simulator's planted-interest logs.

The simulator's click probability rises with the user's latent interest in the candidate's
category and with how often and how recently the user clicked that category
(tfx_pipeline/simulator.py). A model that attends over the click history with the
candidate as query (DIN, DIEN, INFNet) can read that directly; the baseline sums the
history into one vector first. With few categories the summed embeddings still separate
them and the baseline keeps up, so this benchmark uses 200 categories.

Steps: simulate, ingest (impressions protocol, `last_day` split: the newest day
evaluates), Transform, then train each model on the same examples and report click AUC
and GAUC on the eval day, with the best epoch by eval GAUC (early stopping, patience 1).

    .venv/bin/python bench/planted_interest.py --work /tmp/planted
    .venv/bin/python bench/planted_interest.py --work /tmp/planted --reuse --models dien \
        --model-overrides '{"dien_attention_scorer": "mlp", "attention_activation": "relu"}'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="scratch folder (log, examples, Transform output)")
    parser.add_argument("--reuse", action="store_true", help="reuse the prepared data under --work")
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--categories", type=int, default=200)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--max-history", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default="baseline,din,dien,infnet")
    parser.add_argument("--model-overrides", default="{}", help="JSON merged into every model config")
    args = parser.parse_args()

    from trainer import config as experiment
    from trainer.train import train_and_evaluate

    if not (args.reuse and common.is_prepared(args.work)):
        prepare(args.work, args)
    prepared = common.paths(args.work)
    rows = []
    for name in args.models.split(","):
        started = time.perf_counter()
        config = experiment.with_defaults(
            model={"name": name, "embedding_dim": 8, "hidden_units": [64, 32], "attention_units": [32, 16],
                   "side_features": ["device", "page", "user_segment", "item_price"],
                   **json.loads(args.model_overrides)},
            training={"epochs": args.epochs, "batch_size": 256, "early_stopping_patience": 1, "seed": 1})
        result = train_and_evaluate(config, prepared["graph"], prepared["transformed"],
                                    verbose=0)
        best = max(range(len(result.history["val_click_gauc"])), key=lambda i: result.history["val_click_gauc"][i])
        rows.append((name, result.history["val_click_auc"][best], result.history["val_click_gauc"][best], best + 1,
                     time.perf_counter() - started))
        print(f"{name}: click AUC {rows[-1][1]:.4f}, GAUC {rows[-1][2]:.4f} (epoch {best + 1}), "
              f"{rows[-1][4]:.0f} s", flush=True)
    print("\n| model | click AUC | click GAUC | best epoch |\n|---|---:|---:|---:|")
    for name, auc, gauc, epoch, _ in rows:
        print(f"| {name} | {auc:.4f} | {gauc:.4f} | {epoch} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
