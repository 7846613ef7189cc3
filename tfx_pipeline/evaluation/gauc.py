"""GAUC (impression-weighted per-user AUC) as an exact TFMA metric for the TFX Evaluator.

GAUC (DIN Eq. 10) = sum_u imp_u * AUC_u / sum_u imp_u over the users u whose examples hold
both labels; users with one label class are skipped. `imp_u` is the number of examples of u
(the sum of their example weights when the MetricsSpec is example-weighted). AUC_u is the
tie-aware pair count of `trainer.metrics.auc`: pairs with equal scores count 1/2.

TFMA 0.47 has no per-user AUC (../shared/REFERENCE.md §2.4), and its `AUC` is bucketed
(10,000 thresholds), which is biased on users with a handful of examples. `GroupAUC` keeps
every (user, label, score, weight) of a slice and computes the exact value at the end, so
the Evaluator reports the same number as `trainer.metrics.gauc` and the Keras `GroupAUC`.

References:
    Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
    (arXiv:1706.06978), §6.2, Eq. 10; reczoo/FuxiCTR fuxictr/metrics.py (gAUC).
"""

from __future__ import annotations

import array
import json
from typing import Any, Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import util as tfma_util

from transforms import features

GAUC_NAME = "gauc"
DEFAULT_GROUP_KEY = features.USER_ID.name


class GroupAUC(metric_types.Metric):
    """Exact GAUC: per-user ROC AUC, averaged with the users' example counts as weights.

    For every slice, model and output it computes
    `sum_u n_u * AUC_u / sum_u n_u` over the users u (values of the feature `group_key`)
    that have both a positive and a negative example; `n_u` is u's number of examples and
    `AUC_u` counts ties 1/2. The value equals `trainer.metrics.gauc(groups, labels, scores)`
    on the slice's examples (to float rounding, ~1e-15). It is nan when no user of the slice
    has both classes.

    Why: GAUC is the offline metric of DIN and BARS (DIN §6.2): a global AUC mixes users with
    different click rates, while ads are only ever ranked within one user's request. TFMA has
    no per-user AUC, and a `query_key` ranking metric would need its own MetricsSpec.

    How it runs: a plain `tfma.MetricsSpec` is enough (no `query_key`). The group is read
    from the extracts' `features` (the raw examples parsed by the Evaluator), so
    `group_key` must be a feature of the eval examples, not a model output or a transformed
    feature; the ingested examples carry the raw user id, the default. One value per example
    (shape [1] or a scalar; bytes, str or int, compared as text). Labels and predictions are
    taken like TFMA's binary metrics do (`model_names`, `output_names`, `sub_keys` with
    `class_id` or `k`, `ModelSpec.label_keys` / `prediction_keys`): with
    `output_names=["click", "conversion"]` each output gets its own GAUC. Labels must be 0/1.

    Weights: unweighted (the default in TFX when the ModelSpec has no example weight key),
    a user weighs its number of examples. In an example-weighted MetricsSpec an example of
    weight w counts as w examples, in the user's weight and in its AUC pairs, exactly as
    `sample_weight` in `trainer.metrics.gauc`.

    Cost: exact GAUC cannot be computed from fixed-size summaries, so the accumulator keeps
    every example: memory O(eval examples) per slice (about 25 bytes per example plus one
    dict entry per user; an example counts once per slice it falls in, and once per output
    or sub key), and `extract_output` sorts them, O(n log n). Partial accumulators merge
    exactly, so Beam may split a slice across workers.

    References:
        Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018
        (arXiv:1706.06978), §6.2, Eq. 10.

    Args:
        group_key: the feature holding the user (group) of an example. Defaults to the raw
            user id of transforms/features.py.
        name: metric name in the Evaluator's output.

    Example:
        >>> eval_config = tfma.EvalConfig(
        ...     model_specs=[tfma.ModelSpec(signature_name="serving_tf_example",
        ...                                 label_keys={"click": "click"})],
        ...     metrics_specs=[tfma.MetricsSpec(
        ...         metrics=[tfma.MetricConfig(class_name="AUC"), metric_config()],
        ...         output_names=["click"])],
        ...     slicing_specs=[tfma.SlicingSpec()])
    """

    def __init__(self, group_key: str = DEFAULT_GROUP_KEY, name: str = GAUC_NAME) -> None:
        if not isinstance(group_key, str) or not group_key:
            raise ValueError(
                "`group_key` must be the non-empty name of the feature holding the user. "
                f"Received: group_key={group_key!r}; the default is {DEFAULT_GROUP_KEY!r}.")
        super().__init__(
            metric_util.merge_per_key_computations(_group_auc), group_key=group_key, name=name)

    def _default_name(self) -> str:
        return GAUC_NAME

    @property
    def group_key(self) -> str:
        return self.kwargs["group_key"]


def metric_config(group_key: str = DEFAULT_GROUP_KEY, name: str = GAUC_NAME) -> config_pb2.MetricConfig:
    """The `tfma.MetricConfig` of `GroupAUC`, for a `tfma.MetricsSpec` in an EvalConfig.

    TFMA imports `module`, finds `class_name` and calls it with the JSON `config` as keyword
    arguments, so the Evaluator's Beam workers need this package installed.

    Args:
        group_key: the feature holding the user; see `GroupAUC`.
        name: metric name; give two GAUCs over different groups different names.

    Example:
        >>> metric_config().class_name
        'GroupAUC'
    """
    GroupAUC(group_key=group_key, name=name)  # validates the arguments here, not in the Evaluator
    return config_pb2.MetricConfig(
        class_name=GroupAUC.__name__,
        module=GroupAUC.__module__,
        config=json.dumps({"group_key": group_key, "name": name}, sort_keys=True))


def _group_auc(
    name: str = GAUC_NAME,
    group_key: str = DEFAULT_GROUP_KEY,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = "",
    output_name: str = "",
    sub_key: Optional[metric_types.SubKey] = None,
    aggregation_type: Optional[metric_types.AggregationType] = None,
    class_weights: Optional[Dict[int, float]] = None,
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    """The computation of one (model, output, sub key): one combiner, fed the group feature."""
    if sub_key is not None and sub_key.top_k is not None:
        raise ValueError(
            f"GroupAUC scores one prediction per example. Received: sub_key {sub_key} (top_k) "
            f"for metric {name!r}; use class_id or k in the MetricsSpec's binarize options.")
    key = metric_types.MetricKey(
        name=name,
        model_name=model_name,
        output_name=output_name,
        sub_key=sub_key,
        aggregation_type=aggregation_type,
        example_weighted=example_weighted)
    return [
        metric_types.MetricComputation(
            keys=[key],
            preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[group_key])],
            combiner=_GroupAUCCombiner(key, group_key, eval_config, aggregation_type,
                                       class_weights, example_weighted)),
    ]


class _GroupAUCAccumulator:
    """Every example of a slice: its group (as an index into `groups`), label, score and weight."""

    __slots__ = ["groups", "group_index", "labels", "scores", "weights"]

    def __init__(self) -> None:
        self.groups: Dict[str, int] = {}  # group -> index, in insertion order
        self.group_index = array.array("q")
        self.labels = array.array("b")
        self.scores = array.array("d")
        self.weights = array.array("d")

    def __len__(self) -> int:
        return len(self.scores)

    def _index(self, group: str) -> int:
        index = self.groups.get(group)
        if index is None:
            index = self.groups[group] = len(self.groups)
        return index

    def add(self, group: str, label: int, score: float, weight: float) -> None:
        self.group_index.append(self._index(group))
        self.labels.append(label)
        self.scores.append(score)
        self.weights.append(weight)

    def merge(self, other: _GroupAUCAccumulator) -> None:
        if not len(other):
            return
        remap = np.fromiter((self._index(g) for g in other.groups), dtype=np.int64,
                            count=len(other.groups))
        self.group_index.frombytes(remap[np.frombuffer(other.group_index, dtype=np.int64)].tobytes())
        self.labels.extend(other.labels)
        self.scores.extend(other.scores)
        self.weights.extend(other.weights)

    def value(self) -> float:
        return _gauc_of_arrays(np.frombuffer(self.group_index, dtype=np.int64),
                         np.frombuffer(self.labels, dtype=np.int8),
                         np.frombuffer(self.scores, dtype=np.float64),
                         np.frombuffer(self.weights, dtype=np.float64))


def _gauc_of_arrays(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray,
              weights: np.ndarray) -> float:
    """Exact GAUC of validated arrays (int group ids, 0/1 labels), vectorized: O(n log n).

    The same value as `trainer.metrics.gauc(groups, labels, scores, weights)`, without its
    per-group Python loop (evaluation sets have millions of users).
    """
    if scores.size == 0:
        return float("nan")
    labels = labels.astype(np.float64)
    order = np.lexsort((scores, groups))  # by group, then by score
    groups, labels, scores, weights = groups[order], labels[order], scores[order], weights[order]
    # Blocks: runs of equal (group, score).
    starts = np.empty(scores.size, dtype=bool)
    starts[0] = True
    starts[1:] = (groups[1:] != groups[:-1]) | (scores[1:] != scores[:-1])
    block = np.cumsum(starts) - 1
    positives = np.bincount(block, weights=weights * labels)
    negatives = np.bincount(block, weights=weights * (1.0 - labels))
    block_groups = groups[starts]
    group_starts = np.empty(block_groups.size, dtype=bool)
    group_starts[0] = True
    group_starts[1:] = block_groups[1:] != block_groups[:-1]
    group_of_block = np.cumsum(group_starts) - 1
    # Negative weight in the lower-score blocks of the same group.
    negatives_before = np.cumsum(negatives) - negatives
    negatives_below = negatives_before - negatives_before[group_starts][group_of_block]
    wins = np.bincount(group_of_block, weights=positives * (negatives_below + 0.5 * negatives))
    positive_weight = np.bincount(group_of_block, weights=positives)
    negative_weight = np.bincount(group_of_block, weights=negatives)
    valid = (positive_weight > 0) & (negative_weight > 0)
    if not np.any(valid):
        return float("nan")
    impressions = positive_weight[valid] + negative_weight[valid]
    aucs = wins[valid] / (positive_weight[valid] * negative_weight[valid])
    return float(np.sum(impressions * aucs) / np.sum(impressions))


def _scalar(value: Any) -> float:
    """The one value of a flattened label, prediction or weight (an array of size 1)."""
    return float(np.asarray(value, dtype=np.float64).reshape(-1)[0])


def _as_group(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


class _GroupAUCCombiner(beam.CombineFn):
    """Collects (group, label, score, weight) per example; GAUC on extract."""

    def __init__(self, key: metric_types.MetricKey, group_key: str,
                 eval_config: Optional[config_pb2.EvalConfig],
                 aggregation_type: Optional[metric_types.AggregationType],
                 class_weights: Optional[Dict[int, float]], example_weighted: bool) -> None:
        self._key = key
        self._group_key = group_key
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._example_weighted = example_weighted

    def create_accumulator(self) -> _GroupAUCAccumulator:
        return _GroupAUCAccumulator()

    def _groups(self, element: metric_types.StandardMetricInputs) -> List[str]:
        feature_values = element.features or {}
        value = feature_values.get(self._group_key)
        if value is None:
            raise ValueError(
                f"GroupAUC ({self._key.name!r}) groups examples by the feature "
                f"{self._group_key!r}, but the extracts' features hold {sorted(feature_values)}. "
                "Keep that feature in the eval examples (the Evaluator reads the raw examples), "
                "or pass another `group_key` to metric_config()/GroupAUC.")
        if tfma_util.is_sparse_or_ragged_tensor_value(value):
            value = value.values
        values = np.asarray(value).reshape(-1)
        if values.size == 0:
            raise ValueError(
                f"GroupAUC ({self._key.name!r}) needs one {self._group_key!r} value per example. "
                "Received: an example without one. Fill the feature in every eval example.")
        return [_as_group(v) for v in values]

    def add_input(self, accumulator: _GroupAUCAccumulator,
                  element: metric_types.StandardMetricInputs) -> _GroupAUCAccumulator:
        rows = list(metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            sub_key=self._key.sub_key,
            aggregation_type=self._aggregation_type,
            class_weights=self._class_weights,
            example_weighted=self._example_weighted,
            flatten=True))
        groups = self._groups(element)
        if len(groups) == 1:
            groups = groups * len(rows)
        elif len(groups) != len(rows):
            raise ValueError(
                f"GroupAUC ({self._key.name!r}) needs one {self._group_key!r} value per example "
                f"or per prediction. Received: {len(groups)} values for {len(rows)} predictions "
                f"of output {self._key.output_name!r}.")
        for group, (label, prediction, weight) in zip(groups, rows):
            label, prediction, weight = _scalar(label), _scalar(prediction), _scalar(weight)
            if label not in (0.0, 1.0):
                raise ValueError(
                    f"GroupAUC ({self._key.name!r}) needs 0/1 labels. Received: label {label} "
                    f"for output {self._key.output_name!r}. Point ModelSpec.label_key(s) at a "
                    "binary label, or binarize the output with class_id in the MetricsSpec.")
            if not (weight >= 0 and np.isfinite(weight)):
                raise ValueError(
                    f"GroupAUC ({self._key.name!r}) needs finite non-negative example weights. "
                    f"Received: {weight}. Fix the ModelSpec's example weight key(s).")
            accumulator.add(group, int(label), prediction, weight)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_GroupAUCAccumulator]) -> _GroupAUCAccumulator:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result.merge(accumulator)
        return result

    def extract_output(self, accumulator: _GroupAUCAccumulator) -> Dict[metric_types.MetricKey, float]:
        return {self._key: accumulator.value()}
