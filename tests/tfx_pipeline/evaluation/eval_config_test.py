"""The Evaluator's EvalConfig: one task is TFMA's unnamed output, several tasks are named outputs."""

import os

import pytest

from trainer import config as experiment

TWO_TASKS = {"click": "click", "conversion": "conversion"}


def test_output_task_names_the_unnamed_output_of_one_task():
    from tfx_pipeline.evaluation.eval_config import output_task

    assert output_task("", ["ctr"]) == "ctr"
    assert output_task("click", ["click", "conversion"]) == "click"
    assert output_task("", ["click", "conversion"]) == ""  # several tasks: outputs are always named


def test_one_task_uses_a_single_label_key_and_unnamed_metrics():
    from tfx_pipeline.evaluation.eval_config import make_eval_config

    one = make_eval_config({"ctr": "click"}, {"ctr": {"auc": 0.6}}, 0.01)
    assert one.model_specs[0].label_key == "click" and not one.model_specs[0].label_keys
    assert [list(spec.output_names) for spec in one.metrics_specs] == [[]]
    two = make_eval_config(TWO_TASKS, {}, 0.01)
    assert dict(two.model_specs[0].label_keys) == TWO_TASKS
    assert [list(spec.output_names) for spec in two.metrics_specs] == [["click"], ["conversion"]]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, simulated_and_transformed):
    from tfx_pipeline import simulator

    return simulated_and_transformed(tmp_path_factory.mktemp("eval"),
                                     simulator.SimulatorConfig(users=30, items=80, days=2, seed=3), max_history=8)


@pytest.mark.slow
def test_tfma_evaluates_an_exported_one_task_model(prepared, tmp_path):
    """Two-task models go through the same Evaluator in every pipeline run of
    tests/tfx_pipeline/retrain_test.py; one task only here."""
    task_labels = {"ctr": "click"}
    import tensorflow_model_analysis as tfma

    from serving.export import export_serving_model
    from tfx_pipeline.evaluation import model_loader
    from tfx_pipeline.evaluation.eval_config import make_eval_config
    from tfx_pipeline.runners.local import overall_metrics
    from trainer.train import train_and_evaluate

    tasks = [{"name": name, "label": label} for name, label in task_labels.items()]
    config = experiment.with_defaults(
        model={"name": "baseline", "embedding_dim": 4, "hidden_units": [8]}, tasks=tasks,
        training={"epochs": 1, "batch_size": 64, "steps_per_epoch": 2, "eval_steps": 1, "early_stopping_patience": 0})
    result = train_and_evaluate(config, prepared["graph"], prepared["transformed"], verbose=0)
    model_dir = str(tmp_path / "model")
    export_serving_model(result.model, prepared["graph"], model_dir, result.model.input_features)

    eval_config = make_eval_config(task_labels, {name: {"auc": 0.0} for name in task_labels}, None)  # no baseline
    shared = model_loader.custom_eval_shared_model(model_dir, "", eval_config)
    output = str(tmp_path / "evaluation")
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=eval_config,
                            data_location=os.path.join(prepared["examples"], "Split-eval", "*"),
                            file_format="tfrecords", output_path=output)
    metrics = overall_metrics(output, list(task_labels))
    for name in task_labels:
        assert 0 < metrics[f"{name}/auc"] < 1
        assert metrics[f"{name}/example_count"] > 0
        assert f"{name}/gauc" in metrics and f"{name}/logloss" in metrics
