"""`ctrflow simulate`: write a deterministic synthetic event log.

The generative process is described in ``tfx_pipeline/simulator.py`` and
``docs/simulator.md``. The defaults below mirror ``simulator.SimulatorConfig`` (a test checks
that they agree); they are spelled out here so that ``ctrflow --help`` does not import numpy.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any, Dict

from tfx_pipeline.cli import CommandError
from transforms import features

FORMATS = ("csv", "jsonl", "parquet")

# Same values as simulator.SimulatorConfig's defaults.
DEFAULTS: Dict[str, Any] = {
    "users": 1000,
    "items": 2000,
    "days": 7,
    "seed": 0,
    "start_date": "2024-01-01",
    "categories": 20,
    "interests": 3,
    "drift": 0.3,
    "sessions_per_day": 3.0,
    "impressions_per_session": 20,
    "shards": 2,
    "format": "csv",
}
DEFAULT_WORKERS = 2
# Config fields whose flag is not simply --field-name.
_FLAGS = {"file_format": "--format"}

_EPILOG = """\
example:
  ctrflow simulate --users 200 --items 500 --days 3 --seed 7 --out /tmp/simlog

The same arguments give byte-identical files whatever --workers is. The manifest
(OUT/log.json) records every parameter, so a log can be regenerated from it.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `simulate` subcommand."""
    parser = subparsers.add_parser(
        "simulate",
        help="write a deterministic synthetic impression/click/buy event log",
        description=(
            "Writes a deterministic event log of impressions with click, cart, fav and buy\n"
            "outcomes. Users have drifting latent interests, and the click probability depends\n"
            "strongly on how recently and how often the user clicked the item's category\n"
            "(see docs/simulator.md)."
        ),
        epilog=_EPILOG,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=32),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output log directory (new or empty)")
    size = parser.add_argument_group("size")
    size.add_argument("--users", type=int, metavar="N", default=DEFAULTS["users"], help="number of users (default: %(default)s)")
    size.add_argument("--items", type=int, metavar="N", default=DEFAULTS["items"], help="number of items (default: %(default)s)")
    size.add_argument("--days", type=int, metavar="N", default=DEFAULTS["days"], help="number of UTC days, one span each (default: %(default)s)")
    size.add_argument("--start-date", default=DEFAULTS["start_date"], metavar="YYYY-MM-DD", help="first day (default: %(default)s)")
    size.add_argument("--seed", type=int, metavar="N", default=DEFAULTS["seed"], help="master seed, >= 0 (default: %(default)s)")
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument("--categories", type=int, metavar="N", default=DEFAULTS["categories"], help="item categories (default: %(default)s)")
    behaviour.add_argument("--interests", type=int, metavar="N", default=DEFAULTS["interests"], help="latent interest categories per user (default: %(default)s)")
    behaviour.add_argument("--drift", type=float, metavar="P", default=DEFAULTS["drift"], help="daily probability that one interest of a user changes (default: %(default)s)")
    behaviour.add_argument("--sessions-per-day", type=float, metavar="X", default=DEFAULTS["sessions_per_day"], help="mean sessions per user and day (default: %(default)s)")
    behaviour.add_argument("--impressions-per-session", type=int, metavar="N", default=DEFAULTS["impressions_per_session"], help="mean impressions per session (default: %(default)s)")
    output = parser.add_argument_group("output")
    output.add_argument("--format", choices=FORMATS, default=DEFAULTS["format"], help="file format (default: %(default)s)")
    output.add_argument("--shards", type=int, metavar="N", default=DEFAULTS["shards"], help="files per span; fixed, independent of --workers (default: %(default)s)")
    output.add_argument("--workers", type=int, metavar="N", default=DEFAULT_WORKERS, help="processes writing shards in parallel; does not change the output (default: %(default)s)")
    parser.set_defaults(func=run)


def _flag(message: str) -> str:
    """Names the command-line flag where a config error names a field (`name` in backticks)."""
    return re.sub(r"`(\w+)`", lambda match: _FLAGS.get(match.group(1), "--" + match.group(1).replace("_", "-")), message)


def run(args: argparse.Namespace) -> int:
    """Builds the config from the flags, writes the log and prints a summary."""
    from tfx_pipeline import simulator

    try:
        config = simulator.SimulatorConfig(
            users=args.users,
            items=args.items,
            days=args.days,
            seed=args.seed,
            start_date=args.start_date,
            categories=args.categories,
            interests=args.interests,
            drift=args.drift,
            sessions_per_day=args.sessions_per_day,
            impressions_per_session=args.impressions_per_session,
            shards=args.shards,
            file_format=args.format,
        )
        started = time.perf_counter()
        manifest = simulator.simulate(config, args.out, workers=args.workers)
    except ValueError as err:
        raise CommandError(_flag(str(err))) from None
    except simulator.WorkerError as err:
        raise CommandError(f"{err} The incomplete log in {args.out!r} has no manifest; delete it.") from None
    seconds = time.perf_counter() - started
    per_type = manifest.events_per_type
    total = sum(per_type.values())
    impressions = per_type.get(features.IMPRESSION_EVENT, 0)
    clicks = per_type.get(features.CLICK_EVENT, 0)
    buys = per_type.get(features.CONVERSION_EVENT, 0)
    print(
        f"wrote {total:,} events in {len(manifest.events_per_span)} spans to {args.out} "
        f"({config.file_format.value}, {config.shards} shards) in {seconds:.1f} s"
    )
    print("  " + ", ".join(f"{kind} {count:,}" for kind, count in per_type.items()))
    if impressions:
        print(f"  CTR {clicks / impressions:.2%}" + (f", CVR given click {buys / clicks:.2%}" if clicks else ""))
    return 0
