"""`ctrflow run`, `runs` and `report` before anything ran: clear errors, no tracebacks.

The commands on real runs are checked in tests/tfx_pipeline/runners/local_test.py, next to
the pipeline runs they read.
"""

from tfx_pipeline import cli


def test_run_needs_an_existing_config_and_log(tmp_path, capsys):
    assert cli.main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    config = tmp_path / "pipeline.yaml"
    config.write_text("pipeline: {log_dir: no-log-here}\n")
    assert cli.main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "pipeline.log_dir" in err and "no-log-here" in err and "ctrflow simulate" in err


def test_runs_and_report_without_runs(tmp_path, capsys):
    config = tmp_path / "pipeline.yaml"
    config.write_text("pipeline: {root: runs}\n")
    assert cli.main(["runs", "--config", str(config)]) == 0
    assert "no runs recorded in" in capsys.readouterr().out
    assert cli.main(["report", "latest", "--config", str(config)]) == 2
    assert "run `ctrflow run` first" in capsys.readouterr().err


def test_a_bad_config_value_is_one_line_naming_its_path(tmp_path, capsys):
    config = tmp_path / "pipeline.yaml"
    config.write_text("experiment: {training: {epochs: 0}}\n")
    assert cli.main(["runs", "--config", str(config)]) == 2
    assert "`experiment`: `training.epochs` must be >= 1" in capsys.readouterr().err
