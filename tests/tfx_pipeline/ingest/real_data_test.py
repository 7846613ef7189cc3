"""Ingest of the real Taobao and Amazon Beauty logs gives the number of examples the protocols imply."""

import csv

import pytest

from tfx_pipeline.beam_args import in_memory
from tfx_pipeline.importers import run_import
from tfx_pipeline.ingest import pipeline as ingest
from tfx_pipeline.ingest.config import IngestConfig

TAOBAO = "taobao_userbehavior/UserBehavior_head.csv"
WINDOW_START = 1511539200  # 2017-11-25 00:00 China time
LAST_DAY_START = WINDOW_START + 8 * 86400
WINDOW_END = WINDOW_START + 9 * 86400


@pytest.mark.slow
def test_taobao_sampled_protocol(tmp_path, shared_data):
    source = shared_data(TAOBAO)
    with open(source, newline="") as stream:
        clicks = [int(r[4]) for r in csv.reader(stream) if r[3] == "pv" and WINDOW_START <= int(r[4]) < WINDOW_END]
    last_day = sum(1 for t in clicks if t >= LAST_DAY_START)
    run_import("taobao", str(source), str(tmp_path / "log"))
    outputs = ingest.IngestOutputs(str(tmp_path / "ex"), str(tmp_path / "dead"))
    report = ingest.run_ingest(str(tmp_path / "log"), outputs, IngestConfig(), in_memory())
    # every in-window page view is a positive with one sampled negative; the last day evaluates
    assert report["examples"] == {"train": 2 * (len(clicks) - last_day), "eval": 2 * last_day}
    assert report["clicks"] == {"train": len(clicks) - last_day, "eval": last_day}
    assert report["rows"]["bad"] == 0
    assert report["candidates_without_negative"] == 0
    assert len(report["target_spans"]) == 9


@pytest.mark.slow
def test_amazon_beauty_din_protocol(tmp_path, shared_data):
    sequences = [line.split()[1:] for line in open(shared_data("amazon_beauty/Beauty.txt"))]
    run_import("amazon", str(shared_data("amazon_beauty/Beauty.txt").parent), str(tmp_path / "log"))
    outputs = ingest.IngestOutputs(str(tmp_path / "ex"), str(tmp_path / "dead"))
    report = ingest.run_ingest(str(tmp_path / "log"), outputs, IngestConfig(protocol="din"), in_memory())
    # per user with n items: targets 2..n-1 train, target n tests; each with one negative
    assert report["examples"] == {
        "train": sum(2 * (len(s) - 2) for s in sequences),
        "eval": 2 * len(sequences),
    }
    assert report["examples"] == {"train": 307_552, "eval": 44_726}
