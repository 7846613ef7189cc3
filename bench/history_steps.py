"""Benchmark: how many history steps a batch runs, and what a GRU step costs on this machine.

Run from the repository root, on the folder bench/amazon_bench.py prepared:

    .venv/bin/python bench/history_steps.py --work /tmp/amzfinal

1. Steps: every model cuts a batch's histories after its longest real one, so the steps
   attention units and GRUs run are the batch's longest history. Over one epoch of the
   train split: the mean history length, and the mean longest history per batch of 128
   with random batches and with windows of 8, 16 and 32 batches sorted by length
   (``training.length_sort_window``), read through ``trainer.data.make_dataset``.
2. Loops: forward and backward of one GRU over [128, 50, 36] (DIEN's interest extractor on
   Amazon: embedding 18 per id) with the Keras GRU the package uses, against three other
   ways to write the loop: the input products taken out of the loop (one matrix product
   for all steps), ``tf.scan``, and all 50 steps unrolled. Best of 5 x 20 calls each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402


def history_steps(work: str, batch_size: int) -> None:
    import tensorflow_transform as tft

    from trainer import data
    from transforms import features

    mask = features.HISTORY_MASK.name
    prepared = common.paths(work)
    spec = {mask: tft.TFTransformOutput(prepared["graph"]).transformed_feature_spec()[mask]}
    pattern = data.split_pattern(prepared["transformed"], "train")
    print("| batches | mean history | mean longest history per batch |\n|---|---:|---:|")
    for window in (0, 8, 16, 32):
        lengths = [b[mask].numpy().sum(axis=1) for b in
                   data.make_dataset(pattern, spec, batch_size, shuffle=True, seed=1, length_sort_window=window)]
        label = "random" if window == 0 else f"sorted in windows of {window}"
        print(f"| {label} | {np.concatenate(lengths).mean():.1f} | {np.mean([x.max() for x in lengths]):.1f} |",
              flush=True)


def loops(batch: int, steps: int, width: int) -> None:
    import tensorflow as tf
    import tf_keras as keras

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=[batch, steps, width]).astype("float32"))
    real = tf.sequence_mask(np.minimum(rng.geometric(1 / 12, size=batch), steps), steps)
    scale = tf.cast(real, tf.float32)[..., None]
    kernel = tf.Variable(rng.normal(size=[width, 3 * width]).astype("float32") * 0.1)
    recurrent = tf.Variable(rng.normal(size=[width, 3 * width]).astype("float32") * 0.1)

    def cell(h, x_t, s_t):  # reset, candidate, update; s_t = 0 keeps the state (padding)
        xr, xc, xu = tf.split(x_t, 3, axis=-1)
        hr, hc, hu = tf.split(tf.matmul(h, recurrent), 3, axis=-1)
        reset = tf.sigmoid(xr + hr)
        update = s_t * tf.sigmoid(xu + hu)
        return h + update * (tf.tanh(xc + reset * hc) - h)

    def hoisted(x):
        projected = tf.transpose(tf.einsum("btf,fk->btk", x, kernel), [1, 0, 2])
        inputs = tf.TensorArray(tf.float32, size=steps).unstack(projected)
        scales = tf.TensorArray(tf.float32, size=steps).unstack(tf.transpose(scale, [1, 0, 2]))
        out = tf.TensorArray(tf.float32, size=steps)

        def body(t, h, out):
            h = cell(h, inputs.read(t), scales.read(t))
            return t + 1, h, out.write(t, h)

        _, _, out = tf.while_loop(lambda t, *_: t < steps, body, (0, tf.zeros([batch, width]), out),
                                  maximum_iterations=steps)
        return tf.transpose(out.stack(), [1, 0, 2])

    def scan(x):
        projected = tf.transpose(tf.einsum("btf,fk->btk", x, kernel), [1, 0, 2])
        out = tf.scan(lambda h, e: cell(h, *e), (projected, tf.transpose(scale, [1, 0, 2])),
                      initializer=tf.zeros([batch, width]))
        return tf.transpose(out, [1, 0, 2])

    def unrolled(x):
        projected = tf.unstack(tf.einsum("btf,fk->btk", x, kernel), num=steps, axis=1)
        h, out = tf.zeros([batch, width]), []
        for x_t, s_t in zip(projected, tf.unstack(scale, num=steps, axis=1)):
            h = cell(h, x_t, s_t)
            out.append(h)
        return tf.stack(out, axis=1)

    gru = keras.layers.GRU(width, return_sequences=True, zero_output_for_mask=True)
    gru(x[:1, :2], mask=real[:1, :2])
    variants = {"Keras GRU (the package)": (lambda x: gru(x, mask=real), gru.trainable_variables),
                "input products out of the loop": (hoisted, [kernel, recurrent]),
                "tf.scan": (scan, [kernel, recurrent]), "all steps unrolled": (unrolled, [kernel, recurrent])}
    print(f"\n| GRU loop over [{batch}, {steps}, {width}] | ms per forward and backward |\n|---|---:|")
    for label, (run, variables) in variants.items():
        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(run(x) * scale)
            return tape.gradient(loss, [x] + variables)

        for _ in range(5):
            step(x)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(20):
                step(x)
            best = min(best, (time.perf_counter() - started) / 20)
        print(f"| {label} | {1e3 * best:.1f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="the --work folder of bench/amazon_bench.py")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    if not common.is_prepared(args.work):
        raise SystemExit(f"No prepared examples under {args.work!r}; run bench/amazon_bench.py --work {args.work} first.")
    history_steps(args.work, args.batch_size)
    loops(args.batch_size, 50, 36)
    return 0


if __name__ == "__main__":
    sys.exit(main())
