"""The TFX Trainer entry point: ``run_fn(fn_args)``.

The pipeline's Trainer component calls ``trainer.run.run_fn`` with TFX's ``FnArgs``. The
experiment (model, tasks, loss weights, hyperparameters) travels in
``custom_config["experiment"]``, the validated dictionary of the user's config file, so
the run is fully described by the pipeline's component properties (and is cached on them).

What it does:
1. trains with ``train_and_evaluate`` on Transform's train and eval files, early-stopping on
   the first task's eval GAUC, with TensorBoard logs under ``fn_args.model_run_dir`` and a
   progress line per interval and per epoch;
2. exports the serving model to ``fn_args.serving_model_dir``: ``serving_default`` takes
   raw JSON-friendly features, ``serving_tf_example`` takes raw tf.Examples (what TFMA's
   Evaluator sends); both carry the Transform graph;
3. writes ``metrics.json`` (per-task eval metrics, examples per second) next to the logs.

Warm start: with ``custom_config["warm_start"]`` true and a ``base_model`` (the latest
blessed model, given to the Trainer by the pipeline), the new model starts from its weights:
ids keep their embedding rows, new ids get fresh rows (``trainer/warm_start.py``); what was
carried is written to ``warm_start.json`` next to the logs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
import tf_keras as keras

from trainer.config import ConfigError, ExperimentConfig

EXPERIMENT_KEY = "experiment"
WARM_START_KEY = "warm_start"
METRICS_FILE = "metrics.json"

log = logging.getLogger(__name__)


class ProgressLogger(keras.callbacks.Callback):
    """One line every `every_seconds` during an epoch and one per epoch with the eval metrics.

    Keras' progress bar is unreadable in a component log (carriage returns) and absent from
    Kubeflow's; these lines read well in both.
    """

    def __init__(self, total_epochs: int, every_seconds: float = 30.0, printer=print):
        super().__init__()
        self.total_epochs = total_epochs
        self.every_seconds = every_seconds
        self.printer = printer
        self._epoch = 0
        self._epoch_started = 0.0
        self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1
        self._epoch_started = self._last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if now - self._last >= self.every_seconds:
            self._last = now
            loss = (logs or {}).get("loss")
            shown = f", loss {loss:.4f}" if loss is not None else ""
            self.printer(f"[train] epoch {self._epoch}/{self.total_epochs}: step {batch + 1}{shown}, "
                         f"{now - self._epoch_started:.0f} s", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())
                          if k.startswith("val_") and (k.endswith("_auc") or k.endswith("_gauc")
                                                       or k.endswith("_logloss")))
        self.printer(f"[train] epoch {epoch + 1}/{self.total_epochs} done in "
                     f"{time.monotonic() - self._epoch_started:.0f} s: loss {logs.get('loss', float('nan')):.4f}"
                     f"{', ' + shown if shown else ''}", flush=True)


def experiment_from_custom_config(custom_config: Optional[Mapping[str, Any]]) -> ExperimentConfig:
    """The experiment in a Trainer's custom config; a clear error when it is missing or wrong."""
    if not custom_config or EXPERIMENT_KEY not in custom_config:
        raise ConfigError(
            f"The Trainer's custom_config must hold the experiment under {EXPERIMENT_KEY!r}. "
            f"Received keys: {sorted(custom_config or {})}. Build the pipeline with "
            "tfx_pipeline.pipeline.create_pipeline, which puts it there.")
    return ExperimentConfig.from_dict(custom_config[EXPERIMENT_KEY])


def _warm_start_model(base_model_dir: Optional[str]):
    """The model (with its vocabularies) saved in a previous serving model directory, or None."""
    from trainer import warm_start

    if not base_model_dir or not tf.io.gfile.exists(base_model_dir):
        return None
    return warm_start.load_base(base_model_dir)


def run_fn(fn_args) -> Dict[str, float]:
    """Trains, evaluates and exports one experiment (TFX Trainer's generic entry point)."""
    from serving.export import export_serving_model
    from trainer.train import train_and_evaluate

    custom = fn_args.custom_config or {}
    config = experiment_from_custom_config(custom)
    base = _warm_start_model(getattr(fn_args, "base_model", None)) if custom.get(WARM_START_KEY) else None
    print(f"[train] {config.model.name.value} on tasks {list(config.task_names)}, "
          f"{config.training.epochs} epochs of batch {config.training.batch_size}"
          f"{', warm-started from ' + fn_args.base_model if base is not None else ''}", flush=True)
    result = train_and_evaluate(
        config,
        fn_args.transform_output,
        train_files=list(fn_args.train_files),
        eval_files=list(fn_args.eval_files),
        log_dir=fn_args.model_run_dir,
        callbacks=[ProgressLogger(config.training.epochs)],
        verbose=0,
        warm_start_from=base,
    )
    export_serving_model(result.model, fn_args.transform_output, fn_args.serving_model_dir,
                         result.model.input_features)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    if result.warm_start is not None:
        from trainer import warm_start

        print(f"[train] {warm_start.summary(result.warm_start)}", flush=True)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, warm_start.WARM_START_FILE), "w") as stream:
            json.dump(result.warm_start, stream, indent=2, sort_keys=True)
    summary = {**result.metrics, "examples_per_second": result.examples_per_second,
               "train_seconds": result.train_seconds, "epochs": len(result.history.get("loss", []))}
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as stream:
        json.dump(summary, stream, indent=2, sort_keys=True)
    print("[train] eval: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items())
                                       if not k.endswith("loss") or k.endswith("_logloss")), flush=True)
    print(f"[train] exported {fn_args.serving_model_dir}", flush=True)
    return summary
