"""Append-only vocabularies for tf.Transform: ids keep their rows across retrains.

``tft.compute_and_apply_vocabulary`` orders tokens by frequency, so the vocabulary of the
next span renumbers ids and a warm-started embedding table no longer matches. Here the
vocabulary of a run starts from the previous run's vocabulary file (given by path):

1. tokens of the previous vocabulary keep their positions;
2. new tokens seen at least ``frequency_threshold`` times take the next free positions,
   most frequent first (ties by token), up to ``capacity``;
3. when it is full, previous tokens that do not occur in this run's data are evicted,
   and their positions are reused by the remaining new tokens, most frequent first;
4. tokens that still find no position are out of vocabulary (hashed OOV buckets).

The analyzer writes two assets: ``<table>.vocab`` (one token per line, line i = position
i; a position with no token holds a unique filler starting with NUL, which no id can
contain, because lookup tables refuse empty and repeated lines) and ``<table>.counts`` (this run's
occurrence count per position, for mini-batch aware regularization). Both are annotated
(``tft.annotate_asset``), so ``TFTransformOutput.vocabulary_file_by_name`` finds them by
table name, and the next run passes the vocab file back as its previous vocabulary.

Row layout of the encoded ids (``features.Vocabulary``): 0 is padding / missing, 1 +
position for a vocabulary token, ``1 + capacity + hash(token) % num_oov_buckets`` for the
rest, so OOV rows never move either.
"""

from __future__ import annotations

import os
import uuid
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.beam.experimental import analyzer_impls

from transforms import features

VOCAB_SUFFIX = ".vocab"
COUNTS_SUFFIX = ".counts"
# Fillers start with NUL, which validation refuses in ids, so they never match a token.
FILLER_PREFIX = "\x00free:"
# Content of the asset while the graph is traced, before the analyzer has run.
_PLACEHOLDER = (FILLER_PREFIX + "0\n").encode("utf-8")


def is_filler(token: str) -> bool:
    return token.startswith(FILLER_PREFIX)


def vocab_asset_name(table: str) -> str:
    return table + VOCAB_SUFFIX


def counts_asset_name(table: str) -> str:
    return table + COUNTS_SUFFIX


def merge_vocabulary(
    previous: Sequence[str],
    counts: Dict[str, int],
    capacity: int,
    frequency_threshold: int,
) -> List[str]:
    """The new vocabulary (see module docstring); '' marks a free position."""
    tokens = ["" if is_filler(t) else t for t in previous[:capacity]]
    position = {token: i for i, token in enumerate(tokens) if token}
    candidates = sorted(
        (t for t, c in counts.items() if t and c >= frequency_threshold and t not in position),
        key=lambda t: (-counts[t], t),
    )
    free = [i for i, t in enumerate(tokens) if not t]
    # Stale tokens (absent from this run's data) may give up their rows, lowest position first.
    stale = [i for i, t in enumerate(tokens) if t and counts.get(t, 0) == 0]
    fresh = iter(candidates)
    for token in fresh:
        if free:
            tokens[free.pop(0)] = token
        elif len(tokens) < capacity:
            tokens.append(token)
        elif stale:
            tokens[stale.pop(0)] = token
        else:
            break
    return tokens


def vocabulary_lines(tokens: Sequence[str]) -> str:
    """File content for `tokens`: free positions become unique fillers; never empty."""
    lines = [t if t else f"{FILLER_PREFIX}{i}" for i, t in enumerate(tokens)] or [f"{FILLER_PREFIX}0"]
    return "".join(line + "\n" for line in lines)


def read_vocabulary(path: str) -> List[str]:
    """The tokens of a vocabulary file by position ('' for a free position)."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as stream:
        text = stream.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return ["" if is_filler(line) else line for line in lines]


class _AppendOnlyVocabulary(analyzer_impls.PTransformAnalyzer):
    """Counts tokens over the dataset and writes the merged vocabulary and counts files."""

    def __init__(self, table: str, previous_path: Optional[str], capacity: int, frequency_threshold: int):
        super().__init__()
        self.table = table
        self.previous_path = previous_path
        self.capacity = capacity
        self.frequency_threshold = frequency_threshold

    def expand(self, pcoll):
        table, previous_path = self.table, self.previous_path
        capacity, threshold = self.capacity, self.frequency_threshold
        base_dir = self.base_temp_dir

        def tokens(batch: Tuple[np.ndarray, ...]) -> Iterable[str]:
            for array in batch:
                for value in np.ravel(array):
                    token = value.decode("utf-8") if isinstance(value, bytes) else str(value)
                    if token:
                        yield token

        def write(pairs: List[Tuple[str, int]]) -> List[np.ndarray]:
            from apache_beam.io.filesystems import FileSystems

            counts = dict(pairs)
            previous = read_vocabulary(previous_path) if previous_path else []
            vocabulary = merge_vocabulary(previous, counts, capacity, threshold)
            directory = os.path.join(base_dir, f"{table}-{uuid.uuid4().hex}")
            FileSystems.mkdirs(directory)
            vocab_path = os.path.join(directory, vocab_asset_name(table))
            counts_path = os.path.join(directory, counts_asset_name(table))
            with FileSystems.create(vocab_path) as stream:
                stream.write(vocabulary_lines(vocabulary).encode("utf-8"))
            with FileSystems.create(counts_path) as stream:
                stream.write("".join(f"{counts.get(t, 0) if t else 0}\n" for t in vocabulary).encode("utf-8"))
            return [np.array(vocab_path.encode("utf-8"), dtype=object),
                    np.array(counts_path.encode("utf-8"), dtype=object)]

        paths = (
            pcoll
            | "Tokens" >> beam.FlatMap(tokens)
            | "Count" >> beam.combiners.Count.PerElement()
            | "AllCounts" >> beam.combiners.ToList()
            | "Write" >> beam.Map(write)
        )
        vocab = paths | "VocabPath" >> beam.Map(lambda p: p[0])
        counts = paths | "CountsPath" >> beam.Map(lambda p: p[1])
        return vocab, counts


def append_only_vocabulary(
    values: Sequence[tf.Tensor],
    table: str,
    encoding: features.Vocabulary,
    previous_path: Optional[str] = None,
) -> tf.Tensor:
    """Analyzes `values` (token tensors sharing one table); returns the vocabulary file path tensor."""
    flat = [v.values if isinstance(v, tf.SparseTensor) else tf.reshape(v, [-1]) for v in values]
    vocab_path, counts_path = tft.experimental.ptransform_analyzer(
        inputs=[tf.concat(flat, axis=0)],
        ptransform=_AppendOnlyVocabulary(table, previous_path, encoding.capacity, encoding.frequency_threshold),
        output_dtypes=[tf.string, tf.string],
        output_shapes=[[], []],
        output_asset_default_values=[_PLACEHOLDER, _PLACEHOLDER],
        name=f"vocabulary_{table}",
    )
    # The files keep these basenames when Transform copies them into its assets.
    tft.annotate_asset(vocab_asset_name(table), vocab_asset_name(table))
    tft.annotate_asset(counts_asset_name(table), counts_asset_name(table))
    del counts_path  # an asset only: read by name after the run, not used in the graph
    return vocab_path


def lookup_rows(tokens: tf.Tensor, vocab_path: tf.Tensor, encoding: features.Vocabulary) -> tf.Tensor:
    """Rows of `tokens` (a dense string tensor): 0 for '', 1 + position, or an OOV row."""
    index = tft.apply_vocabulary(tokens, vocab_path, default_value=-1, num_oov_buckets=0)
    oov = 1 + encoding.capacity + tf.strings.to_hash_bucket_fast(tokens, encoding.num_oov_buckets)
    rows = tf.where(index >= 0, 1 + index, oov)
    return tf.where(tf.equal(tokens, ""), tf.zeros_like(rows), rows)


def hashed_rows(tokens: tf.Tensor, encoding: features.Hashing) -> tf.Tensor:
    """Rows of `tokens` for a hashed id: 0 for '', else 1 + hash % num_buckets."""
    rows = 1 + tf.strings.to_hash_bucket_fast(tokens, encoding.num_buckets)
    return tf.where(tf.equal(tokens, ""), tf.zeros_like(rows), rows)
