import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from tfx_pipeline.components import anomaly_gate


def _anomalies(feature, short, long):
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info[feature]
    info.reason.add(short_description=short, description=long)
    return anomalies


def test_report_names_split_feature_and_reason():
    report = anomaly_gate.format_anomalies({
        "train": anomalies_pb2.Anomalies(),
        "eval": _anomalies("item_year", "Column dropped", "The feature was present in fewer examples than required."),
    })
    assert report == ("  split eval, feature 'item_year': Column dropped: "
                      "The feature was present in fewer examples than required.")


def test_no_anomalies_no_report():
    assert anomaly_gate.format_anomalies({"train": anomalies_pb2.Anomalies()}) == ""


def test_check_raises_with_the_report(tmp_path):
    from tfx.types import artifact_utils, standard_artifacts

    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path)
    artifact.split_names = artifact_utils.encode_split_names(["train"])
    (tmp_path / "Split-train").mkdir()
    (tmp_path / "Split-train" / "SchemaDiff.pb").write_bytes(
        _anomalies("click", "Out-of-range values", "Unexpectedly large value: 2.").SerializeToString())
    with pytest.raises(anomaly_gate.DataAnomaliesError, match=r"feature 'click': Out-of-range values"):
        anomaly_gate.check_anomalies(artifact)
