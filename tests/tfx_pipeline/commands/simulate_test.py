"""Tests of `ctrflow simulate` through ``tfx_pipeline.cli.main``."""

from __future__ import annotations

import os

import pytest

from tfx_pipeline import cli, simulator
from tfx_pipeline.commands import simulate as simulate_command
from tfx_pipeline.eventlog import logdir
from transforms import features

SMALL_ARGS = ["--users", "30", "--items", "120", "--days", "2", "--seed", "5", "--categories", "8"]


@pytest.fixture(autouse=True)
def only_simulate(monkeypatch):
    """Builds the parser from this subcommand alone, so that these tests check `simulate`
    and do not depend on the other subcommand modules."""
    monkeypatch.setattr(cli, "COMMANDS", {"simulate": "simulate"})


def test_help_lists_the_flags_and_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["simulate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--users", "--items", "--days", "--seed", "--out", "--format", "--start-date",
                 "--workers", "--shards", "--categories", "--impressions-per-session"):
        assert flag in text
    assert "ctrflow simulate --users 200 --items 500 --days 3 --seed 7 --out" in text


def test_writes_a_valid_log_and_reports_it(tmp_path, capsys):
    out = str(tmp_path / "log")
    assert cli.main(["simulate", *SMALL_ARGS, "--format", "jsonl", "--workers", "1", "--out", out]) == 0
    report = capsys.readouterr().out
    manifest = logdir.read_manifest(out)
    assert f"wrote {manifest.counts['good']:,} events in 2 spans to {out} (jsonl, 2 shards)" in report
    assert "CTR " in report
    assert manifest.details["users"] == 30 and manifest.details["seed"] == 5
    assert manifest.details["categories"] == 8 and manifest.details["file_format"] == "jsonl"
    events = list(logdir.read_log(out))
    assert len(events) == manifest.counts["good"] > 0
    assert all(isinstance(e, dict) for e in events)
    assert {e[features.EVENT.name] for e in events} >= {features.IMPRESSION_EVENT, features.CLICK_EVENT}


def test_output_matches_the_python_api_and_ignores_workers(tmp_path):
    from_cli = str(tmp_path / "cli")
    from_api = str(tmp_path / "api")
    assert cli.main(["simulate", *SMALL_ARGS, "--workers", "2", "--out", from_cli]) == 0
    config = simulator.SimulatorConfig(users=30, items=120, days=2, seed=5, categories=8)
    simulator.simulate(config, from_api, workers=1)
    for day in range(config.days):
        for shard in range(config.shards):
            name = os.path.join(config.span(day).name, f"events-{shard:05d}.csv")
            with open(os.path.join(from_cli, name), "rb") as a, open(os.path.join(from_api, name), "rb") as b:
                assert a.read() == b.read()


def test_defaults_match_the_simulator_config():
    parser = cli.build_parser()
    args = parser.parse_args(["simulate", "--out", "x"])
    config = simulator.SimulatorConfig()
    assert args.workers == simulate_command.DEFAULT_WORKERS
    for name, value in simulate_command.DEFAULTS.items():
        field = "file_format" if name == "format" else name
        got = getattr(config, field)
        got = got.value if field == "file_format" else got
        got = got.isoformat() if field == "start_date" else got
        assert value == got, name
        assert getattr(args, name) == value


def test_bad_number_of_users_is_a_clear_error(tmp_path, capsys):
    out = str(tmp_path / "log")
    assert cli.main(["simulate", "--users", "0", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "ctrflow simulate: error: --users must be at least 1. Received: users=0." in err
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--interests", "8", "--categories", "8"], "--interests must be below --categories"),
        (["--items", "5", "--categories", "10"], "--items must be at least --categories"),
        (["--start-date", "2024-1-x"], "--start-date must be a date in the form YYYY-MM-DD"),
        (["--workers", "0"], "--workers must be at least 1. Received: workers=0."),
        (["--drift", "2"], "--drift must be between 0.0 and 1.0. Received: drift=2.0."),
    ],
)
def test_bad_values_name_the_flag(tmp_path, capsys, argv, message):
    assert cli.main(["simulate", *argv, "--out", str(tmp_path / "log")]) == 2
    assert message in capsys.readouterr().err


def test_non_empty_output_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert cli.main(["simulate", *SMALL_ARGS, "--out", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_unknown_format_is_rejected_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["simulate", "--format", "xml", "--out", str(tmp_path / "log")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err
