"""Points per second of ResNet-56 on CIFAR-shaped images, per backend, for a GPU (it runs on a CPU too, slowly).

Run: python benchmarks/bench_gpu.py [--backends jax torch] [--samples 10000] [--points 21] [--k 8 32]
                                    [--save benchmarks/results/bench_gpu_h100.txt]
     Quick check on a CPU: python benchmarks/bench_gpu.py --samples 64 --points 3 --engine-points 2 --k 2

Each backend (default: each of JAX, PyTorch and TensorFlow that imports) runs in fresh Python processes,
so that nothing is compiled before the call that is timed (`--save` rewrites its file after each stage):
  engine         warm seconds per grid point of `model.evaluate` per point (weights assigned from numpy),
                 of our engine at one point and at K points per call, and at K points in bfloat16, each
                 with its largest relative loss difference to `model.evaluate` at the same points;
  default        the whole default call `plot_loss_3D(model, "levels", x, y, number_of_points=21)`, the
                 first in its process, from the call to its return (the "auto" probe, the compiles, the
                 hashing and the drawing included), with the points per call and the batch size it chose,
                 and then its grid alone at that choice, warm: the whole call over that is its fixed cost;
  default bf16   the same call with `dtype_policy="mixed_bfloat16"`.
Once per run, in its own process: a plain PyTorch loop on the same architecture, the reference code's
way (set the weights, then a `no_grad` pass over batches of 512 with the data on the device), in float32
and with `channels_last`. The table at the end gives points/s and the ratios to the plain PyTorch loop
and to `model.evaluate`, and the paper's figure (51 x 51 points over 50,000 images) extrapolated from
each whole default call. Model building and imports are not timed. A stage that runs past
`--stage-timeout` is reported as such and the run goes on.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BACKENDS = ("jax", "torch", "tensorflow")
PAPER_POINTS, PAPER_SAMPLES = 51 * 51, 50_000
RESULT = "RESULT "


def resnet56_and_data(samples: int):
    """The compiled Keras ResNet-56 of `reproductions.models` and CIFAR-shaped random images with labels."""
    import keras
    import numpy as np

    from reproductions.models import cifar_resnet

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, samples)
    model = cifar_resnet(56)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model, x, y


def report(**row) -> None:
    print(RESULT + json.dumps(row), flush=True)


def device() -> str:
    import keras

    from losslandscape.backends import current_backend

    return f"Keras {keras.__version__}, {current_backend().device_description()}"


def grid_of(points: int):
    import numpy as np

    axis = np.linspace(-1, 1, points)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)


def stage_default(args, dtype_policy=None) -> None:
    """The whole default call, first in this process; then its grid alone at the points per call it chose."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from losslandscape import plot_loss_3D, random_directions
    from losslandscape.datasets import prepare_data
    from losslandscape.engine import build_evaluator
    from losslandscape.precision import with_dtype_policy

    model, x, y = resnet56_and_data(args.samples)
    started = time.perf_counter()
    surface = plot_loss_3D(model, "levels", x, y, number_of_points=args.points, dtype_policy=dtype_policy, verbose=0)
    seconds = time.perf_counter() - started
    plt.close("all")
    per_call = next(iter(surface.settings["points_per_call_used"].values()))
    batches = prepare_data((x, y), model=model)  # the batch the call chose
    evaluated = with_dtype_policy(model, dtype_policy) if dtype_policy else model
    origin = [v.numpy() for v in evaluated.trainable_variables]
    directions = random_directions(evaluated, seed=1)
    evaluator = build_evaluator(evaluated, batches, origin, directions, points_per_call=per_call)
    grid = grid_of(args.points)
    evaluator.evaluate(grid[:per_call])
    started = time.perf_counter()
    evaluator.evaluate(grid)
    grid_seconds = time.perf_counter() - started
    name = "default call" + (f", {dtype_policy}" if dtype_policy else "")
    report(device=device(), what=f"{name} {args.points}x{args.points}, whole", points_per_s=len(grid) / seconds,
           seconds=seconds, notes=f"K = {per_call}, batch {batches.batch_size}; whole call / its grid alone "
                 f"{seconds / grid_seconds:.2f}", whole_call=True)


def stage_engine(args) -> None:
    """Warm seconds per point of `model.evaluate` per point and of the engine at 1 and K points per call."""
    import numpy as np

    from losslandscape import random_directions
    from losslandscape.backends import current_backend
    from losslandscape.datasets import prepare_data
    from losslandscape.engine import build_evaluator
    from losslandscape.precision import with_dtype_policy

    model, x, y = resnet56_and_data(args.samples)
    directions = random_directions(model, seed=0)
    origin = [v.numpy() for v in model.trainable_variables]
    grid = grid_of(args.engine_points)
    checked = grid[: args.naive_points]
    reference, naive_seconds = naive_losses(model, x, y, origin, directions, checked, args.batch_size)
    report(what="model.evaluate per point", points_per_s=1 / naive_seconds, naive=True, device=device())
    batches = prepare_data((x, y), batch_size=args.batch_size)
    bfloat16_model = with_dtype_policy(model, "mixed_bfloat16")
    runs = [(f"engine, {k} point{'s' * (k > 1)} per call", model, k) for k in [1, *args.k]]
    runs.append((f"engine, bfloat16, {max(args.k)} per call", bfloat16_model, max(args.k)))
    for name, evaluated_model, points_per_call in runs:
        try:
            evaluator = build_evaluator(evaluated_model, batches, origin, directions, points_per_call=points_per_call)
            started = time.perf_counter()
            evaluator.evaluate(grid[:points_per_call])
            compile_seconds = time.perf_counter() - started
            started = time.perf_counter()
            values = evaluator.evaluate(grid)
            seconds = (time.perf_counter() - started) / len(grid)
        except current_backend().out_of_memory_errors as error:
            report(what=name, points_per_s=None, notes=f"out of device memory ({str(error)[:60]})")
            continue
        losses = np.array([v["loss"] for v in values[: len(checked)]])
        difference = np.max(np.abs(losses - reference) / np.abs(reference))
        report(what=name, points_per_s=1 / seconds,
               notes=f"rel. diff. to evaluate {difference:.1e}; first call {compile_seconds:.1f} s")


def naive_losses(model, x, y, origin, directions, rows, batch_size):
    """Weights assigned from numpy, then `model.evaluate`, per point; returns the losses and seconds per point."""
    import numpy as np

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


def stage_plain_torch(args) -> None:
    """The reference code's loop in plain PyTorch: set the weights, then a `no_grad` pass over the batches."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (args.samples,), generator=generator).to(device)
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = torch_resnet56().to(device).eval()
        inputs = x
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            inputs = x.contiguous(memory_format=torch.channels_last)
        parameters = list(model.parameters())
        origin = [p.detach().clone() for p in parameters]
        directions = [[torch.randn_like(w) * w.norm() / max(w.numel(), 1) ** 0.5 for w in origin] for _ in range(2)]
        loss_function = torch.nn.CrossEntropyLoss(reduction="sum")
        grid = grid_of(args.engine_points)

        def loss_at(alpha, beta):
            with torch.no_grad():
                for p, w, d, e in zip(parameters, origin, *directions):
                    p.copy_(w + alpha * d + beta * e)
                total = torch.zeros((), device=device)
                for start in range(0, args.samples, args.batch_size):
                    batch = slice(start, start + args.batch_size)
                    total += loss_function(model(inputs[batch]), y[batch])
                return (total / args.samples).item()

        loss_at(float(grid[0][0]), float(grid[0][1]))
        started = time.perf_counter()
        for alpha, beta in grid:
            loss_at(float(alpha), float(beta))
        seconds = (time.perf_counter() - started) / len(grid)
        report(what="plain PyTorch loop" + (", channels_last" if channels_last else ""), points_per_s=1 / seconds,
               plain=True, device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
               notes=f"PyTorch {torch.__version__}, batch {args.batch_size}")


def torch_resnet56():
    """ResNet-56 in plain PyTorch, as `reproductions.models.cifar_resnet(56)`: 1x1 convolutions where shapes change."""
    from torch import nn

    def conv_bn(channels_in, channels_out, stride, kernel_size=3):
        return nn.Sequential(nn.Conv2d(channels_in, channels_out, kernel_size, stride, kernel_size // 2, bias=False),
                             nn.BatchNorm2d(channels_out))

    class Block(nn.Module):
        def __init__(self, channels_in, channels_out, stride):
            super().__init__()
            self.residual = nn.Sequential(conv_bn(channels_in, channels_out, stride), nn.ReLU(),
                                          conv_bn(channels_out, channels_out, 1))
            changes = stride != 1 or channels_in != channels_out
            self.skip = conv_bn(channels_in, channels_out, stride, kernel_size=1) if changes else nn.Identity()

        def forward(self, x):
            return (self.residual(x) + self.skip(x)).relu()

    layers, channels = [conv_bn(3, 16, 1), nn.ReLU()], 16
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(9):
            layers.append(Block(channels, filters, 2 if stage > 0 and block == 0 else 1))
            channels = filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


STAGES = {"default": stage_default, "default_bf16": lambda args: stage_default(args, "mixed_bfloat16"),
          "engine": stage_engine, "plain_torch": stage_plain_torch}


def run_stage(stage: str, backend: str, args) -> list[dict]:
    """Runs one stage in a fresh process; its result rows, or one row saying why there are none."""
    command = [sys.executable, os.path.abspath(__file__), "--stage", stage, *sys.argv[1:]]
    environment = {**os.environ, "KERAS_BACKEND": backend}
    try:
        finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=args.stage_timeout)
    except subprocess.TimeoutExpired:
        return [{"what": stage, "points_per_s": None, "notes": f"ran past --stage-timeout {args.stage_timeout} s"}]
    rows = [json.loads(line[len(RESULT):]) for line in finished.stdout.splitlines() if line.startswith(RESULT)]
    if finished.returncode:
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        rows.append({"what": stage, "points_per_s": None, "notes": f"failed: {last[:100]}"})
    return rows


def table(rows: list[dict], args) -> list[str]:
    plain = max((row["points_per_s"] for row in rows if row.get("plain") and row["points_per_s"]), default=None)
    lines = [f"{'backend':<11} {'what':<44} {'points/s':>9} {'vs plain PyTorch':>17} {'vs evaluate':>12}   notes"]
    for row in rows:
        rate = row["points_per_s"]
        naive = next((r["points_per_s"] for r in rows if r.get("naive") and r["backend"] == row["backend"]), None)
        cells = [f"{rate:9.2f}" if rate else f"{'-':>9}",
                 f"{rate / plain:17.2f}" if rate and plain else f"{'-':>17}",
                 f"{rate / naive:12.1f}" if rate and naive and not row.get("plain") else f"{'-':>12}"]
        lines.append(f"{row['backend']:<11} {row['what']:<44} {' '.join(cells)}   {row.get('notes', '')}")
    for row in rows:
        if row.get("whole_call") and row["points_per_s"]:
            minutes = PAPER_POINTS * (PAPER_SAMPLES / args.samples) / row["points_per_s"] / 60
            lines.append(f"paper's figure (51x51, {PAPER_SAMPLES:,} images) at the rate of {row['backend']} "
                         f"{row['what']}: {minutes:.1f} min")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None,
                        help="Keras backends to time (default: each that imports)")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=21, help="points per axis of the default call")
    parser.add_argument("--engine-points", type=int, default=8, help="points per axis timed for the engine rows")
    parser.add_argument("--batch-size", type=int, default=512, help="batch of the engine rows and the PyTorch loop")
    parser.add_argument("--k", type=int, nargs="+", default=[8, 32], help="points per call of the engine rows")
    parser.add_argument("--naive-points", type=int, default=3, help="points timed for model.evaluate")
    parser.add_argument("--stage-timeout", type=int, default=600, help="seconds a stage may run")
    parser.add_argument("--save", default=None, help="also write the table to this file")
    parser.add_argument("--stage", choices=STAGES, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        STAGES[args.stage](args)
        return
    backends = args.backends or [b for b in BACKENDS if importlib.util.find_spec(b)]
    stages = [("PyTorch", "torch", "plain_torch")] if importlib.util.find_spec("torch") else []
    stages += [(backend, backend, stage) for backend in backends for stage in ("engine", "default", "default_bf16")]
    rows: list[dict] = []
    for name, backend, stage in stages:
        print(f"{name}: {stage} ...", flush=True)
        rows += [{"backend": name, **row} for row in run_stage(stage, backend, args)]
        lines = report_lines(rows, args)
        if args.save:  # after each stage, so that a run stopped from outside keeps what it measured
            with open(args.save, "w") as file:
                file.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def report_lines(rows: list[dict], args) -> list[str]:
    devices = {row["backend"]: row["device"] for row in rows if row.get("device")}
    return [f"bench_gpu: ResNet-56, {args.samples} images, {time.strftime('%Y-%m-%d')}",
            *(f"  {backend}: {device}" for backend, device in devices.items()), *table(rows, args)]


if __name__ == "__main__":
    main()
