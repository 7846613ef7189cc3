"""`ctrflow ingest LOG --out DIR`: run the Beam ingest outside TFX and print its report."""

from __future__ import annotations

import argparse
import os

from tfx_pipeline.ingest.config import IngestConfig, Protocol, Sampling, Split

EXAMPLES_SUBDIR = "examples"
DEAD_LETTERS_SUBDIR = "dead_letters"


def config_from_args(args: argparse.Namespace) -> IngestConfig:
    return IngestConfig(
        protocol=args.protocol,
        split=args.split,
        max_history=args.max_history,
        negatives_per_positive=args.negatives,
        negative_sampling=args.sampling,
        history_negatives=not args.no_history_negatives,
        eval_percent=args.eval_percent,
        seed=args.seed,
        max_bad_fraction=args.max_bad_fraction,
    )


def run(args: argparse.Namespace) -> int:
    from tfx_pipeline.beam_args import default_beam_args
    from tfx_pipeline.cli import CommandError
    from tfx_pipeline.ingest import pipeline as ingest

    if not os.path.isdir(args.log):
        raise CommandError(f"log directory {args.log!r} does not exist; expected a folder written by "
                           "`ctrflow simulate` or `ctrflow import`.")
    try:
        config = config_from_args(args)
    except ValueError as err:
        raise CommandError(str(err)) from None
    outputs = ingest.IngestOutputs(
        os.path.join(args.out, EXAMPLES_SUBDIR), os.path.join(args.out, DEAD_LETTERS_SUBDIR))
    beam_args = args.beam_args or default_beam_args(args.workers)
    try:
        report = ingest.run_ingest(args.log, outputs, config, beam_args,
                                   span=args.span, num_spans=args.num_spans, lookback_spans=args.lookback_spans)
    except (ingest.IngestError, FileNotFoundError, ValueError) as err:
        if os.path.exists(outputs.report_path):
            print(ingest.format_report(ingest.read_report(outputs)))
        raise CommandError(str(err)) from None
    print(ingest.format_report(report))
    print(f"examples in {outputs.examples_dir}/Split-{{train,eval}}/, dead letters and report in "
          f"{outputs.dead_letters_dir}/")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="turn an event log into train/eval tf.Examples with Beam (outside TFX)",
        description="Runs the ingest Beam pipeline on an event log: point-in-time histories, "
        "labels, sampled negatives and a train/eval split, written as gzipped TFRecords, with "
        "rejected rows and their reasons as dead letters. Arguments after `--` go to Beam, "
        "e.g. `-- --runner=FlinkRunner --flink_master=localhost:8081`. The same stage runs "
        "inside the TFX pipeline as EventLogExampleGen.",
    )
    parser.add_argument("log", metavar="LOG", help="log directory (holds log.json and span-YYYYMMDD/)")
    parser.add_argument("--out", required=True, help="output directory for examples and dead letters")
    parser.add_argument("--protocol", choices=[p.value for p in Protocol], default=Protocol.AUTO.value,
                        help="candidates and negatives: impressions, sampled, din, dien, or auto "
                        "(impressions if the log has them, else sampled); default auto")
    parser.add_argument("--split", choices=[s.value for s in Split], default=None,
                        help="train/eval split; default: last_day (impressions, sampled), "
                        "last_event (din), user_hash (dien)")
    parser.add_argument("--max-history", type=int, default=100, help="history length kept, newest (default 100)")
    parser.add_argument("--negatives", type=int, default=1, help="sampled negatives per positive (default 1)")
    parser.add_argument("--sampling", choices=[s.value for s in Sampling], default=Sampling.POPULARITY.value,
                        help="how negatives are drawn (default popularity)")
    parser.add_argument("--no-history-negatives", action="store_true",
                        help="do not sample a negative per history step (DIEN's auxiliary loss needs them)")
    parser.add_argument("--eval-percent", type=int, default=10, help="eval share of users for user_hash (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of negative sampling and user_hash (default 0)")
    parser.add_argument("--max-bad-fraction", type=float, default=0.01,
                        help="fail when more rows than this are rejected (default 0.01)")
    parser.add_argument("--span", type=int, default=None, help="newest span to use (days since epoch); default newest")
    parser.add_argument("--num-spans", type=int, default=None, help="spans that make examples; default all")
    parser.add_argument("--lookback-spans", type=int, default=None,
                        help="older spans read for histories only; default all older")
    parser.add_argument("--workers", type=int, default=2,
                        help="DirectRunner worker processes when no Beam args are given (default 2)")
    parser.set_defaults(func=run)
