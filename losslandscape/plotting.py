"""Drawing only: lines and surfaces onto matplotlib Axes.

Non-finite values (a loss that overflowed far from the minimum) are masked
and show as gaps.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

SURFACE_KINDS = ("contour", "contourf", "heatmap", "surface")


def plot_line(
    line,
    metric: str = "loss",
    ax=None,
    labels: Optional[Sequence[str]] = None,
    **line_kwargs,
) -> list:
    """Draws `metric` along the direction of a `LossLine`, one curve per dataset.

    Args:
        line: A `LossLine`.
        metric: "loss" or a compiled metric name.
        ax: Matplotlib Axes; a new figure when `None`.
        labels: Dataset labels to draw; all by default.
        **line_kwargs: Passed to `Axes.plot`.

    Returns:
        The list of `Line2D` drawn, one per dataset.

    Example:

    >>> from losslandscape import LossLine
    >>> line = LossLine(np.linspace(-1, 1, 5), {"train": np.linspace(-1, 1, 5) ** 2}, {"train": {}})
    >>> len(plot_line(line))
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
    _remember(line, "line", ax)
    return drawn


def plot_surface(
    surface,
    kind: str = "contour",
    log: bool = False,
    ax=None,
    label: Optional[str] = None,
    metric: str = "loss",
    **kwargs,
):
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
        The artist drawn: a `QuadContourSet`, `QuadMesh` or
        `Poly3DCollection`.

    Example:

    >>> from losslandscape import LossSurface
    >>> x = np.linspace(-1, 1, 5)
    >>> surface = LossSurface(x, x, {"train": x[:, None] ** 2 + x ** 2}, {"train": {}})
    >>> artist = plot_surface(surface, "heatmap")
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
    _remember(surface, kind, ax)
    return artist


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
    artist = ax.plot_surface(grid_x, grid_y, z_plot, linewidth=0, antialiased=False, **kwargs)
    ax.set_zlim(finite.min(), finite.max() if finite.max() > finite.min() else finite.min() + 1)
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


def _remember(landscape, kind, ax):
    landscape.axes_[kind] = ax
    landscape.figures_[kind] = ax.figure
    landscape.ax_ = ax
    landscape.figure_ = ax.figure


def _filter_normalized(landscape) -> bool:
    return landscape.settings.get("normalization") == "filter"


def interactive_backend_active() -> bool:
    """Whether matplotlib draws to a window or notebook (so showing makes sense)."""
    from matplotlib.backends import BackendFilter, backend_registry

    backend = matplotlib.get_backend().lower()
    interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    return backend in interactive or "inline" in backend or "ipympl" in backend
