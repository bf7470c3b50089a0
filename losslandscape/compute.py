"""compute_line and compute_surface: from a model and data to a LossLine or LossSurface."""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np

from losslandscape.datasets import labelled_datasets, prepare_data
from losslandscape.directions import random_directions
from losslandscape.engine import check_compiled, evaluate_grid
from losslandscape.surface import LossLine, LossSurface


def compute_line(
    model: keras.Model,
    data,
    direction: Optional[Sequence[np.ndarray]] = None,
    coords: Sequence[float] = np.linspace(-1.0, 1.0, 21),
    *,
    labels: Optional[Sequence[str]] = None,
    seed: Optional[int] = None,
    normalization: Optional[str] = "filter",
    ignore: Optional[str] = "biasbn",
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    max_batches: Optional[int] = None,
    include_regularization: bool = True,
    engine: str = "compiled",
    verbose: int = 1,
) -> LossLine:
    """Computes loss and metrics along one direction: L(θ0 + α·δ).

    The model's weights are restored, bitwise, when it returns or raises.

    Args:
        model: A compiled Keras model; its current weights are θ0.
        data: One dataset (`(x, y)`, `(x, y, sample_weight)`, a
            `tf.data.Dataset` or a `keras.utils.PyDataset`), a tuple of
            datasets, or a dict `{label: dataset}`. All datasets are
            evaluated along the same direction.
        direction: δ, a list of arrays shaped like `model.trainable_weights`;
            drawn with `random_directions` when `None`.
        coords: The α values (at least 2).
        labels: One label per dataset (default "train", "test").
        seed, normalization, ignore: Passed to `random_directions` when
            `direction` is `None`.
        batch_size: Batch size for arrays (default 128).
        max_samples: Evaluate only the first `max_samples` samples.
        max_batches: Evaluate only the first `max_batches` batches.
        include_regularization: If `False`, leave out the losses layers add
            (weight regularizers), as the paper's code does.
        engine: "compiled" (fast) or "evaluate" (`model.evaluate` per point).
        verbose: 0 for silence, 1 for a progress bar.

    Returns:
        A `LossLine`.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse")
    >>> x, y = np.random.rand(32, 2), np.random.rand(32, 1)
    >>> line = compute_line(model, (x, y), coords=np.linspace(-1, 1, 5), verbose=0)
    >>> line.losses["train"].shape
    (5,)
    """
    coords = _checked_coords("coords", coords)
    prepared, settings = _prepare(model, data, labels, batch_size, max_samples, max_batches)
    if direction is None:
        (direction,) = random_directions(model, 1, seed, normalization, ignore)
        settings.update(directions="random", seed=seed, normalization=normalization, ignore=ignore)
    else:
        settings.update(directions="given")
    values = evaluate_grid(
        model, prepared, [direction], coords[:, None], engine, include_regularization, verbose
    )
    settings.update(include_regularization=include_regularization)
    losses, metrics = _split_loss(values)
    return LossLine(coords, losses, metrics, direction=direction, settings=settings)


def compute_surface(
    model: keras.Model,
    data,
    directions: Optional[Sequence[Sequence[np.ndarray]]] = None,
    xcoords: Sequence[float] = np.linspace(-1.0, 1.0, 21),
    ycoords: Optional[Sequence[float]] = None,
    *,
    labels: Optional[Sequence[str]] = None,
    seed: Optional[int] = None,
    normalization: Optional[str] = "filter",
    ignore: Optional[str] = "biasbn",
    orthogonal: bool = False,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    max_batches: Optional[int] = None,
    include_regularization: bool = True,
    engine: str = "compiled",
    verbose: int = 1,
) -> LossSurface:
    """Computes loss and metrics on a plane: L(θ0 + α·δ + β·η).

    The model's weights are restored, bitwise, when it returns or raises.

    Args:
        model: A compiled Keras model; its current weights are θ0.
        data: One dataset, a tuple of datasets or a dict `{label: dataset}`
            (see `compute_line`); all are evaluated on the same plane.
        directions: `[δ, η]`; drawn with `random_directions` when `None`.
        xcoords: The α values (at least 2).
        ycoords: The β values (at least 2); `xcoords` when `None`.
        labels: One label per dataset (default "train", "test").
        seed, normalization, ignore, orthogonal: Passed to
            `random_directions` when `directions` is `None`.
        batch_size, max_samples, max_batches, include_regularization,
        engine, verbose: As in `compute_line`.

    Returns:
        A `LossSurface` whose values are indexed `[i, j]` for
        `(xcoords[i], ycoords[j])`.

    Example:

    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse")
    >>> x, y = np.random.rand(32, 2), np.random.rand(32, 1)
    >>> surface = compute_surface(model, (x, y), xcoords=np.linspace(-1, 1, 3),
    ...                           ycoords=np.linspace(-1, 1, 4), verbose=0)
    >>> surface.losses["train"].shape
    (3, 4)
    """
    xcoords = _checked_coords("xcoords", xcoords)
    ycoords = xcoords if ycoords is None else _checked_coords("ycoords", ycoords)
    prepared, settings = _prepare(model, data, labels, batch_size, max_samples, max_batches)
    if directions is None:
        directions = random_directions(model, 2, seed, normalization, ignore, orthogonal)
        settings.update(
            directions="random", seed=seed, normalization=normalization, ignore=ignore, orthogonal=orthogonal
        )
    else:
        settings.update(directions="given")
    if len(directions) != 2:
        raise ValueError(f"A surface needs 2 directions, received: {len(directions)}")
    grid = np.stack(np.meshgrid(xcoords, ycoords, indexing="ij"), axis=-1).reshape(-1, 2)
    values = evaluate_grid(model, prepared, directions, grid, engine, include_regularization, verbose)
    shape = (len(xcoords), len(ycoords))
    values = {
        label: {name: array.reshape(shape) for name, array in named.items()}
        for label, named in values.items()
    }
    settings.update(include_regularization=include_regularization)
    losses, metrics = _split_loss(values)
    return LossSurface(xcoords, ycoords, losses, metrics, directions=list(directions), settings=settings)


def _prepare(model, data, labels, batch_size, max_samples, max_batches):
    check_compiled(model)
    datasets = labelled_datasets(data, labels)
    prepared = {
        label: prepare_data(dataset, batch_size, max_samples, max_batches)
        for label, dataset in datasets.items()
    }
    settings = {
        "num_samples": {label: batches.num_samples for label, batches in prepared.items()},
        "batch_size": batch_size,
        "max_samples": max_samples,
        "max_batches": max_batches,
    }
    return prepared, settings


def _split_loss(values):
    losses = {label: named["loss"] for label, named in values.items()}
    metrics = {
        label: {name: array for name, array in named.items() if name != "loss"}
        for label, named in values.items()
    }
    return losses, metrics


def _checked_coords(name, coords):
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 1 or len(coords) < 2:
        raise ValueError(
            f"Expected `{name}` to be a 1D sequence of at least 2 values, "
            f"received shape {coords.shape}. Use e.g. np.linspace(-1, 1, 21)."
        )
    if not np.all(np.isfinite(coords)):
        raise ValueError(f"`{name}` must be finite, received: {coords}")
    return coords
