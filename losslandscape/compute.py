"""compute_line and compute_surface: from a model and data to a LossLine or LossSurface."""

from __future__ import annotations

import contextlib
import os
import warnings
from concurrent.futures import Executor
from typing import Optional, Sequence, Union

import keras
import numpy as np
from numpy.typing import ArrayLike

from losslandscape.datasets import prepare_labelled_data
from losslandscape.directions import random_directions
from losslandscape.distributed import evaluate_on_executor
from losslandscape.engine import check_compiled, evaluate_grid
from losslandscape.evaluation_settings import EvaluationSettings
from losslandscape.output_lock import exclusive_output
from losslandscape.precision import with_dtype_policy
from losslandscape.resume import check_resumable, run_fingerprint
from losslandscape.surface import LossLine, LossSurface, load_line, load_surface
from losslandscape.validation import check_writable, checked_coords

PathLike = Union[str, os.PathLike]


def compute_line(
    model: keras.Model,
    data,
    direction: Optional[Sequence[np.ndarray]] = None,
    coords: ArrayLike = np.linspace(-1.0, 1.0, 21),
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
    path: Optional[PathLike] = None,
    executor: Optional[Executor] = None,
    chunk_size: Optional[int] = None,
    points_per_call: Union[int, str] = "auto",
    stream: bool = False,
    dtype_policy: Optional[str] = None,
    verbose: int = 1,
) -> LossLine:
    """Computes loss and metrics along one direction: L(θ0 + α·δ).

    The model's weights are restored, bitwise, when it returns or raises.

    Args:
        model: A compiled Keras model; its current weights are θ0.
        data: One dataset (`(x, y)`, `(x, y, sample_weight)`, a
            `tf.data.Dataset`, a `keras.utils.PyDataset`, an `NpzData`, or on
            the torch backend a `torch.utils.data.DataLoader`), a tuple of
            datasets, or a dict `{label: dataset}`. All datasets are
            evaluated along the same direction.
        direction: δ, a list of arrays shaped like `model.trainable_weights`;
            drawn with `random_directions` when `None` (or read from `path`
            when resuming).
        coords: The α values (at least 2).
        labels: One label per dataset (default "train", "test").
        seed, normalization, ignore: Passed to `random_directions` when
            `direction` is `None`.
        batch_size: Batch size for arrays: by default 128 on a CPU; on a
            GPU the largest that fits 1/64 of its memory (JAX and
            PyTorch; see `losslandscape.batch_size_choice`).
        max_samples: Evaluate only the first `max_samples` samples.
        max_batches: Evaluate only the first `max_batches` batches.
        include_regularization: If `False`, leave out the losses layers add
            (weight regularizers), as the paper's code does.
        engine: "compiled" (fast) or "evaluate" (`model.evaluate` per point).
        path: HDF5 file written after every chunk of points. If it exists
            and belongs to the same run (model, data, direction,
            coordinates), only the missing points are computed; otherwise a
            ValueError says what differs.
        executor: A `concurrent.futures.Executor` (e.g. from
            `losslandscape.process_pool` or Dask's `client.get_executor()`)
            that evaluates chunks of points in other processes.
        chunk_size: Points per chunk (default 8 locally, 16 on an executor).
        points_per_call: Grid points per compiled call: 1, K > 1 (weights
            of K points stacked, one vectorized pass per batch), or "auto"
            (on grids of 128 points or more, time one point per call, then
            K = 16, 64, 256... on the first points and keep the fastest; a
            model without convolutions starts at 64 or 256 where the grid
            allows, and up to 2**20 weights it is stacked without timing
            one point per call; K grows while it pays and the grid can repay its
            compile time, and
            K points are kept only if their values agree with one point
            per call to 1e-5 relative; where the arithmetic rounds float32,
            a bfloat16 or float16 policy or TF32 kernels on NVIDIA GPUs,
            only if they err against exact float32 at most twice as much
            as one point per call; the check is recorded in
            `settings["points_per_call_agreement"]`). In float32 on a CPU
            values agree either way to float32 rounding.
        stream: For a `tf.data.Dataset` (on the torch backend, also a
            `torch.utils.data.DataLoader`) larger than memory: read it again
            at every point instead of keeping its batches (it must yield
            the same batches each time).
        dtype_policy: Evaluate a copy of the model under this Keras dtype
            policy, e.g. "mixed_bfloat16" for faster GPU passes; `None`
            keeps the model's own. bfloat16 keeps 8 bits of mantissa:
            on digits models the loss moved by 3e-3 to 4e-3 relative
            (median), at most 2e-2 (see the README).
        verbose: 0 for silence, 1 for a progress bar.

    Returns:
        A `LossLine`.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(loss="mse")
        >>> x, y = np.random.rand(32, 2), np.random.rand(32, 1)
        >>> line = compute_line(model, (x, y), coords=np.linspace(-1, 1, 5), verbose=0)
        >>> line.losses["train"].shape
        (5,)
    """
    grid = checked_coords("coords", coords)
    evaluation = EvaluationSettings(
        batch_size=batch_size, max_samples=max_samples, max_batches=max_batches,
        include_regularization=include_regularization, engine=engine, points_per_call=points_per_call,
        stream=stream, dtype_policy=dtype_policy, chunk_size=chunk_size, verbose=verbose,
    )
    prepared = _prepare(model, data, labels, evaluation, path)
    drawing = dict(seed=seed, normalization=normalization, ignore=ignore, orthogonal=False)
    with _exclusive(path):
        existing = load_line(path) if _resuming(path) else None
        given = None if direction is None else [direction]
        directions, settings = _directions(model, 1, given, existing, **drawing)
        line = LossLine(
            grid,
            {label: np.full(len(grid), np.nan) for label in prepared},
            {},
            direction=directions[0],
            settings=settings,
            computed={label: np.zeros(len(grid), bool) for label in prepared},
        )
        return _run(
            model, prepared, line, existing, grid[:, None], {"coords": grid}, evaluation,
            data=data, path=path, executor=executor, drawn=_drawn_settings(given, **drawing),
            labels=labels,
        )


def compute_surface(
    model: keras.Model,
    data,
    directions: Optional[Sequence[Sequence[np.ndarray]]] = None,
    xcoords: ArrayLike = np.linspace(-1.0, 1.0, 21),
    ycoords: Optional[ArrayLike] = None,
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
    path: Optional[PathLike] = None,
    executor: Optional[Executor] = None,
    chunk_size: Optional[int] = None,
    points_per_call: Union[int, str] = "auto",
    stream: bool = False,
    dtype_policy: Optional[str] = None,
    verbose: int = 1,
) -> LossSurface:
    """Computes loss and metrics on a plane: L(θ0 + α·δ + β·η).

    The model's weights are restored, bitwise, when it returns or raises.

    Args:
        model: A compiled Keras model; its current weights are θ0.
        data: One dataset, a tuple of datasets or a dict `{label: dataset}`
            (see `compute_line`); all are evaluated on the same plane.
        directions: `[δ, η]`; drawn with `random_directions` when `None`
            (or read from `path` when resuming).
        xcoords: The α values (at least 2).
        ycoords: The β values (at least 2); `xcoords` when `None`.
        labels: One label per dataset (default "train", "test").
        seed, normalization, ignore, orthogonal: Passed to
            `random_directions` when `directions` is `None`.
        **others: `batch_size`, `max_samples`, `max_batches`,
            `include_regularization`, `engine`, `path`, `executor`,
            `chunk_size`, `points_per_call`, `stream`, `dtype_policy` and
            `verbose` are as in `compute_line`.

    Returns:
        A `LossSurface` whose values are indexed `[i, j]` for
        `(xcoords[i], ycoords[j])`.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(loss="mse")
        >>> x, y = np.random.rand(32, 2), np.random.rand(32, 1)
        >>> surface = compute_surface(model, (x, y), xcoords=np.linspace(-1, 1, 3),
        ...                           ycoords=np.linspace(-1, 1, 4), verbose=0)
        >>> surface.losses["train"].shape
        (3, 4)
    """
    evaluation = EvaluationSettings(
        batch_size=batch_size, max_samples=max_samples, max_batches=max_batches,
        include_regularization=include_regularization, engine=engine, points_per_call=points_per_call,
        stream=stream, dtype_policy=dtype_policy, chunk_size=chunk_size, verbose=verbose,
    )
    return compute_surface_with(
        model, data, directions, xcoords, ycoords, evaluation, labels=labels, path=path, executor=executor,
        drawing=dict(seed=seed, normalization=normalization, ignore=ignore, orthogonal=orthogonal),
    )


def compute_surface_with(model, data, directions, xcoords, ycoords, evaluation: EvaluationSettings, *, labels,
                         path, executor, drawing: dict) -> LossSurface:
    """`compute_surface` with its settings gathered: `evaluation`, and `drawing` for `random_directions`."""
    xcoords = checked_coords("xcoords", xcoords)
    ycoords = xcoords if ycoords is None else checked_coords("ycoords", ycoords)
    if directions is not None and len(directions) != 2:
        raise ValueError(f"A surface needs 2 directions, received: {len(directions)}")
    prepared = _prepare(model, data, labels, evaluation, path)
    with _exclusive(path):
        existing = load_surface(path) if _resuming(path) else None
        drawn = _drawn_settings(directions, **drawing)
        directions, settings = _directions(model, 2, directions, existing, **drawing)
        shape = (len(xcoords), len(ycoords))
        surface = LossSurface(
            xcoords,
            ycoords,
            {label: np.full(shape, np.nan) for label in prepared},
            {},
            directions=directions,
            settings=settings,
            computed={label: np.zeros(shape, bool) for label in prepared},
        )
        grid = np.stack(np.meshgrid(xcoords, ycoords, indexing="ij"), axis=-1).reshape(-1, 2)
        return _run(
            model, prepared, surface, existing, grid, {"xcoords": xcoords, "ycoords": ycoords}, evaluation,
            data=data, path=path, executor=executor, drawn=drawn,
            labels=labels,
        )


def _run(model, prepared, landscape, existing, coefficients, coords, evaluation, *, data, path, executor, drawn,
         labels):
    """Fills `landscape` point by point, saving to `path` after each chunk."""
    directions = landscape.directions if isinstance(landscape, LossSurface) else [landscape.direction]
    landscape.settings.update(
        num_samples={label: batches.num_samples for label, batches in prepared.items()}, **evaluation.recorded(),
        # Plots name a dataset only if the user did ("train" is the reference layout's name in the file).
        dataset_labels="given" if labels is not None or isinstance(data, dict) else "default",
    )
    if evaluation.dtype_policy is not None:
        model = with_dtype_policy(model, evaluation.dtype_policy)
    points_per_call = evaluation.points_per_call
    if path is not None:
        fingerprint = run_fingerprint(model, prepared, directions, coords, evaluation, drawn=drawn)
        landscape.settings["fingerprint"] = fingerprint
        if existing is not None:
            check_resumable(path, existing.settings.get("fingerprint"), fingerprint)
            used = existing.settings.get("points_per_call_used", {})
            if points_per_call == "auto" and set(prepared) <= set(used):
                # Resumed points are computed as the first ones were: the same K gives bitwise the same values.
                points_per_call = {label: used[label] for label in prepared}
            landscape.settings["points_per_call_used"] = dict(used)
            if "points_per_call_agreement" in existing.settings:
                landscape.settings["points_per_call_agreement"] = dict(existing.settings["points_per_call_agreement"])
            existing.settings = landscape.settings
            landscape = existing
    pending = {label: np.flatnonzero(~landscape.computed[label].reshape(-1)) for label in prepared}

    def record(label, indices, values):
        landscape.record(label, indices, values)
        if path is not None:
            landscape.save(path)

    def chosen(label, per_call):
        landscape.settings.setdefault("points_per_call_used", {})[label] = int(per_call)

    def checked(label, agreement):
        landscape.settings.setdefault("points_per_call_agreement", {})[label] = agreement

    if executor is None:
        evaluate_grid(
            model, prepared, directions, coefficients, engine=evaluation.engine,
            include_regularization=evaluation.include_regularization, verbose=evaluation.verbose,
            pending=pending, on_chunk=record, chunk_size=evaluation.chunk_size or 8,
            points_per_call=points_per_call, on_evaluator=chosen, on_agreement=checked,
            curvature=evaluation.curvature,
        )
    else:
        evaluate_on_executor(
            model, prepared, directions, coefficients, pending, record, evaluation, data=data, executor=executor
        )
    _warn_if_no_loss_is_finite(landscape)
    return landscape


def _warn_if_no_loss_is_finite(landscape) -> None:
    """One warning per dataset whose computed losses are all NaN or infinite: a plot of them would be empty."""
    for label, losses in landscape.losses.items():
        computed = np.asarray(landscape.computed[label])
        if computed.any() and not np.isfinite(np.asarray(losses)[computed]).any():
            warnings.warn(
                f"Every loss on {label!r} is NaN or infinite ({int(computed.sum())} points): the data or the "
                "weights hold NaN or infinite values, or the loss overflows. Check them with np.isfinite.",
                stacklevel=3,
            )


def _prepare(model, data, labels, evaluation, path) -> dict:
    """`{label: batches}`, after checking the model and the output path, before any point."""
    check_compiled(model)
    if path is not None:
        check_writable(path)
    return prepare_labelled_data(
        model, data, labels, evaluation.batch_size, evaluation.max_samples, evaluation.max_batches, evaluation.stream
    )


def _exclusive(path):
    return contextlib.nullcontext() if path is None else exclusive_output(path)


def _drawn_settings(given, *, seed, normalization, ignore, orthogonal) -> dict:
    """What decides the directions a run draws (nothing, when they are given)."""
    if given is not None:
        return {"given": True}
    return {"normalization": normalization, "ignore": ignore, "orthogonal": orthogonal}


def _directions(model, count, given, existing, *, seed, normalization, ignore, orthogonal):
    """The run's directions and the settings that describe where they came from."""
    if given is not None:
        return [list(d) for d in given], {"directions": "given"}
    if existing is not None and existing.settings.get("directions") == "random":
        # Resuming: the file's directions are the run's, whatever seed drew them.
        keys = ("directions", "seed", "normalization", "ignore", "orthogonal")
        settings = {key: existing.settings.get(key) for key in keys}
        if seed is None or seed == settings["seed"]:
            saved = existing.directions if count == 2 else [existing.direction]
            return saved, settings
    drawn = random_directions(model, count, seed, normalization, ignore, orthogonal)
    settings = {"directions": "random", "seed": seed, "normalization": normalization, "ignore": ignore}
    if count == 2:
        settings["orthogonal"] = orthogonal
    return drawn, settings


def _resuming(path) -> bool:
    return path is not None and os.path.exists(path)
