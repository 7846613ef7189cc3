"""The pipeline config file: sections, path resolution, and errors that name what is wrong."""

import os

import pytest

from tfx_pipeline import config as pipeline_config
from tfx_pipeline.config import ConfigError, PipelineConfig

SHIPPED = os.path.join(os.path.dirname(pipeline_config.__file__), "configs", "din_two_tasks.yaml")


def write(tmp_path, text, name="pipeline.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_shipped_config_loads_with_paths_relative_to_its_folder():
    config = pipeline_config.load(SHIPPED)
    folder = os.path.dirname(SHIPPED)
    assert config.pipeline.log_dir == os.path.join(folder, "log")
    assert config.pipeline.metadata_path == os.path.join(folder, "pipeline", "metadata.sqlite")
    assert [t.name for t in config.experiment.tasks] == ["click", "conversion"]
    assert config.experiment.tasks[1].ctcvr
    assert config.ingest.max_history == 30
    assert config.evaluation.thresholds["click"] == {"auc": 0.65, "gauc": 0.55}


def test_defaults_and_absolute_paths(tmp_path):
    config = pipeline_config.load(write(tmp_path, f"pipeline: {{log_dir: {tmp_path}/events}}\n"))
    assert config.pipeline.log_dir == f"{tmp_path}/events"
    assert config.pipeline.root == str(tmp_path / "pipeline")
    assert config.serving_validation.mode == "local"
    assert config.evaluation.max_regression == 0.01


@pytest.mark.parametrize("text, message", [
    ("pipelines: {}\n", "Unknown sections ['pipelines']"),
    ("pipeline: {roots: x}\n", "Unknown keys ['roots'] in `pipeline`"),
    ("pipeline: {enable_cache: 3}\n", "`pipeline.enable_cache` must be like True"),
    ("ingest: {max_history: 0}\n", "`ingest`: Bad ingest settings: `max_history` must be an integer >= 1"),
    ("experiment: {model: {name: dinn}}\n", "`experiment`: `model.name` must be one of"),
    ("evaluation: {thresholds: {ctr: {auc: 0.6}}}\n", "`evaluation.thresholds.ctr`: no such task"),
    ("evaluation: {thresholds: {click: {acu: 0.6}}}\n", "`evaluation.thresholds.click.acu`: unknown metric"),
    ("evaluation: {thresholds: {click: {auc: high}}}\n", "`evaluation.thresholds.click.auc` must be a number"),
    ("evaluation: {max_regression: 2}\n", "`evaluation.max_regression` must be in [0, 1)"),
    ("evaluation: {history_buckets: [5, 1]}\n", "`evaluation.history_buckets` must be increasing"),
    ("serving_validation: {mode: podman}\n", "`serving_validation`: `mode` must be one of"),
    ("serving_validation: {num_examples: 0}\n", "`serving_validation`: `num_examples` must be a positive integer"),
    ("serving_validation: {latency_budget_ms: fast}\n", "`serving_validation.latency_budget_ms` must be like"),
    ("- just\n- a list\n", "must be a mapping of sections"),
])
def test_bad_values_are_named_with_their_path(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        pipeline_config.load(path)
    assert message in str(err.value)
    assert path in str(err.value)  # which file


def test_unreadable_files_say_why(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        pipeline_config.load(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="expected a .yaml, .yml or .json file"):
        pipeline_config.load(write(tmp_path, "a = 1\n", "pipeline.toml"))
    with pytest.raises(ConfigError, match="is not valid YAML"):
        pipeline_config.load(write(tmp_path, "pipeline: {root: [\n"))


def test_round_trips_through_a_dict():
    config = pipeline_config.load(SHIPPED)
    again = PipelineConfig.from_dict(config.to_dict(), base_dir="/elsewhere")
    assert again == config  # absolute paths stay as they are
