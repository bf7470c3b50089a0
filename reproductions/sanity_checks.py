"""The three sanity checks: small vs large batch, weight decay vs none, SGD vs Adam, with sharpness as numbers.

Each pair is trained with the paper's recipe, then drawn side by side on one scale (1D curves along
filter-normalized directions, and contour plots), and a table gives test accuracy and two sharpness
numbers per model, averaged over three random directions:
  rise@0.5     mean loss at α = ±0.5 minus the loss at α = 0 (smaller: wider minimum)
  width(2×)    α-width of the interval around 0 where the loss stays below twice its value at 0
               (larger: wider; it depends on how small the loss at 0 is)
  width(+1)    α-width where the loss stays below its value at 0 plus 1 (larger: wider)

Examples:
    python -m reproductions.sanity_checks --dataset digits --out runs/sanity_digits    # offline, minutes on a CPU
    python -m reproductions.sanity_checks --out runs/sanity_cifar                      # ResNet-56 on CIFAR-10, GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from losslandscape import compute_line, compute_surface, sharpness  # noqa: E402
from reproductions.train import load_dataset, train  # noqa: E402

SETUPS = {
    "cifar10": dict(model_name="resnet", depth=56, epochs=300, small_batch=128, large_batch=4096,
                    points=51, line_points=101),
    "digits": dict(model_name="digits_cnn", depth=0, epochs=100, small_batch=32, large_batch=1024,
                   points=31, line_points=81),
    "smoke": dict(model_name="resnet", depth=8, epochs=1, small_batch=32, large_batch=256,
                  points=5, line_points=9, samples=128),
}
SEEDS = (0, 1, 2)
MAX_LOSS = 5.0  # the paper caps its 1D plots at 5


def pairs(setup: dict) -> dict:
    """The two trainings of each check; the first of each pair is the same base recipe."""
    base = dict(batch_size=setup["small_batch"], weight_decay=5e-4, optimizer="sgd")
    return {
        "batch_size": [(f"batch {setup['small_batch']}", base), (f"batch {setup['large_batch']}", dict(base, batch_size=setup["large_batch"]))],
        "weight_decay": [("weight decay 5e-4", base), ("no weight decay", dict(base, weight_decay=0.0))],
        "optimizer": [("SGD", base), ("Adam", dict(base, optimizer="adam"))],
    }


def examine(model, train_data, setup, samples):
    """1D curves along three directions, their sharpness, and one 2D surface (all on the data loss)."""
    coords = np.linspace(-1, 1, setup["line_points"])
    options = dict(batch_size=256, max_samples=samples, include_regularization=False, verbose=0)
    curves = [compute_line(model, train_data, coords=coords, seed=seed, **options) for seed in SEEDS]
    measures = [sharpness(curve) for curve in curves]
    surface = compute_surface(model, train_data, xcoords=np.linspace(-1, 1, setup["points"]), seed=0, **options)
    summary = {key: float(np.mean([m[key] for m in measures])) for key in measures[0]}
    summary["loss_at_0"] = float(curves[0].losses["train"][len(coords) // 2])
    return curves[0], surface, summary


def draw_pair(name, results, out: Path):
    """1D curves of both models on one axes, and their contours side by side on one scale."""
    figure, ax = plt.subplots(figsize=(5, 4))
    for label, result in results:
        ax.plot(result["line"].coords, np.minimum(result["line"].losses["train"], MAX_LOSS), label=label)
    ax.set_ylim(0, MAX_LOSS)
    ax.set_xlabel("α (filter-normalized)")
    ax.set_ylabel("train loss")
    ax.set_title(name.replace("_", " "))
    ax.legend()
    figure.savefig(out / f"{name}_1d.png", bbox_inches="tight", dpi=120)
    plt.close(figure)
    figure, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
    levels = np.arange(0.1, 10, 0.5)
    for ax, (label, result) in zip(axes, results):
        result["surface"].plot("contour", ax=ax, levels=levels)
        ax.set_title(label)
    figure.savefig(out / f"{name}_contour.png", bbox_inches="tight", dpi=120)
    plt.close(figure)


def format_table(rows) -> str:
    lines = [
        "| check | model | test accuracy | train loss at 0 | rise@0.5 | width(2×) | width(+1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for check, label, result in rows:
        widths = ["≥ 2 (range)" if result[key] >= 2.0 else f"{result[key]:.3f}" for key in ("doubling_width", "width_plus_1")]
        lines.append(
            f"| {check.replace('_', ' ')} | {label} | {result['test_accuracy']:.4f} | {result['loss_at_0']:.4f} "
            f"| {result['rise_at_0.5']:.4f} | {widths[0]} | {widths[1]} |"
        )
    return "\n".join(lines)


def run(dataset: str, out: Path, data_dir=None, samples=None, epochs=None, smoke=False) -> list:
    setup = dict(SETUPS["smoke" if smoke else dataset])
    if epochs:
        setup["epochs"] = epochs
    samples = samples or setup.get("samples")
    data = load_dataset("cifar10" if smoke else dataset, data_dir, synthetic=smoke)
    out.mkdir(parents=True, exist_ok=True)
    trained = {}
    rows = []
    for check, members in pairs(setup).items():
        results = []
        for label, recipe in members:
            key = json.dumps(recipe, sort_keys=True)
            if key not in trained:
                folder = out / "models" / "_".join(f"{k}-{v}" for k, v in sorted(recipe.items()))
                model, result = train(setup["model_name"], setup["depth"], "cifar10" if smoke else dataset,
                                      epochs=setup["epochs"], out=str(folder), data=data, verbose=0, **recipe)
                line, surface, summary = examine(model, data[0], setup, samples)
                trained[key] = dict(result, **summary, line=line, surface=surface)
                print(f"{label}: test accuracy {result['test_accuracy']:.4f}, {summary}", flush=True)
            results.append((label, trained[key]))
            rows.append((check, label, trained[key]))
        draw_pair(check, results, out)
    table = format_table(rows)
    (out / "table.md").write_text(table + "\n")
    plain = [{"check": c, "model": l, **{k: v for k, v in r.items() if k not in ("line", "surface")}} for c, l, r in rows]
    (out / "results.json").write_text(json.dumps(plain, indent=2))
    print(table)
    return plain


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "digits"))
    parser.add_argument("--data-dir", help="folder with cifar-10-batches-py (default: keras.datasets.cifar10)")
    parser.add_argument("--samples", type=int, help="evaluate landscapes on the first N training samples")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--out", default="runs/sanity_checks")
    parser.add_argument("--smoke", action="store_true", help="synthetic CIFAR, ResNet-8, 1 epoch, 5×5 grids on 128 images")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args.dataset, Path(args.out), args.data_dir, args.samples, args.epochs, args.smoke)
    except (RuntimeError, FileNotFoundError) as error:
        print(f"sanity_checks: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
