"""The HTML report: plot data extraction checked by hand, and a page with every section."""

import types

import pytest

from tfx_pipeline import report
from transforms import features


def test_roc_points_from_confusion_matrices():
    plot = {"matrices": [
        {"threshold": 0.5, "truePositives": 3, "falsePositives": 1, "trueNegatives": 3, "falseNegatives": 1},
        {"threshold": 0.9, "truePositives": 1, "falsePositives": 0, "trueNegatives": 4, "falseNegatives": 3},
        {"threshold": 0.0, "truePositives": 0, "falsePositives": 0, "trueNegatives": 0, "falseNegatives": 0},
    ]}
    assert report.roc_points(plot) == [(0.0, 0.0), (1.0, 1.0), (0.25, 0.75), (0.0, 0.25)]


def test_calibration_buckets_skip_empty_ones():
    plot = {"buckets": [
        {"numWeightedExamples": {"value": 4}, "totalWeightedLabel": {"value": 1},
         "totalWeightedRefinedPrediction": {"value": 0.8}},
        {"numWeightedExamples": {}, "totalWeightedLabel": {}, "totalWeightedRefinedPrediction": {}},
        {"numWeightedExamples": 2, "totalWeightedLabel": 2, "totalWeightedRefinedPrediction": 1.5},
    ]}
    assert report.calibration_buckets(plot) == [(0.2, 0.25, 4.0), (0.75, 1.0, 2.0)]


def fake_result():
    def metrics(gauc, count):
        return {"": {"gauc": {"doubleValue": gauc}, "example_count": {"doubleValue": count},
                     "auc": {"doubleValue": 0.7}, "logloss": {"doubleValue": 0.5}}}

    bucket = features.HISTORY_LENGTH_BUCKET.name
    category = features.CANDIDATE_CATEGORY.name
    slicing = [
        ((), {"click": metrics(0.66, 100)}),
        (((category, "c1"),), {"click": metrics(0.61, 30)}),
        (((category, "c2"),), {"click": metrics(0.71, 70)}),
        (((bucket, "5-19"),), {"click": metrics(0.7, 60)}),
        (((bucket, "1-4"),), {"click": metrics(float("nan"), 40)}),
    ]
    plots = [((), {"click": {"": {
        "confusion_matrix_plot": {"matrices": [{"truePositives": 1, "falsePositives": 1, "trueNegatives": 1,
                                                "falseNegatives": 1}]},
        "calibration_plot": {"buckets": [{"numWeightedExamples": {"value": 2}, "totalWeightedLabel": {"value": 1},
                                          "totalWeightedRefinedPrediction": {"value": 0.9}}]}}}})]
    return types.SimpleNamespace(slicing_metrics=slicing, plots=plots)


def test_slices_are_ordered_by_size_and_by_history_length():
    table = report.metrics_by_slice(fake_result())
    assert report.slice_rows(table, "click", features.CANDIDATE_CATEGORY.name) == [("c2", 0.71, 70), ("c1", 0.61, 30)]
    rows = report.history_rows(table, "click")
    assert [r[0] for r in rows] == ["1-4", "5-19"]


def test_page_has_summary_plots_and_slices():
    from tfx_pipeline import config as pipeline_config
    from tfx_pipeline.runners.local import RunRecord

    config = pipeline_config.PipelineConfig()
    record = RunRecord("2026-11-22T10:00:00", 0, {"Evaluator": "COMPLETE"}, True, True, "17", "/serving/ctr/17",
                       "/eval", {})
    page = report.render(record, config, fake_result())
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    assert "<title>ROC</title>" in page and "<title>calibration</title>" in page
    assert "GAUC by category" in page and "GAUC by history length" in page
    assert "0.6600" in page and "n/a (40)" in page and "/serving/ctr/17" in page
    assert "blessed" in page
