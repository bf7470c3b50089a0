"""Points per second for ResNet-56 on 10,000 CIFAR-shaped images, for a GPU (runs on a CPU too, slowly).

Run: python benchmarks/bench_gpu.py [--samples 10000] [--points 8] [--k 4 8]
     (KERAS_BACKEND=jax or tensorflow picks the backend, as for Keras)

Prints, from one run, with the data resident on the device: seconds per grid
point and points per second for the naive per-point `model.evaluate`, for our
engine at one point per compiled call and at K points per call, and for both
in bfloat16 (dtype_policy="mixed_bfloat16"); the largest relative loss
difference of each to `model.evaluate` (float32) at the same points; and the
device that ran them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from losslandscape import random_directions  # noqa: E402
from losslandscape.backends import current_backend  # noqa: E402
from losslandscape.datasets import prepare_data  # noqa: E402
from losslandscape.engine import build_evaluator  # noqa: E402
from losslandscape.precision import with_dtype_policy  # noqa: E402
from reproductions.models import cifar_resnet  # noqa: E402


def naive_losses(model, x, y, origin, directions, rows, batch_size):
    """Weights assigned from numpy, then `model.evaluate`, per point; returns the losses and seconds per point."""
    model.evaluate(x, y, batch_size=batch_size, verbose=0)  # compiles Keras' test function
    losses = []
    started = time.perf_counter()
    for row in rows:
        for position, variable in enumerate(model.trainable_variables):
            variable.assign(origin[position] + sum(c * d[position] for c, d in zip(row, directions)))
        losses.append(model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)["loss"])
    seconds = (time.perf_counter() - started) / len(rows)
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    return np.array(losses), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=8, help="grid points per axis (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8], help="points per call to try")
    parser.add_argument("--naive-points", type=int, default=3, help="grid points for model.evaluate")
    args = parser.parse_args()
    backend = current_backend()
    print(f"Keras {keras.__version__} on {keras.backend.backend()}: {backend.device_description()}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.samples)
    model = cifar_resnet(56)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    directions = random_directions(model, seed=0)
    origin = [v.numpy() for v in model.trainable_variables]
    axis = np.linspace(-1, 1, args.points)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    checked = grid[: args.naive_points]
    reference, naive_seconds = naive_losses(model, x, y, origin, directions, checked, args.batch_size)
    print(f"{'engine':<28} {'s/point':>8} {'points/s':>9} {'vs naive':>9} {'max rel. diff':>14}   "
          f"({args.samples} images, batch {args.batch_size}, {len(grid)} points)")
    print(f"{'naive model.evaluate':<28} {naive_seconds:8.4f} {1 / naive_seconds:9.2f} {1.0:9.1f} {0.0:14.1e}", flush=True)
    batches = prepare_data((x, y), batch_size=args.batch_size)
    bfloat16_model = with_dtype_policy(model, "mixed_bfloat16")
    runs = [(f"{k} point{'s' * (k > 1)} per call", model, k) for k in [1, *args.k]]
    runs += [(f"bfloat16, {k} per call", bfloat16_model, k) for k in (1, max(args.k))]
    for name, evaluated_model, points_per_call in runs:
        try:
            evaluator = build_evaluator(evaluated_model, batches, origin, directions, points_per_call=points_per_call)
            started = time.perf_counter()
            evaluator.evaluate(grid[:points_per_call])
            compile_seconds = time.perf_counter() - started
            started = time.perf_counter()
            values = evaluator.evaluate(grid)
            seconds = (time.perf_counter() - started) / len(grid)
        except backend.out_of_memory_errors as error:
            print(f"{name:<28} out of device memory ({str(error)[:80]})", flush=True)
            continue
        losses = np.array([v["loss"] for v in values[: len(checked)]])
        difference = np.max(np.abs(losses - reference) / np.abs(reference))
        print(f"{name:<28} {seconds:8.4f} {1 / seconds:9.2f} {naive_seconds / seconds:9.1f} {difference:14.1e}   "
              f"(first call, compiling: {compile_seconds:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
