"""Tests of `ctrflow import`: argument handling, the report, user-fixable errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfx_pipeline import cli
from tfx_pipeline.commands import import_data

T = 1511600000  # inside the Taobao window (2017-11-25 China time)


@pytest.fixture(autouse=True)
def only_import_command(monkeypatch):
    """Runs cli.main with only this subcommand, whatever the state of the other modules."""
    monkeypatch.setattr(cli, "COMMANDS", {"import": "import_data"})


def taobao_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "UserBehavior.csv"
    path.write_bytes(
        f"1,100,10,pv,{T}\n1,100,10,buy,{T + 60}\n1,101,10,nap,{T}\n2,100,10,pv,1400000000\n".encode()
    )
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_import_writes_the_log_and_prints_the_report(tmp_path, capsys, fmt):
    src = taobao_file(tmp_path / "src")
    out = tmp_path / "log"
    assert cli.main(["import", "taobao", str(src), "--out", str(out), "--format", fmt]) == 0
    printed = capsys.readouterr().out
    assert "rows read 4: good 2, rejected 2 (50.00%)" in printed
    assert "unknown_event" in printed and "timestamp_out_of_span" in printed
    assert "events written 2 in 1 span (span-20171125 .. span-20171125)" in printed
    manifest = json.loads((out / "log.json").read_text())
    assert manifest["file_format"] == fmt and manifest["source"] == "taobao"
    assert (out / "span-20171125" / f"events-00000.{fmt}").exists()


def test_default_format_is_csv(tmp_path, capsys):
    src = taobao_file(tmp_path / "src")
    assert cli.main(["import", "taobao", str(src.parent), "--out", str(tmp_path / "log")]) == 0
    assert (tmp_path / "log" / "span-20171125" / "events-00000.csv").exists()


def test_missing_src_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert cli.main(["import", "movielens", str(missing), "--out", str(tmp_path / "log")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctrflow import: error: ")
    assert str(missing) in err and "does not exist" in err
    assert "ml-100k.inter" in err and "Pass the movielens_100k folder" in err
    assert "Traceback" not in err


def test_missing_file_in_src_names_it(tmp_path, capsys):
    src = tmp_path / "beauty"
    src.mkdir()
    (src / "Beauty.txt").write_text("1 1 2\n")
    assert cli.main(["import", "amazon", str(src), "--out", str(tmp_path / "log")]) == 2
    err = capsys.readouterr().err
    assert "lacks ['Beauty_item2attributes.json']" in err and "holds ['Beauty.txt']" in err


def test_existing_log_is_not_overwritten(tmp_path, capsys):
    src = taobao_file(tmp_path / "src")
    out = tmp_path / "log"
    assert cli.main(["import", "taobao", str(src), "--out", str(out)]) == 0
    before = (out / "log.json").read_text()
    assert cli.main(["import", "taobao", str(src), "--out", str(out)]) == 2
    assert "already holds an event log" in capsys.readouterr().err
    assert (out / "log.json").read_text() == before


def test_bad_arguments_are_refused_by_argparse(tmp_path, capsys):
    src = taobao_file(tmp_path / "src")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["import", "criteo", str(src), "--out", str(tmp_path / "log")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'criteo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["import", "taobao", str(src), "--out", str(tmp_path / "log"), "--format", "tsv"])
    with pytest.raises(SystemExit):
        cli.main(["import", "taobao", str(src)])  # --out is required
    assert not (tmp_path / "log").exists()


def test_help_lists_the_datasets_and_their_sources(capsys):
    with pytest.raises(SystemExit):
        cli.main(["import", "--help"])
    help_text = capsys.readouterr().out
    for dataset in import_data.DATASETS:
        assert dataset in help_text
    assert "Beauty_item2attributes.json" in help_text and "rating >= 4" in help_text
