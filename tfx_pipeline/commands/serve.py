"""`ctrflow serve`, `ctrflow predict` and `ctrflow loadtest`: TF Serving's REST API locally, and its clients.

``serve`` runs serving/server.py, a stand-in for ``tensorflow_model_server`` on machines
that lack it (development, tests, demos); production serves the same pushed versions
with TF Serving (deploy/). ``predict`` scores raw requests through any REST server or a
local model, and ``loadtest`` measures one REST endpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List

SERVE_EXAMPLE = """example:
  ctrflow serve --model-base .demo/serving/ctr --model-name ctr --port 8501
  curl -s http://127.0.0.1:8501/v1/models/ctr
  curl -s -X POST http://127.0.0.1:8501/v1/models/ctr:predict \\
       -d '{"instances": [{"item_id": "i1", "category_id": "c1", "history_item_id": ["i0"], ...}]}'
"""

PREDICT_EXAMPLE = """examples:
  ctrflow predict --url http://127.0.0.1:8501 --json rows.json      # [{"item_id": "i1", ...}, ...]
  ctrflow predict --model-dir .demo/serving/ctr --events user_events.csv
  echo '{"instances": [...]}' | ctrflow predict --url http://127.0.0.1:8501 --json -
"""

LOADTEST_EXAMPLE = """examples:
  ctrflow loadtest --url http://127.0.0.1:8501 --json rows.json --batch-size 8 --concurrency 8 --duration 20
  ctrflow loadtest --url http://127.0.0.1:8501 \\
       --examples '.demo/pipeline/artifacts/EventLogExampleGen/examples/*/Split-eval/*' --requests 2000
"""


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return number


# ------------------------------------------------------------------------------ serve
def serve(args: argparse.Namespace) -> int:
    import logging
    import os

    from serving import server
    from tfx_pipeline.cli import CommandError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if args.model_base and not os.path.isdir(args.model_base):
        raise CommandError(f"--model-base {args.model_base} is not a folder. Expected the model's base path "
                           "(<push_base>/<model_name>, holding integer version folders).")
    try:
        app = server.build_app(args.model_base, args.model_name, args.model_config_file, args.max_batch_size)
    except (OSError, ValueError) as err:
        raise CommandError(str(err)) from None
    try:
        running = server.start(app, args.host, args.port, args.poll_seconds, args.max_body_bytes, args.access_log)
    except OSError as err:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {err}") from None
    for name, store in app.stores.items():
        versions = store.serving_versions()
        state = f"versions {versions}" if versions else "no loadable version yet (polling)"
        print(f"model {name}: {state} from {store.config.base_path}", flush=True)
    print(f"serving TF Serving's REST API at {running.url}/v1/models/<name> (Ctrl-C to stop)", flush=True)
    server.wait_forever(running)
    return 0


# ------------------------------------------------------------------------------ predict
def _client(args: argparse.Namespace):
    from serving import client

    if bool(args.url) == bool(args.model_dir):
        raise ValueError("Give exactly one of --url URL (a REST server) or --model-dir DIR (a local model).")
    if args.url:
        return client.RestClient(args.url, args.model_name, args.version, args.label, timeout=args.timeout)
    if args.version is not None or args.label is not None:
        raise ValueError("--version and --label choose versions on a server; with --model-dir pass the version "
                         "folder itself.")
    return client.InProcessClient(args.model_dir, args.model_name)


def _read_json(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{'stdin' if path == '-' else path} is not JSON: {err.msg} at line {err.lineno}, "
                         f"column {err.colno}.") from None


def _document(args: argparse.Namespace, metadata: Dict[str, Any]) -> Dict[str, Any]:
    from serving import client, requests

    names = client.input_names(metadata, args.signature)
    if args.events:
        examples = client.examples_from_events(args.events, args.max_history)
        document = {"instances": requests.instances(examples, names, args.pad_history)}
    else:
        document = client.request_from_json(_read_json(args.json), names, args.pad_history)
    if args.signature != "serving_default":
        document = {**document, "signature_name": args.signature}
    return document


def predict(args: argparse.Namespace) -> int:
    from serving import client
    from tfx_pipeline.cli import CommandError

    if bool(args.json) == bool(args.events):
        raise CommandError("give exactly one of --json FILE|- or --events FILE")
    try:
        target = _client(args)
        metadata = target.metadata()
        document = _document(args, metadata)
        response = target.predict(document)
        rows = client.scores_by_row(response, client.output_names(metadata, args.signature))
    except client.RestClientError as err:
        raise CommandError(f"the server refused the request: {err}") from None
    except (OSError, ValueError) as err:
        raise CommandError(str(err)) from None
    for row in rows:
        print(json.dumps({k: (round(v, args.digits) if isinstance(v, float) else v) for k, v in row.items()},
                         sort_keys=True), flush=True)
    return 0


# ------------------------------------------------------------------------------ loadtest
def _bodies(args: argparse.Namespace, target) -> "tuple[List[bytes], float]":
    from serving import client, rest

    if bool(args.json) == bool(args.examples):
        raise ValueError("give exactly one of --json FILE (a predict body, or a JSON list of rows) or "
                         "--examples PATTERN (TFRecord files of raw tf.Examples)")
    if args.examples:
        names = client.input_names(target.metadata())
        instances = client.instances_from_records(args.examples, names, history_width=args.pad_history)
        return client.batched_bodies(instances, args.batch_size), float(args.batch_size)
    document = _read_json(args.json)
    if isinstance(document, list):
        names = client.input_names(target.metadata())
        instances = client.request_from_json(document, names, args.pad_history)["instances"]
        return client.batched_bodies(instances, args.batch_size), float(args.batch_size)
    client.request_from_json(document, [])  # checks it is a predict body
    rows = document.get("instances")
    size = float(len(rows)) if isinstance(rows, list) else float("nan")
    return [rest.dumps(document)], size


def loadtest(args: argparse.Namespace) -> int:
    from serving import client
    from tfx_pipeline.cli import CommandError

    try:
        target = client.RestClient(args.url, args.model_name, args.version, args.label, timeout=args.timeout)
        bodies, rows = _bodies(args, target)
        report = client.run_load(target.predict_url, bodies, args.concurrency, args.duration, args.requests,
                                 args.timeout, rows)
    except client.RestClientError as err:
        raise CommandError(f"the server refused the request: {err}") from None
    except (OSError, ValueError) as err:
        raise CommandError(str(err)) from None
    print(f"POST {target.predict_url}")
    print(report.format())
    if args.json_report:
        with open(args.json_report, "w", encoding="utf-8") as stream:
            json.dump(report.to_json(), stream, indent=2)
    return 1 if report.error_count else 0


# ------------------------------------------------------------------------------ parsers
def _pad_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pad-history", type=_positive, default=None, metavar="L",
                        help="pad every history of rows and events to L values, the newest kept (TF Serving's "
                             "batching merges only requests of one width; use the pipeline's ingest.max_history). "
                             "Default: the widest history of the request")


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-name", default="ctr", help="the served model's name (default ctr)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--version", type=int, default=None, help="a version number (default: the latest)")
    choice.add_argument("--label", default=None, help="a version label of the server's models.config")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")


def register(subparsers: argparse._SubParsersAction) -> None:
    from serving.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BODY_BYTES

    parser = subparsers.add_parser(
        "serve",
        help="serve pushed models over TF Serving's REST API (local stand-in for development and tests)",
        description="Serves the SavedModels under a model base path (<push_base>/<model_name>/<version>/) "
        "over TF Serving's REST API: model status, metadata and predict (row and columnar), by "
        "version or label, with TF Serving's error bodies and codes. FOR DEVELOPMENT AND TESTS on "
        "machines without tensorflow_model_server; production serves the same folders with TF "
        "Serving (see deploy/). Picks up newly pushed versions by polling, keeps the old version "
        "when a new one fails to load, and finishes in-flight requests before unloading. Binds "
        "127.0.0.1 unless --host says otherwise.",
        epilog=SERVE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-base", default=None,
                        help="the model's base path: a folder of integer version folders")
    parser.add_argument("--model-name", default=None,
                        help="the name to serve it under (default ctr, or the config's only model)")
    parser.add_argument("--model-config-file", default=None,
                        help="a TF Serving models.config (text ModelServerConfig): models, "
                        "model_version_policy (latest/all/specific) and version_labels; re-read when it "
                        "changes. With --model-base, that path replaces the named model's base_path.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, local only)")
    parser.add_argument("--port", type=int, default=8501, help="REST port (default 8501; 0 = any free port)")
    parser.add_argument("--poll-seconds", type=float, default=1.0,
                        help="seconds between looks for new versions, like TF Serving's "
                        "--file_system_poll_wait_seconds (default 1; 0 = load once)")
    parser.add_argument("--max-body-bytes", type=_positive, default=DEFAULT_MAX_BODY_BYTES,
                        help=f"larger request bodies get 413 (default {DEFAULT_MAX_BODY_BYTES})")
    parser.add_argument("--max-batch-size", type=_positive, default=DEFAULT_MAX_BATCH_SIZE,
                        help=f"larger batches get 400 (default {DEFAULT_MAX_BATCH_SIZE})")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    parser.set_defaults(func=serve)

    parser = subparsers.add_parser(
        "predict",
        help="score raw requests through a REST server or a local model",
        description="Scores rows of raw features with a served model (--url: ctrflow serve or TF Serving) "
        "or a local one (--model-dir: a SavedModel or a model base path, loaded in this process). "
        "--json takes a TF Serving predict body or a JSON list of rows such as "
        '{"item_id": "i1", "history_item_id": ["i0", "i2"]} (missing features are sent as "" or NaN; '
        "histories are padded). --events takes an event-log file (docs/log_format.md) and scores "
        "each candidate event (impressions when the file has them, else clicks) with the user's "
        "clicks before it as history, as ingest builds examples. Prints one JSON line of "
        "{output: score} per row, in order.",
        epilog=PREDICT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--url", default=None, help="a REST server (http://host:8501) or model URL")
    source.add_argument("--model-dir", default=None, help="a local SavedModel or model base path")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--json", default=None, metavar="FILE|-", help="a predict body or a JSON list of rows")
    inputs.add_argument("--events", default=None, metavar="FILE", help="an event-log file of users' events")
    parser.add_argument("--max-history", type=_positive, default=100,
                        help="history events kept per candidate with --events (default 100)")
    parser.add_argument("--signature", default="serving_default", help="signature (default serving_default)")
    parser.add_argument("--digits", type=int, default=6, help="decimals printed (default 6)")
    _pad_argument(parser)
    _model_arguments(parser)
    parser.set_defaults(func=predict)

    parser = subparsers.add_parser(
        "loadtest",
        help="measure QPS, latency percentiles and errors of one REST predict endpoint",
        description="Sends predict requests to one URL from --concurrency workers (each sends its next "
        "request when the last is answered) until --requests have been sent or --duration "
        "seconds have passed, then reports requests/s, p50/p95/p99 latency of the successful "
        "requests and errors by HTTP status. The requests come from --json (a predict body, "
        "sent as is, or a JSON list of rows, sent --batch-size rows per request) or from "
        "--examples (raw tf.Example TFRecords such as ExampleGen's Split-eval; the first 1024, "
        "--batch-size per request). Exits 1 when any request failed.",
        epilog=LOADTEST_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="the REST server (http://host:8501) or model URL")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--json", default=None, metavar="FILE", help="a predict body or a JSON list of rows")
    inputs.add_argument("--examples", default=None, nargs="+", metavar="PATTERN",
                        help="TFRecord files (globs) of raw tf.Examples")
    parser.add_argument("--concurrency", type=_positive, default=8, help="parallel clients (default 8)")
    parser.add_argument("--duration", type=float, default=10.0, help="at most this many seconds (default 10)")
    parser.add_argument("--requests", type=_positive, default=None, help="at most this many requests")
    parser.add_argument("--batch-size", type=_positive, default=1, help="rows per request (default 1)")
    parser.add_argument("--json-report", default=None, metavar="FILE", help="also write the figures as JSON")
    _pad_argument(parser)
    _model_arguments(parser)
    parser.set_defaults(func=loadtest)
