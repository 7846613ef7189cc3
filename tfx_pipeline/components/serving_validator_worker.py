"""The process that loads a model for ServingValidator: ``python -m <this module> JOB.json``.

ServingValidator (serving_validator.py) never loads the model into the pipeline process:
a model that crashes TensorFlow, leaks memory or hangs must fail validation, not the
orchestrator. This entry point reads a job file, and writes a result file:

1. reads up to ``num_examples`` raw tf.Examples from the eval files;
2. loads the SavedModel and takes the signature ``signature_name``;
3. builds dense requests with serving/requests.py (single examples, and one batch of
   ``batch_size`` examples, cycling through the examples when there are fewer);
4. calls the signature ``num_warmup_calls`` times untimed per batch size (tracing, caches),
   then ``num_timing_requests`` times timed; batch 1 requests walk through the examples;
5. summarizes every output of every call (dtype, shapes, min, max, non-finite count) and
   records each call's latency in milliseconds;
6. writes TF Serving warmup requests (a TFRecord of PredictionLog with PredictRequests)
   to ``warmup_path``: one request per example and one batch request.

It judges nothing: the executor applies the checks and budgets to the result. A Python
error at any stage is written to the result with the stage's name; a crash (signal,
out of memory) leaves no result and the executor reports the exit status.

Timings cover the signature call only (tensors are built beforehand): the model's own
latency in one process, without TF Serving's RPC/JSON handling or batching queue.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any, Dict, List, Sequence

# The model is loaded with TensorFlow's SavedModel loader; keep Keras 2 in case a layer
# deserializes (as the package does everywhere).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many warmup records


class StageError(Exception):
    """An error at a named stage of the worker."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage}: {type(error).__name__}: {error}")
        self.stage = stage
        self.error = error


def read_records(files: Sequence[str], num_examples: int) -> List[bytes]:
    """Up to `num_examples` serialized records from TFRecord files (gzipped when named *.gz)."""
    import tensorflow as tf

    records: List[bytes] = []
    for path in files:
        compression = "GZIP" if path.endswith(".gz") else ""
        for record in tf.data.TFRecordDataset(path, compression_type=compression):
            records.append(record.numpy())
            if len(records) >= num_examples:
                return records
    return records


def summarize(outputs: Any) -> Dict[str, Dict[str, Any]]:
    """dtype, shape, min, max and non-finite count of every output of one call."""
    import numpy as np

    if not isinstance(outputs, dict):
        raise TypeError(f"the signature returned a {type(outputs).__name__}; expected a dict of "
                        "task -> probability [B]")
    summary = {}
    for name, tensor in outputs.items():
        values = np.asarray(tensor.numpy())
        entry: Dict[str, Any] = {"dtype": tensor.dtype.name, "shapes": [list(values.shape)], "non_finite": 0,
                                 "min": None, "max": None}
        if np.issubdtype(values.dtype, np.number):
            finite = np.isfinite(values)
            entry["non_finite"] = int(values.size - finite.sum())
            if finite.any():
                entry["min"] = float(values[finite].min())
                entry["max"] = float(values[finite].max())
        summary[name] = entry
    return summary


def merge(total: Dict[str, Dict[str, Any]], call: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Summaries of several calls as one: shapes seen, overall min/max, non-finite total."""
    for name, entry in call.items():
        if name not in total:
            total[name] = dict(entry)
            continue
        seen = total[name]
        for shape in entry["shapes"]:
            if shape not in seen["shapes"]:
                seen["shapes"].append(shape)
        seen["non_finite"] += entry["non_finite"]
        for key, pick in (("min", min), ("max", max)):
            values = [v for v in (seen[key], entry[key]) if v is not None]
            seen[key] = pick(values) if values else None
    return total


def warmup_logs(requests: Sequence[Dict[str, list]], specs: Dict[str, Any], signature_name: str) -> List[bytes]:
    """Serialized PredictionLogs, one PredictRequest per dense request."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    logs = []
    for request in requests[:MAX_WARMUP_RECORDS]:
        predict = predict_pb2.PredictRequest()
        predict.model_spec.signature_name = signature_name
        for name, spec in specs.items():
            predict.inputs[name].CopyFrom(tf.make_tensor_proto(request[name], dtype=spec.dtype))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=predict)).SerializeToString())
    return logs


def _stage(name: str, function, *args):
    try:
        return function(*args)
    except Exception as error:  # pylint: disable=broad-except
        raise StageError(name, error) from error


def validate(job: Dict[str, Any]) -> Dict[str, Any]:
    """Runs the job (see the module docstring); returns the result dict."""
    import tensorflow as tf

    from serving import requests

    result: Dict[str, Any] = {"stages": []}
    started = time.perf_counter()
    records = _stage("read_examples", read_records, job["example_files"], job["num_examples"])
    if not records:
        raise StageError("read_examples", ValueError(f"no records in {job['example_files']}"))
    result["num_examples"] = len(records)
    result["stages"].append("read_examples")

    loaded = _stage("load_model", tf.saved_model.load, job["model_path"])
    result["load_seconds"] = round(time.perf_counter() - started, 3)
    if job["signature_name"] not in loaded.signatures:
        raise StageError("load_model", KeyError(
            f"the model has no signature {job['signature_name']!r}; it has {sorted(loaded.signatures)}"))
    signature = loaded.signatures[job["signature_name"]]
    specs = signature.structured_input_signature[1]
    result["inputs"] = {name: spec.dtype.name for name, spec in specs.items()}
    result["stages"].append("load_model")

    names = list(specs)
    examples = _stage("build_requests", requests.from_tf_examples, records, names)
    singles = [_stage("build_requests", requests.dense_request, [e], names) for e in examples]
    batch_examples = [examples[k % len(examples)] for k in range(job["batch_size"])]
    batch = _stage("build_requests", requests.dense_request, batch_examples, names)
    result["stages"].append("build_requests")

    latencies: Dict[str, List[float]] = {}
    outputs: Dict[str, Dict[str, Dict[str, Any]]] = {}
    plans = {1: [_stage("build_requests", requests.to_tensors, r, specs) for r in singles],
             job["batch_size"]: [_stage("build_requests", requests.to_tensors, batch, specs)]}
    for size, tensors in plans.items():
        key = str(size)
        summary: Dict[str, Dict[str, Any]] = {}
        for k in range(job["num_warmup_calls"]):
            answer = _stage("call", lambda t: signature(**t), tensors[k % len(tensors)])
            summary = merge(summary, _stage("outputs", summarize, answer))
        times = []
        for k in range(job["num_timing_requests"]):
            inputs = tensors[k % len(tensors)]
            begin = time.perf_counter()
            answer = _stage("call", lambda t: signature(**t), inputs)
            times.append((time.perf_counter() - begin) * 1000.0)
            summary = merge(summary, _stage("outputs", summarize, answer))
        latencies[key] = times
        outputs[key] = summary
    result["latencies_ms"] = latencies
    result["outputs"] = outputs
    result["stages"].append("call")

    if job.get("warmup_path"):
        logs = _stage("warmup", warmup_logs, singles[:MAX_WARMUP_RECORDS - 1] + [batch], specs,
                      job["signature_name"])
        with tf.io.TFRecordWriter(job["warmup_path"]) as writer:
            for log in logs:
                writer.write(log)
        result["warmup_records"] = len(logs)
        result["stages"].append("warmup")
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print(f"usage: python -m {__spec__.name if __spec__ else 'serving_validator_worker'} JOB.json",
              file=sys.stderr)
        return 2
    with open(argv[1]) as stream:
        job = json.load(stream)
    try:
        result = validate(job)
    except StageError as error:
        result = {"error": {"stage": error.stage, "type": type(error.error).__name__, "message": str(error.error),
                            "traceback": traceback.format_exc()[-4000:]}}
    with open(job["result_path"] + ".tmp", "w") as stream:
        json.dump(result, stream)
    os.replace(job["result_path"] + ".tmp", job["result_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
