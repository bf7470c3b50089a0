"""The paper's depth study: do skip connections keep deep loss landscapes smooth (Li et al., Figures 5–6, Section 6)?

Trains ResNets, the same nets without skip connections and VGG-like plain nets at several depths with one
recipe, then computes for each a 2D loss surface (filter-normalized, biases and BatchNorm ignored, data loss
on the training set) and a curvature map (|λ_min/λ_max| of the full Hessian on a coarser grid of the same
plane), and writes side-by-side figures on one colour scale and a table:
  local minima    grid points of the surface lower than their 8 neighbours (the border excluded)
  non-convex      fraction of the surface's interior points with loss below 10 (the paper's cap) where the
                  surface bends down: its finite-difference 2×2 Hessian has an eigenvalue below −0.1 times
                  the other (0 for a bowl)
  mean ratio      mean of |λ_min/λ_max| over the curvature grid (0: convex everywhere)
  ratio > 0.1     fraction of the curvature grid where |λ_min/λ_max| exceeds 0.1

Examples:
    python -m reproductions.depth_study --dataset digits --out runs/depth_digits   # offline, 2 CPU cores
    python -m reproductions.depth_study --dataset cifar10 --out runs/depth_cifar   # the paper's settings, GPU
    python -m reproductions.depth_study --smoke --out /tmp/depth_smoke             # synthetic, seconds
Each model's folder keeps its checkpoint and .h5 files; a rerun reuses them (and resumes unfinished grids).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from losslandscape import compute_surface, curvature_map, load_surface  # noqa: E402
from reproductions.train import load_dataset, train  # noqa: E402

FAMILIES = {"resnet": "ResNet", "resnet_noshort": "ResNet-noshort", "vgglike": "VGG-like"}
SETUPS = {
    # The paper: 300 epochs of SGD, batch 128, 51×51 surfaces on all 50,000 training images.
    "cifar10": dict(depths=(20, 56, 110), epochs=300, batch_size=128, points=51, samples=None,
                    curvature_points=21, curvature_samples=10_000, lanczos_iterations=40),
    # Offline on 2 CPU cores: 1,297 training digits, coarser grids, a sample for the Hessian.
    "digits": dict(depths=(20, 56), epochs=80, batch_size=64, points=25, samples=512,
                   curvature_points=7, curvature_samples=128, lanczos_iterations=20),
    "smoke": dict(depths=(8,), epochs=1, batch_size=32, points=5, samples=64,
                  curvature_points=3, curvature_samples=32, lanczos_iterations=5),
}
MAX_LOSS = 10.0  # the paper caps its surfaces at 10
LEVELS = np.concatenate([np.arange(0.1, 1.0, 0.1), np.arange(1.0, MAX_LOSS + 0.1, 1.0)])
RATIO_THRESHOLD = 0.1


def local_minima(values: np.ndarray) -> int:
    """Interior grid points strictly lower than all 8 neighbours.

    Example:

    >>> x = np.linspace(-1, 1, 9)
    >>> local_minima(np.add.outer(x**2, x**2))
    1
    """
    centre = values[1:-1, 1:-1]
    lower = np.ones_like(centre, dtype=bool)
    rows, columns = values.shape
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                lower &= centre < values[1 + di : rows - 1 + di, 1 + dj : columns - 1 + dj]
    return int(lower.sum())


def nonconvex_fraction(xcoords, ycoords, values: np.ndarray, cap: float = MAX_LOSS) -> float:
    """Fraction of the interior grid points below `cap` where the surface itself bends down in some direction.

    At each point the 2×2 Hessian of the plotted surface is estimated by
    central differences; the point counts if its smaller eigenvalue is
    negative by more than 10 % of its larger one (the ratio of the
    curvature maps, on the surface itself).

    Example:

    >>> x = np.linspace(-1, 1, 11)
    >>> nonconvex_fraction(x, x, np.add.outer(x**2, 3 * x**2))
    0.0
    """
    step_x, step_y = xcoords[1] - xcoords[0], ycoords[1] - ycoords[0]
    centre = values[1:-1, 1:-1]
    xx = (values[2:, 1:-1] - 2 * centre + values[:-2, 1:-1]) / step_x**2
    yy = (values[1:-1, 2:] - 2 * centre + values[1:-1, :-2]) / step_y**2
    xy = (values[2:, 2:] - values[2:, :-2] - values[:-2, 2:] + values[:-2, :-2]) / (4 * step_x * step_y)
    mean, spread = (xx + yy) / 2, np.sqrt(((xx - yy) / 2) ** 2 + xy**2)
    smallest, largest = mean - spread, mean + spread
    bends_down = smallest < -RATIO_THRESHOLD * np.abs(largest)
    inside = np.isfinite(centre) & (centre < cap)
    return float(bends_down[inside].mean()) if inside.any() else float("nan")


def examine(model, train_data, setup, folder: Path) -> dict:
    """The surface, the curvature map on the same plane, and their numbers; files kept in `folder`."""
    options = dict(batch_size=128, include_regularization=False, verbose=0)
    timings_path = folder / "seconds.json"
    seconds = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    started = time.perf_counter()
    surface = compute_surface(
        model, train_data, xcoords=np.linspace(-1, 1, setup["points"]), seed=0, max_samples=setup["samples"],
        path=folder / "surface.h5", **options,
    )
    seconds.setdefault("surface", round(time.perf_counter() - started, 1))
    started = time.perf_counter()
    curvature = curvature_map(
        model, train_data, surface.directions, np.linspace(-1, 1, setup["curvature_points"]),
        max_samples=setup["curvature_samples"], max_iterations=setup["lanczos_iterations"],
        path=folder / "curvature.h5", **options,
    )
    seconds.setdefault("curvature", round(time.perf_counter() - started, 1))
    timings_path.write_text(json.dumps(seconds))  # a rerun that only redraws keeps the first run's times
    loss = surface.losses["train"]
    ratio = curvature.values(metric="eigen_ratio")
    return {
        "loss_at_0": float(loss[len(surface.xcoords) // 2, len(surface.ycoords) // 2]),
        "local_minima": local_minima(np.minimum(loss, MAX_LOSS)),
        "nonconvex": nonconvex_fraction(surface.xcoords, surface.ycoords, loss),
        "mean_ratio": float(np.nanmean(ratio)),
        "ratio_above_threshold": float(np.nanmean(ratio > RATIO_THRESHOLD)),
        "surface_seconds": seconds["surface"],
        "curvature_seconds": seconds["curvature"],
    }


def draw(results: list, setup: dict, out: Path) -> list[Path]:
    """Contours (one loss scale) and ratio maps (one ratio scale): rows are families, columns depths."""
    families = [f for f in FAMILIES if any(r["family"] == f for r in results)]
    depths = sorted({r["depth"] for r in results})
    paths = []
    largest_ratio = max([np.nanmax(load_surface(r["folder"] / "curvature.h5").values(metric="eigen_ratio"))
                         for r in results] + [RATIO_THRESHOLD])
    ratio_levels = np.arange(0.0, np.ceil(largest_ratio * 10) / 10 + 1e-9, 0.1).round(1)
    for name, file, kind, options in (
        ("contour", "surface.h5", "contour", dict(levels=LEVELS)),
        ("eigen_ratio", "curvature.h5", "heatmap", dict(metric="eigen_ratio", levels=ratio_levels, cmap="magma")),
    ):
        figure, axes = plt.subplots(len(families), len(depths), figsize=(3.4 * len(depths), 3.2 * len(families)),
                                    squeeze=False, layout="constrained")
        for row, family in enumerate(families):
            for column, depth in enumerate(depths):
                ax = axes[row, column]
                found = [r for r in results if r["family"] == family and r["depth"] == depth]
                if not found:
                    ax.set_axis_off()
                    continue
                landscape = load_surface(found[0]["folder"] / file)
                landscape.plot(kind, ax=ax, **options)
                ax.set_title(f"{FAMILIES[family]}-{depth}", fontsize=10)
        path = out / f"depth_{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def format_table(results: list) -> str:
    lines = [
        "| model | test accuracy | train loss at θ0 | local minima | non-convex | mean abs(λmin/λmax) | abs(λmin/λmax) > 0.1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {FAMILIES[r['family']]}-{r['depth']} | {r['test_accuracy']:.3f} | {r['loss_at_0']:.3f} "
            f"| {r['local_minima']} | {100 * r['nonconvex']:.0f} % | {r['mean_ratio']:.3f} | {100 * r['ratio_above_threshold']:.0f} % |"
        )
    return "\n".join(lines)


def run(dataset: str, out: Path, data_dir=None, smoke=False, depths=None, families=None, epochs=None) -> list:
    setup = dict(SETUPS["smoke" if smoke else dataset])
    setup["depths"] = tuple(depths or setup["depths"])
    setup["epochs"] = epochs or setup["epochs"]
    source = "cifar10" if smoke else dataset
    data = load_dataset(source, data_dir, synthetic=smoke)
    if smoke:
        data = ((data[0][0][:256], data[0][1][:256]), (data[1][0][:64], data[1][1][:64]))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for depth in setup["depths"]:
        for family in families or FAMILIES:
            folder = out / f"{family}{depth}"
            checkpoint = folder / "model_final.keras"
            started = time.perf_counter()
            if checkpoint.exists():  # a rerun reuses what an earlier one trained
                model = keras.models.load_model(checkpoint)
                trained = json.loads((folder / "result.json").read_text())
            else:
                model, trained = train(family, depth, source, batch_size=setup["batch_size"], epochs=setup["epochs"],
                                       out=str(folder), data=data, verbose=0)
            numbers = examine(model, data[0], setup, folder)
            result = dict(family=family, depth=depth, folder=folder, test_accuracy=trained["test_accuracy"],
                          train_seconds=trained["train_seconds"], **numbers)
            results.append(result)
            print(f"{FAMILIES[family]}-{depth}: {json.dumps({k: v for k, v in result.items() if k != 'folder'})}"
                  f" ({time.perf_counter() - started:.0f} s)", flush=True)
    draw(results, setup, out)
    table = format_table(results)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps(
        [{k: (str(v) if k == "folder" else v) for k, v in r.items()} for r in results], indent=2
    ))
    print(table)
    return results


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["digits", "cifar10"], default="digits")
    parser.add_argument("--out", default="runs/depth_study", help="output folder")
    parser.add_argument("--data-dir", help="folder holding cifar-10-batches-py (CIFAR-10 only)")
    parser.add_argument("--depths", type=int, nargs="+", help="ResNet depths 6n+2 (default: the dataset's)")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), help="default: all three")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the dataset's)")
    parser.add_argument("--smoke", action="store_true", help="synthetic CIFAR, depth 8, 1 epoch, tiny grids")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run(args.dataset, Path(args.out), args.data_dir, args.smoke, args.depths, args.families, args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
