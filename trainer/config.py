"""Experiment configuration: which model, which tasks, which hyperparameters.

Frozen dataclasses with checked values; ``ExperimentConfig.from_dict`` refuses unknown keys
and names the path of a bad value (``model.attention_units[1]``), so a typo never silently
falls back to a default. Only ``trainer.models.factory.build_model`` turns a config into
layer arguments.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Type, TypeVar

from transforms import features


class ModelName(str, enum.Enum):
    BASELINE = "baseline"  # Embedding&MLP, sum-pooled history
    DIN = "din"
    DIEN = "dien"
    INFNET = "infnet"


class Activation(str, enum.Enum):
    RELU = "relu"
    PRELU = "prelu"
    DICE = "dice"
    SIGMOID = "sigmoid"


class Normalization(str, enum.Enum):
    NONE = "none"  # DIN's paper: raw weights, keeping the intensity of interest
    SOFTMAX = "softmax"


class AttentionScorer(str, enum.Enum):
    BILINEAR = "bilinear"  # DIEN's paper: h_t W e_a
    MLP = "mlp"  # DIN's feed-forward unit on [e_a, h_t, e_a - h_t, e_a * h_t]


class CandidateInteraction(str, enum.Enum):
    NONE = "none"  # INFNet's paper: the candidate meets the history only in the blocks
    TOKEN = "token"  # one more categorical token: candidate x summed history events (default)
    SEQUENCE = "sequence"  # every sequence token also carries event x candidate


class ConfigError(ValueError):
    """A configuration value is wrong; the message names its path and how to fix it."""


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One objective: its label, its loss weight and how its prediction is formed.

    ``ctcvr``: predict the label over all impressions as pCTR x pCVR (ESMM), where pCVR is
    this task's own tower and pCTR the click task's; needs a task on the click label.
    """

    name: str
    label: str
    weight: float = 1.0
    ctcvr: bool = False


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: ModelName = ModelName.DIN
    embedding_dim: int = 16
    embedding_init_stddev: float = 1e-4  # normal init of the id tables; small keeps rare ids near 0
    hidden_units: Tuple[int, ...] = (200, 80)
    activation: Activation = Activation.DICE
    dropout: float = 0.0
    batch_norm: bool = False
    attention_units: Tuple[int, ...] = (80, 40)
    # None: each model's default (DIN: Dice, as its paper; DIEN: ReLU in the MLP scorer, as DeepCTR)
    attention_activation: Optional[Activation] = None
    # None: each model's paper default (DIN: none, keeping the intensity of interest; DIEN: softmax)
    attention_normalization: Optional[Normalization] = None
    gru_units: int = 0  # DIEN; 0 = the width of a behaviour embedding
    # DIEN's interest-evolution attention: DIN's unit, as the official code and DeepCTR score it
    dien_attention_scorer: AttentionScorer = AttentionScorer.MLP
    aux_loss_weight: float = 1.0  # DIEN's alpha
    num_blocks: int = 2  # INFNet
    num_categorical_proxies: int = 4
    num_sequence_proxies: int = 4
    num_shared_task_tokens: int = 2
    infnet_token_dim: int = 0  # INFNet's token width d; 0 = embedding_dim
    infnet_candidate_interaction: CandidateInteraction = CandidateInteraction.TOKEN
    mba_lambda: float = 0.0  # mini-batch aware L2 of embeddings; 0 = off
    side_features: Tuple[str, ...] = ()  # raw side fields the model uses (e.g. "device")
    use_user_id: bool = False
    use_time_gaps: bool = True  # add a time-gap embedding to each history event
    use_calendar: bool = True  # hour of day and day of week as context


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    batch_size: int = 256
    epochs: int = 2
    learning_rate: float = 1e-3
    steps_per_epoch: int = 0  # 0 = one pass over the training data
    eval_steps: int = 0  # 0 = the whole eval split
    early_stopping_patience: int = 2  # epochs without eval GAUC gain; 0 = off
    shuffle_buffer: int = 100_000  # examples; large enough to mix many users' sequences
    # batches per window sorted by history length, so each batch runs to its own longest history; 0 = off
    length_sort_window: int = 0
    mixed_precision: bool = False  # float16 compute on GPU where it helps
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = ModelConfig()
    tasks: Tuple[TaskConfig, ...] = (TaskConfig("click", features.CLICK_LABEL.name),)
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentConfig":
        return _build(cls, data, "")

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=lambda v: v.value))

    @property
    def task_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.tasks)


T = TypeVar("T")


def _build(cls: Type[T], data: Any, path: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"`{path or 'config'}` must be a mapping. Received: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in `{path}`" if path else ""
        raise ConfigError(f"Unknown keys {unknown}{where}. Expected some of {sorted(fields)}.")
    values = {}
    for name, value in data.items():
        values[name] = _convert(fields[name].type, value, f"{path}.{name}" if path else name)
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"`{path or 'config'}`: {err}") from None


_NESTED = {"ModelConfig": ModelConfig, "TrainingConfig": TrainingConfig}


def _convert(annotation: str, value: Any, path: str) -> Any:
    kind = str(annotation)
    if kind in _NESTED:
        return _build(_NESTED[kind], value, path)
    if kind.startswith("Tuple[TaskConfig"):
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"`{path}` must be a non-empty list of tasks. Received: {value!r}")
        return tuple(_build(TaskConfig, v, f"{path}[{i}]") for i, v in enumerate(value))
    if kind.startswith("Optional[") and value is None:
        return None
    kind = kind[len("Optional["):-1] if kind.startswith("Optional[") else kind
    for enum_class in (ModelName, Activation, Normalization, AttentionScorer, CandidateInteraction):
        if kind == enum_class.__name__:
            try:
                return enum_class(value)
            except ValueError:
                raise ConfigError(
                    f"`{path}` must be one of {[m.value for m in enum_class]}. Received: {value!r}") from None
    if kind.startswith("Tuple[int"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"`{path}` must be a list of integers. Received: {value!r}")
        return tuple(value)
    if kind.startswith("Tuple[str"):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"`{path}` must be a list of names. Received: {value!r}")
        return tuple(value)
    expected = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(kind)
    if expected is not None:
        if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
            words = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}[kind]
            raise ConfigError(f"`{path}` must be {words}. Received: {value!r}")
        return float(value) if kind == "float" else value
    return value


def _require(ok: bool, path: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"`{path}` must be {expected}. Received: {path.split('.')[-1]}={value!r}")


def _validate(config: ExperimentConfig) -> None:
    model, training = config.model, config.training
    _require(model.embedding_dim >= 1, "model.embedding_dim", model.embedding_dim, "an integer >= 1")
    _require(model.embedding_init_stddev > 0, "model.embedding_init_stddev", model.embedding_init_stddev, "> 0")
    for name in ("hidden_units", "attention_units"):
        units = getattr(model, name)
        _require(all(u >= 1 for u in units), f"model.{name}", units, "a list of positive integers")
    _require(bool(model.hidden_units), "model.hidden_units", model.hidden_units, "a non-empty list")
    _require(0.0 <= model.dropout < 1.0, "model.dropout", model.dropout, "in [0, 1)")
    _require(model.gru_units >= 0, "model.gru_units", model.gru_units, ">= 0")
    _require(model.aux_loss_weight >= 0, "model.aux_loss_weight", model.aux_loss_weight, ">= 0")
    _require(model.num_blocks >= 1, "model.num_blocks", model.num_blocks, ">= 1")
    _require(model.infnet_token_dim >= 0, "model.infnet_token_dim", model.infnet_token_dim, ">= 0 (0 = embedding_dim)")
    for name in ("num_categorical_proxies", "num_sequence_proxies", "num_shared_task_tokens"):
        _require(getattr(model, name) >= 1, f"model.{name}", getattr(model, name), ">= 1")
    _require(model.mba_lambda >= 0, "model.mba_lambda", model.mba_lambda, ">= 0")
    side = {f.name for f in features.SIDE_EXAMPLE_FEATURES}
    bad = [s for s in model.side_features if s not in side]
    _require(not bad, "model.side_features", list(model.side_features), f"a subset of {sorted(side)}")
    names = [t.name for t in config.tasks]
    _require(len(set(names)) == len(names), "tasks", names, "tasks with distinct names")
    for i, task in enumerate(config.tasks):
        _require(task.label in features.LABEL_KEYS, f"tasks[{i}].label", task.label,
                 f"one of {list(features.LABEL_KEYS)}")
        _require(task.weight >= 0, f"tasks[{i}].weight", task.weight, ">= 0")
        if task.ctcvr:
            _require(task.label != features.CLICK_LABEL.name, f"tasks[{i}].ctcvr", task.ctcvr,
                     "false for the click task itself")
            _require(any(t.label == features.CLICK_LABEL.name and not t.ctcvr for t in config.tasks),
                     f"tasks[{i}].ctcvr", task.ctcvr, "used together with a task on the click label")
    _require(training.batch_size >= 1, "training.batch_size", training.batch_size, ">= 1")
    _require(training.epochs >= 1, "training.epochs", training.epochs, ">= 1")
    _require(training.learning_rate > 0, "training.learning_rate", training.learning_rate, "> 0")
    _require(training.steps_per_epoch >= 0, "training.steps_per_epoch", training.steps_per_epoch, ">= 0")
    _require(training.eval_steps >= 0, "training.eval_steps", training.eval_steps, ">= 0")
    _require(training.shuffle_buffer >= 1, "training.shuffle_buffer", training.shuffle_buffer, ">= 1")
    _require(training.length_sort_window >= 0, "training.length_sort_window", training.length_sort_window,
             ">= 0 (0 = off)")
    _require(training.early_stopping_patience >= 0, "training.early_stopping_patience",
             training.early_stopping_patience, ">= 0")


def read_file(path: str, missing_hint: str = "") -> Any:
    """The parsed content of a YAML (.yaml/.yml) or JSON (.json) config file; ConfigError otherwise."""
    if not os.path.exists(path):
        raise ConfigError(f"Config file {path!r} does not exist.{' ' + missing_hint if missing_hint else ''}")
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as stream:
        raw = stream.read()
    try:
        if ext in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(raw) or {}
        if ext == ".json":
            return json.loads(raw)
    except Exception as err:  # a parser's own error: say which file and where
        raise ConfigError(f"{path!r} is not valid {ext.lstrip('.').upper()}: {err}") from None
    raise ConfigError(f"Cannot read {path!r}: expected a .yaml, .yml or .json file.")


def load(path: str) -> ExperimentConfig:
    """Reads an experiment from a YAML (.yaml/.yml) or JSON (.json) file."""
    data = read_file(path)
    return ExperimentConfig.from_dict(data)


def with_defaults(base: Optional[ExperimentConfig] = None, **sections: Mapping[str, Any]) -> ExperimentConfig:
    """`base` (or the defaults) with some fields of each section replaced, e.g. model={'name': 'dien'}."""
    config = base or ExperimentConfig()
    data = config.to_dict()
    for section, values in sections.items():
        if isinstance(values, Sequence) and not isinstance(values, Mapping):
            data[section] = list(values)
        else:
            data[section].update(values)
    return ExperimentConfig.from_dict(data)
