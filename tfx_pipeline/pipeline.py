"""The ctrflow TFX pipeline definition, shared by every orchestrator.

``create_pipeline`` only wires components; it holds no ML logic and reads no files. The
runners (``tfx_pipeline/runners/``) choose the orchestrator, metadata store and Beam args.

Data stage: EventLogExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator ->
ExampleAnomalyGate. Everything that consumes examples downstream depends on the gate, so
anomalous data stops the run before training.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional

from tfx import v1 as tfx

from tfx_pipeline import schema as curated_schema
from tfx_pipeline.components.anomaly_gate import ExampleAnomalyGate
from tfx_pipeline.components.event_log_example_gen import EventLogExampleGen
from tfx_pipeline.ingest.config import IngestConfig
from tfx_pipeline.ingest.pipeline import default_beam_args


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """What the data stage reads and how."""

    log_dir: str
    ingest: IngestConfig = IngestConfig()
    span: Optional[int] = None
    num_spans: Optional[int] = None
    lookback_spans: Optional[int] = None
    schema_path: str = curated_schema.SCHEMA_PATH


def data_components(data: DataSettings) -> List[tfx.dsl.components.base.base_node.BaseNode]:
    """The ingest and validation components, in order; the last one is the anomaly gate."""
    example_gen = EventLogExampleGen(
        input_base=data.log_dir,
        ingest_config=data.ingest,
        span=data.span,
        num_spans=data.num_spans,
        lookback_spans=data.lookback_spans,
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_importer = tfx.components.ImportSchemaGen(schema_file=data.schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"],
    )
    gate = ExampleAnomalyGate(anomalies=example_validator.outputs["anomalies"])
    return [example_gen, statistics_gen, schema_importer, example_validator, gate]


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data: DataSettings,
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """The whole pipeline, for any orchestrator."""
    components = data_components(data)
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else default_beam_args(),
    )
