"""The paper's 2D loss surface of a trained checkpoint: .h5 file and contour, filled-contour and 3D figures.

Example (51×51 over [-1, 1]², filter normalization, biases and BatchNorm ignored, whole training set):
    python -m reproductions.landscape runs/resnet56_sgd_bs128/model_final.keras --out runs/resnet56_sgd_bs128

All figures share one colour scale (contour levels 0.1 to 10 in steps of 0.5, heights capped at 10), so
figures of different models compare. --smoke runs a 5×5 grid on synthetic data.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from losslandscape import compute_surface  # noqa: E402
from reproductions.train import load_dataset  # noqa: E402

PAPER_LEVELS = np.arange(0.1, 10.0, 0.5)
PAPER_MAX_LOSS = 10.0


def write_figures(surface, out: Path, name: str, levels=PAPER_LEVELS, max_loss: float = PAPER_MAX_LOSS) -> list[Path]:
    """Contour, filled contour and 3D figures on a fixed scale; returns the written paths."""
    paths = []
    for kind, options in (
        ("contour", dict(levels=levels)),
        ("contourf", dict(levels=levels, extend="max")),
        ("surface", dict(vmin=0.0, vmax=max_loss)),
    ):
        surface.plot(kind, **options)
        surface.ax_.set_title(f"{name}: train loss")
        path = out / f"{name}_{kind}.png"
        surface.figure_.savefig(path, bbox_inches="tight", dpi=120)
        plt.close(surface.figure_)
        paths.append(path)
    return paths


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="a .keras model saved by reproductions.train")
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "digits"))
    parser.add_argument("--data-dir", help="folder with cifar-10-batches-py (default: keras.datasets.cifar10)")
    parser.add_argument("--synthetic", action="store_true", help="random CIFAR-shaped data")
    parser.add_argument("--points", type=int, default=51, help="points per axis (default: %(default)s)")
    parser.add_argument("--range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("MIN", "MAX"))
    parser.add_argument("--samples", type=int, help="evaluate on the first N training images (default: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="seed of the directions (default: %(default)s)")
    parser.add_argument("--out", default="runs/landscape", help="output folder (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="5×5 grid on synthetic data; a fresh ResNet-20 without a checkpoint")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.synthetic, args.points, args.dataset, args.samples = True, 5, "cifar10", args.samples or 128
    try:
        (x_train, y_train), _ = load_dataset(args.dataset, args.data_dir, args.synthetic)
        model = _load_model(args)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        print(f"landscape: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(args.checkpoint).stem if args.checkpoint else model.name
    surface = compute_surface(
        model, {"train": (x_train, y_train)}, xcoords=np.linspace(*args.range, args.points),
        seed=args.seed, normalization="filter", ignore="biasbn", batch_size=args.batch_size,
        include_regularization=False,  # the paper plots the data loss; its weight decay lives in the optimizer
        max_samples=args.samples, path=out / f"{name}_surface.h5",
    )
    for path in write_figures(surface, out, name):
        print(f"wrote {path}")
    print(f"wrote {out / f'{name}_surface.h5'}; loss at the centre: {surface.losses['train'][args.points // 2, args.points // 2]:.4f}")
    return 0


def _load_model(args):
    if args.checkpoint:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(f"No checkpoint at {args.checkpoint!r}.")
        return keras.models.load_model(args.checkpoint)
    if not args.smoke:
        raise ValueError("Pass a checkpoint (.keras file from reproductions.train).")
    from reproductions.models import cifar_resnet

    model = cifar_resnet(20)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


if __name__ == "__main__":
    sys.exit(main())
