import subprocess
import sys

import pytest

from tfx_pipeline import cli


def test_every_subcommand_has_help(capsys):
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0, name
        assert "usage: ctrflow " + name in capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_arguments_after_double_dash_go_to_beam():
    assert cli.split_passthrough(["ingest", "L", "--out", "D", "--", "--runner=FlinkRunner"]) == (
        ["ingest", "L", "--out", "D"], ["--runner=FlinkRunner"])
    assert cli.split_passthrough(["inspect", "L"]) == (["inspect", "L"], [])


def test_user_errors_print_one_line_without_traceback(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctrflow inspect: error: log directory") and "Traceback" not in err


def test_console_script_help_is_fast_and_light():
    # --help must not import TensorFlow or Beam.
    code = "import sys; from tfx_pipeline import cli; cli.build_parser(); " \
           "print(sorted(m for m in ('tensorflow', 'apache_beam', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
