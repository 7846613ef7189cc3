"""Benchmark: the DIN protocol on Amazon Beauty, ours against the peer DeepCTR 0.9.4, in one run.

Run from the repository root after `make bench` (installs the `bench` extra):

    .venv/bin/python bench/amazon_bench.py                     # full data, 2 epochs
    .venv/bin/python bench/amazon_bench.py --users 3000        # a quicker subset

Steps, all in this one run:
1. import ../shared/data/amazon_beauty into the canonical log, ingest it with the DIN
   protocol (targets 2..n-1 train, the last click tests, one sampled negative each, one
   negative per history step for DIEN's auxiliary loss), and run Transform;
2. train our baseline, DIN, DIEN and INFNet on the transformed examples;
3. train DeepCTR's DIN and DIEN on the very same examples (the same ids, histories and
   negatives, read back from the transformed TFRecords), with the same embedding size,
   history length, batch size, epochs and optimizer;
4. score every model on the same eval examples with the same metric code (GAUC over users,
   AUC, logloss) and time training (examples per second, training steps only).

DeepCTR's DIEN needs TF1 graph mode, so each DeepCTR model trains in a child process.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict

import numpy as np

import common

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "amazon_beauty")


def prepare(work: str, users: int, max_history: int) -> Dict[str, str]:
    """Import (optionally the first `users` users), ingest with the DIN protocol, transform."""
    from tfx_pipeline.importers import run_import
    from tfx_pipeline.ingest.config import IngestConfig

    source = DATA
    if users:
        source = os.path.join(work, "subset")
        os.makedirs(source, exist_ok=True)
        with open(os.path.join(DATA, "Beauty.txt")) as full, open(os.path.join(source, "Beauty.txt"), "w") as part:
            for index, line in enumerate(full):
                if index >= users:
                    break
                part.write(line)
        shutil.copy(os.path.join(DATA, "Beauty_item2attributes.json"), source)
    run_import("amazon", source, os.path.join(work, "log"))
    prepared, report = common.ingest_and_transform(work, IngestConfig(protocol="din", max_history=max_history, seed=1))
    print(f"examples: {report['examples']}", flush=True)
    return prepared


def load_arrays(prepared: Dict[str, str], split: str) -> Dict[str, np.ndarray]:
    """The transformed examples of one split as NumPy arrays (for DeepCTR and for scoring)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import data

    spec = tft.TFTransformOutput(prepared["graph"]).transformed_feature_spec()
    dataset = data.make_dataset(data.split_pattern(prepared["transformed"], split), spec, 4096, shuffle=False)
    columns: Dict[str, list] = {}
    for batch in dataset:
        for key, value in batch.items():
            columns.setdefault(key, []).append(value.numpy())
    del tf
    return {k: np.concatenate(v) for k, v in columns.items()}


def score(groups, labels, scores) -> Dict[str, float]:
    from trainer.metrics import auc, gauc

    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    logloss = float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)))
    return {"gauc": gauc(groups, labels, scores), "auc": auc(labels, scores), "logloss": logloss}


SORTED = "+sorted"


def train_ours(label: str, prepared, args) -> Dict[str, float]:
    """Trains one of our models; a label NAME+sorted trains NAME on batches sorted by history length."""
    from trainer import config as experiment
    from trainer.train import train_and_evaluate

    name = label.removesuffix(SORTED)
    window = args.length_sort_window if label.endswith(SORTED) else 0
    config = experiment.with_defaults(
        model={"name": name, "embedding_dim": args.embedding_dim, "hidden_units": [200, 80],
               "activation": "dice", "attention_units": [80, 40], "use_time_gaps": False,
               "use_calendar": False, **json.loads(args.model_overrides)},
        training={"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                  "early_stopping_patience": 0, "seed": 1, "length_sort_window": window})
    result = train_and_evaluate(config, prepared["graph"], prepared["transformed"], verbose=0)
    evaluation = load_arrays(prepared, "eval")
    import tensorflow as tf

    scores = []
    for start in range(0, len(evaluation["click"]), 4096):
        batch = {k: tf.constant(v[start:start + 4096]) for k, v in evaluation.items()}
        scores.append(result.model(batch)["click"].numpy())
    metrics = score(evaluation["user_key"], evaluation["click"], np.concatenate(scores))
    metrics["examples_per_second"] = result.examples_per_second
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=0, help="use only the first N users (0 = all 22,363)")
    parser.add_argument("--max-history", type=int, default=50)
    parser.add_argument("--embedding-dim", type=int, default=18, help="per id, as in the DIEN paper's code")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--models", default="baseline,din,dien,infnet,deepctr-din,deepctr-dien",
                        help=f"ours (baseline, din, dien, infnet; NAME{SORTED} on length-sorted batches) "
                             "and DeepCTR's (deepctr-din, deepctr-dien)")
    parser.add_argument("--length-sort-window", type=int, default=16,
                        help=f"batches per window sorted by history length, for NAME{SORTED} models")
    parser.add_argument("--work", default=None, help="keep intermediate data here (default: a temp dir)")
    parser.add_argument("--model-overrides", default="{}",
                        help='JSON of model config values for our models, e.g. \'{"mba_lambda": 0.01}\'')
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the transformed examples already under --work (same --users and --max-history)")
    parser.add_argument("--deepctr-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.deepctr_child:
        return deepctr_child(args)

    work = args.work or tempfile.mkdtemp(prefix="amazon_bench-")
    if args.reuse and common.is_prepared(work):
        prepared = common.paths(work)
    else:
        prepared = prepare(work, args.users, args.max_history)
    results = {}
    for name in args.models.split(","):
        started = time.perf_counter()
        if name.startswith("deepctr-"):
            out = os.path.join(work, f"{name}.json")
            subprocess.run([sys.executable, __file__, "--deepctr-child", name, "--work", work, "--out-json", out]
                           + _shared_flags(args), check=True)
            with open(out) as stream:
                results[name] = json.load(stream)
        else:
            results[name] = train_ours(name, prepared, args)
        print(f"{name}: {results[name]} ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\nAmazon Beauty, DIN protocol, embedding {args.embedding_dim}, history {args.max_history}, "
          f"batch {args.batch_size}, {args.epochs} epochs, Adam {args.learning_rate}")
    print("| model | GAUC | AUC | logloss | train examples/s |")
    print("|---|---:|---:|---:|---:|")
    for name, m in results.items():
        print(f"| {name} | {m['gauc']:.4f} | {m['auc']:.4f} | {m['logloss']:.4f} | {m['examples_per_second']:,.0f} |")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _shared_flags(args) -> list:
    return ["--max-history", str(args.max_history), "--embedding-dim", str(args.embedding_dim),
            "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
            "--learning-rate", str(args.learning_rate)]


class _TrainTime:
    """A Keras callback (built lazily: DeepCTR's Keras) summing the time of training batches."""

    @staticmethod
    def create():
        import tensorflow as tf

        class Callback(tf.keras.callbacks.Callback):
            seconds = 0.0

            def on_train_batch_begin(self, batch, logs=None):
                self._started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                Callback.seconds += time.perf_counter() - self._started

        return Callback()


def _restore_tf_internals_for_deepctr() -> None:
    """DeepCTR 0.9.4's DIEN calls TensorFlow internals that later releases moved or removed
    (array_ops.stack, control_flow_ops.while_loop, ...); point them at the public ops so the
    peer runs on this stack at all. Only names that are missing are set."""
    import tensorflow as tf
    from tensorflow.python.ops import array_ops, control_flow_ops, math_ops
    from tensorflow.python.util import nest

    aliases = {
        array_ops: {"stack": tf.stack, "unstack": tf.unstack, "TensorArray": tf.TensorArray},
        control_flow_ops: {"while_loop": tf.compat.v1.while_loop, "cond": tf.compat.v1.cond,
                           "Assert": tf.debugging.Assert},
        math_ops: {"to_int32": tf.compat.v1.to_int32, "to_int64": tf.compat.v1.to_int64,
                   "range": tf.range},
        nest: {"is_sequence": nest.is_nested},
    }
    for module, names in aliases.items():
        for name, target in names.items():
            if not hasattr(module, name):
                setattr(module, name, target)


def deepctr_child(args) -> int:
    """Trains one DeepCTR model on the prepared examples and writes its metrics as JSON."""
    import tensorflow as tf
    from deepctr.feature_column import SparseFeat, VarLenSparseFeat
    from deepctr.models import DIEN, DIN

    from transforms import features

    dien = args.deepctr_child == "deepctr-dien"
    prepared = common.paths(args.work)
    train, evaluation = load_arrays(prepared, "train"), load_arrays(prepared, "eval")
    if dien:
        tf.compat.v1.disable_eager_execution()  # DeepCTR's DIEN runs only in TF1 graph mode
        _restore_tf_internals_for_deepctr()
    items, categories = features.ITEM_ENCODING.num_rows, features.CATEGORY_ENCODING.num_rows
    dim, length = args.embedding_dim, args.max_history
    xf = features.transformed_name

    def sequence(name, rows, table):
        return VarLenSparseFeat(SparseFeat(name, rows, dim, embedding_name=table), maxlen=length,
                                length_name="seq_length")

    columns = [SparseFeat("item_id", items, dim), SparseFeat("cate_id", categories, dim),
               sequence("hist_item_id", items, "item_id"), sequence("hist_cate_id", categories, "cate_id")]
    if dien:
        columns += [sequence("neg_hist_item_id", items, "item_id"), sequence("neg_hist_cate_id", categories, "cate_id")]

    def inputs(arrays):
        x = {"item_id": arrays[xf("item_id")], "cate_id": arrays[xf("category_id")],
             "hist_item_id": arrays[xf("history_item_id")], "hist_cate_id": arrays[xf("history_category_id")],
             "seq_length": arrays[features.HISTORY_LENGTH.name]}
        if dien:
            x["neg_hist_item_id"] = arrays[xf("history_negative_item_id")]
            x["neg_hist_cate_id"] = arrays[xf("history_negative_category_id")]
        return x

    if dien:
        model = DIEN(columns, ["item_id", "cate_id"], gru_type="AUGRU", use_negsampling=True, alpha=1.0,
                     dnn_hidden_units=(200, 80), dnn_activation="dice", att_hidden_units=(80, 40))
    else:
        model = DIN(columns, ["item_id", "cate_id"], dnn_hidden_units=(200, 80), dnn_activation="dice",
                    att_hidden_size=(80, 40), att_activation="dice", att_weight_normalization=False)
    # Graph mode (DIEN) needs the legacy optimizer class; it is the same Adam algorithm.
    model.compile(tf.keras.optimizers.legacy.Adam(args.learning_rate), "binary_crossentropy")
    timer = _TrainTime.create()
    model.fit(inputs(train), train["click"], batch_size=args.batch_size, epochs=args.epochs, verbose=0,
              callbacks=[timer], shuffle=True)
    predictions = model.predict(inputs(evaluation), batch_size=4096)[:, 0]
    metrics = score(evaluation[features.USER_KEY.name], evaluation["click"], predictions)
    metrics["examples_per_second"] = args.epochs * len(train["click"]) / type(timer).seconds
    with open(args.out_json, "w") as stream:
        json.dump(metrics, stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
