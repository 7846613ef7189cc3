"""Training and evaluating one experiment on Transform's output.

Used by the TFX Trainer's ``run_fn`` (``trainer/run.py``), by benchmarks and by tests: build
the model under a distribution strategy, fit with early stopping on the first task's eval
GAUC, and return the trained model with its per-task evaluation metrics.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, List, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from trainer import data
from trainer import warm_start as warm
from trainer.config import ExperimentConfig
from trainer.models.base import CTRModel
from trainer.models.factory import build_model, table_row_counts


@dataclasses.dataclass
class TrainResult:
    model: CTRModel
    history: Dict[str, List[float]]
    metrics: Dict[str, float]  # evaluation of the returned (best) weights
    train_seconds: float
    train_examples: int
    warm_start: Optional[Dict] = None  # trainer.warm_start's report, when warm-started

    @property
    def examples_per_second(self) -> float:
        return self.train_examples / self.train_seconds if self.train_seconds else 0.0


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over the visible GPUs when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def use_mixed_precision(enabled: bool) -> bool:
    """float16 compute with float32 variables on a GPU; a no-op on CPU, where it does not help."""
    on = bool(enabled) and bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if on else "float32")
    return on


def monitored_metric(config: ExperimentConfig) -> str:
    """What early stopping watches: the first task's eval GAUC."""
    return f"val_{config.tasks[0].name}_gauc"


class _TrainTime(keras.callbacks.Callback):
    """Seconds spent in training steps (not in validation or callbacks)."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._started = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds += time.perf_counter() - self._started


def train_and_evaluate(
    config: ExperimentConfig,
    transform_output_dir: str,
    transformed_examples_dir: Optional[str] = None,
    log_dir: Optional[str] = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 2,
    strategy: Optional[tf.distribute.Strategy] = None,
    warm_start_from: Optional[warm.BaseModel] = None,
    train_files: Optional[Sequence[str]] = None,
    eval_files: Optional[Sequence[str]] = None,
) -> TrainResult:
    """Trains `config` on the train split, early-stopping on eval GAUC; evaluates the best weights.

    The examples are the ``Split-train`` and ``Split-eval`` of `transformed_examples_dir`, or
    the file patterns `train_files` and `eval_files` (what TFX's Trainer hands ``run_fn``).
    """
    import tensorflow_transform as tft

    if train_files is None or eval_files is None:
        if transformed_examples_dir is None:
            raise ValueError("Give `transformed_examples_dir` or both `train_files` and `eval_files`. "
                             f"Received: train_files={train_files!r}, eval_files={eval_files!r}")
        train_files = [data.split_pattern(transformed_examples_dir, "train")]
        eval_files = [data.split_pattern(transformed_examples_dir, "eval")]

    training = config.training
    tf.keras.utils.set_random_seed(training.seed)
    use_mixed_precision(training.mixed_precision)
    tft_output = tft.TFTransformOutput(transform_output_dir)
    spec = tft_output.transformed_feature_spec()
    row_counts = table_row_counts(transform_output_dir) if config.model.mba_lambda else None
    strategy = strategy or distribution_strategy()
    with strategy.scope():
        model = build_model(config, row_counts)
        model.compile(optimizer=keras.optimizers.Adam(training.learning_rate))
    # Parse only what the model reads: on Amazon Beauty, DIN skips the DIEN negatives and
    # time gaps, a third of each example's values.
    spec = {name: spec[name] for name in model.training_features}
    repeat = training.steps_per_epoch > 0
    train = data.make_dataset(train_files, spec, training.batch_size,
                              shuffle=True, seed=training.seed, num_epochs=None if repeat else 1,
                              shuffle_buffer=training.shuffle_buffer,
                              length_sort_window=training.length_sort_window)
    evaluation = data.make_dataset(eval_files, spec,
                                   training.batch_size, shuffle=False, num_epochs=1)
    warm_report = None
    if warm_start_from is not None:  # ids keep their rows; see trainer/warm_start.py
        model(next(iter(train)))  # create the variables
        tables = warm.vocabulary_tables(model)
        warm_report = warm.warm_start(model, warm_start_from, warm.transform_vocabularies(tft_output, tables), tables)
    model.compute_gauc = True  # accumulated in evaluation steps only
    counter = _TrainTime()
    all_callbacks: List[keras.callbacks.Callback] = [counter, *callbacks]
    if training.early_stopping_patience:
        all_callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitored_metric(config), mode="max", patience=training.early_stopping_patience,
            restore_best_weights=True))
    if log_dir:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    history = model.fit(
        train,
        validation_data=evaluation,
        epochs=training.epochs,
        steps_per_epoch=training.steps_per_epoch or None,
        validation_steps=training.eval_steps or None,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    metrics = model.evaluate(evaluation, steps=training.eval_steps or None, return_dict=True, verbose=0)
    examples = _count_train_examples(history, training, train_files)
    return TrainResult(model, history.history, {k: float(v) for k, v in metrics.items()}, counter.seconds, examples,
                       warm_report)


def _count_train_examples(history, training, train_files: Sequence[str]) -> int:
    """Examples seen in training: epochs x (steps x batch, or the train split's size)."""
    epochs = len(history.epoch)
    if training.steps_per_epoch:
        return epochs * training.steps_per_epoch * training.batch_size
    files = [f for pattern in train_files for f in tf.io.gfile.glob(pattern)]
    size = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return epochs * size


