"""Shared test setup: TensorFlow's Keras 2 switch, and where the real datasets live."""

from __future__ import annotations

import os
import pathlib

import pytest

from transforms import features

# tensorflow-transform sets this on import; set it before anything imports TensorFlow so
# every test sees tf_keras (Keras 2), as the package does.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def require_shared_file(relative: str) -> pathlib.Path:
    """The path of a file under ../shared/data; fails under CI=true when it is missing, else skips."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"real dataset file {path} is missing (expected ../shared/data beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data():
    """Resolves files of ../shared/data: `shared_data("taobao_userbehavior/UserBehavior_head.csv")`."""
    return require_shared_file


# ------------------------------------------------------- simulated log through Transform
def simulate_ingest_transform(root: pathlib.Path, simulator_config, max_history: int) -> dict:
    """Simulates `simulator_config`'s log under `root`, ingests it and runs Transform in-process.

    Returns {"root", "examples" (ingest's raw examples), "graph" (the Transform graph),
    "transformed" (the transformed examples)}.
    """
    from tfx_pipeline import simulator
    from tfx_pipeline.beam_args import in_memory
    from tfx_pipeline.ingest import pipeline as ingest
    from tfx_pipeline.ingest.config import IngestConfig
    from transforms.preprocessing import TransformSettings
    from transforms.run import run_transform

    simulator.simulate(simulator_config, str(root / "log"), workers=1)
    outputs = ingest.IngestOutputs(str(root / "ingest" / "examples"), str(root / "ingest" / "dead"))
    ingest.run_ingest(str(root / "log"), outputs, IngestConfig(max_history=max_history), in_memory())
    graph = run_transform(outputs.examples_dir, str(root / "transform"), TransformSettings(max_history=max_history))
    return {"root": root, "examples": outputs.examples_dir, "graph": graph,
            "transformed": str(root / "transform" / "transformed_examples")}


@pytest.fixture(scope="session")
def simulated_and_transformed():
    """`simulated_and_transformed(root, simulator_config, max_history)`: see simulate_ingest_transform."""
    return simulate_ingest_transform


# ---------------------------------------------------------------- Transform fixtures
def raw_example(user, item, category, timestamp, history=(), history_categories=None, gaps=None,
                click=0, conversion=0, **side):
    """One raw example in tft_beam's instance-dict form (lists for every feature)."""
    history = list(history)
    example = {
        features.USER_ID.name: [user],
        features.ITEM_ID.name: [item],
        features.CATEGORY_ID.name: [category],
        features.TIMESTAMP.name: [timestamp],
        features.HISTORY_ITEMS.name: history,
        features.HISTORY_CATEGORIES.name: list(history_categories or [f"c_{h}" for h in history]),
        features.HISTORY_TIME_GAPS.name: list(gaps or [10 * (len(history) - i) for i in range(len(history))]),
        features.HISTORY_NEGATIVE_ITEMS.name: [],
        features.HISTORY_NEGATIVE_CATEGORIES.name: [],
        features.CLICK_LABEL.name: [click],
        features.CONVERSION_LABEL.name: [conversion],
    }
    for field in features.SIDE_EXAMPLE_FEATURES:
        example[field.name] = list(side.get(field.name, []))
    return example


@pytest.fixture
def make_raw():
    return raw_example


@pytest.fixture
def analyze(tmp_path):
    """analyze(raw_examples, name, custom_config=None) -> (transformed examples, transform output dir)."""

    def run(examples, name="run", custom_config=None):
        import tensorflow_transform as tft
        import tensorflow_transform.beam as tft_beam
        from tensorflow_transform.tf_metadata import metadata_io

        from tfx_pipeline import schema
        from transforms import preprocessing

        metadata = tft.DatasetMetadata(schema.build_schema())
        output_dir = str(tmp_path / name)

        def fn(inputs):
            return preprocessing.preprocessing_fn(inputs, custom_config)

        with tft_beam.Context(temp_dir=str(tmp_path / f"{name}-tmp"), force_tf_compat_v1=False):
            (rows, _), transform_fn = (examples, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
            _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
        # The raw metadata, as TFX's Transform writes it beside the transform graph.
        metadata_io.write_metadata(metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
        return rows, output_dir

    return run


@pytest.fixture
def tokens_of():
    """tokens_of(transform_output_dir, table) -> the table's vocabulary by position."""

    def read(output_dir, table):
        import tensorflow_transform as tft

        from transforms.vocabulary import read_vocabulary

        return read_vocabulary(tft.TFTransformOutput(output_dir).vocabulary_file_by_name(table + ".vocab"))

    return read
