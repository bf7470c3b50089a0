"""Seconds per grid point: naive model.evaluate vs. the compiled forward-pass floor vs. our engine.

Run: python benchmarks/bench_engine.py [--quick]

For each model, from one run on the same data and directions:
  A  naive: trainable weights assigned from numpy, then `model.evaluate`, per point
  B  floor: one compiled forward pass (model + loss) over the resident data per point,
     at fixed weights, no weight update and no metrics
  C  engine: losslandscape's compiled evaluator (weights updated on the device,
     loss and metrics exactly as `model.evaluate`), per point after its one-off setup
  C* engine end to end: `compute_surface` wall time / points, setup included
Prints A/C (target >= 20 on the MLP) and C/B (target <= 1.05 on ResNet-20).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from losslandscape import compute_surface, random_directions  # noqa: E402
from losslandscape.backends.tensorflow import CompiledPointEvaluator  # noqa: E402
from losslandscape.datasets import prepare_data  # noqa: E402
from losslandscape.demo import digits_mlp, load_digits_split  # noqa: E402
from reproductions.models import cifar_resnet  # noqa: E402

BATCH_SIZE = 128


def grid(points_per_axis):
    axis = np.linspace(-1.0, 1.0, points_per_axis)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2), axis


def time_naive(model, x, y, directions, coefficients):
    origin = [v.numpy() for v in model.trainable_variables]
    model.evaluate(x, y, batch_size=BATCH_SIZE, verbose=0)  # builds Keras' test function once
    started = time.perf_counter()
    for alpha, beta in coefficients:
        for variable, w, d1, d2 in zip(model.trainable_variables, origin, *directions):
            variable.assign(w + alpha * d1 + beta * d2)
        model.evaluate(x, y, batch_size=BATCH_SIZE, verbose=0)
    elapsed = time.perf_counter() - started
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    return elapsed / len(coefficients)


def time_floor(model, x, y, repeats):
    xs, ys = tf.constant(x), tf.constant(y)
    loss_fn = keras.losses.get(model.loss)

    @tf.function
    def forward_pass():
        total = tf.constant(0.0)
        for start in tf.range(0, len(x), BATCH_SIZE):
            y_pred = model(xs[start : start + BATCH_SIZE], training=False)
            batch_loss = loss_fn(ys[start : start + BATCH_SIZE], y_pred)
            total += tf.reduce_sum(batch_loss)
        return total / len(x)

    forward_pass()
    started = time.perf_counter()
    for _ in range(repeats):
        forward_pass().numpy()
    return (time.perf_counter() - started) / repeats


def time_engine(model, x, y, directions, coefficients):
    origin = [v.numpy() for v in model.trainable_variables]
    batches = prepare_data((x, y), batch_size=BATCH_SIZE)
    evaluator = CompiledPointEvaluator(model, batches, origin, directions)
    evaluator(coefficients[0])  # traces the compiled function once
    started = time.perf_counter()
    for row in coefficients:
        evaluator(row)
    elapsed = time.perf_counter() - started
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    return elapsed / len(coefficients)


def time_end_to_end(model, x, y, directions, axis):
    started = time.perf_counter()
    compute_surface(model, (x, y), directions, xcoords=axis, batch_size=BATCH_SIZE, verbose=0)
    return (time.perf_counter() - started) / len(axis) ** 2


def measure(name, model, x, y, points_per_axis):
    coefficients, axis = grid(points_per_axis)
    directions = random_directions(model, seed=0)
    naive = time_naive(model, x, y, directions, coefficients)
    floor = time_floor(model, x, y, repeats=len(coefficients))
    engine = time_engine(model, x, y, directions, coefficients)
    end_to_end = time_end_to_end(model, x, y, directions, axis)
    print(
        f"{name:<34} {len(coefficients):>6} {naive * 1e3:>10.2f} {floor * 1e3:>10.2f} {engine * 1e3:>10.2f} "
        f"{end_to_end * 1e3:>10.2f} {naive / engine:>7.1f} {engine / floor:>7.3f}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller grids, for a smoke run")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; GPU: {bool(tf.config.list_physical_devices('GPU'))}")
    print(f"{'model (data)':<34} {'points':>6} {'A naive':>10} {'B floor':>10} {'C engine':>10} "
          f"{'C* e2e':>10} {'A/C':>7} {'C/B':>7}   (ms per point)")

    (x_train, y_train), _ = load_digits_split()
    x_digits = np.concatenate([x_train, _[0]])
    y_digits = np.concatenate([y_train, _[1]])
    mlp = digits_mlp()
    mlp.fit(x_digits, y_digits, epochs=5, verbose=0)
    measure("MLP 64-64-10 (digits, 1797)", mlp, x_digits, y_digits, 5 if args.quick else 11)

    rng = np.random.default_rng(0)
    samples = 200 if args.quick else 1000
    x_images = rng.normal(size=(samples, 32, 32, 3)).astype("float32")
    y_images = rng.integers(0, 10, size=samples)
    resnet = cifar_resnet(20)
    resnet.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    measure(f"ResNet-20 (synthetic CIFAR, {samples})", resnet, x_images, y_images, 3)


if __name__ == "__main__":
    main()
