"""Landscapes over training: a Keras callback that computes one per epoch into a series file.

A series file holds one group per landscape, "0000", "0001", ..., each in
the layout of a landscape file, with the attributes `epoch`, `step` and
`logs` (the training logs as JSON). Every landscape is appended atomically,
so a killed fit loses at most the landscape in progress. Reading and
drawing series: `losslandscape.series_files`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional, Union

import h5py
import keras
import numpy as np

from losslandscape.compute import compute_line, compute_surface
from losslandscape.directions import filter_fan_in_axes, normalize_direction, random_directions
from losslandscape.messages import report
from losslandscape.surface import write_file_atomically
from losslandscape.validation import check_positive_int, check_writable, evenly_spaced_coords

KINDS = ("surface", "line")
DIRECTION_CHOICES = ("fixed", "fresh")


class LandscapeCallback(keras.callbacks.Callback):
    """Computes a landscape before training and every `every` epochs of `model.fit`, into one series file.

    Around the current weights each time, on the data given. With
    `directions="fixed"` the random directions are drawn once and
    filter-normalized to the current weights each time, so that the
    landscapes compare; `"fresh"` draws new ones each time. The model's
    weights, optimizer state and metric states are left bitwise as they were.

    Args:
        data: One dataset, as `compute_surface` takes it.
        path: The series file (HDF5), replaced when training begins.
        every: Epochs between landscapes.
        kind: "surface" or "line".
        points: Points per axis.
        coordinate_range: `(min, max)` of α (and β).
        max_samples: Evaluate only the first `max_samples` samples.
        seed: Seed of the random directions.
        directions: "fixed" or "fresh".
        include_regularization: Whether the loss includes the layers'
            regularization losses (the paper's code leaves them out).
        verbose: 1 prints the seconds each landscape added.

    Example:

    >>> callback = LandscapeCallback((x, y), "series.h5", points=11)  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3, callbacks=[callback])  # doctest: +SKIP
    >>> plot_series(load_series("series.h5"))  # doctest: +SKIP
    """

    def __init__(
        self,
        data,
        path: Union[str, os.PathLike],
        every: int = 1,
        kind: str = "surface",
        points: int = 21,
        coordinate_range: tuple[float, float] = (-1.0, 1.0),
        max_samples: Optional[int] = None,
        seed: Optional[int] = 0,
        directions: str = "fixed",
        include_regularization: bool = False,
        verbose: int = 0,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"Expected `kind` to be one of {KINDS}, received: {kind!r}")
        if directions not in DIRECTION_CHOICES:
            raise ValueError(f"Expected `directions` to be one of {DIRECTION_CHOICES}, received: {directions!r}")
        check_positive_int("every", every)
        check_positive_int("max_samples", max_samples)
        coords = evenly_spaced_coords("points", points, coordinate_range)
        check_writable(path)
        self.data, self.path, self.every, self.kind = data, os.fspath(path), every, kind
        self.coords = coords
        self.max_samples, self.seed, self.directions = max_samples, seed, directions
        self.include_regularization, self.verbose = include_regularization, verbose
        self.seconds: list[float] = []
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = SeriesWriter(
            self.data, self.path, self.kind, self.coords, max_samples=self.max_samples, seed=self.seed,
            directions=self.directions, include_regularization=self.include_regularization,
        )
        self._add(epoch=0, logs={})

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._add(epoch=epoch + 1, logs=logs or {})

    def _add(self, epoch: int, logs: dict) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) if self.model.optimizer else 0
        self.seconds.append(self._writer.add(self.model, epoch, step, logs))
        if self.verbose:
            report(f"losslandscape: landscape at epoch {epoch} added {self.seconds[-1]:.1f} s")


class SeriesWriter:
    """Appends landscapes of one model at successive weights to a series file (started empty here).

    Used by `LandscapeCallback` during `fit`, and by the `losslandscape
    series` command on checkpoints. With `directions="fixed"` the raw
    random directions are drawn at the first landscape and filter-normalized
    to the weights of each.
    """

    def __init__(self, data, path, kind, coords, *, max_samples=None, seed=0, directions="fixed",
                 include_regularization=False):
        self.data, self.path, self.kind, self.coords = data, os.fspath(path), kind, np.asarray(coords)
        self.max_samples, self.seed, self.directions = max_samples, seed, directions
        self.include_regularization = include_regularization
        self._raw = None
        self._count = 0
        write_file_atomically(self.path, lambda root: root.attrs.update(kind="series"))

    def add(self, model: keras.Model, epoch: int, step: int = 0, logs: Optional[dict] = None) -> float:
        """Computes the landscape of `model` at its current weights and appends it; returns the seconds it took."""
        started = time.perf_counter()
        landscape = self._compute(model, epoch)
        name = f"{self._count:04d}"
        logs = {key: float(value) for key, value in (logs or {}).items()}

        def write(root):
            with h5py.File(self.path, "r") as previous:
                for key in previous:
                    previous.copy(previous[key], root, key)
                root.attrs.update(previous.attrs)
            group = root.create_group(name)
            landscape.write_to(group)
            group.attrs.update(epoch=epoch, step=step, logs=json.dumps(logs))

        write_file_atomically(self.path, write)
        self._count += 1
        return time.perf_counter() - started

    def _compute(self, model, epoch: int):
        count = 2 if self.kind == "surface" else 1
        weights = [np.asarray(keras.ops.convert_to_numpy(v)) for v in model.trainable_weights]
        if self.directions == "fresh":
            seed = None if self.seed is None else self.seed + epoch
            directions = random_directions(model, count, seed=seed)
        else:
            if self._raw is None:
                self._raw = random_directions(model, count, seed=self.seed, normalization=None)
            shapes = [w.shape for w in weights]
            if [r.shape for r in self._raw[0]] != shapes:
                raise ValueError(
                    f"The model at epoch {epoch} has weights of shapes {shapes[:3]}..., the first one "
                    f"{[r.shape for r in self._raw[0]][:3]}...: a series needs one architecture throughout."
                )
            axes = filter_fan_in_axes(model)
            directions = [normalize_direction(raw, weights, axes) for raw in self._raw]
        options = dict(max_samples=self.max_samples, include_regularization=self.include_regularization, verbose=0)
        if self.kind == "surface":
            return compute_surface(model, self.data, directions, xcoords=self.coords, **options)
        return compute_line(model, self.data, directions[0], coords=self.coords, **options)
