import pytest

from trainer import config as experiment
from trainer.config import ConfigError, ExperimentConfig


def test_defaults_and_round_trip():
    config = ExperimentConfig()
    assert config.model.name.value == "din" and config.task_names == ("click",)
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_yaml_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "model:\n  name: dien\n  hidden_units: [64, 32]\n"
        "tasks:\n  - {name: click, label: click}\n  - {name: conversion, label: conversion, weight: 0.5, ctcvr: true}\n"
        "training:\n  epochs: 3\n")
    config = experiment.load(str(path))
    assert config.model.name.value == "dien" and config.model.hidden_units == (64, 32)
    assert config.tasks[1].weight == 0.5 and config.tasks[1].ctcvr and config.training.epochs == 3


@pytest.mark.parametrize("data, message", [
    ({"model": {"nam": "din"}}, r"Unknown keys \['nam'\] in `model`"),
    ({"modle": {}}, r"Unknown keys \['modle'\]"),
    ({"model": {"name": "xgboost"}}, r"`model.name` must be one of \['baseline', 'din', 'dien', 'infnet'\]"),
    ({"model": {"hidden_units": [8, "a"]}}, r"`model.hidden_units` must be a list of integers"),
    ({"model": {"dropout": 1.5}}, r"`model.dropout` must be in \[0, 1\)"),
    ({"model": {"side_features": ["colour"]}}, r"`model.side_features` must be a subset of"),
    ({"tasks": []}, r"`tasks` must be a non-empty list"),
    ({"tasks": [{"name": "c", "label": "clicks"}]}, r"`tasks\[0\].label` must be one of \['click', 'conversion'\]"),
    ({"tasks": [{"name": "v", "label": "conversion", "ctcvr": True}]}, r"used together with a task on the click label"),
    ({"training": {"batch_size": 0}}, r"`training.batch_size` must be >= 1. Received: batch_size=0"),
    ({"training": {"epochs": "2"}}, r"`training.epochs` must be an integer. Received: '2'"),
    ({"training": {"length_sort_window": -1}}, r"`training.length_sort_window` must be >= 0 \(0 = off\)"),
    ({"model": {"infnet_candidate_interaction": "cross"}},
     r"`model.infnet_candidate_interaction` must be one of \['none', 'token', 'sequence'\]"),
])
def test_bad_values_name_their_path(data, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict(data)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        experiment.load(str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        experiment.load(str(bad))
    other = tmp_path / "exp.ini"
    other.write_text("x")
    with pytest.raises(ConfigError, match="expected a .yaml, .yml or .json file"):
        experiment.load(str(other))


def test_with_defaults_overrides_fields():
    config = experiment.with_defaults(model={"name": "infnet"}, training={"epochs": 5})
    assert config.model.name.value == "infnet" and config.training.epochs == 5
    assert config.model.embedding_dim == ExperimentConfig().model.embedding_dim
