"""Benchmark: scoring latency and throughput of a DIN model in process and through `ctrflow serve`.

Run from the repository root:

    .venv/bin/python bench/serving_bench.py --work /tmp/servingbench                 # prepares Amazon Beauty
    .venv/bin/python bench/serving_bench.py --work /tmp/servingbench --prepared /tmp/amzfinal

Steps:
1. data: Amazon Beauty (../shared/data/amazon_beauty) imported, ingested with the DIN
   protocol and transformed, as bench/amazon_bench.py does (``--prepared DIR`` reuses that
   script's ``--work`` folder; ``--users N`` prepares a subset);
2. train DIN briefly (``--steps`` steps of batch 128, embedding 18, towers (200, 80)) and
   export it with serving/export.py into ``WORK/serving/din/1`` (realistic vocabularies:
   every item and category of the dataset);
3. in process: median and p95 latency of one ``serving_default`` call on raw eval
   examples at batch 1, 32 and 256 (serving/requests.py tensors, as TF Serving gets them);
4. through the local server (`ctrflow serve` in its own process, HTTP/1.1 keep-alive):
   the same latencies for one client sending row-form JSON, then requests/s and latency
   of batch-1 requests from 1, 8 and 32 concurrent clients.

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import common  # noqa: E402

BATCHES = (1, 32, 256)
CONCURRENCY = (1, 8, 32)


def prepared_paths(args) -> Dict[str, str]:
    if args.prepared:
        return common.paths(args.prepared)
    import amazon_bench

    prepared = amazon_bench.prepare(args.work, args.users, args.max_history)
    return prepared


def train_and_export(prepared: Dict[str, str], args) -> str:
    from serving import export
    from trainer import config as experiment
    from trainer.train import train_and_evaluate

    config = experiment.with_defaults(
        model={"name": "din", "embedding_dim": 18, "hidden_units": [200, 80], "activation": "dice",
               "attention_units": [80, 40]},
        training={"epochs": 1, "steps_per_epoch": args.steps, "eval_steps": 10, "batch_size": 128,
                  "early_stopping_patience": 0, "seed": 1})
    started = time.monotonic()
    result = train_and_evaluate(config, prepared["graph"], prepared["transformed"], verbose=0)
    export_dir = os.path.join(args.work, "serving", "din", "1")
    export.export_serving_model(result.model, prepared["graph"], export_dir, result.model.input_features)
    print(f"trained {args.steps} steps and exported in {time.monotonic() - started:.0f} s -> {export_dir}", flush=True)
    return export_dir


def eval_examples(raw_dir: str, names: List[str], count: int) -> List[Dict]:
    import tensorflow as tf

    from serving import requests

    files = sorted(glob.glob(os.path.join(raw_dir, "Split-eval", "*")))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)]
    return requests.from_tf_examples(records, names)


def summary(seconds: List[float]) -> str:
    values = np.array(seconds) * 1000.0
    return f"{np.median(values):.1f} / {np.percentile(values, 95):.1f}"


def in_process(export_dir: str, examples, repeats: int) -> Dict[int, str]:
    from serving import requests
    from serving.export import load_signature

    signature = load_signature(export_dir)
    specs = signature.structured_input_signature[1]
    result = {}
    for batch in BATCHES:
        tensors = requests.to_tensors(requests.dense_request(examples[:batch], list(specs)), specs)
        signature(**tensors)  # first call outside the timing
        times = []
        for _ in range(repeats):
            begin = time.perf_counter()
            signature(**tensors)
            times.append(time.perf_counter() - begin)
        result[batch] = summary(times)
    return result


def start_server(model_base: str):
    process = subprocess.Popen([sys.executable, "-m", "tfx_pipeline.cli", "serve", "--model-base", model_base,
                                "--model-name", "din", "--port", "0", "--poll-seconds", "0"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        match = re.search(r"REST API at (http://\S+)/v1/models/<name>", line)
        if match:
            return process, match.group(1)
    raise RuntimeError("the server did not start")


def through_server(url: str, examples, names, repeats: int, seconds: float):
    from serving import client, requests

    predict_url = url + "/v1/models/din:predict"
    latency = {}
    for batch in BATCHES:
        bodies = client.batched_bodies(requests.instances(examples[:batch], names), batch, count=1)
        client.run_load(predict_url, bodies, 1, 60, 3)  # warm-up
        report = client.run_load(predict_url, bodies, 1, 120, repeats)
        assert report.error_count == 0, report.errors
        latency[batch] = summary(report.latencies)
    throughput = {}
    bodies = client.batched_bodies(requests.instances(examples, names), 1, count=len(examples))
    for concurrency in CONCURRENCY:
        report = client.run_load(predict_url, bodies, concurrency, seconds)
        assert report.error_count == 0, report.errors
        throughput[concurrency] = report
    return latency, throughput


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="where to write the prepared data and the model")
    parser.add_argument("--prepared", default=None, help="a bench/amazon_bench.py --work folder to reuse")
    parser.add_argument("--users", type=int, default=0, help="prepare only the first N users (0 = all)")
    parser.add_argument("--max-history", type=int, default=50)
    parser.add_argument("--steps", type=int, default=300, help="training steps of batch 128")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per batch size")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per concurrency level")
    args = parser.parse_args()

    prepared = prepared_paths(args)
    export_dir = os.path.join(args.work, "serving", "din", "1")
    if not os.path.exists(os.path.join(export_dir, "saved_model.pb")):
        export_dir = train_and_export(prepared, args)
    from serving.export import load_signature

    names = sorted(load_signature(export_dir).structured_input_signature[1])
    examples = eval_examples(prepared["raw"], names, max(BATCHES))
    local = in_process(export_dir, examples, args.repeats)
    process, url = start_server(os.path.dirname(export_dir))
    try:
        latency, throughput = through_server(url, examples, names, args.repeats, args.seconds)
    finally:
        process.terminate()
        process.wait(30)

    print(f"\nDIN inputs: {names}\n")
    print("| batch | in process: median / p95 ms | local server, 1 client: median / p95 ms |")
    print("|---:|---:|---:|")
    for batch in BATCHES:
        print(f"| {batch} | {local[batch]} | {latency[batch]} |")
    print("\n| clients (batch 1) | requests/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for concurrency, report in throughput.items():
        print(f"| {concurrency} | {report.qps:,.0f} | {report.percentile_ms(50):.1f} | "
              f"{report.percentile_ms(95):.1f} | {report.percentile_ms(99):.1f} | {report.error_count} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
