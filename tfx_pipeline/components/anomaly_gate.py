"""ExampleAnomalyGate: stops the pipeline when ExampleValidator found anomalies.

ExampleValidator records anomalies and marks its artifact not blessed, but nothing in
TFX stops on that; Transform would go on and train on broken data. This component runs
right after it, and downstream components depend on it: when any split has anomalies it
fails with a report a person can read (split, feature, what is wrong), so no model is
trained or pushed from that data.
"""


import os
from typing import Dict

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """The examples do not match the schema."""


def read_anomalies(artifact: standard_artifacts.ExampleAnomalies) -> Dict[str, anomalies_pb2.Anomalies]:
    """The anomalies proto of every split of an ExampleAnomalies artifact."""
    result = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        with fileio.open(path, "rb") as stream:
            result[split] = anomalies_pb2.Anomalies.FromString(stream.read())
    return result


def format_anomalies(by_split: Dict[str, anomalies_pb2.Anomalies]) -> str:
    """One line per anomaly: split, feature, short and long description. Empty if none."""
    lines = []
    for split, anomalies in sorted(by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(f"{r.short_description}: {r.description}" for r in info.reason)
            lines.append(f"  split {split}, feature {feature!r}: {reasons or info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            reasons = "; ".join(f"{r.short_description}: {r.description}" for r in info.reason)
            lines.append(f"  split {split}, whole dataset: {reasons or info.description}")
    return "\n".join(lines)


def check_anomalies(artifact: standard_artifacts.ExampleAnomalies) -> None:
    report = format_anomalies(read_anomalies(artifact))
    if report:
        raise DataAnomaliesError(
            "ExampleValidator found anomalies; the pipeline stops here and nothing downstream runs.\n"
            + report
            + "\nFix the log (see the dead letters of the ingest step), or, if the data changed on "
            "purpose, change the features and regenerate the schema with `ctrflow schema`."
        )


@component
def ExampleAnomalyGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:  # noqa: N802
    """Fails the run with a readable report when `anomalies` holds any anomaly."""
    check_anomalies(anomalies)
