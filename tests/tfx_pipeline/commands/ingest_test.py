import json
import os

import pytest

from tfx_pipeline import cli, simulator
from tfx_pipeline.beam_args import in_memory


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("sim") / "log")
    simulator.simulate(simulator.SimulatorConfig(users=30, items=100, days=2, seed=1), path, workers=1)
    return path


def test_ingest_writes_examples_and_report(log_dir, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.main(["ingest", log_dir, "--out", out, "--max-history", "20", "--", *in_memory()]) == 0
    printed = capsys.readouterr().out
    assert "protocol impressions, split last_day, max_history 20" in printed
    with open(os.path.join(out, "dead_letters", "ingest_report.json")) as stream:
        report = json.load(stream)
    assert report["rows"]["bad"] == 0 and report["examples"]["eval"] > 0
    assert os.listdir(os.path.join(out, "examples", "Split-train"))


def test_ingest_bad_settings_and_bad_protocol_are_one_line_errors(log_dir, tmp_path, capsys):
    assert cli.main(["ingest", log_dir, "--out", str(tmp_path), "--max-history", "0", "--", *in_memory()]) == 2
    assert "`max_history` must be an integer >= 1. Received: max_history=0" in capsys.readouterr().err
    assert cli.main(["ingest", log_dir, "--out", str(tmp_path), "--split", "last_day", "--num-spans", "1",
                     "--", *in_memory()]) == 2
    assert "needs at least two target spans" in capsys.readouterr().err
