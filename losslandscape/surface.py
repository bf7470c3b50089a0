"""LossLine and LossSurface: computed landscapes as plain data, with HDF5 files.

Files follow the layout of the paper's reference code (tomgoldstein/
loss-landscape), so its plotting and ParaView scripts read them:
`xcoordinates`, `ycoordinates` and `{label}_loss`, `{label}_acc` (accuracy
in percent) at the root. 2D arrays in the file are in `np.meshgrid(x, y)`
order, shape `(len(ycoordinates), len(xcoordinates))`; in memory they are
`[i, j]` for the point `(x_i, y_j)`. Every compiled metric is also stored
under `metrics/{label}/{name}`, the directions under `xdirection` and
`ydirection`, the settings as JSON in the root attribute `settings`, and
which points are done under `computed/{label}` (points not yet computed
hold NaN; a real loss can be NaN too, so NaN alone does not mean missing).
"""

from __future__ import annotations

import json
from typing import Optional

import numpy as np

from losslandscape.direction_files import load_directions, save_directions
from losslandscape.hdf5_files import opened_for_reading, write_file_atomically
from losslandscape.metric_names import accuracy_metric_name
from losslandscape.reference_files import (
    is_reference_file,
    read_reference_values,
    reference_kind,
)

FORMAT_VERSION = 1


class _Landscape:
    """What lines and surfaces share: values per dataset, settings, drawn figures."""

    @property
    def grid_shape(self) -> tuple:
        """`(len(coords),)` for a line, `(len(xcoords), len(ycoords))` for a surface."""
        raise NotImplementedError

    def __init__(self, losses, metrics, settings, computed=None):
        self.losses = {label: np.array(v, dtype=np.float64) for label, v in losses.items()}
        self.metrics = {
            label: {name: np.array(v, dtype=np.float64) for name, v in metrics.get(label, {}).items()}
            for label in self.losses
        }
        computed = computed or {}
        self.computed = {
            label: np.array(computed[label], dtype=bool) if label in computed else np.ones(v.shape, bool)
            for label, v in self.losses.items()
        }
        self.settings = dict(settings or {})
        self.figures_ = {}
        self.axes_ = {}
        self.artists_ = {}
        self.figure_ = None
        self.ax_ = None

    def __repr__(self):
        metric_names = sorted({name for named in self.metrics.values() for name in named})
        return (
            f"{type(self).__name__}(grid={self.grid_shape}, labels={self.labels}, "
            f"metrics={['loss', *metric_names]})"
        )

    @property
    def is_complete(self) -> bool:
        """Whether every point of every dataset has been computed."""
        return all(mask.all() for mask in self.computed.values())

    def record(self, label: str, flat_indices: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """Stores computed values of points given by their flat (C-order) grid indices.

        Args:
            label: Dataset label.
            flat_indices: Indices into the flattened grid.
            values: `{name: values}` for those points; "loss" goes to
                `losses`, the rest to `metrics`.
        """
        index = np.unravel_index(np.asarray(flat_indices), self.grid_shape)
        for name, array in values.items():
            if name == "loss":
                target = self.losses[label]
            else:
                target = self.metrics[label].setdefault(name, np.full(self.grid_shape, np.nan))
            target[index] = array
        self.computed[label][index] = True

    @property
    def labels(self) -> list[str]:
        """The dataset labels, in the order they were evaluated."""
        return list(self.losses)

    def values(self, label: Optional[str] = None, metric: str = "loss") -> np.ndarray:
        """Returns the values of `metric` ("loss" or a compiled metric) for one dataset.

        Args:
            label: Dataset label; defaults to the first dataset.
            metric: "loss" or the name of a compiled metric.

        Returns:
            A numpy array shaped like the grid.
        """
        label = self.labels[0] if label is None else label
        if label not in self.losses:
            raise KeyError(f"Unknown dataset label {label!r}; this landscape has {self.labels}.")
        if metric == "loss":
            return self.losses[label]
        if metric not in self.metrics[label]:
            raise KeyError(
                f"Unknown metric {metric!r} for dataset {label!r}; available: "
                f"{['loss', *self.metrics[label]]}."
            )
        return self.metrics[label][metric]

    def _write_values(self, file, to_file_order):
        for label in self.labels:
            file.create_dataset(f"{label}_loss", data=to_file_order(self.losses[label]))
            accuracy_name = accuracy_metric_name(self.metrics[label])
            if accuracy_name is not None:
                accuracy = 100.0 * self.metrics[label][accuracy_name]
            else:
                accuracy = np.full_like(self.losses[label], np.nan)
            file.create_dataset(f"{label}_acc", data=to_file_order(accuracy))
            for name, values in self.metrics[label].items():
                file.create_dataset(f"metrics/{label}/{name}", data=to_file_order(values))
            file.create_dataset(f"computed/{label}", data=to_file_order(self.computed[label]))
        file.attrs["labels"] = json.dumps(self.labels)
        file.attrs["settings"] = json.dumps(self.settings)
        file.attrs["format_version"] = FORMAT_VERSION

    @staticmethod
    def _read_values(file, from_file_order):
        labels = json.loads(file.attrs["labels"])
        losses = {label: from_file_order(file[f"{label}_loss"][()]) for label in labels}
        metrics = {
            label: {
                name: from_file_order(dataset[()])
                for name, dataset in file.get(f"metrics/{label}", {}).items()
            }
            for label in labels
        }
        computed = {
            label: from_file_order(file[f"computed/{label}"][()])
            for label in labels
            if f"computed/{label}" in file
        }
        return losses, metrics, json.loads(file.attrs["settings"]), computed

class LossLine(_Landscape):
    """Loss and metrics along one direction: f(α) = L(θ0 + α·δ).

    Attributes:
        coords: The α values, shape `(n,)`.
        losses: `{label: array (n,)}`, one entry per dataset.
        metrics: `{label: {metric_name: array (n,)}}`.
        direction: The direction δ (list of arrays shaped like the
            trainable weights), or `None` when loaded without it.
        settings: How it was computed (seed, normalization, ...).
        figures_, axes_: What `plot_loss` or `plot` drew, by plot kind.

    Examples:
        >>> line = LossLine(np.linspace(-1, 1, 3), {"train": np.array([2., 1., 2.])}, {"train": {}})
        >>> int(line.values("train").argmin())
        1
    """

    def __init__(self, coords, losses, metrics, direction=None, settings=None, computed=None):
        super().__init__(losses, metrics, settings, computed)
        self.coords = np.asarray(coords, dtype=np.float64)
        self.direction = direction

    @property
    def grid_shape(self) -> tuple[int]:
        """`(len(coords),)`, the shape of every value array."""
        return (len(self.coords),)

    def plot(self, metric: str = "loss", ax=None, labels=None, **line_kwargs):
        """Draws one curve per dataset.

        Args:
            metric: "loss" or a compiled metric name.
            ax: Matplotlib Axes; a new figure when `None`.
            labels: Dataset labels to draw; all by default.
            **line_kwargs: Passed to `Axes.plot`.

        Returns:
            The line itself, with the `Line2D`s drawn in `artists_["line"]`
            (see `losslandscape.plot_line`).
        """
        from losslandscape.plotting import plot_line

        return plot_line(self, metric=metric, ax=ax, labels=labels, **line_kwargs)

    def save(self, path) -> None:
        """Writes the line to an HDF5 file (see the module docstring for the layout).

        Args:
            path: Destination file path; an existing file is replaced.
        """
        write_file_atomically(path, self.write_to)

    def write_to(self, group) -> None:
        """Writes the line into an open HDF5 file or group, in the layout `save` uses."""
        group.attrs["kind"] = "line"
        group.create_dataset("xcoordinates", data=self.coords)
        self._write_values(group, lambda values: values)
        if self.direction is not None:
            save_directions(group, [self.direction])


class LossSurface(_Landscape):
    """Loss and metrics on a plane: f(α, β) = L(θ0 + α·δ + β·η).

    Attributes:
        xcoords: The α values, shape `(nx,)`.
        ycoords: The β values, shape `(ny,)`.
        losses: `{label: array (nx, ny)}`; `[i, j]` is the value at
            `(xcoords[i], ycoords[j])`.
        metrics: `{label: {metric_name: array (nx, ny)}}`.
        directions: `[δ, η]`, or `None` when loaded without them.
        settings: How it was computed (seed, normalization, ...).
        figures_, axes_: What `plot_loss_3D` or `plot` drew, by plot kind.

    Examples:
        >>> x, y = np.linspace(-1, 1, 3), np.linspace(-1, 1, 5)
        >>> bowl = x[:, None] ** 2 + y[None, :] ** 2
        >>> surface = LossSurface(x, y, {"train": bowl}, {"train": {}})
        >>> surface.values().shape
        (3, 5)
    """

    def __init__(self, xcoords, ycoords, losses, metrics, directions=None, settings=None, computed=None):
        super().__init__(losses, metrics, settings, computed)
        self.xcoords = np.asarray(xcoords, dtype=np.float64)
        self.ycoords = np.asarray(ycoords, dtype=np.float64)
        self.directions = directions

    @property
    def grid_shape(self) -> tuple[int, int]:
        """`(len(xcoords), len(ycoords))`, the shape of every value array."""
        return (len(self.xcoords), len(self.ycoords))

    def plot(
        self,
        kind: str = "contour",
        log: bool = False,
        ax=None,
        label: Optional[str] = None,
        metric: str = "loss",
        **kwargs,
    ):
        """Re-plots the surface without recomputing it.

        Args:
            kind: "contour" (labelled contour lines), "contourf" (filled
                contours with a colour bar), "heatmap" or "surface" (3D);
                "levels" and "3d", `plot_loss_3D`'s names, are accepted too.
            log: Logarithmic colour (or, for "surface", z) scale.
            ax: Matplotlib Axes (3D for "surface"); a new figure when `None`.
            label: Dataset label; the first dataset by default.
            metric: "loss" or a compiled metric name.
            **kwargs: Passed to the matplotlib function that draws.

        Returns:
            The surface itself, with the artist drawn (`QuadContourSet`,
            `QuadMesh` or `Poly3DCollection`) in `artists_[kind]`, and the
            Axes and Figure on `ax_` and `figure_`.

        Examples:
            >>> x = np.linspace(-1, 1, 5)
            >>> surface = LossSurface(x, x, {"train": x[:, None] ** 2 + x ** 2}, {"train": {}})
            >>> surface.plot("contourf").figure_ is surface.axes_["contourf"].figure
            True
        """
        from losslandscape.plotting import plot_surface

        return plot_surface(self, kind=kind, log=log, ax=ax, label=label, metric=metric, **kwargs)

    def save(self, path) -> None:
        """Writes the surface to an HDF5 file (see the module docstring for the layout).

        Args:
            path: Destination file path; an existing file is replaced.

        Examples:
            >>> x = np.linspace(-1, 1, 3)
            >>> LossSurface(x, x, {"train": np.zeros((3, 3))}, {"train": {}}).save("/tmp/s.h5")
        """
        write_file_atomically(path, self.write_to)

    def write_to(self, group) -> None:
        """Writes the surface into an open HDF5 file or group, in the layout `save` uses."""
        group.attrs["kind"] = "surface"
        group.create_dataset("xcoordinates", data=self.xcoords)
        group.create_dataset("ycoordinates", data=self.ycoords)
        self._write_values(group, np.transpose)
        if self.directions is not None:
            save_directions(group, self.directions)


    def to_vtk(self, path, label: Optional[str] = None, metric: str = "loss",
               log: bool = False, clip: Optional[float] = None) -> None:
        """Writes a ParaView-readable VTK StructuredGrid (.vts); no VTK package needed.

        Args:
            path: Destination file, e.g. "surface.vts".
            label: Dataset label; the first by default.
            metric: "loss" or a compiled metric name.
            log: Heights in log10.
            clip: Cap values at this maximum first.

        Examples:
            >>> x = np.linspace(-1, 1, 3)
            >>> LossSurface(x, x, {"train": np.ones((3, 3))}, {"train": {}}).to_vtk("/tmp/s.vts")
        """
        from losslandscape.exports import write_vts

        write_vts(self, path, label, metric, log, clip)

    def to_html(self, path, label: Optional[str] = None, metric: str = "loss",
                log: bool = False, clip: Optional[float] = None) -> None:
        """Writes an interactive 3D view as one HTML file (needs `losslandscape[plotly]`).

        Args:
            path: Destination file, e.g. "surface.html".
            label, metric, log, clip: As in `to_vtk`.

        Examples:
            >>> surface.to_html("surface.html")  # doctest: +SKIP
        """
        from losslandscape.exports import write_html

        write_html(self, path, label, metric, log, clip)


def load_surface(path) -> LossSurface:
    """Reads a `LossSurface` written by `LossSurface.save`, or by the paper's reference code.

    A reference file's `{label}_acc` (in percent) becomes the metric
    "accuracy" (in [0, 1]), and its points holding -1 (not computed yet)
    are NaN and not `computed`.

    Args:
        path: HDF5 file path.

    Returns:
        The `LossSurface`, with `[i, j]` indexing restored.

    Examples:
        >>> x, y = np.linspace(-1, 1, 3), np.linspace(0, 1, 2)
        >>> LossSurface(x, y, {"train": np.zeros((3, 2))}, {"train": {}}).save("/tmp/s.h5")
        >>> load_surface("/tmp/s.h5").losses["train"].shape
        (3, 2)
    """
    with opened_for_reading(path) as file:
        return surface_from(file, path)


def surface_from(group, path) -> LossSurface:
    """The `LossSurface` in an open HDF5 file or group; `path` names it in errors."""
    if is_reference_file(group):
        _check_reference_kind(group, path, "surface", "load_line")
        losses, metrics, settings, computed = read_reference_values(group, path, np.transpose)
    else:
        _check_kind(group, path, "surface", "load_line")
        _check_layout(group, path, ("xcoordinates", "ycoordinates"))
        losses, metrics, settings, computed = _Landscape._read_values(group, np.transpose)
    directions = load_directions(group) if "xdirection" in group else None
    return LossSurface(
        group["xcoordinates"][()],
        group["ycoordinates"][()],
        losses,
        metrics,
        directions=directions,
        settings=settings,
        computed=computed,
    )


def load_line(path) -> LossLine:
    """Reads a `LossLine` written by `LossLine.save`, or by the paper's reference code (see `load_surface`).

    Args:
        path: HDF5 file path.

    Returns:
        The `LossLine`.

    Examples:
        >>> LossLine(np.linspace(-1, 1, 3), {"train": np.ones(3)}, {"train": {}}).save("/tmp/l.h5")
        >>> load_line("/tmp/l.h5").coords
        array([-1.,  0.,  1.])
    """
    with opened_for_reading(path) as file:
        return line_from(file, path)


def line_from(group, path) -> LossLine:
    """The `LossLine` in an open HDF5 file or group; `path` names it in errors."""
    if is_reference_file(group):
        _check_reference_kind(group, path, "line", "load_surface")
        losses, metrics, settings, computed = read_reference_values(group, path, lambda values: values)
    else:
        _check_kind(group, path, "line", "load_surface")
        _check_layout(group, path, ("xcoordinates",))
        losses, metrics, settings, computed = _Landscape._read_values(group, lambda values: values)
    direction = load_directions(group)[0] if "xdirection" in group else None
    return LossLine(
        group["xcoordinates"][()], losses, metrics, direction=direction, settings=settings, computed=computed
    )


def _check_kind(file, path, expected, other_loader):
    kind = file.attrs.get("kind")
    if kind is None or "labels" not in file.attrs:
        raise ValueError(
            f"{str(path)!r} was not written by losslandscape (no 'kind' and "
            "'labels' attributes)."
        )
    if kind != expected:
        raise ValueError(f"{str(path)!r} holds a {kind}, not a {expected}; use `{other_loader}`.")


def _check_reference_kind(file, path, expected, other_loader):
    kind = reference_kind(file)
    if kind != expected:
        raise ValueError(f"{str(path)!r} holds a {kind} (reference layout), not a {expected}; use `{other_loader}`.")


def _check_layout(file, path, coordinate_keys) -> None:
    """Raises a ValueError naming the file and the first missing or wrongly shaped dataset."""
    missing = [key for key in coordinate_keys if key not in file]
    if missing:
        raise ValueError(f"{str(path)!r} has no `{missing[0]}`: it is damaged or not a landscape file.")
    shape = tuple(len(file[key]) for key in reversed(coordinate_keys))  # the reference's (y, x) order
    for label in json.loads(file.attrs["labels"]):
        names = [f"{label}_loss", f"computed/{label}"] + [f"metrics/{label}/{name}" for name in file.get(f"metrics/{label}", {})]
        for name in names:
            if name not in file:
                if name.startswith("computed/"):
                    continue  # files of other tools: every point counts as computed
                raise ValueError(f"{str(path)!r} has no `{name}`: it is damaged or not a landscape file.")
            if file[name].shape != shape:
                raise ValueError(
                    f"{str(path)!r}: `{name}` has shape {file[name].shape}, but the coordinates make "
                    f"{shape}; the file is damaged."
                )
