from tfx_pipeline import cli
from tfx_pipeline.eventlog import logdir
from tfx_pipeline.eventlog.formats import FileFormat


def test_inspect_summarizes_and_counts_bad_rows(tmp_path, capsys):
    writer = logdir.LogWriter(str(tmp_path), FileFormat.CSV)
    for ts, event in [(5, "impression"), (6, "click"), (7, "impression"), (8, "buy")]:
        writer.write({"user_id": "u", "item_id": "i", "category_id": "c", "event": event, "timestamp": ts})
    writer.close()
    writer.manifest("test").write(str(tmp_path))
    with open(tmp_path / "span-19700101" / "events-00000.csv", "a") as stream:
        stream.write("u,i,c,jump,9\n")
    assert cli.main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "span-19700101" in out
    assert "click-through rate 50.00% of impressions" in out
    assert "rows read 5: good 4, rejected 1 (20.00%)" in out
    assert "unknown_event" in out and "e.g. unknown_event" in out


def test_inspect_refuses_a_folder_without_manifest(tmp_path, capsys):
    assert cli.main(["inspect", str(tmp_path)]) == 2
    assert "not a complete ctrflow event log" in capsys.readouterr().err
