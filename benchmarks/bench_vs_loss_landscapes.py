"""End to end against the PyTorch tool users would otherwise pick: loss-landscapes 3.0.6, `random_plane`.

Run: python benchmarks/bench_vs_loss_landscapes.py [--points 51] [--repeats 3] [--models mlp cnn]
     (pip install loss-landscapes==3.0.6; the torch rows need `pip install torch==2.13.0`)

The same models with the same weights on scikit-learn's 1,797 digits: the MLP 64-128-10 and the
CNN Conv 16 -> Conv 32 -> pool -> Dense 10 of `bench_end_to_end.py`, trained once here with Keras and
copied into `torch.nn.Sequential` twins. Each tool draws a 51×51 plane of filter-normalized random
directions over [-1, 1]² and evaluates the cross-entropy loss over all the samples at every point.

Every call runs in a fresh Python process. Two times are printed per tool: "call", the landscape
call itself (tracing, compiling and probing included), and "process", the wall time of the whole
process (start-up, imports, loading the weights, the call): what a user waits for from a script.
Ours is `compute_surface` with its defaults (loss and accuracy, batches of 128,
`points_per_call="auto"`), on the TensorFlow backend and on the PyTorch one; loss-landscapes
evaluates the loss alone, in one forward pass over all samples per point, with 1 and 2 torch threads.
Prints each median and the ratios, from one run; the processes take turns, so that the load of a
shared machine touches all alike.
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

MODELS = ("mlp", "cnn")  # as `bench_end_to_end.digits_model` builds them

OURS = """
import time, json
import numpy as np, keras
from benchmarks.bench_end_to_end import digits_model
from losslandscape import compute_surface
saved = np.load({weights!r})
x = saved["x"].reshape(-1, 8, 8, 1) if {name!r} == "cnn" else saved["x"]
model = digits_model({name!r})
model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
model.set_weights([saved[f"w{{i}}"] for i in range(len(model.weights))])
started = time.perf_counter()
compute_surface(model, (x, saved["y"]), xcoords=np.linspace(-1, 1, {points}), seed=0, verbose=0)
print(json.dumps(time.perf_counter() - started))
"""

TORCH_TWIN = """
import numpy as np, torch
saved = np.load({weights!r})
x = torch.tensor(saved["x"])
if {name!r} == "mlp":
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    kernels = [saved["w0"].T, saved["w1"], saved["w2"].T, saved["w3"]]
    layers = (model[0], model[2])
else:
    x = x.reshape(-1, 1, 8, 8)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 10),
    )
    # Keras stores (h, w, in, out) kernels and flattens (h, w, c); torch wants (out, in, h, w) and (c, h, w).
    dense = saved["w4"].reshape(4, 4, 32, 10).transpose(2, 0, 1, 3).reshape(512, 10).T
    kernels = [saved["w0"].transpose(3, 2, 0, 1), saved["w1"], saved["w2"].transpose(3, 2, 0, 1), saved["w3"],
               dense, saved["w5"]]
    layers = (model[0], model[2], model[6])
with torch.no_grad():
    for position, layer in enumerate(layers):
        layer.weight.copy_(torch.tensor(np.ascontiguousarray(kernels[2 * position])))
        layer.bias.copy_(torch.tensor(kernels[2 * position + 1]))
"""

THEIRS = TORCH_TWIN + """
import time, json, loss_landscapes, loss_landscapes.metrics
torch.set_num_threads({threads})
metric = loss_landscapes.metrics.Loss(torch.nn.CrossEntropyLoss(), x, torch.tensor(saved["y"]))
started = time.perf_counter()
loss_landscapes.random_plane(model, metric, distance=1, steps={points}, normalization="filter", deepcopy_model=True)
print(json.dumps(time.perf_counter() - started))
"""

SAME_OUTPUTS = TORCH_TWIN + """
import keras
from benchmarks.bench_end_to_end import digits_model
twin = model(x[:64]).detach().numpy()
model = digits_model({name!r})
model.set_weights([saved[f"w{{i}}"] for i in range(len(model.weights))])
ours = keras.ops.convert_to_numpy(model(saved["x"][:64].reshape((-1, 8, 8, 1) if {name!r} == "cnn" else (-1, 64))))
print(float(np.abs(twin - ours).max()))
"""


def train_and_save(name: str, path: str) -> None:
    """Trains the model once (Keras, this process's backend) and saves its weights and the data for both tools."""
    code = f"""
import numpy as np, keras
from benchmarks.bench_end_to_end import digits_model
from losslandscape.demo import load_digits_split
(x, y), (x_test, y_test) = load_digits_split()
x, y = np.concatenate([x, x_test]).astype("float32"), np.concatenate([y, y_test]).astype("int64")
keras.utils.set_random_seed(0)
model = digits_model({name!r})
model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(x.reshape(-1, 8, 8, 1) if {name!r} == "cnn" else x, y, epochs=5, batch_size=64, verbose=0)
np.savez({path!r}, x=x, y=y, **{{f"w{{i}}": w for i, w in enumerate(model.get_weights())}})
"""
    _run(code, "tensorflow")


def same_outputs(name: str, weights: str) -> float:
    """The largest difference between the Keras model's logits and its torch twin's on 64 samples."""
    return float(_run(SAME_OUTPUTS.format(weights=weights, name=name), "torch")[1])


def _run(code: str, backend: str) -> tuple[float, str]:
    """Runs `code` in a fresh process: `(seconds the process took, the last line it printed)`."""
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], check=True, env=environment, cwd=ROOT,
                            capture_output=True, text=True)
    printed = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return time.perf_counter() - started, printed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=51, help="points per axis (default 51)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per tool (default 3)")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=MODELS)
    args = parser.parse_args()
    import loss_landscapes  # noqa: F401  (fail early, with pip's name in the message, if it is missing)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; PyTorch {torch.__version__}; "
          f"{args.points}×{args.points} plane on 1,797 digits, median of {args.repeats} fresh processes each")
    tools = {
        "losslandscape, TensorFlow": ("tensorflow", None),
        "losslandscape, PyTorch": ("torch", None),
        "loss-landscapes, 1 thread": ("torch", 1),
        "loss-landscapes, 2 threads": ("torch", 2),
    }
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            weights = os.path.join(folder, f"{name}.npz")
            train_and_save(name, weights)
            print(f"{name}: largest |logit| difference between the Keras model and its torch twin: "
                  f"{same_outputs(name, weights):.1e}")
            times = {tool: [] for tool in tools}
            for _ in range(args.repeats):
                for tool, (backend, threads) in tools.items():
                    template = OURS if threads is None else THEIRS
                    code = template.format(weights=weights, name=name, points=args.points, threads=threads)
                    process, call = _run(code, backend)
                    times[tool].append((process, float(call)))
            print(f"  {'tool':28} {'call s':>8} {'process s':>10}")
            medians = {}
            for tool, measured in times.items():
                medians[tool] = [statistics.median(m[i] for m in measured) for i in (1, 0)]
                print(f"  {tool:28} {medians[tool][0]:8.2f} {medians[tool][1]:10.2f}")
            best_theirs = min(medians["loss-landscapes, 1 thread"][0], medians["loss-landscapes, 2 threads"][0])
            for ours in ("losslandscape, TensorFlow", "losslandscape, PyTorch"):
                print(f"  {ours} call / loss-landscapes' faster call: {medians[ours][0] / best_theirs:.2f}")


if __name__ == "__main__":
    main()
