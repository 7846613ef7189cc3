"""The ctrflow TFX pipeline definition, shared by every orchestrator.

``create_pipeline`` only wires components; it holds no ML logic and reads no files. The
runners (``tfx_pipeline/runners/``) choose the orchestrator, metadata store and Beam args.

Data stage: EventLogExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator ->
ExampleAnomalyGate. Everything that consumes examples downstream depends on the gate, so
anomalous data stops the run before training.

Model stage: Transform -> Trainer -> Evaluator (against the latest blessed model) ->
ServingValidator -> Pusher. The Trainer's ``run_fn`` is ``trainer.run.run_fn``; the
experiment travels in its custom config.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, NamedTuple, Optional

from tfx import v1 as tfx

from tfx_pipeline import schema as curated_schema
from tfx_pipeline.beam_args import default_beam_args
from tfx_pipeline.components.anomaly_gate import ExampleAnomalyGate
from tfx_pipeline.components.event_log_example_gen import EventLogExampleGen
from tfx_pipeline.ingest.config import IngestConfig
from tfx_pipeline.components.serving_validator import ServingValidationConfig
from tfx_pipeline.config import EvaluationSettings
from trainer import run as trainer_run
from trainer.config import ExperimentConfig
from trainer.run import EXPERIMENT_KEY, WARM_START_KEY

RUN_FN = f"{trainer_run.__name__}.{trainer_run.run_fn.__name__}"


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """What the data stage reads and how."""

    log_dir: str
    ingest: IngestConfig = IngestConfig()
    span: Optional[int] = None
    num_spans: Optional[int] = None
    lookback_spans: Optional[int] = None
    schema_path: str = curated_schema.SCHEMA_PATH


class DataComponents(NamedTuple):
    """The ingest and validation components, in pipeline order."""

    example_gen: tfx.dsl.components.base.base_node.BaseNode
    statistics_gen: tfx.dsl.components.base.base_node.BaseNode
    schema_importer: tfx.dsl.components.base.base_node.BaseNode
    example_validator: tfx.dsl.components.base.base_node.BaseNode
    gate: tfx.dsl.components.base.base_node.BaseNode


def data_components(data: DataSettings) -> DataComponents:
    """The ingest and validation components; the anomaly gate stops the run on anomalies."""
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
    return DataComponents(example_gen, statistics_gen, schema_importer, example_validator, gate)


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """What the model stage trains, how it is judged and where it is pushed."""

    experiment: ExperimentConfig
    push_base: str
    model_name: str = "ctr"
    evaluation: EvaluationSettings = EvaluationSettings()
    serving_validation: ServingValidationConfig = ServingValidationConfig()
    warm_start: bool = False
    previous_vocabularies: Optional[Dict[str, str]] = None


def model_components(data: DataSettings, model: ModelSettings, upstream: DataComponents):
    """Transform, Trainer, the blessed-model resolver, Evaluator, ServingValidator and Pusher."""
    from tfx.proto import transform_pb2

    from tfx_pipeline.components.pusher import make_pusher
    from tfx_pipeline.components.serving_validator import serving_validation
    from tfx_pipeline.evaluation import model_loader
    from tfx_pipeline.evaluation.eval_config import make_eval_config
    from transforms.preprocessing import TransformSettings
    from transforms.run import PREPROCESSING_FN

    example_gen, schema_importer, gate = upstream.example_gen, upstream.schema_importer, upstream.gate
    transform_settings = TransformSettings(previous_vocabularies=model.previous_vocabularies or {},
                                           max_history=data.ingest.max_history)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_importer.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=transform_settings.to_custom_config(),
        splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
        disable_statistics=True,
    )
    transform.add_upstream_node(gate)
    latest_blessed = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model")
    trainer_kwargs = {}
    if model.warm_start:
        trainer_kwargs["base_model"] = latest_blessed.outputs["model"]
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_importer.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={EXPERIMENT_KEY: model.experiment.to_dict(), WARM_START_KEY: model.warm_start},
        **trainer_kwargs,
    )
    evaluation = model.evaluation
    evaluator = tfx.components.Evaluator(
        module_path=model_loader.__name__,  # loads models with ctrflow's Keras classes registered
        examples=example_gen.outputs["examples"],
        example_splits=["eval"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed.outputs["model"],
        eval_config=make_eval_config({t.name: t.label for t in model.experiment.tasks}, evaluation.thresholds,
                                     evaluation.max_regression, evaluation.slice_by_category),
    )
    validator = serving_validation(trainer.outputs["model"], example_gen.outputs["examples"],
                                   model.serving_validation)
    pusher = make_pusher(trainer.outputs["model"], evaluator.outputs["blessing"], validator.outputs["blessing"],
                         model.push_base, model.model_name).with_id("Pusher")
    return [transform, latest_blessed, trainer, evaluator, validator, pusher]


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data: DataSettings,
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
    enable_cache: bool = True,
    model: Optional[ModelSettings] = None,
) -> tfx.dsl.Pipeline:
    """The whole pipeline, for any orchestrator: the data stage, and the model stage when `model` is given."""
    upstream = data_components(data)
    components = list(upstream)
    if model is not None:
        components += model_components(data, model, upstream)
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else default_beam_args(),
    )
