"""Series files of `LandscapeCallback`: reading them, and drawing them as small multiples or an animation.

Needs h5py, numpy and matplotlib only, so that the command line's `plot`
and `info` read series without Keras.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional, Union

import h5py
import numpy as np
from numpy.typing import ArrayLike

from losslandscape.hdf5_files import opened_for_reading
from losslandscape.surface import LossSurface, line_from, surface_from
from losslandscape.validation import check_writable


@dataclasses.dataclass
class LandscapeSeries:
    """Landscapes of one training run, in order.

    Attributes:
        landscapes: The `LossSurface`s or `LossLine`s.
        epochs: The epoch of each (0: before training).
        steps: The training step of each.
        logs: The training logs at each (`{}` before training).
        figure_, axes_, colorbar_: What `plot_series` drew last: the
            Figure, the array of Axes (rows × columns, as
            `plt.subplots` gives), and the one colour bar the panels share
            (None for lines and contour lines).
    """

    landscapes: list
    epochs: list
    steps: list
    logs: list
    figure_: object = dataclasses.field(default=None, repr=False, compare=False)
    axes_: object = dataclasses.field(default=None, repr=False, compare=False)
    colorbar_: object = dataclasses.field(default=None, repr=False, compare=False)


def load_series(path: Union[str, os.PathLike]) -> LandscapeSeries:
    """Reads a series file written by `LandscapeCallback`.

    Args:
        path: The series file.

    Returns:
        A `LandscapeSeries`, in the order the landscapes were computed.
    """
    with opened_for_reading(path, "series") as file:
        if file.attrs.get("kind") != "series":
            raise ValueError(f"{os.fspath(path)!r} holds no series; read a single landscape with `load_surface`.")
        series = LandscapeSeries([], [], [], [])
        for name in landscape_names(file):
            group = file[name]
            reader = surface_from if group.attrs.get("kind") == "surface" else line_from
            series.landscapes.append(reader(group, f"{os.fspath(path)}/{name}"))
            series.epochs.append(int(group.attrs["epoch"]))
            series.steps.append(int(group.attrs["step"]))
            series.logs.append(json.loads(group.attrs["logs"]))
    return series


def landscape_names(file: h5py.File) -> list[str]:
    """The names of a series file's landscape groups ("0000", "0001", ...) in the order they were written.

    Sorted as numbers: past 9999 the names grow a digit. The root also holds the raw directions, which are skipped.
    """
    return sorted((key for key in file if key.isdigit()), key=int)


def check_replaceable_series(path: Union[str, os.PathLike]) -> None:
    """Raises a ValueError if a file exists at `path` and is not a series file, which a new series would replace.

    Examples:
        >>> np.save("/tmp/weights.npy", np.zeros(3))
        >>> check_replaceable_series("/tmp/weights.npy")
        Traceback (most recent call last):
        ...
        ValueError: '/tmp/weights.npy' exists and is not a series file, so it is not replaced; pass another path, or delete it first.
    """
    if not os.path.exists(path):
        return
    try:
        with h5py.File(path, "r") as file:
            is_series = file.attrs.get("kind") == "series"
    except OSError:
        is_series = False
    if not is_series:
        raise ValueError(
            f"{os.fspath(path)!r} exists and is not a series file, so it is not replaced; pass another path, or "
            "delete it first."
        )


def plot_series(series: LandscapeSeries, kind: str = "contour", columns: int = 4, metric: str = "loss",
                label: Optional[str] = None, levels: Optional[ArrayLike] = None) -> LandscapeSeries:
    """Draws the landscapes of a series side by side, on one shared scale, with one colour bar for all.

    Args:
        series: A `LandscapeSeries`.
        kind: For surfaces, "contour", "contourf" or "heatmap".
        columns: Plots per row.
        metric: "loss" or a compiled metric name.
        label: Dataset label; the first by default.
        levels: The shared levels; chosen from all the landscapes' values by default.

    Returns:
        `series`, with the Figure in `figure_`, its Axes in `axes_` and the
        shared colour bar in `colorbar_`, as the landscapes' plots return
        the landscape.

    Examples:
        >>> from losslandscape import LossLine
        >>> coords = np.linspace(-1, 1, 5)
        >>> lines = [LossLine(coords, {"train": (e + 1) * coords ** 2}, {"train": {}}) for e in range(2)]
        >>> plot_series(LandscapeSeries(lines, [0, 1], [0, 10], [{}, {}])).axes_.shape
        (1, 2)
    """
    import matplotlib.pyplot as plt

    from losslandscape.plotting import colorbar_beside

    count = len(series.landscapes)
    if count == 0:
        raise ValueError("The series holds no landscapes.")
    surfaces = isinstance(series.landscapes[0], LossSurface)
    if surfaces:
        kind, levels, scale = _one_scale(series, kind, metric, label, levels)
    else:
        values = _values(series, metric, label)
    columns = min(columns, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns + 0.6, 3.3 * rows), squeeze=False,
                                layout="constrained")
    for index, (landscape, epoch) in enumerate(zip(series.landscapes, series.epochs)):
        ax = axes[index // columns][index % columns]
        if surfaces:
            landscape.plot(kind, ax=ax, label=label, metric=metric, levels=levels, colorbar=False, **scale)
        else:
            landscape.plot(metric=metric, ax=ax, labels=[label] if label else None)
            finite = values[np.isfinite(values)]
            if finite.size and finite.min() < finite.max():
                ax.set_ylim(finite.min(), finite.max())
        ax.set_title(f"epoch {epoch}")
    for index in range(count, rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    series.colorbar_ = None
    if surfaces and kind != "contour":
        shown = [ax for ax in axes.ravel() if ax.get_visible()]
        series.colorbar_ = colorbar_beside(shown, series.landscapes[-1].artists_[kind], metric, levels)
    series.figure_, series.axes_ = figure, axes
    return series


def animate_series(series: LandscapeSeries, path: Union[str, os.PathLike], kind: str = "contourf",
                   metric: str = "loss", label: Optional[str] = None, fps: int = 2) -> None:
    """Writes the landscapes of a series as an animation, one frame per landscape, on one shared scale.

    Args:
        series: A `LandscapeSeries` of surfaces.
        path: A ".gif" (matplotlib's Pillow writer) or, where ffmpeg is installed, an ".mp4".
        kind: "contour", "contourf" or "heatmap".
        metric: "loss" or a compiled metric name.
        label: Dataset label; the first by default.
        fps: Frames per second.
    """
    import matplotlib.animation as animation
    import matplotlib.pyplot as plt

    from losslandscape.plotting import colorbar_beside

    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".gif", ".mp4"):
        raise ValueError(f"Expected a .gif or .mp4 path for the animation, received: {path!r}")
    if extension == ".mp4" and not animation.FFMpegWriter.isAvailable():
        raise ValueError("Writing .mp4 needs ffmpeg on the PATH; write a .gif instead.")
    if not series.landscapes or not isinstance(series.landscapes[0], LossSurface):
        raise ValueError("animate_series draws surfaces; this series holds none.")
    check_writable(path)
    kind, levels, scale = _one_scale(series, kind, metric, label, None)
    figure = plt.figure(figsize=(5, 4.2), layout="constrained")

    def draw(index):
        figure.clear()
        ax = figure.add_subplot()
        landscape = series.landscapes[index].plot(kind, ax=ax, label=label, metric=metric, levels=levels,
                                                  colorbar=False, **scale)
        if kind != "contour":  # beside the Axes, where the layout keeps its label inside the frame
            colorbar_beside([ax], landscape.artists_[kind], metric, levels)
        ax.set_title(f"epoch {series.epochs[index]}")

    movie = animation.FuncAnimation(figure, draw, frames=len(series.landscapes))
    writer = animation.PillowWriter(fps=fps) if extension == ".gif" else animation.FFMpegWriter(fps=fps)
    movie.save(path, writer=writer)
    plt.close(figure)


def _values(series, metric, label):
    """Every value of `metric` for `label` across the series, flat."""
    return np.concatenate([np.ravel(landscape.values(label, metric)) for landscape in series.landscapes])


def _one_scale(series, kind, metric, label, levels):
    """The plot kind, levels (chosen from all the values unless given) and colour scale shared by the panels or
    frames of a series of surfaces."""
    from losslandscape.contour_levels import default_levels
    from losslandscape.plotting import shared_scale, surface_kind

    values = _values(series, metric, label)
    kind = surface_kind(kind)
    levels = np.asarray(default_levels(values, metric) if levels is None else levels)
    return kind, levels, shared_scale(kind, values, levels)
