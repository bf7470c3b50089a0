"""How the time of `compute_surface` grows with the grid and with the data, and where fixed costs stop mattering.

Run: python benchmarks/bench_scale.py [--quick] [--resnet]

Each row is one `compute_surface` call in a fresh Python process (nothing compiled before it), with
the default `points_per_call="auto"`: total seconds, and milliseconds per grid point. The fixed cost
(tracing, compiling, the probe) is the part that does not grow with the points: where the time per
point stops falling, it no longer matters.
  grid   the digits MLP (64-128-10, 1,797 samples) on 11x11, 21x21, 51x51 and 101x101 points
  data   the same MLP on 21x21 points over 1k, 10k and 100k synthetic samples (digits-shaped)
  resnet (--resnet) ResNet-20 on 1,000 synthetic CIFAR-shaped images, 5x5 and 11x11 points
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


def child(model_name: str, points: int, samples: int) -> dict:
    import keras
    import numpy as np

    from losslandscape import compute_surface

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if model_name == "mlp":
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
        x = rng.normal(size=(samples, 64)).astype("float32")
    else:
        from reproductions.models import cifar_resnet

        model = cifar_resnet(20)
        x = rng.normal(size=(samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, samples)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    started = time.perf_counter()
    surface = compute_surface(model, (x, y), xcoords=np.linspace(-1, 1, points), seed=0, verbose=0)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "points_per_call": surface.settings.get("points_per_call_used", {}).get("train")}


def run(model_name, points, samples):
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", model_name, str(points), str(samples)],
        capture_output=True, text=True, check=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    grid_points = points * points
    print(f"{model_name:8} {points:>4}x{points:<4} {samples:>8} {measured['seconds']:9.2f} "
          f"{1e3 * measured['seconds'] / grid_points:11.3f} {measured['points_per_call']!s:>6}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the two smallest sizes of each curve")
    parser.add_argument("--resnet", action="store_true", help="also ResNet-20 (minutes on 2 CPU cores)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, points, samples = args.child
        print(json.dumps(child(name, int(points), int(samples))))
        return
    import keras

    print(f"{platform.node()}: {os.cpu_count()} CPU cores, Keras {keras.__version__} on {keras.backend.backend()}")
    print(f"{'model':8} {'grid':>9} {'samples':>8} {'seconds':>9} {'ms/point':>11} {'K':>6}")
    grids = (11, 21) if args.quick else (11, 21, 51, 101)
    for points in grids:
        run("mlp", points, 1797)
    for samples in (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000):
        run("mlp", 21, samples)
    if args.resnet:
        for points in (5, 11):
            run("resnet", points, 1_000)


if __name__ == "__main__":
    main()
