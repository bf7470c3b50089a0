"""What a user waits for: the whole default call, from a fresh process and again in a warm one, against the floor.

Run: python benchmarks/bench_end_to_end.py [--quick]   (KERAS_BACKEND=jax or tensorflow picks the backend)

For the digits MLP (64-128-10) and a small digits CNN (Conv 16 -> Conv 32 -> pool -> Dense), each
in its own fresh Python process (so nothing is compiled before the first call):
  first   `plot_loss_3D(model, "levels", x, y, number_of_points=51)` (or `plot_loss`, 21 points),
          the first call in the process: tracing, compiling and the "auto" probe included
  second  the same call again with other directions (seed), in the same process
  floor   one XLA-compiled forward pass with the loss over all the data at fixed weights,
          warmed, times the number of grid points, measured in the same process after the calls
Prints first/floor and second/floor (targets on 2 CPU cores: 3D first <= 1.0 on the MLP and
<= 0.5 on the CNN, second <= 0.3 on the MLP). Model training and imports are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CALLS = {"3d": 51, "1d": 21}  # points per axis of the default calls timed
FLOOR_REPEATS = 5


def digits_model(name: str):
    """The uncompiled digits MLP 64-128-10 ("mlp") or CNN Conv 16 -> Conv 32 -> pool -> Dense 10 ("cnn")."""
    import keras

    if name == "mlp":
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])


def build(name: str):
    import keras

    from losslandscape.demo import load_digits_split

    (x, y), _ = load_digits_split()
    keras.utils.set_random_seed(0)
    if name == "cnn":
        x = x.reshape(-1, 8, 8, 1)
    model = digits_model(name)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    return model, x, y


def floor_seconds_per_point(model, x, y) -> float:
    """One warmed, XLA-compiled pass of the model and its loss over all the data, at fixed weights."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        loss = model.loss

        @jax.jit
        def one_pass(trainable, data_x, data_y):
            total = 0.0
            for start in range(0, len(x), 128):
                y_pred, _ = model.stateless_call(trainable, non_trainable, data_x[start : start + 128])
                total = total + loss(data_y[start : start + 128], y_pred) * len(data_x[start : start + 128])
            return total / len(x)

        data_x, data_y = jax.device_put(x), jax.device_put(y)

        def run():
            one_pass(trainable, data_x, data_y).block_until_ready()
    else:
        import tensorflow as tf

        data_x, data_y = tf.constant(x), tf.constant(y)
        loss = model.loss

        @tf.function(jit_compile=True)
        def one_pass():
            total = 0.0
            for start in range(0, len(x), 128):
                total += loss(data_y[start : start + 128], model(data_x[start : start + 128], training=False)) * len(
                    x[start : start + 128]
                )
            return total / len(x)

        def run():
            one_pass().numpy()

    run()
    best = float("inf")
    for _ in range(FLOOR_REPEATS):
        started = time.perf_counter()
        for _ in range(20):
            run()
        best = min(best, (time.perf_counter() - started) / 20)
    return best


def child(name: str, call: str, points: int) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from losslandscape import plot_loss, plot_loss_3D

    model, x, y = build(name)
    seconds = []
    for seed in (0, 1):
        started = time.perf_counter()
        if call == "3d":
            plot_loss_3D(model, "levels", x, y, number_of_points=points, seed=seed, verbose=0)
        else:
            plot_loss(model, (x, y), number_of_points=points, seed=seed, verbose=0)
        seconds.append(time.perf_counter() - started)
        plt.close("all")
    grid_points = points**2 if call == "3d" else points
    return {"first": seconds[0], "second": seconds[1], "floor": floor_seconds_per_point(model, x, y) * grid_points}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="21 x 21 and 11 points, for a smoke run")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "CALL", "POINTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, call, points = args.child
        print(json.dumps(child(name, call, int(points))))
        return
    import keras

    print(f"{platform.node()}: {os.cpu_count()} CPU cores, Keras {keras.__version__} on {keras.backend.backend()}")
    print(f"{'model':6} {'call':24} {'first s':>8} {'second s':>9} {'floor s':>8} {'first/floor':>12} "
          f"{'second/floor':>13}")
    for name in ("mlp", "cnn"):
        for call, points in CALLS.items():
            points = {"3d": 21, "1d": 11}[call] if args.quick else points
            result = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", name, call, str(points)],
                capture_output=True, text=True, check=True,
            )
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            label = f"plot_loss_3D {points}x{points}" if call == "3d" else f"plot_loss {points}"
            print(f"{name:6} {label:24} {measured['first']:8.2f} {measured['second']:9.2f} {measured['floor']:8.2f} "
                  f"{measured['first'] / measured['floor']:12.2f} {measured['second'] / measured['floor']:13.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
