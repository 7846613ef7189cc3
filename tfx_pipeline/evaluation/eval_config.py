"""The Evaluator's TFMA configuration, built from the experiment and the blessing rules.

Per task (one TFMA output each, the model's ``{task: probability}``): example count, AUC,
GAUC (``tfx_pipeline.evaluation.gauc``), logloss, calibration (mean prediction / mean label),
and the plots the report draws (ROC from the confusion matrices, the calibration plot).
Slices: overall, per category and per history-length bucket (``slicing_features``, a
signature of the exported model, computes the bucket from the raw example).

Blessing: every configured absolute bound must hold on the overall slice, and AUC and GAUC
may not drop more than ``max_regression`` below the latest blessed model's. With no blessed
model yet, TFX evaluates without a baseline and the change thresholds do not apply.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

import tensorflow_model_analysis as tfma

from serving import signatures
from tfx_pipeline.config import AUC_MIN, CALIBRATION_HIGH, CALIBRATION_LOW, GAUC_MIN, LOGLOSS_MAX
from tfx_pipeline.evaluation import gauc
from transforms import features

# Our metric names -> TFMA metric classes (names in the evaluation output).
AUC = "auc"
GAUC = "gauc"
LOGLOSS = "logloss"
CALIBRATION = "calibration"
EXAMPLE_COUNT = "example_count"


def _threshold(lower: Optional[float] = None, upper: Optional[float] = None,
               max_regression: Optional[float] = None) -> Optional[tfma.MetricThreshold]:
    if lower is None and upper is None and max_regression is None:
        return None
    threshold = tfma.MetricThreshold()
    if lower is not None or upper is not None:
        value = tfma.GenericValueThreshold()
        if lower is not None:
            value.lower_bound.value = float(lower)
        if upper is not None:
            value.upper_bound.value = float(upper)
        threshold.value_threshold.CopyFrom(value)
    if max_regression is not None:
        threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -float(max_regression)}))
    return threshold


def _metric(class_name: str, name: str, threshold: Optional[tfma.MetricThreshold] = None,
            module: Optional[str] = None, config: Optional[str] = None) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name=class_name, config=config or f'{{"name": "{name}"}}')
    if module:
        metric.module = module
    if threshold is not None:
        _overall_only(metric, threshold)
    return metric


def _overall_only(metric: tfma.MetricConfig, threshold: tfma.MetricThreshold) -> None:
    """Judges `metric` on the overall slice only (``MetricConfig.threshold`` would hold every
    slice to the bound, failing a model on a handful of cold-start examples)."""
    metric.per_slice_thresholds.append(
        tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold))


def task_metrics(bounds: Mapping[str, float], max_regression: Optional[float]) -> List[tfma.MetricConfig]:
    """The metrics of one task, with its absolute bounds and the regression rule on AUC and GAUC."""
    calibration = None
    if CALIBRATION_LOW in bounds or CALIBRATION_HIGH in bounds:
        calibration = _threshold(bounds.get(CALIBRATION_LOW), bounds.get(CALIBRATION_HIGH))
    group_auc = gauc.metric_config()
    gauc_threshold = _threshold(bounds.get(GAUC_MIN), None, max_regression)
    if gauc_threshold is not None:
        _overall_only(group_auc, gauc_threshold)
    return [
        _metric("ExampleCount", EXAMPLE_COUNT),
        _metric("AUC", AUC, _threshold(bounds.get(AUC_MIN), None, max_regression)),
        group_auc,
        _metric("BinaryCrossentropy", LOGLOSS, _threshold(None, bounds.get(LOGLOSS_MAX))),
        _metric("Calibration", CALIBRATION, calibration),
        _metric("CalibrationPlot", "calibration_plot", config='{"name": "calibration_plot", "num_buckets": 20}'),
        _metric("ConfusionMatrixPlot", "confusion_matrix_plot",
                config='{"name": "confusion_matrix_plot", "num_thresholds": 100}'),
    ]


def make_eval_config(task_labels: Mapping[str, str], thresholds: Mapping[str, Mapping[str, float]],
                     max_regression: float, slice_by_category: bool = True) -> tfma.EvalConfig:
    """The EvalConfig of the pipeline's Evaluator.

    Args:
      task_labels: task name -> label key, in the experiment's order.
      thresholds: task name -> {metric: bound} (see ``tfx_pipeline.config.EvaluationSettings``).
      max_regression: allowed drop of AUC and GAUC against the latest blessed model.
      slice_by_category: add a slice per candidate category.
    """
    slicing = [tfma.SlicingSpec()]
    if slice_by_category:
        slicing.append(tfma.SlicingSpec(feature_keys=[features.CANDIDATE_CATEGORY.name]))
    slicing.append(tfma.SlicingSpec(feature_keys=[features.HISTORY_LENGTH_BUCKET.name]))
    # TFMA hands a model with a single output its predictions as a bare array, not a dict
    # keyed by output name; a one-task experiment is evaluated as an unnamed output ("")
    # with a single label key (`output_task` names it again when results are read).
    single = len(task_labels) == 1
    labels = ({"label_key": next(iter(task_labels.values()))} if single
              else {"label_keys": dict(task_labels)})
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=signatures.SERVING_TF_EXAMPLE,
            preprocessing_function_names=[signatures.SLICING_FEATURES],
            **labels,
        )],
        slicing_specs=slicing,
        metrics_specs=[
            tfma.MetricsSpec(output_names=[] if single else [task],
                             metrics=task_metrics(thresholds.get(task, {}), max_regression))
            for task in task_labels
        ],
        # Not the metrics compiled into the Keras model: they are computed per task above, and
        # TFMA would evaluate the compiled ones without an output name.
        options=tfma.Options(include_default_metrics={"value": False}),
    )


def output_task(output_name: str, task_names: Sequence[str]) -> str:
    """The task of an output name in a TFMA result: the name itself, or the only task for "".

    See ``make_eval_config``: a one-task experiment is evaluated as the unnamed output.
    """
    if output_name == "" and len(task_names) == 1:
        return task_names[0]
    return output_name
