"""`ctrflow import taobao|amazon|movielens SRC --out DIR [--format csv|jsonl|parquet]`.

Converts one of the real public datasets into the canonical event log (span directories,
dead letters, manifest) and prints a report of the rows by reason. The semantics of each
dataset are in ``tfx_pipeline/importers`` and ``docs/importers.md``.
"""

from __future__ import annotations

import argparse

from tfx_pipeline.eventlog.formats import FileFormat
from tfx_pipeline.importers import IMPORTERS  # light: no TensorFlow or Beam

DATASETS = tuple(IMPORTERS)

_EPILOG = """\
SRC per dataset:
  taobao     the UserBehavior CSV file (no header) or its folder;
             pv -> click, buy -> buy (conversion), cart, fav; spans are China-time days
  amazon     the folder with Beauty.txt and Beauty_item2attributes.json;
             each review -> click, position in the user's sequence stands in for time
  movielens  the folder with ml-100k.inter, ml-100k.item and ml-100k.user;
             each rating -> click, a rating >= 4 also -> buy (the "liked" label)

Rows that cannot be used are counted by reason and kept as dead letters in DIR/_rejected/.
example:
  ctrflow import taobao ../shared/data/taobao_userbehavior --out logs/taobao
"""


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Adds the `import` subcommand."""
    parser = subparsers.add_parser(
        "import",
        help="convert a public dataset (Taobao, Amazon Beauty, MovieLens-100K) to an event log",
        description="Convert a real public dataset into the canonical event log.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=DATASETS, help="which dataset SRC holds")
    parser.add_argument("src", metavar="SRC", help="the dataset's file or folder (see below)")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory for the log")
    parser.add_argument(
        "--format",
        choices=[f.value for f in FileFormat],
        default=FileFormat.CSV.value,
        help="format of the span files (default: csv)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the import; user-fixable problems become a CommandError."""
    from tfx_pipeline.cli import CommandError
    from tfx_pipeline.importers import ImporterError, run_import

    try:
        result = run_import(args.dataset, args.src, args.out, FileFormat(args.format))
    except ImporterError as err:
        raise CommandError(str(err)) from None
    print(result.report())
    return 0
