"""The pipeline configuration file: what `ctrflow run --config FILE` reads.

One YAML (or JSON) file with six sections, each checked with errors that name the bad
key's path and what was expected::

    pipeline:            # where things live
      name: ctrflow
      root: runs/ctrflow           # artifacts and the ML Metadata SQLite file
      log_dir: data/log            # the canonical event log (span-YYYYMMDD/ directories)
      push_base: serving           # TF Serving model base: <push_base>/<model_name>/<version>/
      model_name: ctr
      beam_args: []                # e.g. ["--runner=DirectRunner", "--direct_num_workers=4"]
    ingest: {...}                  # tfx_pipeline.ingest.config.IngestConfig fields
    experiment: {model: {...}, tasks: [...], training: {...}}   # trainer.config.ExperimentConfig
    evaluation:
      thresholds: {click: {auc: 0.6, gauc: 0.55}}   # absolute lower bounds per task
      max_regression: 0.01         # allowed drop in AUC and GAUC against the last blessed model
      history_buckets: [1, 5, 20, 50]
    serving_validation:            # tfx_pipeline.components.serving_validator.ServingValidationConfig
      mode: local                  # local (a separate process, no container) or docker (InfraValidator)
      latency_budget_ms: 50        # p99 at batch 1; batch_latency_budget_ms at batch_size
    retrain:                       # `ctrflow retrain` (tfx_pipeline/retrain.py)
      window_spans: 7              # training spans in the rolling window (the newest span evaluates)
      lookback_spans: 7            # older spans that only feed behaviour histories
      warm_start: true             # start from the latest blessed model (ids keep their rows)
      allow_missing_spans: false   # refuse a window with a missing day

Relative paths are relative to the directory of the config file, so a config and its data
can move together.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from tfx_pipeline.components.serving_validator import ServingValidationConfig
from tfx_pipeline.ingest.config import IngestConfig
from trainer.config import ConfigError, ExperimentConfig, read_file
from transforms import features

# The keys of a task's bounds under `evaluation.thresholds`.
AUC_MIN, GAUC_MIN, CALIBRATION_LOW, CALIBRATION_HIGH, LOGLOSS_MAX = (
    "auc", "gauc", "calibration_low", "calibration_high", "logloss_max")
THRESHOLD_METRICS = (AUC_MIN, GAUC_MIN, CALIBRATION_LOW, CALIBRATION_HIGH, LOGLOSS_MAX)


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    name: str = "ctrflow"
    root: str = "pipeline"
    log_dir: str = "log"
    push_base: str = "serving"
    model_name: str = "ctr"
    beam_args: Tuple[str, ...] = ()
    enable_cache: bool = True

    @property
    def metadata_path(self) -> str:
        """The embedded ML Metadata store (SQLite) of the local orchestrator."""
        return os.path.join(self.root, "metadata.sqlite")

    @property
    def artifacts_root(self) -> str:
        return os.path.join(self.root, "artifacts")


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """Blessing rules of the Evaluator.

    ``thresholds``: per task, absolute bounds: ``auc`` and ``gauc`` are lower bounds,
    ``calibration_low``/``calibration_high`` bound mean prediction / mean label, and
    ``logloss_max`` an upper bound. ``max_regression``: the largest drop in AUC and GAUC
    allowed against the latest blessed model (absolute, e.g. 0.01); the first run has no
    baseline and is judged by the thresholds alone. ``history_buckets``: boundaries of the
    history-length slices.
    """

    thresholds: Mapping[str, Mapping[str, float]] = dataclasses.field(
        default_factory=lambda: {"click": {"auc": 0.55}})
    max_regression: float = 0.01
    history_buckets: Tuple[int, ...] = features.HISTORY_LENGTH_BUCKETS
    slice_by_category: bool = True


@dataclasses.dataclass(frozen=True)
class RetrainSettings:
    """What `ctrflow retrain` trains on.

    ``window_spans``: the training spans of the rolling window, newest first. With the
    ``last_day`` split the newest span is the eval span on top of them, so a retrain reads
    ``window_spans + 1`` spans; with the other splits it reads ``window_spans``.
    ``lookback_spans``: older spans that only feed behaviour histories (0 = none).
    ``warm_start``: start from the latest blessed model; its vocabularies seed the new run's
    either way, so ids keep their rows. ``allow_missing_spans``: train on a window with a
    missing day instead of refusing it.
    """

    window_spans: int = 7
    lookback_spans: int = 7
    warm_start: bool = True
    allow_missing_spans: bool = False


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    pipeline: PipelineSettings = PipelineSettings()
    ingest: IngestConfig = IngestConfig()
    experiment: ExperimentConfig = ExperimentConfig()
    evaluation: EvaluationSettings = EvaluationSettings()
    serving_validation: ServingValidationConfig = ServingValidationConfig()
    retrain: RetrainSettings = RetrainSettings()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str = ".") -> "PipelineConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"The pipeline config must be a mapping of sections. Received: {data!r}")
        sections = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - sections)
        if unknown:
            raise ConfigError(f"Unknown sections {unknown} in the pipeline config. Expected some of {sorted(sections)}.")
        pipeline = _simple(PipelineSettings, data.get("pipeline", {}), "pipeline")
        pipeline = dataclasses.replace(pipeline, **{
            key: _resolve(base_dir, getattr(pipeline, key)) for key in ("root", "log_dir", "push_base")})
        try:
            ingest = IngestConfig.from_dict(data.get("ingest", {}) or {})
        except ValueError as err:
            raise ConfigError(f"`ingest`: {err}") from None
        try:
            experiment = ExperimentConfig.from_dict(data.get("experiment", {}) or {})
        except ConfigError as err:
            raise ConfigError(f"`experiment`: {err}") from None
        evaluation = _simple(EvaluationSettings, data.get("evaluation", {}), "evaluation")
        try:
            serving = _simple(ServingValidationConfig, data.get("serving_validation", {}), "serving_validation")
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"`serving_validation`: {err}") from None
        if serving.model_name != pipeline.model_name:  # the served name is the pipeline's
            serving = dataclasses.replace(serving, model_name=pipeline.model_name)
        retrain = _simple(RetrainSettings, data.get("retrain", {}), "retrain")
        config = cls(pipeline, ingest, experiment, evaluation, serving, retrain)
        _validate(config)
        return config

    def to_dict(self) -> Dict[str, Any]:
        return {
            "pipeline": dataclasses.asdict(self.pipeline),
            "ingest": json.loads(self.ingest.to_json()),
            "experiment": self.experiment.to_dict(),
            "evaluation": json.loads(json.dumps(dataclasses.asdict(self.evaluation))),
            "serving_validation": dataclasses.asdict(self.serving_validation),
            "retrain": dataclasses.asdict(self.retrain),
        }


def load(path: str) -> PipelineConfig:
    """Reads a pipeline config from YAML (.yaml/.yml) or JSON (.json)."""
    data = read_file(path, "Start from tfx_pipeline/configs/din_two_tasks.yaml or run `make demo`, "
                           "which writes .demo/pipeline.yaml.")
    try:
        return PipelineConfig.from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _resolve(base_dir: str, path: str) -> str:
    if "://" in path or os.path.isabs(path):  # URIs (gs://, s3://, hdfs://) are used as they are
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def _simple(cls, data: Any, section: str):
    """A flat dataclass from a mapping: unknown keys and wrong types are errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"`{section}` must be a mapping. Received: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"Unknown keys {unknown} in `{section}`. Expected some of {sorted(fields)}.")
    values = {}
    for key, value in data.items():
        default = getattr(cls(), key)
        path = f"{section}.{key}"
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = type(default)(value) if ok and isinstance(default, float) else value
            ok = ok and (isinstance(default, float) or isinstance(value, int))
        elif isinstance(default, str):
            ok = isinstance(value, str) and bool(value)
        elif isinstance(default, tuple):
            ok = isinstance(value, (list, tuple))
            value = tuple(value) if ok else value
        else:
            ok = isinstance(value, Mapping)
        if not ok:
            raise ConfigError(f"`{path}` must be like {default!r} ({type(default).__name__}). Received: {value!r}")
        values[key] = value
    return cls(**values)


def _validate(config: PipelineConfig) -> None:
    tasks = {t.name for t in config.experiment.tasks}
    evaluation = config.evaluation
    for task, bounds in evaluation.thresholds.items():
        if task not in tasks:
            raise ConfigError(f"`evaluation.thresholds.{task}`: no such task. The experiment's tasks are {sorted(tasks)}.")
        if not isinstance(bounds, Mapping):
            raise ConfigError(f"`evaluation.thresholds.{task}` must map metric names to numbers. Received: {bounds!r}")
        for metric, value in bounds.items():
            if metric not in THRESHOLD_METRICS:
                raise ConfigError(f"`evaluation.thresholds.{task}.{metric}`: unknown metric. "
                                  f"Expected some of {list(THRESHOLD_METRICS)}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"`evaluation.thresholds.{task}.{metric}` must be a number. Received: {value!r}")
    if not 0 <= evaluation.max_regression < 1:
        raise ConfigError(f"`evaluation.max_regression` must be in [0, 1). Received: {evaluation.max_regression!r}")
    buckets = evaluation.history_buckets
    if not buckets or any(not isinstance(b, int) or b < 1 for b in buckets) or list(buckets) != sorted(set(buckets)):
        raise ConfigError(f"`evaluation.history_buckets` must be increasing positive integers. Received: {list(buckets)}")
    retrain = config.retrain
    if retrain.window_spans < 1:
        raise ConfigError(f"`retrain.window_spans` must be at least 1. Received: {retrain.window_spans!r}")
    if retrain.lookback_spans < 0:
        raise ConfigError(f"`retrain.lookback_spans` must be 0 or more. Received: {retrain.lookback_spans!r}")
    if any(not isinstance(a, str) for a in config.pipeline.beam_args):
        raise ConfigError(f"`pipeline.beam_args` must be a list of strings. Received: {list(config.pipeline.beam_args)}")


__all__ = ["PipelineConfig", "PipelineSettings", "EvaluationSettings", "RetrainSettings", "ServingValidationConfig", "load",
           "ConfigError"]
