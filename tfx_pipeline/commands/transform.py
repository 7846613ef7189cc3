"""`ctrflow transform EXAMPLES --out DIR`: run tf.Transform on ingest output, outside TFX."""

from __future__ import annotations

import argparse
import os


def run(args: argparse.Namespace) -> int:
    from tfx_pipeline.cli import CommandError
    from transforms import features
    from transforms.preprocessing import TransformSettings
    from transforms.run import TRANSFORMED_EXAMPLES_SUBDIR, run_transform

    for split in ("train", "eval"):
        if not os.path.isdir(os.path.join(args.examples, f"Split-{split}")):
            raise CommandError(f"{args.examples!r} has no Split-{split}/: expected the examples folder of "
                               "`ctrflow ingest` (OUT/examples).")
    previous = {}
    if args.previous:
        import tensorflow_transform as tft

        from transforms.vocabulary import vocab_asset_name

        output = tft.TFTransformOutput(args.previous)
        for feature in features.EXAMPLE_FEATURES:
            if isinstance(feature.encoding, features.Vocabulary) and not feature.sequence_of:
                previous[feature.name] = output.vocabulary_file_by_name(vocab_asset_name(feature.name))
    try:
        settings = TransformSettings(previous_vocabularies=previous, max_history=args.max_history)
    except ValueError as err:
        raise CommandError(str(err)) from None
    graph = run_transform(args.examples, args.out, settings, beam_args=args.beam_args or None)
    print(f"transform graph in {graph}")
    print(f"transformed examples in {os.path.join(args.out, TRANSFORMED_EXAMPLES_SUBDIR)}/Split-{{train,eval}}/")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transform",
        help="run the tf.Transform preprocessing on ingest output (outside TFX)",
        description="Analyzes the train split of ingest output and transforms both splits with "
        "transforms/preprocessing.py, writing the transform graph and transformed examples in "
        "TFX's layout. Arguments after `--` go to Beam.",
    )
    parser.add_argument("examples", metavar="EXAMPLES", help="the examples folder of `ctrflow ingest` (OUT/examples)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--previous", default=None,
                        help="the transform graph of the previous run: its vocabularies are extended, "
                        "so ids keep their embedding rows")
    parser.add_argument("--max-history", type=int, default=100, help="history length L (default 100)")
    parser.set_defaults(func=run)
