"""Seconds per grid point: naive model.evaluate vs. compiled forward-pass floors vs. our engine.

Run: python benchmarks/bench_engine.py [--quick]   (KERAS_BACKEND=tensorflow, jax or torch picks the backend)

For each model, from one run on the same data and directions:
  A  naive: trainable weights assigned from numpy, then `model.evaluate`, per point
  B  floor: one compiled forward pass (model + loss) over the resident data per point,
     at fixed weights, no weight update and no metrics (on torch: eager, under torch.no_grad)
  Bm floor with metrics: the same pass with the compiled metrics too (Keras' own
     `test_step`), i.e. all that one point at a time has to compute
  C1 engine, one point per compiled call: weights updated on the device, loss and
     metrics exactly as `model.evaluate`, after its one-off setup
  CK engine, K points per call: the vectorized evaluator (weights of K points stacked)
  C  the engine as `compute_surface` runs it with points_per_call="auto": the faster of C1, CK
  C* `compute_surface` end to end: wall time / points, setup and the auto probe included
     ("auto K": the points per call the probe chose)
B, Bm, C1 and CK are timed in turns, each the fastest of REPEATS passes over the grid,
so that the load of a shared machine touches all of them alike. Prints A/C
(target >= 20 on the MLP), C/B (targets: <= 0.5 on the MLP, <= 1.05 on ResNet-20),
C/Bm, and the peak resident memory each engine's first pass added (VmHWM).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from losslandscape import compute_surface, random_directions  # noqa: E402
from losslandscape.backends import current_backend  # noqa: E402
from losslandscape.datasets import prepare_data  # noqa: E402
from losslandscape.demo import digits_mlp, load_digits_split  # noqa: E402
from reproductions.models import cifar_resnet  # noqa: E402

BATCH_SIZE = 128
REPEATS = 5  # each figure is the fastest of this many passes over the grid, against a noisy shared machine
NAIVE_REPEATS = 2  # the naive pass is 50-100 times slower; A/C is far from its target either way


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

    elapsed = fastest_in_turns({"naive": one_pass}, repeats=NAIVE_REPEATS)["naive"]
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    return elapsed / len(coefficients)


def floor_pass(model, x, y, points, with_metrics):
    """A callable running `points` compiled passes at fixed weights: model and loss, or Keras' whole test step."""
    floor = {"jax": _jax_floor, "torch": _torch_floor}.get(keras.backend.backend(), _tensorflow_floor)
    one_pass = floor(model, x, y, with_metrics)
    return lambda: [keras.tree.map_structure(np.asarray, one_pass()) for _ in range(points)]


def _tensorflow_floor(model, x, y, with_metrics):
    import tensorflow as tf

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

    @tf.function
    def test_step_pass():
        for metric in model.metrics:
            metric.reset_state()
        for start in tf.range(0, len(x), BATCH_SIZE):
            model.test_step((xs[start : start + BATCH_SIZE], ys[start : start + BATCH_SIZE]))
        return model.get_metrics_result()

    current_backend().build_metrics(model, prepare_data((x, y), batch_size=BATCH_SIZE))
    return test_step_pass if with_metrics else forward_pass


def _jax_floor(model, x, y, with_metrics):
    import jax

    batches = prepare_data((x, y), batch_size=BATCH_SIZE)
    current_backend().build_metrics(model, batches)
    loss_fn = keras.losses.get(model.loss)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    for metric in model.metrics:
        metric.reset_state()
    metric_states = [v.value for v in model.metrics_variables]

    @jax.jit
    def forward_pass(trainable, non_trainable, metric_states, arrays):
        def step(batch, total):
            y_pred, _ = model.stateless_call(trainable, non_trainable, batch[0], training=False)
            return total + jax.numpy.sum(loss_fn(batch[1], y_pred))

        return batches.with_arrays(arrays).accumulate(step, 0.0) / len(x)

    @jax.jit
    def test_step_pass(trainable, non_trainable, metric_states, arrays):
        def step(batch, states):
            _, (_, _, states) = model.test_step((trainable, non_trainable, states), batch)
            return states

        states = batches.with_arrays(arrays).accumulate(step, metric_states)
        with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, states))):
            return dict(model.get_metrics_result())

    one_pass = test_step_pass if with_metrics else forward_pass
    return lambda: one_pass(trainable, non_trainable, metric_states, batches.arrays)


def _torch_floor(model, x, y, with_metrics):
    import torch

    batches = prepare_data((x, y), batch_size=BATCH_SIZE)
    current_backend().build_metrics(model, batches)
    loss_fn = keras.losses.get(model.loss)
    xs, ys = batches.arrays

    def slices():
        return ((xs[start : start + BATCH_SIZE], ys[start : start + BATCH_SIZE]) for start in range(0, len(x), BATCH_SIZE))

    @torch.no_grad()
    def forward_pass():
        total = 0.0
        for batch_x, batch_y in slices():
            total = total + keras.ops.sum(loss_fn(batch_y, model(batch_x, training=False)))
        return total / len(x)

    @torch.no_grad()
    def test_step_pass():
        for metric in model.metrics:
            metric.reset_state()
        for batch in slices():
            model.test_step(batch)
        return {name: keras.ops.convert_to_numpy(value) for name, value in model.get_metrics_result().items()}

    return test_step_pass if with_metrics else forward_pass


def engine_pass(model, x, y, directions, coefficients, points_per_call):
    """A callable evaluating the grid with the engine, and the peak memory (MiB) its setup and first pass added."""
    origin = [v.numpy() for v in model.trainable_variables]
    baseline = reset_peak_memory()
    batches = prepare_data((x, y), batch_size=BATCH_SIZE)
    backend = current_backend()
    if points_per_call == 1:
        evaluator = backend.point_evaluator(model, batches, origin, directions)
    else:
        evaluator = backend.vectorized_evaluator(model, batches, origin, directions, points_per_call=points_per_call)
    evaluator.evaluate(coefficients)
    return lambda: evaluator.evaluate(coefficients), peak_memory() - baseline


def fastest_in_turns(passes: dict, repeats: int = REPEATS) -> dict:
    """The shortest wall time of each callable over `repeats` rounds, the callables taking turns."""
    times = {name: [] for name in passes}
    for _ in range(repeats):
        for name, run in passes.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}


def time_end_to_end(model, x, y, directions, axis):
    """Seconds per point of `compute_surface`, and the points per call its "auto" probe chose."""
    printed = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        compute_surface(model, (x, y), directions, xcoords=axis, batch_size=BATCH_SIZE, verbose=1)
    seconds = (time.perf_counter() - started) / len(axis) ** 2
    chosen = re.search(r"evaluating (one|\d+) points? at a time", printed.getvalue())
    return seconds, "1" if chosen is None or chosen.group(1) == "one" else chosen.group(1)


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
    origin = [v.numpy() for v in model.trainable_variables]
    naive = time_naive(model, x, y, directions, coefficients)
    one, one_memory = engine_pass(model, x, y, directions, coefficients, 1)
    stacked, stacked_memory = engine_pass(model, x, y, directions, coefficients, points_per_call)
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    passes = {
        "floor": floor_pass(model, x, y, len(coefficients), with_metrics=False),
        "floor_metrics": floor_pass(model, x, y, len(coefficients), with_metrics=True),
        "one": one,
        "stacked": stacked,
    }
    for run in passes.values():
        run()
    seconds = {key: value / len(coefficients) for key, value in fastest_in_turns(passes).items()}
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)
    engine = min(seconds["one"], seconds["stacked"])
    end_to_end, auto_points_per_call = time_end_to_end(model, x, y, directions, axis)
    figures = [naive, seconds["floor"], seconds["floor_metrics"], seconds["one"], seconds["stacked"], end_to_end]
    print(
        f"{name:<34} {len(coefficients):>6} " + " ".join(f"{value * 1e3:>9.2f}" for value in figures)
        + f" {naive / engine:>7.1f} {engine / seconds['floor']:>7.3f} {engine / seconds['floor_metrics']:>7.3f}"
        f" {one_memory:>8.0f} {stacked_memory:>8.0f} {auto_points_per_call:>6}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller grids, for a smoke run")
    parser.add_argument("--models", nargs="+", choices=("mlp", "resnet"), default=("mlp", "resnet"),
                        help="which models to measure (default: both)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"Keras {keras.__version__} on {current_backend().device_description()}")
    print(f"{'model (data)':<34} {'points':>6} {'A naive':>9} {'B floor':>9} {'Bm':>9} {'C1':>9} {'CK':>9} "
          f"{'C* e2e':>9} {'A/C':>7} {'C/B':>7} {'C/Bm':>7} {'MiB C1':>8} {'MiB CK':>8} {'auto K':>6}"
          "   (ms per point; C = min(C1, CK))")

    if "mlp" in args.models:
        measure_mlp(args.quick)
    if "resnet" in args.models:
        measure_resnet(args.quick)


def measure_mlp(quick):
    (x_train, y_train), (x_test, y_test) = load_digits_split()
    x_digits = np.concatenate([x_train, x_test])
    y_digits = np.concatenate([y_train, y_test])
    mlp = digits_mlp()
    mlp.fit(x_digits, y_digits, epochs=5, verbose=0)
    measure("MLP 64-64-10 (digits, 1797), K=128", mlp, x_digits, y_digits, 8 if quick else 16, 128)


def measure_resnet(quick):
    rng = np.random.default_rng(0)
    samples = 200 if quick else 1000
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
