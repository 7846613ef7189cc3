"""A task owns one objective: its label, its loss, its weight and its metrics."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from trainer.metrics import Calibration, GroupAUC


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know of a task (plain values, serializable)."""

    name: str
    label: str
    weight: float = 1.0
    ctcvr: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@keras.utils.register_keras_serializable(package="ctrflow")
class CTRTask(tfrs.tasks.Ranking):
    """Binary cross-entropy on one label, with AUC, logloss, calibration and GAUC.

    Metric names start with the task name (``click_auc``, ``click_gauc``, ...), so a
    multi-task model reports every task side by side. GAUC needs the user of each example
    (``groups``) and is only accumulated when ``compute_gauc`` is true: it keeps every
    prediction, so the model turns it on for evaluation.

    Args:
      task_name: the task's name, prefix of its metrics.
      label: the label key in the features (``features.LABEL_KEYS``).
      weight: the loss weight in the model's total loss.
      ctcvr: the prediction is pCTR x pCVR over all impressions (ESMM).
    """

    def __init__(self, task_name: str, label: str, weight: float = 1.0, ctcvr: bool = False, **kwargs):
        kwargs.pop("loss", None)
        kwargs.pop("metrics", None)
        super().__init__(
            metrics=[
                keras.metrics.AUC(num_thresholds=1000, name=f"{task_name}_auc"),
                keras.metrics.BinaryCrossentropy(name=f"{task_name}_logloss"),
                Calibration(name=f"{task_name}_calibration"),
            ],
            name=kwargs.pop("name", task_name),
        )
        self.task_name = task_name
        self.label = label
        self.weight = float(weight)
        self.ctcvr = bool(ctcvr)
        self.gauc = GroupAUC(name=f"{task_name}_gauc")

    def call(self, labels: tf.Tensor, predictions: tf.Tensor, groups: Optional[tf.Tensor] = None,
             compute_gauc: bool = False, training: bool = False, compute_metrics: bool = True) -> tf.Tensor:
        labels = tf.reshape(tf.cast(labels, tf.float32), [-1, 1])
        predictions = tf.reshape(tf.cast(predictions, tf.float32), [-1, 1])
        # Mean over the global batch, also when a distribution strategy splits it over replicas.
        loss = tf.nn.compute_average_loss(keras.losses.binary_crossentropy(labels, predictions))
        if compute_metrics:
            for metric in self._ranking_metrics:
                metric.update_state(y_true=labels, y_pred=predictions)
            if compute_gauc and groups is not None:
                self.gauc.update_state(labels, predictions, groups)
        return loss

    def get_config(self) -> Dict[str, Any]:
        return {"task_name": self.task_name, "label": self.label, "weight": self.weight,
                "ctcvr": self.ctcvr, "name": self.name}
