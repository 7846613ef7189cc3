"""`ctrflow run`, `ctrflow runs` and `ctrflow report`: the pipeline on the local orchestrator.

- ``run --config FILE``: the whole TFX pipeline on LocalDagRunner, metadata in SQLite under
  ``pipeline.root``; unchanged inputs are served from the cache.
- ``runs --config FILE``: past runs from ML Metadata with their status, metrics and push.
- ``report RUN --config FILE``: an HTML report of a run's evaluation (ROC, calibration and
  GAUC by slice per task).
"""

from __future__ import annotations

import argparse
import os
import time


def _config(args: argparse.Namespace):
    from tfx_pipeline.cli import CommandError
    from tfx_pipeline.config import ConfigError, load

    try:
        return load(args.config)
    except ConfigError as err:
        raise CommandError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from tfx_pipeline.cli import CommandError
    from tfx_pipeline.runners import local

    config = _config(args)
    if not os.path.isdir(config.pipeline.log_dir):
        raise CommandError(f"pipeline.log_dir {config.pipeline.log_dir!r} does not exist: expected the event log "
                           "(span-YYYYMMDD/ folders), e.g. from `ctrflow simulate` or `ctrflow import`.")
    started = time.monotonic()
    print(f"running pipeline {config.pipeline.name!r} on LocalDagRunner (root {config.pipeline.root})", flush=True)
    try:
        record = local.run(config, args.beam_args or None)
    except Exception as err:  # a component failed: show what ML Metadata recorded, then the error
        records = local.list_runs(config)
        if records:
            print(format_runs(records[-1:]))
        raise CommandError(f"the pipeline failed: {type(err).__name__}: {err}") from None
    print(format_runs([record]))
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


def format_runs(records) -> str:
    from tfx_pipeline.runners.local import COMPONENT_ORDER

    lines = []
    for record in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_ms / 1000))
        lines.append(f"run {record.run_id} ({when}): {record.status}")
        steps = sorted(record.states.items(), key=lambda kv: COMPONENT_ORDER.index(kv[0])
                       if kv[0] in COMPONENT_ORDER else len(COMPONENT_ORDER))
        lines.append("  " + ", ".join(f"{c} {s.lower()}" for c, s in steps))
        if record.metrics:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(record.metrics.items())
                              if k.split("/")[-1] in ("auc", "gauc", "logloss", "calibration"))
            lines.append(f"  eval: {shown}")
        if record.blessed is not None:
            lines.append(f"  blessed: {'yes' if record.blessed else 'no'}"
                         + ("" if record.serving_ok is None else f", serving check: {'ok' if record.serving_ok else 'failed'}"))
        if record.pushed_destination:
            lines.append(f"  pushed: {record.pushed_destination}")
    return "\n".join(lines)


def runs(args: argparse.Namespace) -> int:
    from tfx_pipeline.runners import local

    config = _config(args)
    records = local.list_runs(config)
    if not records:
        print(f"no runs recorded in {config.pipeline.metadata_path}")
        return 0
    print(format_runs(records[-args.last:] if args.last else records))
    return 0


def report(args: argparse.Namespace) -> int:
    from tfx_pipeline import report as html_report
    from tfx_pipeline.cli import CommandError
    from tfx_pipeline.runners import local

    config = _config(args)
    try:
        record = local.find_run(config, args.run)
    except ValueError as err:
        raise CommandError(str(err)) from None
    if not record.evaluation_uri:
        raise CommandError(f"run {record.run_id} has no evaluation ({record.status}).")
    out = args.out or os.path.join(config.pipeline.root, "reports", f"{record.run_id}.html")
    html_report.write_report(record, config, out)
    print(f"report written to {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the TFX pipeline (ingest ... push) on the local orchestrator",
        description="Runs the whole pipeline on TFX's LocalDagRunner: ingest, statistics, schema "
        "validation, Transform, Trainer, Evaluator, serving validation and Pusher. ML Metadata "
        "lives in SQLite under pipeline.root; a rerun with unchanged inputs is served from the "
        "cache. Arguments after `--` go to Beam.",
    )
    parser.add_argument("--config", required=True, help="the pipeline config (YAML or JSON)")
    parser.set_defaults(func=run)

    parser = subparsers.add_parser(
        "runs",
        help="list past pipeline runs with their metrics and pushes",
        description="Lists the runs recorded in the pipeline's ML Metadata store: each component's "
        "state, the evaluation metrics, the blessing and the pushed version.",
    )
    parser.add_argument("--config", required=True, help="the pipeline config (YAML or JSON)")
    parser.add_argument("--last", type=int, default=0, help="only the last N runs")
    parser.set_defaults(func=runs)

    parser = subparsers.add_parser(
        "report",
        help="write an HTML report of a run's evaluation",
        description="Writes a self-contained HTML page for one run: per task, the ROC curve, the "
        "calibration plot, AUC/GAUC/logloss/calibration and GAUC by category and history "
        "length, next to the blessing decision.",
    )
    parser.add_argument("run", metavar="RUN", help="a run id from `ctrflow runs`, or 'latest'")
    parser.add_argument("--config", required=True, help="the pipeline config (YAML or JSON)")
    parser.add_argument("--out", default=None, help="output file (default PIPELINE_ROOT/reports/RUN.html)")
    parser.set_defaults(func=report)
