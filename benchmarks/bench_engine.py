"""Seconds per grid point: naive model.evaluate vs. the compiled forward-pass floor vs. our engine.

Run: python benchmarks/bench_engine.py [--quick]

For each model, from one run on the same data and directions:
  A  naive: trainable weights assigned from numpy, then `model.evaluate`, per point
  B  floor: one compiled forward pass (model + loss) over the resident data per point,
     at fixed weights, no weight update and no metrics
  C1 engine, one point per call: losslandscape's compiled evaluator (weights updated on
     the device, loss and metrics exactly as `model.evaluate`), after its one-off setup
  CK engine, K points per call: the vectorized evaluator (weights of K points stacked)
  C  the engine as `compute_surface` runs it with points_per_call="auto": the faster of C1, CK
  C* `compute_surface` end to end: wall time / points, setup and the auto probe included
Prints A/C (target >= 20 on the MLP), C/B (targets: <= 0.5 on the MLP, <= 1.05 on ResNet-20),
and the peak resident memory each engine run added (VmHWM, reset before each run).
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
from losslandscape.backends.tensorflow import CompiledPointEvaluator, VectorizedPointEvaluator  # noqa: E402
from losslandscape.datasets import prepare_data  # noqa: E402
from losslandscape.demo import digits_mlp, load_digits_split  # noqa: E402
from reproductions.models import cifar_resnet  # noqa: E402

BATCH_SIZE = 128
REPEATS = 3  # each figure is the fastest of this many passes over the grid, against a noisy shared machine


def grid(points_per_axis):
    axis = np.linspace(-1.0, 1.0, points_per_axis)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2), axis


def time_naive(model, x, y, directions, coefficients):
    origin = [v.numpy() for v in model.trainable_variables]
    model.evaluate(x, y, batch_size=BATCH_SIZE, verbose=0)  # builds Keras' test function once

    def one_pass():
        for alpha, beta in coefficients:
            for variable, w, d1, d2 in zip(model.trainable_variables, origin, *directions):
                variable.assign(w + alpha * d1 + beta * d2)
            model.evaluate(x, y, batch_size=BATCH_SIZE, verbose=0)

    elapsed = fastest(one_pass)
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    return elapsed / len(coefficients)


def fastest(run) -> float:
    """The shortest wall time of REPEATS calls of `run`."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


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
    return fastest(lambda: [forward_pass().numpy() for _ in range(repeats)]) / repeats


def time_engine(model, x, y, directions, coefficients, points_per_call):
    """Seconds per point after setup, and the peak memory (MiB) the run added."""
    origin = [v.numpy() for v in model.trainable_variables]
    baseline = reset_peak_memory()
    batches = prepare_data((x, y), batch_size=BATCH_SIZE)
    if points_per_call == 1:
        evaluator = CompiledPointEvaluator(model, batches, origin, directions)
    else:
        evaluator = VectorizedPointEvaluator(model, batches, origin, directions, points_per_call=points_per_call)
    evaluator.evaluate(coefficients[:points_per_call])  # traces the compiled function once
    elapsed = fastest(lambda: evaluator.evaluate(coefficients))
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    return elapsed / len(coefficients), peak_memory() - baseline


def time_end_to_end(model, x, y, directions, axis):
    started = time.perf_counter()
    compute_surface(model, (x, y), directions, xcoords=axis, batch_size=BATCH_SIZE, verbose=0)
    return (time.perf_counter() - started) / len(axis) ** 2


def reset_peak_memory() -> float:
    """Resets the kernel's peak-RSS counter of this process (Linux) and returns the current RSS in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        pass
    return _status_mib("VmRSS")


def peak_memory() -> float:
    return _status_mib("VmHWM")


def _status_mib(key) -> float:
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure(name, model, x, y, points_per_axis, points_per_call):
    coefficients, axis = grid(points_per_axis)
    directions = random_directions(model, seed=0)
    naive = time_naive(model, x, y, directions, coefficients)
    floor = time_floor(model, x, y, repeats=len(coefficients))
    one, one_memory = time_engine(model, x, y, directions, coefficients, 1)
    stacked, stacked_memory = time_engine(model, x, y, directions, coefficients, points_per_call)
    engine = min(one, stacked)
    end_to_end = time_end_to_end(model, x, y, directions, axis)
    print(
        f"{name:<34} {len(coefficients):>6} {naive * 1e3:>9.2f} {floor * 1e3:>9.2f} {one * 1e3:>9.2f} "
        f"{stacked * 1e3:>9.2f} {end_to_end * 1e3:>9.2f} {naive / engine:>7.1f} {engine / floor:>7.3f} "
        f"{one_memory:>8.0f} {stacked_memory:>8.0f}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller grids, for a smoke run")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; GPU: {bool(tf.config.list_physical_devices('GPU'))}")
    print(f"{'model (data)':<34} {'points':>6} {'A naive':>9} {'B floor':>9} {'C1':>9} {'CK':>9} "
          f"{'C* e2e':>9} {'A/C':>7} {'C/B':>7} {'MiB C1':>8} {'MiB CK':>8}   (ms per point; C = min(C1, CK))")

    (x_train, y_train), _ = load_digits_split()
    x_digits = np.concatenate([x_train, _[0]])
    y_digits = np.concatenate([y_train, _[1]])
    mlp = digits_mlp()
    mlp.fit(x_digits, y_digits, epochs=5, verbose=0)
    measure("MLP 64-64-10 (digits, 1797), K=32", mlp, x_digits, y_digits, 8 if args.quick else 16, 32)

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
    measure(f"ResNet-20 (synthetic CIFAR, {samples}), K=4", resnet, x_images, y_images, 3, 4)


if __name__ == "__main__":
    main()
