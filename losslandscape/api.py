"""plot_loss and plot_loss_3D: compute and draw in one call."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import keras
import matplotlib.pyplot as plt
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.compute import compute_line, compute_surface
from losslandscape.datasets import is_single_dataset, labelled_datasets, prepare_data
from losslandscape.engine import WeightSnapshot, check_compiled
from losslandscape.messages import report
from losslandscape.plotting import KIND_ALIASES, check_axes_for_kind, interactive_backend_active
from losslandscape.surface import LossLine, LossSurface
from losslandscape.validation import check_writable, evenly_spaced_coords

# The documented names ("levels", "3d") and the same plots under `LossSurface.plot`'s names.
PLOT_TYPES = {**KIND_ALIASES, **{kind: kind for kind in KIND_ALIASES.values()}}


def plot_loss(
    model: keras.Model,
    data,
    dataset_labels: Optional[Sequence[str]] = None,
    number_of_points: int = 21,
    *,
    coordinate_range: tuple[float, float] = (-1.0, 1.0),
    seed: Optional[int] = None,
    normalization: Optional[str] = "filter",
    metric: str = "loss",
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    include_regularization: bool = True,
    dtype_policy: Optional[str] = None,
    ax=None,
    save: Optional[Union[str, os.PathLike]] = None,
    show: Optional[bool] = None,
    verbose: int = 1,
) -> LossLine:
    """Plots the loss along one random filter-normalized direction.

    Every dataset is evaluated along the same direction, so the curves
    compare. The model's weights are left exactly as they were.

    Args:
        model: A compiled Keras model.
        data: `(x, y)`, or several datasets such as
            `((x_train, y_train), (x_test, y_test))`, or a dict
            `{label: dataset}`; each dataset may also be
            `(x, y, sample_weight)`, a `tf.data.Dataset` or a `PyDataset`.
        dataset_labels: One legend label per dataset.
        number_of_points: Points along the direction (at least 2).
        coordinate_range: `(min, max)` of α.
        seed: Seed of the random direction.
        normalization: "filter" (the paper's), "layer", "model" or `None`.
        metric: What to draw: "loss" or a compiled metric name.
        batch_size: Batch size for arrays: by default 128 on a CPU; on a
            GPU the largest that fits 1/64 of its memory (JAX and
            PyTorch; see `losslandscape.batch_size_choice`).
        max_samples: Evaluate only the first `max_samples` samples.
        include_regularization: If `False`, plot the data loss alone.
        dtype_policy: Evaluate under this Keras dtype policy, e.g.
            "mixed_bfloat16" (see `compute_surface`); `None` keeps the model's.
        ax: Matplotlib Axes to draw on; a new figure when `None`.
        save: File path to save the figure to.
        show: Call `plt.show()`; by default only when an interactive
            matplotlib backend is active (never headless).
        verbose: 0 for silence, 1 for a progress bar.

    Returns:
        The `LossLine`, with the figure in `figures_["line"]`.

    Raises:
        DatasetLabelError: (a ValueError and AssertionError) when the number
            of labels differs from the number of datasets.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(loss="mse")
        >>> x, y = np.random.rand(64, 2), np.random.rand(64, 1)
        >>> line = plot_loss(model, (x, y), number_of_points=11, verbose=0)
    """
    coords = evenly_spaced_coords("number_of_points", number_of_points, coordinate_range)
    _check_before_work(model, data, dataset_labels, metric, save, batch_size)
    line = compute_line(
        model,
        data,
        coords=coords,
        labels=dataset_labels,
        seed=seed,
        normalization=normalization,
        batch_size=batch_size,
        max_samples=max_samples,
        include_regularization=include_regularization,
        dtype_policy=dtype_policy,
        verbose=verbose,
    )
    line.plot(metric=metric, ax=ax)
    _finish([line.figures_["line"]], save, show)
    return line


def plot_loss_3D(
    model: keras.Model,
    plot_type: Union[str, Sequence[str]],
    x,
    y=None,
    number_of_points: int = 21,
    *,
    sample_weight=None,
    coordinate_range: tuple[float, float] = (-1.0, 1.0),
    seed: Optional[int] = None,
    normalization: Optional[str] = "filter",
    orthogonal: bool = False,
    metric: str = "loss",
    log: bool = False,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    include_regularization: bool = True,
    dtype_policy: Optional[str] = None,
    levels=None,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    ax=None,
    save: Optional[Union[str, os.PathLike]] = None,
    show: Optional[bool] = None,
    verbose: int = 1,
) -> LossSurface:
    """Plots the loss on a plane of two random filter-normalized directions.

    Args:
        model: A compiled Keras model.
        plot_type: "levels" (labelled contour plot), "3d" (surface), or a
            sequence of both, e.g. `("levels", "3d")`.
        x, y: Inputs and targets; or, with `y` omitted, any one dataset
            `plot_loss` takes (a batched `tf.data.Dataset`, a `PyDataset`,
            an `NpzData`, `(x, y)`), as `model.evaluate(x)` takes datasets.
        number_of_points: Points along each axis; the grid is
            `number_of_points` × `number_of_points`.
        sample_weight: Optional per-sample weights.
        coordinate_range: `(min, max)` of α and β.
        seed: Seed of the random directions.
        normalization: "filter" (the paper's), "layer", "model" or `None`.
        orthogonal: Make the second direction orthogonal to the first.
        metric: What to draw: "loss" or a compiled metric name.
        log: Logarithmic colour / z scale.
        batch_size: Batch size for arrays: by default 128 on a CPU; on a
            GPU the largest that fits 1/64 of its memory (JAX and
            PyTorch; see `losslandscape.batch_size_choice`).
        max_samples: Evaluate only the first `max_samples` samples.
        include_regularization: If `False`, plot the data loss alone.
        dtype_policy: Evaluate under this Keras dtype policy, e.g.
            "mixed_bfloat16" (see `compute_surface`); `None` keeps the model's.
        levels, vmin, vmax: Contour levels (values or how many) and the
            bounds of levels, colours and heights, e.g. to share one scale
            across figures (see `plot_surface`); chosen to show the basin
            by default.
        ax: One Axes per plot type (a single Axes for a single type); the
            "3d" one must be 3D. New figures when `None`.
        save: File path for the figure; with several plot types, one file
            per type, with the type added before the extension
            (`loss_levels.png`, `loss_3d.png`), which a line says unless
            `verbose=0`.
        show: Call `plt.show()`; by default only when an interactive
            matplotlib backend is active (never headless).
        verbose: 0 for silence, 1 for a progress bar.

    Returns:
        The `LossSurface`, with figures in `figures_["contour"]` and/or
        `figures_["surface"]`.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(loss="mse")
        >>> x, y = np.random.rand(64, 2), np.random.rand(64, 1)
        >>> surface = plot_loss_3D(model, ("levels", "3d"), x, y, number_of_points=5, verbose=0)
    """
    plot_types = _plot_types(plot_type)
    axes = _axes_per_type(ax, plot_types)
    coords = evenly_spaced_coords("number_of_points", number_of_points, coordinate_range)
    data = _one_dataset(x, y, sample_weight)
    _check_before_work(model, data, None, metric, save, batch_size)
    surface = compute_surface(
        model,
        data,
        xcoords=coords,
        seed=seed,
        normalization=normalization,
        orthogonal=orthogonal,
        batch_size=batch_size,
        max_samples=max_samples,
        include_regularization=include_regularization,
        dtype_policy=dtype_policy,
        verbose=verbose,
    )
    figures = []
    for plot_type_name, axes_for_type in zip(plot_types, axes):
        kind = PLOT_TYPES[plot_type_name]
        surface.plot(kind=kind, log=log, ax=axes_for_type, metric=metric, levels=levels, vmin=vmin, vmax=vmax)
        figures.append(surface.figures_[kind])
    _finish(figures, save, show, suffixes=plot_types, verbose=verbose)
    return surface


def _one_dataset(x, y, sample_weight):
    if y is None:
        if sample_weight is not None:
            raise ValueError(
                "`sample_weight` needs `y`: pass `plot_loss_3D(model, plot_type, x, y, sample_weight=...)`, "
                "or a dataset that yields `(x, y, sample_weight)` as `x`."
            )
        if not is_single_dataset(x):
            raise ValueError(
                f"With `y` omitted, `x` must be one dataset (a batched tf.data.Dataset, a PyDataset, an NpzData "
                f"or `(x, y)`), received: {type(x).__name__}. Pass the targets as `y`."
            )
        return x
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def _check_before_work(model, data, labels, metric, save, batch_size) -> None:
    """Checks what would otherwise fail only after the whole grid: the output path and the metric's name."""
    check_compiled(model)
    if save is not None:
        check_writable(save)
    if metric == "loss":
        return
    first = next(iter(labelled_datasets(data, labels).values()))
    batches = prepare_data(first, batch_size, max_batches=1)
    with WeightSnapshot(model):
        current_backend().build_metrics(model, batches)
        names = list(model.get_metrics_result())
    if metric not in names:
        raise ValueError(
            f"The model computes no metric {metric!r}; it computes {names}. Pass one of them as `metric=`, "
            "or compile the model with it."
        )


def _plot_types(plot_type):
    plot_types = [plot_type] if isinstance(plot_type, str) else list(plot_type)
    unknown = [p for p in plot_types if p not in PLOT_TYPES]
    if unknown or not plot_types:
        raise ValueError(
            f"Unknown plot type {unknown or plot_type!r}. Valid plot types: 'levels' and '3d' (or 'contour' and "
            "'surface'), or a sequence of them such as ('levels', '3d')."
        )
    return plot_types


def _axes_per_type(ax, plot_types):
    if ax is None:
        return [None] * len(plot_types)
    axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if len(axes) != len(plot_types):
        raise ValueError(
            f"Received {len(axes)} Axes for {len(plot_types)} plot types "
            f"{plot_types}; pass one Axes per plot type."
        )
    for plot_type, axes_for_type in zip(plot_types, axes):
        check_axes_for_kind(axes_for_type, PLOT_TYPES[plot_type])
    return axes


def _finish(figures, save, show, suffixes=None, verbose=0):
    if save is not None:
        root, extension = os.path.splitext(os.fspath(save))
        if len(figures) == 1:
            paths = [os.fspath(save)]
        else:
            paths = [f"{root}_{suffix}{extension or '.png'}" for suffix in suffixes]
        for figure, path in zip(figures, paths):
            figure.savefig(path, bbox_inches="tight", dpi=150)
        if len(paths) > 1 and verbose:
            report(f"losslandscape: wrote {' and '.join(paths)}, one file per plot type")
    if show is None:
        show = interactive_backend_active()
    if show:
        plt.show()

