"""EventLogExampleGen: the TFX ExampleGen for canonical event logs.

A custom Beam component, because the stock FileBasedExampleGen maps each input row to one
example and splits by pattern or hash, while CTR examples need a shuffle by user for
point-in-time histories, labels joined from later events, sampled negatives and a
time-based split. It reads ``span-YYYYMMDD/`` directories (the TFX span layout) and
writes a standard ``Examples`` artifact (``Split-train``/``Split-eval`` gzipped
TFRecords of tf.Example, with ``span`` set), so StatisticsGen, ExampleValidator,
Transform and Evaluator consume it unchanged.

Outputs:
  examples: the Examples artifact. Custom properties carry the row and example counts.
  dead_letters: a ``DeadLetters`` artifact holding every rejected row with its reason
    (``dead_letters-*.jsonl``) and ``ingest_report.json``; counts per reason are also set
    as its custom properties (``rejected_<reason>``).

The run fails, with the counts and where the rows are, when the share of bad rows exceeds
``max_bad_fraction`` of the ingest config.

Caching: the driver fingerprints the planned span files (path, size, modification time),
so a rerun with unchanged logs and settings is served from the cache and a changed file
makes a new run. On orchestrators that run no custom driver (Kubeflow V2) the executor
plans the spans itself and the orchestrator's own caching applies.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, base_driver, executor_spec
from tfx.dsl.io import fileio
from tfx.orchestration import data_types_utils
from tfx.orchestration.portable import base_driver as ir_base_driver
from tfx.orchestration.portable import data_types as portable_data_types
from tfx.proto.orchestration import driver_output_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from tfx_pipeline.eventlog import logdir, spans
from tfx_pipeline.ingest import pipeline as ingest
from tfx_pipeline.ingest.config import SPLITS, IngestConfig, Split

EXAMPLES_KEY = "examples"
DEAD_LETTERS_KEY = "dead_letters"
INPUT_BASE_KEY = "input_base"
INGEST_CONFIG_KEY = "ingest_config"
SPAN_KEY = "span"
NUM_SPANS_KEY = "num_spans"
LOOKBACK_SPANS_KEY = "lookback_spans"
FINGERPRINT_KEY = "input_fingerprint"
SPAN_PROPERTY = "span"


class DeadLetters(types.Artifact):
    """Rows an ingest run rejected, with reasons, and the run's ingest report."""

    TYPE_NAME = "ctrflow.DeadLetters"


class EventLogExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        INPUT_BASE_KEY: ExecutionParameter(type=str),
        INGEST_CONFIG_KEY: ExecutionParameter(type=str),
        SPAN_KEY: ExecutionParameter(type=int, optional=True),
        NUM_SPANS_KEY: ExecutionParameter(type=int, optional=True),
        LOOKBACK_SPANS_KEY: ExecutionParameter(type=int, optional=True),
        FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS: Dict[str, ChannelParameter] = {}
    OUTPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        DEAD_LETTERS_KEY: ChannelParameter(type=DeadLetters),
    }


def plan_for(exec_properties: Dict[str, Any]) -> ingest.SpanPlan:
    """The span plan the execution properties describe."""
    log_dir = exec_properties[INPUT_BASE_KEY]
    manifest = logdir.read_manifest(log_dir)
    return ingest.plan_spans(
        spans.list_spans(log_dir, manifest.utc_offset_seconds),
        exec_properties.get(SPAN_KEY),
        exec_properties.get(NUM_SPANS_KEY),
        exec_properties.get(LOOKBACK_SPANS_KEY),
    )


def fingerprint(log_dir: str, plan: ingest.SpanPlan) -> str:
    """A digest of the planned files' names, sizes and modification times, and the manifest."""
    digest = hashlib.sha256()
    paths = [os.path.join(log_dir, logdir.MANIFEST)] + [p for p, _, _ in ingest.list_inputs(log_dir, plan)]
    for path in paths:
        stat = fileio.stat(path)
        digest.update(f"{path}\0{stat.length}\0{stat.mtime_nsec}\n".encode("utf-8"))
    return digest.hexdigest()


class Driver(base_driver.BaseDriver, ir_base_driver.BaseDriver):
    """Resolves the span plan before the cache check: span and input fingerprint."""

    def __init__(self, metadata_handle):
        base_driver.BaseDriver.__init__(self, metadata_handle)
        ir_base_driver.BaseDriver.__init__(self, metadata_handle)

    def run(self, execution_info: portable_data_types.ExecutionInfo) -> driver_output_pb2.DriverOutput:
        exec_properties = dict(execution_info.exec_properties)
        plan = plan_for(exec_properties)
        exec_properties[SPAN_KEY] = plan.target[-1].number
        exec_properties[FINGERPRINT_KEY] = fingerprint(exec_properties[INPUT_BASE_KEY], plan)
        result = driver_output_pb2.DriverOutput()
        for key, value in exec_properties.items():
            if value is not None:
                data_types_utils.set_metadata_value(result.exec_properties[key], value)
        for key in (EXAMPLES_KEY, DEAD_LETTERS_KEY):
            artifact = copy.deepcopy(execution_info.output_dict[key][0].mlmd_artifact)
            artifact.custom_properties[SPAN_PROPERTY].int_value = plan.target[-1].number
            artifact.custom_properties[FINGERPRINT_KEY].string_value = exec_properties[FINGERPRINT_KEY]
            result.output_artifacts[key].artifacts.append(artifact)
        return result


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs the Beam ingest pipeline (tfx_pipeline.ingest.pipeline) for the planned spans."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        log_dir = exec_properties[INPUT_BASE_KEY]
        manifest = logdir.read_manifest(log_dir)
        config = IngestConfig.from_json(exec_properties[INGEST_CONFIG_KEY]).resolved(
            ingest.log_has_impressions(log_dir))
        plan = plan_for(exec_properties)
        if config.split == Split.LAST_DAY and len(plan.target) < 2:
            raise ingest.IngestError(
                f"split 'last_day' needs at least two target spans; the plan has {len(plan.target)} "
                f"({plan.target[0].name}). Set num_spans >= 2, or split 'last_event' or 'user_hash'.")
        examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        dead = artifact_utils.get_single_instance(output_dict[DEAD_LETTERS_KEY])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
        examples.span = plan.target[-1].number
        outputs = ingest.IngestOutputs(examples.uri, dead.uri)
        logging.info("Ingesting %s: %s", log_dir, json.dumps(plan.describe()))
        with self._make_beam_pipeline() as beam_pipeline:
            ingest.build_pipeline(beam_pipeline, ingest.list_inputs(log_dir, plan), config, plan, outputs)
        report = ingest.read_report(outputs)
        _set_counts(examples, report)
        _set_counts(dead, report)
        dead.set_int_custom_property(SPAN_PROPERTY, plan.target[-1].number)
        logging.info("Ingest report for %s (%s):\n%s", log_dir, manifest.source, ingest.format_report(report))
        print(ingest.format_report(report), flush=True)
        ingest.check_report(report, config)


def _set_counts(artifact: types.Artifact, report: Dict[str, Any]) -> None:
    rows = report["rows"]
    artifact.set_int_custom_property("rows_input", rows["input"])
    artifact.set_int_custom_property("rows_good", rows["good"])
    artifact.set_int_custom_property("rows_bad", rows["bad"])
    for reason, count in rows["rejected"].items():
        artifact.set_int_custom_property(f"rejected_{reason}", count)
    for split, count in report["examples"].items():
        artifact.set_int_custom_property(f"examples_{split}", count)


class EventLogExampleGen(base_beam_component.BaseBeamComponent):
    """Ingests a canonical event log into train/eval tf.Examples (see module docstring).

    Args:
      input_base: the log directory (holds log.json and span-YYYYMMDD/).
      ingest_config: protocol, history length, negatives, split; an IngestConfig.
      span: the newest span to make examples from (days since 1970-01-01); None = newest.
      num_spans: how many spans, newest first, make examples; None = all up to `span`.
      lookback_spans: how many older spans feed histories only; None = all older spans.
    """

    SPEC_CLASS = EventLogExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = Driver

    def __init__(self, input_base: str, ingest_config: Optional[IngestConfig] = None,
                 span: Optional[int] = None, num_spans: Optional[int] = None,
                 lookback_spans: Optional[int] = None):
        spec = EventLogExampleGenSpec(
            input_base=input_base,
            ingest_config=(ingest_config or IngestConfig()).to_json(),
            span=span,
            num_spans=num_spans,
            lookback_spans=lookback_spans,
            input_fingerprint=None,
            examples=types.Channel(type=standard_artifacts.Examples),
            dead_letters=types.Channel(type=DeadLetters),
        )
        super().__init__(spec=spec)
