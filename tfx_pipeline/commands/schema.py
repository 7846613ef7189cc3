"""`ctrflow schema`: regenerate the curated schema from the feature registry."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from tfx_pipeline import schema

    path = schema.write_schema(args.out)
    print(f"wrote the schema of {len(schema.build_schema().feature)} features to {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from tfx_pipeline import schema  # light: only tensorflow_metadata protos

    parser = subparsers.add_parser(
        "schema",
        help="regenerate the curated example schema after features change",
        description="Writes the schema that ImportSchemaGen imports and ExampleValidator checks, "
        "built from transforms/features.py with the curation rules of tfx_pipeline/schema.py.",
    )
    parser.add_argument("--out", default=schema.SCHEMA_PATH, help=f"where to write it (default {schema.SCHEMA_PATH})")
    parser.set_defaults(func=run)
