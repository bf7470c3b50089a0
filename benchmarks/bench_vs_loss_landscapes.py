"""End to end against the PyTorch tool users would otherwise pick: loss-landscapes 3.0.6, `random_plane`.

Run: python benchmarks/bench_vs_loss_landscapes.py [--points 51] [--repeats 3]   (pip install loss-landscapes==3.0.6)

The same MLP 64-128-10 with the same weights (trained once here with Keras on torch, copied into a
`torch.nn.Sequential`) on scikit-learn's 1,797 digits, a 51×51 plane of filter-normalized random
directions over [-1, 1]², the cross-entropy loss. Each call runs in a fresh Python process, and the
wall time of the whole process is timed (start-up, imports, loading the weights, the grid): what a user
waits for from a script. Ours is `compute_surface` with its defaults (loss and accuracy, batches of 128,
`points_per_call="auto"`) under KERAS_BACKEND=torch; loss-landscapes evaluates the loss only, over all
the samples in one forward pass per point. Prints each tool's median and the ratio, from one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OURS = """
import numpy as np, keras
from losslandscape import compute_surface
saved = np.load({weights!r})
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.set_weights([saved[f"w{{i}}"] for i in range(4)])
compute_surface(model, (saved["x"], saved["y"]), xcoords=np.linspace(-1, 1, {points}), seed=0, verbose=0)
"""

THEIRS = """
import numpy as np, torch, loss_landscapes, loss_landscapes.metrics
saved = np.load({weights!r})
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
with torch.no_grad():
    for layer, i in ((model[0], 0), (model[2], 2)):
        layer.weight.copy_(torch.tensor(saved[f"w{{i}}"].T))
        layer.bias.copy_(torch.tensor(saved[f"w{{i + 1}}"]))
metric = loss_landscapes.metrics.Loss(torch.nn.CrossEntropyLoss(), torch.tensor(saved["x"]), torch.tensor(saved["y"]))
loss_landscapes.random_plane(model, metric, distance=1, steps={points}, normalization="filter", deepcopy_model=True)
"""


def train_and_save(path: str) -> None:
    """Trains the MLP once (Keras on torch) and saves its weights and the data for both tools."""
    code = f"""
import numpy as np, keras
from losslandscape.demo import load_digits_split
(x, y), (x_test, y_test) = load_digits_split()
x, y = np.concatenate([x, x_test]).astype("float32"), np.concatenate([y, y_test]).astype("int64")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x, y, epochs=5, batch_size=64, verbose=0)
np.savez({path!r}, x=x, y=y, **{{f"w{{i}}": w for i, w in enumerate(model.get_weights())}})
"""
    _run(code)


def _run(code: str) -> float:
    environment = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=environment, cwd=ROOT, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=51, help="points per axis (default 51)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per tool (default 3)")
    args = parser.parse_args()
    import loss_landscapes  # noqa: F401  (fail early, with pip's name in the message, if it is missing)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; PyTorch {torch.__version__}")
    with tempfile.TemporaryDirectory() as folder:
        weights = os.path.join(folder, "mlp.npz")
        train_and_save(weights)
        empty = _run("import numpy, torch")  # what starting Python and importing torch costs either way
        times = {"losslandscape": [], "loss-landscapes": []}
        for _ in range(args.repeats):  # in turns, so that the load of a shared machine touches both alike
            times["losslandscape"].append(_run(OURS.format(weights=weights, points=args.points)))
            times["loss-landscapes"].append(_run(THEIRS.format(weights=weights, points=args.points)))
    ours, theirs = (statistics.median(times[name]) for name in ("losslandscape", "loss-landscapes"))
    print(f"{args.points}×{args.points} plane, MLP 64-128-10 on 1,797 digits, median of {args.repeats} fresh processes")
    print(f"  python + import torch alone:        {empty:6.2f} s")
    print(f"  losslandscape (Keras on torch):     {ours:6.2f} s   {times['losslandscape']}")
    print(f"  loss-landscapes 3.0.6 random_plane: {theirs:6.2f} s   {times['loss-landscapes']}")
    print(f"  losslandscape / loss-landscapes:    {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
