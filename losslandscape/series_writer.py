"""Writing series files: one writer per file, the run's settings and directions recorded, and continuing only the same run.

A series file's root holds the attributes `kind` ("series"), `seed`,
`directions` ("fixed" or "fresh") and `run` (JSON: what must match for a
run to continue the file), and, for fixed directions, the raw random
directions in a group `raw_directions` (reference layout). Each landscape
is a group "0000", "0001", ... (see `losslandscape.series`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Optional

import keras
import numpy as np

from losslandscape.compute import compute_line, compute_surface
from losslandscape.datasets import prepare_data
from losslandscape.direction_files import load_directions, save_directions
from losslandscape.directions import filter_fan_in_axes, normalize_direction, random_directions
from losslandscape.hashing import content_hash
from losslandscape.hdf5_files import opened_for_reading, write_file_atomically
from losslandscape.output_lock import exclusive_output
from losslandscape.series_files import check_replaceable_series, landscape_names

RAW_DIRECTIONS = "raw_directions"
# What a continuing run must match, by the name the user passes it under.
_SETTING_NAMES = {
    "kind": "`kind`",
    "coords": "`points` or `coordinate_range`",
    "data": "data",
    "max_samples": "`max_samples`",
    "include_regularization": "`include_regularization`",
    "directions": "`directions`",
    "seed": "`seed`",
}
# The writer of each series file that this process holds, by real path.
_OPEN_WRITERS: dict = {}


class SeriesWriter:
    """Appends landscapes of one model at successive weights to a series file, as its only writer.

    Opening a writer locks the file until `close()`: a writer in another
    process gets an `OutputInUseError` in one line. In this process a new
    writer of the same file takes over from an earlier one (say, of a fit
    that stopped with an error), which then refuses to write. A new series
    replaces an existing series file, never any other file. With `append`,
    the file's recorded settings must match this writer's, and its
    directions are reused (the file's seed wins where `seed` is None).

    Args:
        model: The model at its first weights (to draw the directions and
            check the data).
        data: One dataset, as `compute_surface` takes it.
        path: The series file.
        kind: "surface" or "line".
        coords: The α (and β) values of every landscape.
        max_samples: Evaluate only the first `max_samples` samples.
        seed: Seed of the random directions.
        directions: "fixed" (drawn once, filter-normalized to each
            landscape's weights) or "fresh" (drawn again each time).
        include_regularization: Whether the loss includes the layers'
            regularization losses.
        append: Continue the series file at `path` instead of replacing it.

    Attributes:
        count: The number of landscapes in the file.
        last: `(epoch, step)` of the file's last landscape, or None.
    """

    def __init__(self, model, data, path, kind, coords, *, max_samples=None, seed=0, directions="fixed",
                 include_regularization=False, append=False):
        self.data, self.path, self.kind, self.coords = data, os.fspath(path), kind, np.asarray(coords, float)
        self.max_samples, self.seed, self.directions = max_samples, seed, directions
        self.include_regularization = include_regularization
        self._closed = False
        self._real_path = os.path.realpath(self.path)
        earlier = _OPEN_WRITERS.get(self._real_path)
        if earlier is not None:
            earlier.close()
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(exclusive_output(self._real_path))
        _OPEN_WRITERS[self._real_path] = self
        try:
            self.run = {
                "kind": kind,
                "coords": [float(c) for c in self.coords],
                "data": _data_identity(data, max_samples),
                "max_samples": max_samples,
                "include_regularization": bool(include_regularization),
                "directions": directions,
            }
            if append:
                self._raw, self.count, self.last = self._continued()
            else:
                self._raw, self.count, self.last = self._started(model)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Releases the file; this writer writes nothing more."""
        if _OPEN_WRITERS.get(self._real_path) is self:
            del _OPEN_WRITERS[self._real_path]
        self._lock.close()
        self._closed = True

    def add(self, model: keras.Model, epoch: int, step: int = 0, logs: Optional[dict] = None):
        """Computes the landscape of `model` at its current weights and appends it.

        Returns:
            The landscape and the seconds it took.
        """
        if self._closed:
            raise RuntimeError(
                f"This writer of {self.path!r} was closed: another writer of the same file took over in this "
                "process (two LandscapeCallbacks on one path?). Give each callback its own path."
            )
        started = time.perf_counter()
        landscape = self._compute(model, epoch)
        name = f"{self.count:04d}"
        logs = {key: float(value) for key, value in (logs or {}).items()}

        def write(root):
            with opened_for_reading(self.path, "series") as previous:
                for key in previous:
                    previous.copy(previous[key], root, key)
                root.attrs.update(previous.attrs)
            group = root.create_group(name)
            landscape.write_to(group)
            group.attrs.update(epoch=epoch, step=step, logs=json.dumps(logs))

        write_file_atomically(self._real_path, write)
        self.count += 1
        self.last = (int(epoch), int(step))
        return landscape, time.perf_counter() - started

    def _started(self, model):
        """A new, empty series file (replacing a series file there); the raw directions it records."""
        check_replaceable_series(self.path)
        raw = None
        if self.directions == "fixed":
            raw = random_directions(model, self._count_directions(), seed=self.seed, normalization=None)
        run = dict(self.run, seed=self.seed, raw_directions=None if raw is None else _directions_hash(raw))

        def write(root):
            root.attrs.update(kind="series", directions=self.directions, run=json.dumps(run))
            root.attrs["seed"] = "none" if self.seed is None else self.seed
            if raw is not None:
                save_directions(root.create_group(RAW_DIRECTIONS), raw)

        write_file_atomically(self._real_path, write)
        return raw, 0, None

    def _continued(self):
        """The raw directions, count and last position of the series file, after checking this run continues it."""
        with opened_for_reading(self.path, "series") as file:
            if file.attrs.get("kind") != "series":
                raise ValueError(
                    f"{self.path!r} is not a series file; pass another `path`, or `resume=False` to start a new one."
                )
            if "run" not in file.attrs:
                raise ValueError(
                    f"{self.path!r} is a series file without its run's settings (written by an earlier version), so "
                    "this run cannot be checked to continue it; pass `resume=False` or another `path`."
                )
            saved = json.loads(file.attrs["run"])
            expected = dict(self.run, seed=saved.get("seed") if self.seed is None else self.seed)
            differences = [key for key in _SETTING_NAMES if saved.get(key) != expected.get(key)]
            if differences:
                details = ", ".join(
                    f"{_SETTING_NAMES[key]} ({_described(key, saved.get(key))} in the file, "
                    f"{_described(key, expected.get(key))} here)"
                    for key in differences
                )
                raise ValueError(
                    f"{self.path!r} holds a series of another run: {details}. Pass the same to continue it, or "
                    "`resume=False` (or another `path`) to start a new series."
                )
            raw = None
            if RAW_DIRECTIONS in file:
                raw = load_directions(file[RAW_DIRECTIONS])
                if _directions_hash(raw) != saved.get("raw_directions"):
                    raise ValueError(f"{self.path!r} is damaged: its raw directions differ from those it recorded.")
            names = landscape_names(file)
            last = None
            if names:
                attrs = file[names[-1]].attrs
                last = (int(attrs["epoch"]), int(attrs["step"]))
        self.seed = saved.get("seed")
        return raw, len(names), last

    def _count_directions(self) -> int:
        return 2 if self.kind == "surface" else 1

    def _compute(self, model, epoch: int):
        weights = [np.asarray(keras.ops.convert_to_numpy(v)) for v in model.trainable_weights]
        if self.directions == "fresh":
            seed = None if self.seed is None else self.seed + epoch
            directions = random_directions(model, self._count_directions(), seed=seed)
        else:
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


def _data_identity(data, max_samples) -> dict:
    batches = prepare_data(data, max_samples=max_samples)
    return {"num_samples": int(batches.num_samples), "hash": batches.fingerprint()}


def _described(key: str, value) -> str:
    if key == "coords" and value:
        return f"{len(value)} points from {value[0]:g} to {value[-1]:g}"
    if key == "data" and value:
        return f"{value['num_samples']} samples with hash {value['hash'][:8]}"
    return repr(value)


def _directions_hash(directions) -> str:
    return content_hash([[np.asarray(part) for part in direction] for direction in directions])
