"""Running Transform outside a pipeline (tests, benchmarks, `ctrflow transform`).

Calls TFX's own Transform executor on ingest output, so the result (the transform graph
and transformed examples, in TFX's layout) is exactly what the pipeline's Transform
component makes: analyzed on the train split, applied to train and eval.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import List, Optional

from tfx_pipeline import schema as curated_schema
from tfx_pipeline.beam_args import in_memory
from transforms.preprocessing import TransformSettings

PREPROCESSING_FN = "transforms.preprocessing.preprocessing_fn"
TRANSFORM_GRAPH_SUBDIR = "transform_graph"
TRANSFORMED_EXAMPLES_SUBDIR = "transformed_examples"


def run_transform(
    examples_dir: str,
    output_dir: str,
    settings: Optional[TransformSettings] = None,
    schema_path: str = curated_schema.SCHEMA_PATH,
    beam_args: Optional[List[str]] = None,
) -> str:
    """Analyzes the train split of `examples_dir` and transforms both splits.

    Args:
      examples_dir: an ingest output (``Split-train/``, ``Split-eval/`` gzipped tf.Examples).
      output_dir: gets ``transform_graph/`` (a TFTransformOutput directory) and
        ``transformed_examples/Split-{train,eval}/``.
      settings: previous vocabularies for stable ids across retrains.
      schema_path: the curated raw-example schema.
      beam_args: Beam pipeline args (default: in-process DirectRunner).

    Returns:
      The transform graph directory.
    """
    from tfx.components.transform import executor as transform_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.proto import transform_pb2
    from tfx.types import artifact_utils, standard_artifacts, standard_component_specs as specs
    from tfx.utils import proto_utils

    examples = standard_artifacts.Examples()
    examples.uri = examples_dir
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    schema_dir = os.path.join(output_dir, "schema")
    os.makedirs(schema_dir, exist_ok=True)
    shutil.copy(schema_path, os.path.join(schema_dir, "schema.pbtxt"))
    schema = standard_artifacts.Schema()
    schema.uri = schema_dir
    graph = standard_artifacts.TransformGraph()
    graph.uri = os.path.join(output_dir, TRANSFORM_GRAPH_SUBDIR)
    transformed = standard_artifacts.Examples()
    transformed.uri = os.path.join(output_dir, TRANSFORMED_EXAMPLES_SUBDIR)
    splits = transform_pb2.SplitsConfig(analyze=["train"], transform=["train", "eval"])
    exec_properties = {
        specs.PREPROCESSING_FN_KEY: PREPROCESSING_FN,
        specs.CUSTOM_CONFIG_KEY: json.dumps((settings or TransformSettings()).to_custom_config()),
        specs.SPLITS_CONFIG_KEY: proto_utils.proto_to_json(splits),
        specs.DISABLE_STATISTICS_KEY: 1,
        specs.FORCE_TF_COMPAT_V1_KEY: 0,
    }
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=beam_args or in_memory(),
        tmp_dir=os.path.join(output_dir, ".temp"),
        unique_id="transform",
    )
    transform_executor.Executor(context).Do(
        {specs.EXAMPLES_KEY: [examples], specs.SCHEMA_KEY: [schema]},
        {specs.TRANSFORM_GRAPH_KEY: [graph], specs.TRANSFORMED_EXAMPLES_KEY: [transformed]},
        exec_properties,
    )
    return graph.uri
