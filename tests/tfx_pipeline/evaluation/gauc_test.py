import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs, metric_types, metric_util

from tfx_pipeline.evaluation import gauc as tfma_gauc
from trainer.metrics import gauc
from transforms import features

USER = features.USER_ID.name
CATEGORY = features.CATEGORY_ID.name
CLICK = features.CLICK_LABEL.name
CONVERSION = features.CONVERSION_LABEL.name
# Materialized predictions stored beside the labels (what a model would output per task).
CLICK_PREDICTION = f"{CLICK}_prediction"
CONVERSION_PREDICTION = f"{CONVERSION}_prediction"

# u1: the positive (0.9) beats the 0.2 negative and loses to the 0.95 one: AUC 1/2, 3 examples.
# u2: the positive (0.3) beats the negative (0.1): AUC 1, 2 examples.
# u3: only positives: skipped.
GROUPS = ["u1", "u1", "u1", "u2", "u2", "u3", "u3"]
LABELS = [1, 0, 0, 0, 1, 1, 1]
SCORES = [0.9, 0.2, 0.95, 0.1, 0.3, 0.4, 0.8]
EXPECTED_GAUC = (3 * 0.5 + 2 * 1.0) / (3 + 2)


def _inputs(group, label, score, weight=1.0, output_name=""):
    """One example's StandardMetricInputs, as the Evaluator hands it to the combiner."""
    labels, predictions = np.array([label]), np.array([score], dtype=np.float32)
    if output_name:
        labels, predictions = {output_name: labels}, {output_name: predictions}
    return metric_util.to_standard_metric_inputs({
        tfma.LABELS_KEY: labels,
        tfma.PREDICTIONS_KEY: predictions,
        tfma.EXAMPLE_WEIGHTS_KEY: np.array([weight]),
        tfma.FEATURES_KEY: {USER: group},
    })


def _combiner(**computation_args):
    (computation,) = tfma_gauc.GroupAUC().computations(**computation_args)
    return computation.combiner


def _accumulate(combiner, rows):
    accumulator = combiner.create_accumulator()
    for row in rows:
        accumulator = combiner.add_input(accumulator, _inputs(*row))
    return accumulator


def _value(combiner, accumulator):
    (value,) = combiner.extract_output(accumulator).values()
    return value


def _random_log(seed, size=500, num_groups=40):
    rng = np.random.default_rng(seed)
    groups = np.array([f"user{g}" for g in rng.integers(0, num_groups, size)])
    labels = (rng.random(size) < 0.3).astype(np.int64)
    scores = np.round(rng.random(size), 1).astype(np.float32)  # many ties
    return groups, labels, scores


def test_hand_computed_gauc():
    combiner = _combiner()
    rows = [(np.array([g.encode()], dtype=object), y, s) for g, y, s in zip(GROUPS, LABELS, SCORES)]
    assert _value(combiner, _accumulate(combiner, rows)) == pytest.approx(EXPECTED_GAUC, abs=1e-12)
    assert gauc(GROUPS, LABELS, SCORES) == pytest.approx(EXPECTED_GAUC, abs=1e-12)


@pytest.mark.parametrize("as_value", [
    lambda g: np.array([g.encode()], dtype=object),  # a string feature: bytes, shape [1]
    lambda g: g,  # a scalar str
    lambda g: np.array(g.encode(), dtype=object),  # a scalar bytes array
    lambda g: np.array([int(g[1:])]),  # an int feature
])
def test_group_values_of_any_type_and_shape(as_value):
    combiner = _combiner()
    rows = [(as_value(g), y, s) for g, y, s in zip(GROUPS, LABELS, SCORES)]
    assert _value(combiner, _accumulate(combiner, rows)) == pytest.approx(EXPECTED_GAUC, abs=1e-12)


def test_merged_accumulators_equal_one_and_match_numpy():
    groups, labels, scores = _random_log(7)
    rows = list(zip(groups, labels, scores))
    combiner = _combiner()
    whole = _value(combiner, _accumulate(combiner, rows))
    # Beam merges partial accumulators in any grouping: interleaved rows, one empty part.
    parts = [_accumulate(combiner, rows[0::3]), combiner.create_accumulator(),
             _accumulate(combiner, rows[1::3] + rows[2::3])]
    merged = _value(combiner, combiner.merge_accumulators(parts))
    expected = gauc(groups, labels, scores)
    assert not math.isnan(expected)
    assert whole == pytest.approx(expected, abs=1e-9)
    assert merged == pytest.approx(expected, abs=1e-9)


def test_example_weights_count_as_impressions():
    groups, labels, scores = _random_log(8, size=300)
    weights = np.random.default_rng(9).integers(0, 4, groups.size).astype(float)
    rows = list(zip(groups, labels, scores, weights))
    weighted = _combiner(example_weighted=True)
    assert _value(weighted, _accumulate(weighted, rows)) == pytest.approx(
        gauc(groups, labels, scores, weights), abs=1e-9)
    # Unweighted specs ignore the weights: every example is one impression.
    unweighted = _combiner()
    assert _value(unweighted, _accumulate(unweighted, rows)) == pytest.approx(
        gauc(groups, labels, scores), abs=1e-9)


def test_nan_without_two_class_groups():
    combiner = _combiner()
    assert math.isnan(_value(combiner, _accumulate(combiner, [("a", 1, 0.3), ("b", 0, 0.4)])))
    assert math.isnan(_value(combiner, combiner.create_accumulator()))


def test_output_names_select_the_output():
    (computation,) = tfma_gauc.GroupAUC().computations(output_names=[CONVERSION])
    combiner = computation.combiner
    accumulator = combiner.create_accumulator()
    for g, y, s in zip(GROUPS, LABELS, SCORES):
        accumulator = combiner.add_input(accumulator, _inputs(g, y, s, output_name=CONVERSION))
    assert computation.keys[0].output_name == CONVERSION
    assert _value(combiner, accumulator) == pytest.approx(EXPECTED_GAUC, abs=1e-12)


def test_one_computation_per_model_and_output():
    computations = tfma_gauc.GroupAUC(name="user_gauc").computations(
        model_names=["candidate", "baseline"], output_names=[CLICK, CONVERSION], example_weighted=True)
    keys = {(c.keys[0].name, c.keys[0].model_name, c.keys[0].output_name, c.keys[0].example_weighted)
            for c in computations}
    assert keys == {("user_gauc", model, output, True)
                    for model in ("candidate", "baseline") for output in (CLICK, CONVERSION)}


def test_metric_config_instantiates_in_tfma():
    config = tfma_gauc.metric_config()
    assert (config.class_name, config.module) == ("GroupAUC", "tfx_pipeline.evaluation.gauc")
    metric = metric_specs.metric_instance(config)
    assert isinstance(metric, tfma_gauc.GroupAUC)
    assert (metric.name, metric.group_key) == ("gauc", USER)
    custom = metric_specs.metric_instance(tfma_gauc.metric_config(group_key=CATEGORY, name="category_gauc"))
    assert (custom.name, custom.group_key) == ("category_gauc", CATEGORY)


@pytest.mark.parametrize("call, message", [
    (lambda c: c.add_input(c.create_accumulator(), metric_util.to_standard_metric_inputs({
        tfma.LABELS_KEY: np.array([1]), tfma.PREDICTIONS_KEY: np.array([0.5]),
        tfma.FEATURES_KEY: {CATEGORY: np.array([b"c"])}})),
     r"groups examples by the feature 'user_id', but the extracts' features hold \['category_id'\]"),
    (lambda c: c.add_input(c.create_accumulator(), _inputs("u", 2, 0.5)),
     r"needs 0/1 labels. Received: label 2.0"),
    (lambda c: c.add_input(c.create_accumulator(), _inputs(np.array([], dtype=object), 1, 0.5)),
     r"needs one 'user_id' value per example. Received: an example without one"),
    (lambda c: tfma_gauc.metric_config(group_key=""),
     r"`group_key` must be the non-empty name .* Received: group_key=''"),
])
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(_combiner())


# ------------------------------------------------------------------ end to end in TFMA
def _eval_log(seed=3, size=400, num_users=30):
    """Examples with labels, materialized predictions, user and category; some one-class users."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, num_users, size)
    click = (rng.random(size) < 0.35).astype(np.int64)
    click[users == 0] = 1  # an all-positive user
    click[users == 1] = 0  # an all-negative user
    conversion = click * (rng.random(size) < 0.5).astype(np.int64)
    return {
        USER: np.array([f"user{u}" for u in users]),
        CATEGORY: np.array([f"cat{c}" for c in rng.integers(0, 3, size)]),
        CLICK: click,
        CONVERSION: conversion,
        # Rounded float32 scores: ties inside users, and exactly what the tf.Example stores.
        CLICK_PREDICTION: np.round(rng.random(size), 2).astype(np.float32),
        CONVERSION_PREDICTION: np.round(rng.random(size), 2).astype(np.float32),
    }


def _write_examples(log, path):
    def feature(value):
        if isinstance(value, str):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        if isinstance(value, np.floating):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(len(log[USER])):
            example = tf.train.Example(features=tf.train.Features(
                feature={name: feature(values[i]) for name, values in log.items()}))
            writer.write(example.SerializeToString())


def _run_tfma(tmp_path, log, model_spec, output_names=None, slicing_specs=(tfma.SlicingSpec(),)):
    data = tmp_path / "examples.tfrecord"
    _write_examples(log, data)
    eval_config = tfma.EvalConfig(
        model_specs=[model_spec],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma_gauc.metric_config(), tfma.MetricConfig(class_name="ExampleCount"),
                     tfma.MetricConfig(class_name="AUC")],
            output_names=output_names or [])],
        slicing_specs=list(slicing_specs))
    output = tmp_path / "eval"
    tfma.run_model_analysis(eval_config=eval_config, data_location=str(data), output_path=str(output))
    results = {}
    for metrics_for_slice in tfma.load_metrics(str(output)):
        slice_key = tuple((k.column, k.bytes_value.decode()) for k in metrics_for_slice.slice_key.single_slice_keys)
        for entry in metrics_for_slice.metric_keys_and_values:
            results[slice_key, entry.key.output_name, entry.key.name] = entry.value.double_value.value
    return results


def test_tfma_run_overall_and_per_slice(tmp_path):
    log = _eval_log()
    spec = tfma.ModelSpec(prediction_key=CLICK_PREDICTION, label_key=CLICK)
    results = _run_tfma(tmp_path, log, spec,
                        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[CATEGORY])])
    name = tfma_gauc.GAUC_NAME
    assert results[(), "", "example_count"] == len(log[USER])
    assert 0 < results[(), "", "auc"] < 1
    expected = gauc(log[USER], log[CLICK], log[CLICK_PREDICTION])
    assert results[(), "", name] == pytest.approx(expected, abs=1e-9)
    categories = sorted(set(log[CATEGORY]))
    for category in categories:
        rows = log[CATEGORY] == category
        expected = gauc(log[USER][rows], log[CLICK][rows], log[CLICK_PREDICTION][rows])
        assert results[((CATEGORY, category),), "", name] == pytest.approx(expected, abs=1e-9)
    assert len([key for key in results if key[2] == name]) == 1 + len(categories)


def test_tfma_run_multi_output(tmp_path):
    log = _eval_log(seed=4, size=300)
    tasks = {CLICK: CLICK_PREDICTION, CONVERSION: CONVERSION_PREDICTION}
    spec = tfma.ModelSpec(prediction_keys=tasks, label_keys={task: task for task in tasks})
    results = _run_tfma(tmp_path, log, spec, output_names=list(tasks))
    for task, prediction in tasks.items():
        expected = gauc(log[USER], log[task], log[prediction])
        assert results[(), task, tfma_gauc.GAUC_NAME] == pytest.approx(expected, abs=1e-9)
        assert results[(), task, "example_count"] == len(log[USER])
    assert results[(), CLICK, tfma_gauc.GAUC_NAME] != results[(), CONVERSION, tfma_gauc.GAUC_NAME]
