import os

import pytest

from tfx_pipeline import cli, simulator
from tfx_pipeline.beam_args import in_memory


@pytest.mark.slow
def test_ingest_then_transform_twice_keeps_rows(tmp_path, capsys):
    import tensorflow_transform as tft

    from transforms.vocabulary import read_vocabulary

    log = str(tmp_path / "log")
    simulator.simulate(simulator.SimulatorConfig(users=20, items=60, days=2, seed=2), log, workers=1)
    assert cli.main(["ingest", log, "--out", str(tmp_path / "ing"), "--", *in_memory()]) == 0
    examples = str(tmp_path / "ing" / "examples")
    assert cli.main(["transform", examples, "--out", str(tmp_path / "t1"), "--max-history", "10",
                     "--", *in_memory()]) == 0
    first = str(tmp_path / "t1" / "transform_graph")
    assert cli.main(["transform", examples, "--out", str(tmp_path / "t2"), "--previous", first,
                     "--", *in_memory()]) == 0
    assert "transform graph in" in capsys.readouterr().out
    vocab = lambda d: read_vocabulary(tft.TFTransformOutput(d).vocabulary_file_by_name("item_id.vocab"))
    assert vocab(str(tmp_path / "t2" / "transform_graph")) == vocab(first)
    assert os.listdir(tmp_path / "t2" / "transformed_examples" / "Split-eval")


def test_transform_needs_ingest_output(tmp_path, capsys):
    assert cli.main(["transform", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "has no Split-train/" in capsys.readouterr().err
