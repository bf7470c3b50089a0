"""The offline demo: a small network on scikit-learn's digits, its landscape in four files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras
import numpy as np

from losslandscape.api import plot_loss, plot_loss_3D


def load_digits_split(seed: int = 0):
    """Returns `((x_train, y_train), (x_test, y_test))` from scikit-learn's digits (1,797 8×8 images)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "The demo uses scikit-learn's digits data: `pip install 'losslandscape[demo]'`."
        ) from error
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:1297], order[1297:]
    return (x[train], y[train]), (x[test], y[test])


def digits_mlp(seed: int = 0) -> keras.Model:
    """A 64-64-10 multilayer perceptron compiled with cross-entropy and accuracy."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run_demo(
    output_dir: str | os.PathLike = "losslandscape_demo",
    points: int = 51,
    epochs: int = 30,
    seed: int = 0,
    verbose: int = 1,
) -> dict[str, Path]:
    """Trains an MLP on digits and writes its loss landscape.

    Args:
        output_dir: Folder for the outputs (created if missing).
        points: Grid points per axis of the surface (the 1D curve gets
            `points` too).
        epochs: Training epochs.
        seed: Seed for the split, the initialization and the directions.
        verbose: 0 for silence, 1 for progress and a summary.

    Returns:
        `{"line", "contour", "surface", "h5"}` mapped to the written files:
        `loss_1d.png` (train and test along one direction),
        `loss_contour.png`, `loss_3d.png` and `surface.h5`.

    Examples:
        >>> paths = run_demo("/tmp/demo", points=11, epochs=2, verbose=0)
        >>> sorted(paths)
        ['contour', 'h5', 'line', 'surface']
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = load_digits_split(seed)
    model = digits_mlp(seed)
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    test_metrics = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    if verbose:
        print(f"Trained a 64-64-10 MLP on digits for {epochs} epochs: test accuracy {test_metrics['accuracy']:.3f}")
    paths = {
        "line": output_dir / "loss_1d.png",
        "contour": output_dir / "loss_contour.png",
        "surface": output_dir / "loss_3d.png",
        "h5": output_dir / "surface.h5",
    }
    line = plot_loss(
        model,
        ((x_train, y_train), (x_test, y_test)),
        dataset_labels=("train", "test"),
        number_of_points=points,
        seed=seed,
        show=False,
        verbose=verbose,
    )
    line.ax_.set_title("digits MLP: loss along one filter-normalized direction")
    line.figure_.savefig(paths["line"], bbox_inches="tight", dpi=150)
    surface = plot_loss_3D(model, "3d", x_train, y_train, number_of_points=points, seed=seed, show=False, verbose=verbose)
    surface.figure_.savefig(paths["surface"], bbox_inches="tight", dpi=150)
    surface.plot("contour")
    surface.figure_.savefig(paths["contour"], bbox_inches="tight", dpi=150)
    surface.save(paths["h5"])
    if verbose:
        origin = surface.losses["train"][points // 2, points // 2]
        print(f"Loss at θ0: {origin:.4f}; surface {points}×{points} in {time.perf_counter() - started:.1f} s total")
        for path in paths.values():
            print(f"wrote {path}")
    return paths
