"""Points per second for ResNet-56 on 10,000 CIFAR-shaped images, for a GPU (runs on a CPU too, slowly).

Run: python benchmarks/bench_gpu.py [--samples 10000] [--points 5]

Prints, from one run, seconds per grid point and points per second for one point per compiled call,
for K points per call, and for one point per call in bfloat16 (dtype_policy="mixed_bfloat16", with
its largest relative loss difference to float32), with the data resident on the device, and the
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
import tensorflow as tf  # noqa: E402

from losslandscape import random_directions  # noqa: E402
from losslandscape.backends.tensorflow import CompiledPointEvaluator, VectorizedPointEvaluator  # noqa: E402
from losslandscape.datasets import prepare_data  # noqa: E402
from losslandscape.precision import with_dtype_policy  # noqa: E402
from reproductions.models import cifar_resnet  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=5, help="grid points per axis (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8], help="points per call to try")
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; GPUs: {[g.name for g in gpus] or 'none'}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.samples)
    model = cifar_resnet(56)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    directions = random_directions(model, seed=0)
    origin = [v.numpy() for v in model.trainable_variables]
    axis = np.linspace(-1, 1, args.points)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    batches = prepare_data((x, y), batch_size=args.batch_size)
    evaluators = [("1 point per call", CompiledPointEvaluator(model, batches, origin, directions))]
    evaluators += [(f"{k} points per call", VectorizedPointEvaluator(model, batches, origin, directions, points_per_call=k))
                   for k in args.k]
    bfloat16_model = with_dtype_policy(model, "mixed_bfloat16")
    evaluators.append(("bfloat16, 1 per call", CompiledPointEvaluator(bfloat16_model, batches, origin, directions)))
    float32_losses = None
    for name, evaluator in evaluators:
        try:
            evaluator.evaluate(grid[: evaluator.points_per_call])  # compile
            started = time.perf_counter()
            values = evaluator.evaluate(grid)
            seconds = (time.perf_counter() - started) / len(grid)
        except tf.errors.ResourceExhaustedError:
            print(f"{name:<20} out of device memory")
            continue
        losses = np.array([v["loss"] for v in values])
        float32_losses = losses if float32_losses is None else float32_losses
        error = np.max(np.abs(losses - float32_losses) / np.abs(float32_losses))
        print(f"{name:<20} {seconds:8.3f} s per point  {1 / seconds:8.2f} points/s  "
              f"max rel. loss difference to float32 {error:.1e}  "
              f"({args.samples} images, batch {args.batch_size})", flush=True)
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)


if __name__ == "__main__":
    main()
