"""`ctrflow serve`, `ctrflow predict` and `ctrflow loadtest` through ``tfx_pipeline.cli.main`` and a server process."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from serving import client, rest, testing
from tfx_pipeline import cli

ROWS = [{"item_id": "i1", "history_item_id": ["a", "b"], "timestamp": 1, "item_price": 1.5},
        {"item_id": "zz", "history_item_id": [], "timestamp": 2}]


@pytest.fixture(autouse=True)
def only_these_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", {"serve": "serve", "predict": "serve", "loadtest": "serve"})


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_cli")
    testing.write_scoring_model(str(root / "ctr" / "1"))
    (root / "rows.json").write_text(json.dumps(ROWS))
    return root


@pytest.fixture(scope="module")
def server_process(model_base):
    """`ctrflow serve` in its own process on a free port: (process, url)."""
    with testing.serve_process(str(model_base / "ctr"), 0.2) as (process, url):
        yield process, url


def expected_line(row):
    scores = testing.expected_scores(row)
    return {name: pytest.approx(value, abs=1e-6) for name, value in scores.items()}


def test_help_says_it_is_for_development_and_tests(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "FOR DEVELOPMENT AND TESTS on machines without tensorflow_model_server" in text
    assert "production serves the same folders with TF Serving (see deploy/)" in text
    for flag in ("--model-base", "--model-name", "--host", "--port", "--poll-seconds", "--model-config-file",
                 "--max-body-bytes", "--max-batch-size"):
        assert flag in text
    for command in ("predict", "loadtest"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "example" in capsys.readouterr().out


def test_predict_in_process_from_rows_and_events(model_base, tmp_path, capsys):
    assert cli.main(["predict", "--model-dir", str(model_base / "ctr"), "--json", str(model_base / "rows.json")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [expected_line(ROWS[0]), expected_line(ROWS[1])]
    # histories padded to one fixed width (what TF Serving's batching needs) score the same
    assert cli.main(["predict", "--model-dir", str(model_base / "ctr"), "--json", str(model_base / "rows.json"),
                     "--pad-history", "7"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == lines

    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,category_id,event,timestamp\nu1,i1,c1,click,1700000000\n"
                      "u1,i2,c1,impression,1700000100\n")
    assert cli.main(["predict", "--model-dir", str(model_base / "ctr" / "1"), "--events", str(events)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    # candidate i2 (known) with history [i1]: sigmoid(0.5 + 1 - 1)
    assert json.loads(line) == expected_line({"item_id": "i2", "history_item_id": ["i1"]})


@pytest.mark.parametrize("args, message", [
    (["--json", "rows.json"], "Give exactly one of --url URL (a REST server) or --model-dir DIR"),
    (["--model-dir", "ctr"], "give exactly one of --json FILE|- or --events FILE"),
    (["--model-dir", "ctr", "--json", "bad.json"], "bad.json is not JSON: Expecting value at line 1, column 1"),
    (["--model-dir", "ctr", "--json", "extra.json"], "Row 0 has features the model does not take: ['colour']"),
    (["--model-dir", "ctr", "--json", "rows.json", "--signature", "nope"], "The model has no signature 'nope'"),
    (["--model-dir", "ctr", "--json", "typed.json"], "the server refused the request: HTTP 400: "),
])
def test_predict_errors_are_one_line(model_base, monkeypatch, capsys, args, message):
    monkeypatch.chdir(model_base)
    (model_base / "bad.json").write_text("no")
    (model_base / "extra.json").write_text(json.dumps([dict(ROWS[0], colour="red")]))
    (model_base / "typed.json").write_text(json.dumps({"instances": [dict(ROWS[0], timestamp="x")]}))
    assert cli.main(["predict", *args]) == 2
    assert message in capsys.readouterr().err


def test_serve_predict_and_loadtest_over_http(server_process, model_base, tmp_path, capsys):
    process, url = server_process
    assert cli.main(["predict", "--url", url, "--json", str(model_base / "rows.json")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [expected_line(ROWS[0]), expected_line(ROWS[1])]

    report = tmp_path / "report.json"
    assert cli.main(["loadtest", "--url", url, "--json", str(model_base / "rows.json"), "--batch-size", "2",
                     "--concurrency", "2", "--requests", "50", "--duration", "60", "--json-report", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"POST {url}/v1/models/ctr:predict" in out and "50 requests in" in out and "errors: 0 (none)" in out
    figures = json.loads(report.read_text())
    assert figures["requests"] == 50 and figures["errors"] == 0 and figures["rows_per_request"] == 2

    body = tmp_path / "wrong.json"
    body.write_text(json.dumps({"instances": [{"x": 1}]}))
    assert cli.main(["loadtest", "--url", url, "--json", str(body), "--requests", "5", "--concurrency", "1"]) == 1
    assert "errors: 5 (400: 5)" in capsys.readouterr().out


def test_serve_picks_up_a_push_and_refuses_to_start_without_a_model_base(server_process, model_base, capsys):
    process, url = server_process
    staging = model_base / "ctr" / ".tmp-2"
    testing.write_scoring_model(str(staging), bias=1.0)
    os.rename(staging, model_base / "ctr" / "2")
    rest_client = client.RestClient(url)
    deadline = time.monotonic() + 60
    while rest_client.metadata()["model_spec"]["version"] != "2" and time.monotonic() < deadline:
        time.sleep(0.1)
    scores = client.scores_by_row(rest_client.predict({"instances": client.request_from_json(
        ROWS[:1], client.input_names(rest_client.metadata()))["instances"]}), ["click", "conversion"])
    assert scores[0] == pytest.approx(testing.expected_scores(ROWS[0], bias=1.0), abs=1e-6)
    shutil.rmtree(model_base / "ctr" / "2")

    assert cli.main(["serve", "--model-base", str(model_base / "missing")]) == 2
    err = capsys.readouterr().err
    assert f"--model-base {model_base / 'missing'} is not a folder" in err


def test_ten_thousand_requests_at_concurrency_32_without_errors_or_memory_growth(server_process):
    """10,000 predict requests from 32 concurrent clients: no errors, and the server's RSS after them is
    within 8 MiB of its RSS after a 2,000-request warm-up. 8 MiB is what glibc's per-thread malloc arenas
    and TensorFlow's per-thread caches may still grow by once every worker thread has run; a leak of
    1 KiB per request would add 10 MiB and fail."""
    process, url = server_process
    predict_url = url + "/v1/models/ctr:predict"
    names = client.input_names(client.RestClient(url).metadata())
    bodies = [rest.dumps(client.request_from_json([row], names)) for row in ROWS]
    warm = client.run_load(predict_url, bodies, concurrency=32, duration_seconds=120, max_requests=2000)
    assert warm.error_count == 0, warm.errors
    before = testing.rss_bytes(process.pid)
    report = client.run_load(predict_url, bodies, concurrency=32, duration_seconds=300, max_requests=10_000)
    after = testing.rss_bytes(process.pid)
    assert report.requests == 10_000 and report.error_count == 0, report.format()
    assert after - before < 8 * 1024 * 1024, f"RSS grew from {before / 2**20:.1f} MiB to {after / 2**20:.1f} MiB"
