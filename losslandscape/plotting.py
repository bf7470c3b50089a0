"""Drawing only: lines and surfaces onto matplotlib Axes.

Every function returns the landscape it drew, as scikit-learn's displays
do: `ax_` and `figure_` are the Axes and Figure of the last plot,
`axes_[key]`, `figures_[key]` and `artists_[key]` those of each kind of plot
(`key` is "line", "metric", "path" or the surface's `kind`). Non-finite
values (a loss that overflowed far from the minimum) are masked and show as
gaps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from losslandscape.metric_names import accuracy_metric_name

if TYPE_CHECKING:  # the landscapes call these functions from their `plot` methods
    from losslandscape.surface import LossLine, LossSurface
    from losslandscape.trajectory import PCADirections

SURFACE_KINDS = ("contour", "contourf", "heatmap", "surface")


def plot_line(
    line: LossLine,
    metric: str = "loss",
    ax=None,
    labels: Optional[Sequence[str]] = None,
    **line_kwargs,
) -> LossLine:
    """Draws `metric` along the direction of a `LossLine`, one curve per dataset.

    Args:
        line: A `LossLine`.
        metric: "loss" or a compiled metric name.
        ax: Matplotlib Axes; a new figure when `None`.
        labels: Dataset labels to draw; all by default.
        **line_kwargs: Passed to `Axes.plot`.

    Returns:
        `line`, with the `Line2D`s drawn (one per dataset) in `artists_["line"]`.

    Example:

    >>> from losslandscape import LossLine
    >>> line = LossLine(np.linspace(-1, 1, 5), {"train": np.linspace(-1, 1, 5) ** 2}, {"train": {}})
    >>> len(plot_line(line).artists_["line"])
    1
    """
    ax = _axes_or_new(ax)
    drawn = []
    for label in labels or line.labels:
        values = np.ma.masked_invalid(line.values(label, metric))
        drawn.extend(ax.plot(line.coords, values, label=label, **line_kwargs))
    ax.set_xlabel("α (filter-normalized direction)" if _filter_normalized(line) else "α")
    ax.set_ylabel(metric)
    if len(drawn) > 1 or labels:
        ax.legend()
    return _remember(line, "line", ax, drawn)


def plot_interpolation(line: LossLine, metric: Optional[str] = None, ax=None) -> LossLine:
    """Draws loss (left axis) and a metric (right axis) along an interpolation, as in Li et al. Fig. 3.

    Datasets differ by line style (solid, dashed, ...), loss and metric by
    colour.

    Args:
        line: A `LossLine`, typically from `interpolate`.
        metric: The metric for the right axis; the accuracy-like metric by
            default, none if the model has none.
        ax: Matplotlib Axes for the loss; a new figure when `None`.

    Returns:
        `line`, with the loss curves in `artists_["line"]` and the metric's
        in `artists_["metric"]`, drawn on the twin Axes `axes_["metric"]`.

    Example:

    >>> from losslandscape import LossLine
    >>> t = np.linspace(-0.5, 1.5, 9)
    >>> line = LossLine(t, {"train": (t - 0.5) ** 2}, {"train": {"accuracy": 1 - (t - 0.5) ** 2 / 2}})
    >>> sorted(plot_interpolation(line).artists_)
    ['line', 'metric']
    """
    ax = _axes_or_new(ax)
    styles = ["-", "--", ":", "-."]
    metric = metric or accuracy_metric_name(line.metrics[line.labels[0]])
    drawn = {"loss": []}
    for index, label in enumerate(line.labels):
        style = styles[index % len(styles)]
        values = np.ma.masked_invalid(line.values(label))
        drawn["loss"].extend(ax.plot(line.coords, values, style, color="C0", label=f"{label} loss"))
    ax.set_xlabel("t (0: model a, 1: model b)" if line.settings.get("kind") == "interpolation" else "α")
    ax.set_ylabel("loss", color="C0")
    _remember(line, "line", ax, drawn["loss"])
    if metric is not None:
        twin = ax.twinx()
        drawn[metric] = []
        for index, label in enumerate(line.labels):
            style = styles[index % len(styles)]
            values = np.ma.masked_invalid(line.values(label, metric))
            drawn[metric].extend(twin.plot(line.coords, values, style, color="C3", label=f"{label} {metric}"))
        twin.set_ylabel(metric, color="C3")
        line.axes_["metric"] = twin
        line.artists_["metric"] = drawn[metric]
    handles = [artist for artists in drawn.values() for artist in artists]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper center", fontsize=8)
    return line


def plot_surface(
    surface: LossSurface,
    kind: str = "contour",
    log: bool = False,
    ax=None,
    label: Optional[str] = None,
    metric: str = "loss",
    **kwargs,
) -> LossSurface:
    """Draws one dataset's values of a `LossSurface`.

    Args:
        surface: A `LossSurface`.
        kind: "contour" (labelled contour lines), "contourf" (filled
            contours with a colour bar), "heatmap" or "surface" (3D).
        log: Logarithmic colour scale (for "surface", log10 of z).
        ax: Matplotlib Axes, 3D for "surface"; a new figure when `None`.
        label: Dataset label; the first dataset by default.
        metric: "loss" or a compiled metric name.
        **kwargs: Passed to `contour`, `contourf`, `pcolormesh` or
            `plot_surface` (e.g. `levels=`, `cmap=`).

    Returns:
        `surface`, with the artist drawn (a `QuadContourSet`, `QuadMesh` or
        `Poly3DCollection`) in `artists_[kind]`.

    Example:

    >>> from losslandscape import LossSurface
    >>> x = np.linspace(-1, 1, 5)
    >>> surface = LossSurface(x, x, {"train": x[:, None] ** 2 + x ** 2}, {"train": {}})
    >>> type(plot_surface(surface, "heatmap").artists_["heatmap"]).__name__
    'QuadMesh'
    """
    if kind not in SURFACE_KINDS:
        raise ValueError(f"Expected `kind` to be one of {SURFACE_KINDS}, received: {kind!r}")
    values = surface.values(label, metric)
    # Values are stored [i, j] for (x_i, y_j); matplotlib wants rows along y.
    z = np.ma.masked_invalid(np.asarray(values, dtype=np.float64).T)
    if log:
        z = np.ma.masked_less_equal(z, 0.0)
    grid_x, grid_y = np.meshgrid(surface.xcoords, surface.ycoords)
    if kind == "surface":
        ax = _axes_or_new(ax, projection="3d")
        artist = _draw_3d(ax, grid_x, grid_y, z, log, **kwargs)
        ax.set_zlabel(f"log10 {metric}" if log else metric)
    else:
        ax = _axes_or_new(ax)
        artist = _draw_flat(ax, kind, grid_x, grid_y, z, log, metric, **kwargs)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    ax.set_title(f"{label or surface.labels[0]} {metric}")
    return _remember(surface, kind, ax, artist)


def plot_trajectory(surface: LossSurface, pca: PCADirections, ax=None, kind: str = "contour", label: Optional[str] = None,
                    metric: str = "loss", **kwargs) -> LossSurface:
    """Draws a training path on the surface of its PCA plane (Li et al., Fig. 9).

    Args:
        surface: A `LossSurface` computed with `pca.directions` around θ_final.
        pca: The `PCADirections` of the trajectory.
        ax: Matplotlib Axes; a new figure when `None`.
        kind: "contour", "contourf" or "heatmap".
        label, metric, **kwargs: As in `plot_surface`.

    Returns:
        `surface`, with the plot's artist in `artists_[kind]` and the path's
        `Line2D` in `artists_["path"]`. Axis labels give the variance each
        direction explains.

    Example:

    >>> pca = pca_directions(load_trajectory("trajectory.h5"), final=model)  # doctest: +SKIP
    >>> xcoords, ycoords = pca.plane_coords()  # doctest: +SKIP
    >>> surface = compute_surface(model, (x, y), pca.directions, xcoords, ycoords)  # doctest: +SKIP
    >>> plot_trajectory(surface, pca)  # doctest: +SKIP
    """
    if kind == "surface":
        raise ValueError("plot_trajectory draws on flat plots: use kind 'contour', 'contourf' or 'heatmap'.")
    ax = plot_surface(surface, kind=kind, ax=ax, label=label, metric=metric, **kwargs).ax_
    (path,) = ax.plot(pca.coords[:, 0], pca.coords[:, 1], "-o", color="C3", markersize=3, label="training path")
    ax.plot(pca.coords[-1, 0], pca.coords[-1, 1], "*", color="C3", markersize=10)
    first, second = 100 * np.asarray(pca.explained_variance_ratio)
    ax.set_xlabel(f"1st PC: {first:.2f} %")
    ax.set_ylabel(f"2nd PC: {second:.2f} %")
    ax.set_aspect("auto")
    surface.artists_["path"] = path
    return surface


def _draw_flat(ax, kind, grid_x, grid_y, z, log, metric, **kwargs):
    if z.count() == 0:
        raise ValueError(f"No finite{' positive' if log else ''} {metric} values to plot.")
    if log:
        kwargs.setdefault("norm", LogNorm(vmin=z.min(), vmax=z.max()))
    if kind == "heatmap":
        artist = ax.pcolormesh(grid_x, grid_y, z, shading="nearest", **kwargs)
        ax.figure.colorbar(artist, ax=ax, label=metric)
    elif kind == "contourf":
        artist = ax.contourf(grid_x, grid_y, z, **_levels(z, log, kwargs))
        ax.figure.colorbar(artist, ax=ax, label=metric)
    else:
        artist = ax.contour(grid_x, grid_y, z, **_levels(z, log, kwargs))
        ax.clabel(artist, inline=True, fontsize=8)
    ax.set_aspect("equal", adjustable="box")
    return artist


def _levels(z, log, kwargs):
    if "levels" not in kwargs and log and z.min() < z.max():
        kwargs["levels"] = np.geomspace(z.min(), z.max(), 15)
    return kwargs


def _draw_3d(ax, grid_x, grid_y, z, log, **kwargs):
    z_plot = np.ma.log10(z) if log else z
    # plot_surface ignores masks: hand it NaN so those facets are left out.
    z_plot = np.ma.filled(z_plot.astype(np.float64), np.nan)
    finite = z_plot[np.isfinite(z_plot)]
    if finite.size == 0:
        raise ValueError("No finite values to plot.")
    kwargs.setdefault("cmap", "viridis")
    kwargs.setdefault("vmin", finite.min())
    kwargs.setdefault("vmax", finite.max())
    # A fixed vmax (to share one scale across models) also caps the heights.
    z_plot = np.minimum(z_plot, kwargs["vmax"])
    artist = ax.plot_surface(grid_x, grid_y, z_plot, linewidth=0, antialiased=False, **kwargs)
    low, high = kwargs["vmin"], kwargs["vmax"]
    ax.set_zlim(low, high if high > low else low + 1)
    return artist


def _axes_or_new(ax, projection=None):
    if ax is not None:
        if projection == "3d" and getattr(ax, "name", None) != "3d":
            raise ValueError(
                "A 3D surface needs 3D axes: create them with "
                "`fig.add_subplot(projection='3d')`."
            )
        return ax
    figure = plt.figure()
    return figure.add_subplot(projection=projection)


def _remember(landscape, key, ax, artists):
    landscape.axes_[key] = ax
    landscape.figures_[key] = ax.figure
    landscape.artists_[key] = artists
    landscape.ax_ = ax
    landscape.figure_ = ax.figure
    return landscape


def _filter_normalized(landscape) -> bool:
    return landscape.settings.get("normalization") == "filter"


def interactive_backend_active() -> bool:
    """Whether matplotlib draws to a window or notebook (so showing makes sense)."""
    from matplotlib.backends import BackendFilter, backend_registry

    backend = matplotlib.get_backend().lower()
    interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    return backend in interactive or "inline" in backend or "ipympl" in backend
