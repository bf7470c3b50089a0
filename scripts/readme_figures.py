"""Makes every figure in readme_files/ from scikit-learn's digits, offline.

Run: python scripts/readme_figures.py [--out readme_files] [--parts library sanity]
"library" (about 1 minute on 2 CPU cores): the demo, interpolation, trajectory, Hessian and metric figures.
"sanity" (about 4 minutes): the three sanity checks of reproductions/ on digits, figures and table.
"series" (about 20 seconds): landscapes during training, from LandscapeCallback.
"depth" (about 1 hour, not run by default): the depth study of reproductions/ on digits, figures and table;
its models and grids are kept in runs/depth_digits, so a rerun only redraws.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for reproductions/
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from losslandscape import (  # noqa: E402
    LandscapeCallback,
    LandscapeSeries,
    TrajectoryRecorder,
    compute_surface,
    hessian_directions,
    interpolate,
    load_series,
    load_trajectory,
    pca_directions,
    plot_interpolation,
    plot_series,
    plot_trajectory,
)
from losslandscape.demo import digits_mlp, load_digits_split, run_demo  # noqa: E402


def save(figure, path):
    figure.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(figure)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="readme_files")
    parser.add_argument("--parts", nargs="+", choices=("library", "sanity", "series", "depth"),
                        default=["library", "sanity", "series"])
    args = parser.parse_args()
    out = Path(args.out)
    if "library" in args.parts:
        library_figures(out)
    if "sanity" in args.parts:
        sanity_figures(out)
    if "series" in args.parts:
        series_figure(out)
    if "depth" in args.parts:
        depth_figures(out)


def sanity_figures(out: Path):
    from reproductions.sanity_checks import run

    with tempfile.TemporaryDirectory() as folder:
        run("digits", Path(folder))
        for check in ("batch_size", "weight_decay", "optimizer"):
            for kind in ("1d", "contour"):
                shutil.copy(Path(folder) / f"{check}_{kind}.png", out / f"sanity_{check}_{kind}.png")
        shutil.copy(Path(folder) / "table.md", out / "sanity_table.md")
    print(f"wrote {out}/sanity_*.png and sanity_table.md")


def depth_figures(out: Path, folder: Path = Path("runs/depth_digits")):
    from reproductions.depth_study import run

    run("digits", folder)
    for name in ("contour", "eigen_ratio"):
        shutil.copy(folder / f"depth_{name}.png", out / f"depth_{name}.png")
    shutil.copy(folder / "table.md", out / "depth_table.md")
    print(f"wrote {out}/depth_*.png and depth_table.md")


def series_figure(out: Path):
    train, _ = load_digits_split()
    model = digits_mlp(seed=2)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "series.h5"
        callback = LandscapeCallback(train, path, points=11, max_samples=512, seed=0)
        started = time.perf_counter()
        model.fit(*train, epochs=9, batch_size=64, verbose=0, callbacks=[callback])
        print(f"fit with the callback: {time.perf_counter() - started:.1f} s; seconds per landscape: "
              f"{np.round(callback.seconds, 2).tolist()}")
        series = load_series(path)
    shown = [0, 1, 9]
    subset = LandscapeSeries(*([values[i] for i in shown] for values in (series.landscapes, series.epochs,
                                                                          series.steps, series.logs)))
    figure = plot_series(subset, kind="contourf", columns=3).figure_
    figure.suptitle("digits MLP: the landscape before training, after epoch 1 and after epoch 9 (one scale)")
    save(figure, out / "series.png")


def library_figures(out: Path):
    run_demo(out, verbose=0)
    os.remove(out / "surface.h5")
    print(f"wrote {out}/loss_1d.png, loss_contour.png, loss_3d.png")
    train, test = load_digits_split()

    small, large = digits_mlp(seed=0), digits_mlp(seed=0)
    small.fit(*train, batch_size=16, epochs=30, verbose=0)
    large.fit(*train, batch_size=len(train[0]), epochs=300, verbose=0)
    line = interpolate(small, large, {"train": train, "test": test}, coords=np.linspace(-0.5, 1.5, 41), verbose=0)
    plot_interpolation(line)
    line.ax_.set_title("digits MLP: batch 16 (t = 0) to full batch (t = 1)")
    save(line.figure_, out / "interpolation.png")

    model = digits_mlp(seed=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trajectory.h5"
        model.fit(*train, batch_size=64, epochs=30, verbose=0, callbacks=[TrajectoryRecorder(path)])
        pca = pca_directions(load_trajectory(path), final=model)
    xcoords, ycoords = pca.plane_coords(points=31)
    surface = compute_surface(model, train, pca.directions, xcoords, ycoords, verbose=0)
    plot_trajectory(surface, pca, levels=20)
    surface.ax_.set_title("digits MLP: training path on its PCA plane")
    save(surface.figure_, out / "trajectory.png")

    hessian = hessian_directions(model, train, k=2, verbose=0)
    print(f"top Hessian eigenvalues: {np.round(hessian.eigenvalues, 3)} after {hessian.iterations} iterations")
    span = 2.0 / np.sqrt(abs(hessian.eigenvalues[0]))
    surface = compute_surface(model, train, hessian.directions, xcoords=np.linspace(-span, span, 31), verbose=0)
    surface.plot("contourf", levels=20)
    surface.ax_.set_xlabel(f"α along eigenvector 1 (λ = {hessian.eigenvalues[0]:.2f})")
    surface.ax_.set_ylabel(f"β along eigenvector 2 (λ = {hessian.eigenvalues[1]:.2f})")
    surface.ax_.set_title("digits MLP: loss on the top-2 Hessian plane")
    save(surface.figure_, out / "hessian_plane.png")

    surface = compute_surface(model, {"train": train, "test": test}, xcoords=np.linspace(-1, 1, 31), seed=0, verbose=0)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    surface.plot("contourf", ax=axes[0], label="test", levels=20)
    surface.plot("heatmap", ax=axes[1], label="test", metric="accuracy")
    save(figure, out / "loss_and_accuracy.png")


if __name__ == "__main__":
    sys.exit(main())
