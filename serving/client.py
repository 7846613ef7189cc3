"""Clients of TF Serving's REST API: over HTTP (TF Serving or serving/server.py) or in process.

- ``RestClient(url)``: status, metadata and predict of one model over HTTP (urllib).
- ``InProcessClient(model_dir)``: the same three calls answered by serving/server.py's
  ModelServer inside this process, without a socket.
- Requests from what users have at hand: ``request_from_json`` (a TF Serving body, or a
  JSON list of rows of raw features), ``examples_from_events`` (an event-log file ->
  one example per candidate event with the user's history before it, as ingest builds
  them), both turned into ``{"instances": ...}`` by serving/requests.py.
- ``scores_by_row``: a predict response -> one ``{output: value}`` per row.
- ``run_load``: a closed-loop load test against one predict URL, bounded in requests and
  time, with latency percentiles and errors by HTTP status.
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from serving import requests, rest
from transforms import features


class RestClientError(Exception):
    """A request the server refused: HTTP ``code`` and its ``{"error": ...}`` message."""

    def __init__(self, code: int, message: str):
        super().__init__(f"HTTP {code}: {message}")
        self.code = code
        self.message = message


def model_path(model_name: str, version: Optional[int] = None, label: Optional[str] = None) -> str:
    """``/v1/models/<name>[/versions/<N>|/labels/<L>]``."""
    path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
    if version is not None and label is not None:
        raise ValueError(f"Give a version or a label, not both. Received version={version}, label={label!r}.")
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{urllib.parse.quote(label, safe='')}"
    return path


def _decode(code: int, payload: bytes) -> Dict[str, Any]:
    try:
        document = json.loads(payload.decode("utf-8")) if payload else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = {"error": payload[:500].decode("utf-8", "replace")}
    if code != 200:
        message = document.get("error", document) if isinstance(document, dict) else document
        raise RestClientError(code, str(message))
    return document


class _ModelCalls:
    """Status, metadata and predict of one model, over whatever ``_call`` sends requests to."""

    model_path: str

    def _call(self, method: str, path: str, body: bytes = b"") -> Dict[str, Any]:
        raise NotImplementedError

    def status(self) -> Dict[str, Any]:
        return self._call("GET", self.model_path)

    def metadata(self) -> Dict[str, Any]:
        return self._call("GET", self.model_path + "/metadata")

    def predict(self, document: Mapping[str, Any]) -> Dict[str, Any]:
        return self._call("POST", self.model_path + ":predict", rest.dumps(document))


class RestClient(_ModelCalls):
    """One model of a REST server.

    Args:
      url: the server (``http://host:8501``), or a model URL
        (``http://host:8501/v1/models/ctr[/versions/N|/labels/L]``), which then names the
        model, version and label itself.
      model_name, version, label: the model when `url` is a server URL.
    """

    def __init__(self, url: str, model_name: str = "ctr", version: Optional[int] = None,
                 label: Optional[str] = None, timeout: float = 30.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"Expected an http(s) URL such as http://127.0.0.1:8501. Received: {url!r}.")
        self.server = f"{parsed.scheme}://{parsed.netloc}"
        path = parsed.path.rstrip("/")
        if "/v1/models/" in path:
            self.model_path = path.split(":", 1)[0]
        elif path:
            raise ValueError(f"Expected a server URL (http://host:port) or a model URL "
                             f"(http://host:port/v1/models/NAME). Received path {path!r}.")
        else:
            self.model_path = model_path(model_name, version, label)
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Optional[bytes] = None) -> Dict[str, Any]:
        request = urllib.request.Request(self.server + path, data=body, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _decode(response.status, response.read())
        except urllib.error.HTTPError as err:
            return _decode(err.code, err.read())

    @property
    def predict_url(self) -> str:
        return self.server + self.model_path + ":predict"


class InProcessClient(_ModelCalls):
    """RestClient's calls answered in this process by a ModelServer over a local model.

    `model_dir` is a SavedModel (a folder with saved_model.pb) or a model base path of
    integer version folders (the latest loadable version is used).
    """

    def __init__(self, model_dir: str, model_name: str = "ctr", max_batch_size: Optional[int] = None):
        from serving import model_store, server

        if os.path.exists(os.path.join(model_dir, "saved_model.pb")):
            base = os.path.basename(os.path.normpath(model_dir))
            version = int(base) if base.isdigit() else 1
            store = model_store.ModelStore(model_store.ModelConfig(model_name, model_dir))
            store.add(model_store.load_servable(model_dir, version))
            self.app = server.ModelServer({model_name: store}, max_batch_size)
        else:
            self.app = server.build_app(model_dir, model_name, max_batch_size=max_batch_size)
            store = self.app.stores[model_name]
            if not store.serving_versions():
                try:
                    detail = "; ".join(s.error_message for s in store.status() if s.error_message)
                except rest.RestError:
                    detail = "no SavedModel and no integer version folders there"
                raise ValueError(f"No loadable model under {model_dir}: {detail}.")
        self.model_path = model_path(model_name)

    def _call(self, method: str, path: str, body: bytes = b"") -> Dict[str, Any]:
        return _decode(*self.app.handle(method, path, body))


# ------------------------------------------------------------------------------ requests
def signature_of(metadata: Mapping[str, Any], signature: str = rest.DEFAULT_SIGNATURE) -> Dict[str, Any]:
    """One SignatureDef (as JSON) from a metadata response."""
    defs = metadata.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
    if signature not in defs:
        raise ValueError(f"The model has no signature {signature!r}. Signatures: "
                         f"{sorted(k for k in defs if not k.startswith('__'))}.")
    return defs[signature]


def input_names(metadata: Mapping[str, Any], signature: str = rest.DEFAULT_SIGNATURE) -> List[str]:
    return sorted(signature_of(metadata, signature).get("inputs", {}))


def output_names(metadata: Mapping[str, Any], signature: str = rest.DEFAULT_SIGNATURE) -> List[str]:
    return sorted(signature_of(metadata, signature).get("outputs", {}))


def rows_to_examples(rows: Sequence[Any], names: Sequence[str]) -> List[Dict[str, List[Any]]]:
    """JSON rows of raw features (``{"item_id": "i1", "history_item_id": ["i0"]}``) -> examples.

    A scalar value becomes a one-value list; a missing feature is left out (serving/requests.py
    fills "" or NaN). Raises ValueError for a row that is not an object or has a feature the
    model does not take.
    """
    examples = []
    wanted = set(names)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"Row {index} is a {type(row).__name__}, expected an object of raw features "
                             f"such as {{\"item_id\": \"i1\"}}. Received: {str(row)[:200]}.")
        unknown = sorted(set(row) - wanted)
        if unknown:
            raise ValueError(f"Row {index} has features the model does not take: {unknown}. Expected only "
                             f"{sorted(wanted)}.")
        examples.append({k: (list(v) if isinstance(v, list) else [] if v is None else [v]) for k, v in row.items()})
    return examples


def request_from_json(document: Any, names: Sequence[str], history_width: Optional[int] = None) -> Dict[str, Any]:
    """A predict body from a TF Serving body (returned as is) or a list of rows of raw features.

    Rows' histories are padded as ``requests.instances`` pads them (`history_width`).

    Raises:
      ValueError: anything else, an empty list, or a row the model cannot take.
    """
    if isinstance(document, dict):
        if "instances" in document or "inputs" in document:
            return document
        raise ValueError("Expected a TF Serving predict body ({\"instances\": [...]} or {\"inputs\": {...}}) or "
                         f"a JSON list of rows of raw features. Received an object with keys {sorted(document)}.")
    if not isinstance(document, list) or not document:
        raise ValueError("Expected a non-empty JSON list of rows of raw features, or a TF Serving predict body. "
                         f"Received: {str(document)[:200]}.")
    return {"instances": requests.instances(rows_to_examples(document, names), list(names), history_width)}


def examples_from_events(path: str, max_history: int = features.MAX_HISTORY) -> List[Dict[str, List[Any]]]:
    """One raw example per candidate event of an event-log file, with its user's history before it.

    The file is any canonical event-log file (CSV, JSON lines, Parquet; docs/log_format.md).
    Examples are built as ingest builds them (tfx_pipeline/ingest/examples.py): each
    impression is a candidate when the file has impressions, else each click; the history
    holds the user's clicks strictly before the candidate's second, newest last, at most
    `max_history`. No negatives are sampled. Order: users in order of first appearance,
    then candidates by time.

    Raises:
      ValueError: a row that is not a valid event (with its line and reason), or no candidate.
    """
    from tfx_pipeline.eventlog import formats
    from tfx_pipeline.eventlog.validation import Window
    from tfx_pipeline.ingest import examples as ex
    from tfx_pipeline.ingest.config import IngestConfig, Sampling

    by_user: Dict[str, List[Any]] = collections.OrderedDict()
    for row in formats.read_rows(path):
        event = formats.validate_row(row)
        if isinstance(event, formats.DeadLetter):
            raise ValueError(f"{path}: line {event.line} is not a valid event ({event.reason}: {event.detail}). "
                             "See docs/log_format.md for the columns and values of the event log.")
        user, compact = ex.compact(event, row.source, row.line)
        by_user.setdefault(user, []).append(compact)
    if not by_user:
        raise ValueError(f"{path} holds no events.")
    has_impressions = any(e.event == features.IMPRESSION_EVENT for events in by_user.values() for e in events)
    config = IngestConfig(max_history=max_history).resolved(has_impressions)
    times = [e.timestamp for events in by_user.values() for e in events]
    window = Window(min(times), max(times) + 1)
    builder = ex.UserExampleBuilder(config, ex.ItemTable({}, Sampling.UNIFORM), window, eval_window=window)
    result = []
    for user, events in by_user.items():
        for out in builder.build(user, events):
            if isinstance(out, ex.ExampleOut):
                result.append(out.features)
    if not result:
        kind = "impression" if has_impressions else "click"
        raise ValueError(f"{path} has no {kind} events to score (each {kind} is a candidate).")
    return result


def scores_by_row(response: Mapping[str, Any], outputs: Sequence[str]) -> List[Dict[str, Any]]:
    """``{output: value}`` per row of a predict response (row or columnar form).

    `outputs` are the signature's output names (``output_names``), needed because TF
    Serving drops the name when there is only one.
    """
    if "predictions" in response:
        rows = response["predictions"]
        if len(outputs) == 1 and (not rows or not isinstance(rows[0], dict)):
            return [{outputs[0]: value} for value in rows]
        return [dict(row) for row in rows]
    if "outputs" in response:
        columns = response["outputs"]
        if len(outputs) == 1 and not isinstance(columns, dict):
            columns = {outputs[0]: columns}
        names = sorted(columns)
        size = len(columns[names[0]]) if names else 0
        return [{name: columns[name][row] for name in names} for row in range(size)]
    raise ValueError(f"Not a predict response: keys {sorted(response)}. Expected 'predictions' or 'outputs'.")


# ------------------------------------------------------------------------------ load test
@dataclasses.dataclass
class LoadReport:
    """What a load test measured: latencies of successful requests, errors by status."""

    concurrency: int
    elapsed_seconds: float
    latencies: List[float]
    errors: Dict[str, int]
    rows_per_request: float

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def qps(self) -> float:
        return self.requests / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))  # nearest rank
        return ordered[index] * 1000.0

    def to_json(self) -> Dict[str, Any]:
        return {"requests": self.requests, "errors": self.error_count, "errors_by_status": dict(self.errors),
                "concurrency": self.concurrency, "seconds": round(self.elapsed_seconds, 3),
                "qps": round(self.qps, 1), "rows_per_request": self.rows_per_request,
                "p50_ms": round(self.percentile_ms(50), 2), "p95_ms": round(self.percentile_ms(95), 2),
                "p99_ms": round(self.percentile_ms(99), 2)}

    def format(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"
        return (f"{self.requests} requests in {self.elapsed_seconds:.1f} s at concurrency {self.concurrency} "
                f"({self.rows_per_request:g} rows each): {self.qps:.1f} requests/s\n"
                f"latency p50 {self.percentile_ms(50):.1f} ms, p95 {self.percentile_ms(95):.1f} ms, "
                f"p99 {self.percentile_ms(99):.1f} ms\n"
                f"errors: {self.error_count} ({errors})")


def run_load(predict_url: str, bodies: Sequence[bytes], concurrency: int, duration_seconds: float,
             max_requests: Optional[int] = None, timeout: float = 30.0, rows_per_request: float = 1.0) -> LoadReport:
    """Sends POSTs of `bodies` (in turn) to `predict_url` from `concurrency` workers.

    Each worker keeps one HTTP/1.1 connection and sends its next request when the last
    one is answered (a closed loop), until `max_requests` have been sent in all or
    `duration_seconds` have passed, whichever comes first. A status other than 200 counts
    as an error under its code; a failed connection under its exception's name.
    """
    if concurrency < 1 or duration_seconds <= 0 or not bodies:
        raise ValueError(f"Expected concurrency >= 1, duration > 0 and at least one body. Received "
                         f"concurrency={concurrency}, duration={duration_seconds}, {len(bodies)} bodies.")
    parsed = urllib.parse.urlsplit(predict_url)
    if parsed.scheme != "http":
        raise ValueError(f"The load test speaks plain http. Received: {predict_url!r}.")
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    lock = threading.Lock()
    issued = [0]
    latencies: List[float] = []
    errors: Dict[str, int] = collections.Counter()
    started = time.monotonic()
    deadline = started + duration_seconds

    def next_index() -> Optional[int]:
        with lock:
            if (max_requests is not None and issued[0] >= max_requests) or time.monotonic() >= deadline:
                return None
            issued[0] += 1
            return issued[0] - 1

    def worker() -> None:
        connection = None
        own_latencies, own_errors = [], collections.Counter()
        while True:
            index = next_index()
            if index is None:
                break
            body = bodies[index % len(bodies)]
            if connection is None:
                connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
            begin = time.perf_counter()
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as err:
                own_errors[type(err).__name__] += 1
                if connection is not None:
                    connection.close()
                connection = None
                continue
            if status == 200:
                own_latencies.append(time.perf_counter() - begin)
            else:
                own_errors[str(status)] += 1
        if connection is not None:
            connection.close()
        with lock:
            latencies.extend(own_latencies)
            errors.update(own_errors)

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadReport(concurrency, time.monotonic() - started, latencies, dict(errors), rows_per_request)


def batched_bodies(instances: Sequence[Any], batch_size: int, count: Optional[int] = None) -> List[bytes]:
    """Predict bodies of `batch_size` instances each, taken in turn (wrapping around) from `instances`."""
    if batch_size < 1 or not instances:
        raise ValueError(f"Expected batch_size >= 1 and at least one instance. Received batch_size={batch_size}, "
                         f"{len(instances)} instances.")
    count = count or max(1, min(64, len(instances) // batch_size))
    bodies = []
    for index in range(count):
        start = index * batch_size
        batch = [instances[(start + k) % len(instances)] for k in range(batch_size)]
        bodies.append(rest.dumps({"instances": batch}))
    return bodies


def instances_from_records(patterns: Iterable[str], names: Sequence[str], limit: int = 1024,
                           history_width: Optional[int] = None) -> List[Dict[str, Any]]:
    """Row-form instances of the first `limit` raw tf.Examples in TFRecord files (GZIP or not), e.g.
    ExampleGen's Split-eval. Histories are padded to the widest of them all (or to
    `history_width`), so any of them can be batched together."""
    import glob

    import tensorflow as tf

    files = sorted(f for pattern in patterns for f in glob.glob(pattern))
    if not files:
        raise ValueError(f"No files match {list(patterns)}. Expected TFRecord files of raw tf.Examples, e.g. "
                         "<pipeline root>/artifacts/EventLogExampleGen/examples/<id>/Split-eval/*.")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type=compression).take(limit)]
    return requests.instances(requests.from_tf_examples(records, names), list(names), history_width)
