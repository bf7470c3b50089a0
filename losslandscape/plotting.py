"""Drawing only: lines and surfaces onto matplotlib Axes.

Every function returns the landscape it drew, as scikit-learn's displays
do: `ax_` and `figure_` are the Axes and Figure of the last plot,
`axes_[key]`, `figures_[key]` and `artists_[key]` those of each kind of plot
(`key` is "line", "metric", "path" or the surface's `kind`). Non-finite
values (a loss that overflowed far from the minimum: NaN, +inf or -inf)
are masked and show as gaps in every kind of plot, never in the colour of
the largest value; the plot then says how many points are gaps, in a note
kept in `artists_["not_finite"]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, FuncNorm, ListedColormap, LogNorm, Normalize
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from losslandscape.contour_levels import DEFAULT_LEVEL_COUNT, default_levels

from losslandscape.metric_names import accuracy_metric_name

if TYPE_CHECKING:  # the landscapes call these functions from their `plot` methods
    from losslandscape.surface import LossLine, LossSurface
    from losslandscape.trajectory import PCADirections

SURFACE_KINDS = ("contour", "contourf", "heatmap", "surface")
# `plot_loss_3D`'s names for two of the kinds, accepted wherever a kind is.
KIND_ALIASES = {"levels": "contour", "3d": "surface"}
# The 3D camera looks down on the basin from above its rim (matplotlib's default, 30°, hides its bottom).
SURFACE_ELEVATION = 45
SURFACE_AZIMUTH = -60
# A 3D surface is drawn whole unless its values rise above the top level by more than this many times the
# levels' own range above the minimum; then the cells above the top level are left out.
SURFACE_WHOLE_RANGE = 3.0
# The 3D colour bar's height as a fraction of the Axes': about that of the box the surface is drawn in.
SURFACE_COLORBAR_SHRINK = 0.8
# Contour labels sit at least this fraction of the axes' width and height from the edges.
LABEL_MARGIN = 0.08
# Two labels' centres lie at least this far apart along x or along y (fractions of the axes' width and height),
# so that labels of 8-point text, about 0.1 wide and 0.05 high on a 4-inch plot, do not overlap.
LABEL_SEPARATION = np.array([0.14, 0.08])
# Lines whose extent is below this fraction of the axes are too small to carry a label.
MIN_LABELLED_EXTENT = 0.15
MAX_COLORBAR_TICKS = 7
# Linear colour bars step by 1, 2, 2.5 or 5 times a power of ten (matplotlib's default also allows 0.15, 0.08, ...).
LINEAR_TICK_STEPS = (1, 2, 2.5, 5, 10)
# A colour bar whose levels are positive and span this ratio or more is drawn on a log scale.
COLORBAR_LOG_RATIO = 3.0
# The colour bands a colour bar's arrows add below and above the levels, for each value of `extend`.
ARROWS = {"neither": 0, "min": 1, "max": 1, "both": 2}
# Contour lines in viridis without its palest yellows, which are hard to see on white.
LINE_COLORS = ListedColormap(matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, 256)), name="viridis_lines")


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

    Examples:
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
    _note_not_finite(line, ax, [line.values(label, metric) for label in labels or line.labels])
    ax.set_xlabel("α (filter-normalized direction)" if _filter_normalized(line) else "α")
    ax.set_ylabel(metric)
    if len(drawn) > 1 or labels:
        ax.legend()
    return _remember(line, "line", ax, drawn)


def plot_interpolation(line: LossLine, metric: Optional[str] = None, ax=None) -> LossLine:
    """Draws loss (left axis) and a metric (right axis) along an interpolation, as in Li et al. Fig. 3.

    Datasets differ by line style (solid, dashed, ...), loss and metric by
    colour. A point where the loss or the metric is not finite is a gap,
    counted in a note on the plot.

    Args:
        line: A `LossLine`, typically from `interpolate`.
        metric: The metric for the right axis; the accuracy-like metric by
            default, none if the model has none.
        ax: Matplotlib Axes for the loss; a new figure when `None`.

    Returns:
        `line`, with the loss curves in `artists_["line"]` and the metric's
        in `artists_["metric"]`, drawn on the twin Axes `axes_["metric"]`.

    Examples:
        >>> from losslandscape import LossLine
        >>> t = np.linspace(-0.5, 1.5, 9)
        >>> line = LossLine(t, {"train": (t - 0.5) ** 2}, {"train": {"accuracy": 1 - (t - 0.5) ** 2 / 2}})
        >>> sorted(plot_interpolation(line).artists_)
        ['line', 'metric']
    """
    ax = _axes_or_new(ax)
    styles = ["-", "--", ":", "-."]
    metric = metric or accuracy_metric_name(line.metrics[line.labels[0]])
    drawn: dict[str, list] = {"loss": []}
    for index, label in enumerate(line.labels):
        style = styles[index % len(styles)]
        values = np.ma.masked_invalid(line.values(label))
        drawn["loss"].extend(ax.plot(line.coords, values, style, color="C0", label=f"{label} loss"))
    _note_not_finite(line, ax, [_gaps_of_both(line, label, metric) for label in line.labels])
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
    ax.legend(handles, [h.get_label() for h in handles], loc="best", fontsize=8)
    return line


def _gaps_of_both(line, label, metric):
    """`label`'s losses, NaN also where its metric (drawn beside them) is not finite: a point is a gap in either."""
    if metric is None:
        return line.values(label)
    return np.where(np.isfinite(line.values(label, metric)), line.values(label), np.nan)


def plot_surface(
    surface: LossSurface,
    kind: str = "contour",
    log: bool = False,
    ax=None,
    label: Optional[str] = None,
    metric: str = "loss",
    *,
    levels=None,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    colorbar: bool = True,
    **kwargs,
) -> LossSurface:
    """Draws one dataset's values of a `LossSurface`.

    By default the levels (and the colour scale) are chosen to show the
    basin: dense near the minimum and clipped far from it
    (`losslandscape.contour_levels.default_levels`); θ0 is marked with a
    star on flat plots. Colour bars match the plot's height, and their
    length is proportional to value (on a log scale where the levels span
    a factor of 3 or more), with an arrow where values lie beyond them.
    A 3D surface is drawn whole unless it rises more than 3 times the
    levels' range above them (a loss that explodes at the edges); then the
    cells above the top level are left out, and a note says how many
    (`artists_["clipped"]`).

    Args:
        surface: A `LossSurface`.
        kind: "contour" (labelled contour lines), "contourf" (filled
            contours with a colour bar), "heatmap" or "surface" (3D).
        log: Logarithmic colour scale (for "surface", log10 of z).
        ax: Matplotlib Axes, 3D for "surface"; a new figure when `None`.
        label: Dataset label; the first dataset by default.
        metric: "loss" or a compiled metric name.
        levels: The levels (an array), or how many to choose (an int).
        vmin, vmax: Bounds of the levels and colours, e.g. to share one
            scale across figures; values above `vmax` are clipped (in 3D,
            the cells above it are left out).
        colorbar: Draw a colour bar ("contourf", "heatmap" and "surface").
        **kwargs: Passed to `contour`, `contourf`, `pcolormesh` or
            `plot_surface` (e.g. `cmap=`).

    Returns:
        `surface`, with the artist drawn (a `QuadContourSet`, `QuadMesh` or
        `Poly3DCollection`) in `artists_[kind]`.

    Examples:
        >>> from losslandscape import LossSurface
        >>> x = np.linspace(-1, 1, 5)
        >>> surface = LossSurface(x, x, {"train": x[:, None] ** 2 + x ** 2}, {"train": {}})
        >>> type(plot_surface(surface, "heatmap").artists_["heatmap"]).__name__
        'QuadMesh'
    """
    kind = surface_kind(kind)
    check_axes_for_kind(ax, kind)
    values = surface.values(label, metric)
    # Values are stored [i, j] for (x_i, y_j); matplotlib wants rows along y.
    z = np.ma.masked_invalid(np.asarray(values, dtype=np.float64).T)
    if log:
        z = np.ma.masked_less_equal(z, 0.0)
    if z.count() == 0:
        raise ValueError(f"No finite{' positive' if log else ''} {metric} values to plot.")
    chosen_here = levels is None or isinstance(levels, (int, np.integer))
    if chosen_here:
        count = DEFAULT_LEVEL_COUNT if levels is None else int(levels)
        levels = default_levels(z.compressed(), metric, count, vmin=vmin, vmax=vmax, log=log)
    levels = np.asarray(levels, dtype=np.float64)
    grid_x, grid_y = np.meshgrid(surface.xcoords, surface.ycoords)
    if kind == "surface":
        new_axes = ax is None
        ax = _axes_or_new(ax, projection="3d")
        artist, clipped = _draw_3d(ax, grid_x, grid_y, z, log, levels, metric, vmax=vmax, colorbar=colorbar,
                                   **kwargs)
        surface.artists_.pop("clipped", None)
        if clipped is not None:
            surface.artists_["clipped"] = clipped
        if new_axes:
            ax.view_init(elev=SURFACE_ELEVATION, azim=SURFACE_AZIMUTH)
    else:
        ax = _axes_or_new(ax)
        artist = _draw_flat(ax, kind, grid_x, grid_y, z, log, levels, metric, chosen_here, colorbar, **kwargs)
        _mark_origin(ax, surface)
    ax.set_xlabel("α")
    ax.set_ylabel("β")
    ax.set_title(_title(surface, label, metric))
    _note_not_finite(surface, ax, [values])
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

    Examples:
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


def _draw_flat(ax, kind, grid_x, grid_y, z, log, levels, metric, chosen_here=True, colorbar=True, **kwargs):
    if kind == "contour":
        kwargs.setdefault("cmap", LINE_COLORS)
        kwargs.setdefault("norm", LogNorm(vmin=levels[0], vmax=levels[-1]) if log else _basin_norm(z, levels))
        artist = ax.contour(grid_x, grid_y, z, levels=levels, **kwargs)
        _label_lines_inside(ax, artist)
    elif kind == "heatmap":
        kwargs.setdefault("cmap", "viridis")
        kwargs.setdefault("norm", LogNorm(vmin=levels[0], vmax=levels[-1], clip=True) if log else _basin_norm(z, levels))
        artist = ax.pcolormesh(grid_x, grid_y, z, shading="nearest", **kwargs)
    else:
        kwargs.setdefault("cmap", "viridis")
        if chosen_here:
            # Filled from the minimum up, so that only values above the last level need a colour of their own.
            levels = np.concatenate([[min(z.min(), levels[0])], levels[levels > z.min()]])
        extend = kwargs.pop("extend", None) or _extend(z, levels)
        if log:
            kwargs.setdefault("norm", LogNorm(vmin=levels[0], vmax=levels[-1]))
        elif len(levels) >= 2:
            # A colour map of fewer colours than bands (e.g. "tab10" for 12 levels) repeats some; BoundaryNorm
            # refuses it.
            bands = len(levels) - 1 + ARROWS[extend]
            colours = plt.get_cmap(kwargs["cmap"])
            kwargs["cmap"] = colours if colours.N >= bands else colours.resampled(bands)
            kwargs.setdefault("norm", BoundaryNorm(levels, kwargs["cmap"].N, extend=extend))
        artist = ax.contourf(grid_x, grid_y, z, levels=levels, extend=extend, **kwargs)
    if kind != "contour" and colorbar:
        colorbar_beside(ax, artist, metric, levels, log)
    ax.set_aspect("equal", adjustable="box")
    return artist


def _draw_3d(ax, grid_x, grid_y, z, log, levels, metric, vmax=None, colorbar=True, **kwargs):
    heights = np.ma.log10(z) if log else z
    levels = np.log10(levels) if log else levels
    low, high = float(heights.min()), float(heights.max())
    # Drawn whole, as the reference code draws it, unless it rises far above the levels (a loss that explodes at
    # the edges) or above the user's `vmax`: then the cells above the top level are left out, not flattened.
    cut = high
    if levels[-1] > low and (vmax is not None or high - low > SURFACE_WHOLE_RANGE * (levels[-1] - low)):
        cut = levels[-1]
    above = heights > cut
    # plot_surface ignores masks: hand it NaN so those facets are left out.
    heights = np.ma.filled(np.ma.masked_where(above, heights).astype(np.float64), np.nan)
    kwargs.setdefault("cmap", "viridis")
    kwargs.setdefault("norm", Normalize(vmin=low, vmax=cut if cut > low else low + 1))
    # One facet per grid cell (matplotlib's default samples 50 per axis); shaded smoothly.
    kwargs.setdefault("rstride", 1)
    kwargs.setdefault("cstride", 1)
    artist = ax.plot_surface(grid_x, grid_y, heights, linewidth=0, antialiased=True, **kwargs)
    ax.set_zlim(kwargs["norm"].vmin, kwargs["norm"].vmax)
    name = f"log10 {metric}" if log else metric
    ax.set_zlabel(name, labelpad=6)
    if colorbar:
        drawn = ax.figure.colorbar(artist, ax=ax, shrink=SURFACE_COLORBAR_SHRINK, pad=0.12, label=name,
                                   extend="max" if above.any() else "neither")
        drawn.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    clipped = int(np.sum(above))
    note = None
    if clipped:
        shown = 10**cut if log else cut
        note = ax.text2D(0.99, 0.98, f"{clipped} of {z.size} points above {metric} = {shown:.3g} not drawn",
                         transform=ax.transAxes, fontsize=7, ha="right", va="top", zorder=5,
                         bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.8, linewidth=0))
    return artist, note


def _basin_norm(z, levels):
    """A colour scale that spends the colours evenly on the levels, so the basin's fine levels get many."""
    knots = np.unique(np.concatenate([[min(z.min(), levels[0])], levels]))
    if len(knots) < 2:
        return Normalize(vmin=knots[0], vmax=knots[0] + 1)
    positions = np.linspace(0.0, 1.0, len(knots))

    def forward(values):
        # np.interp drops masks (a masked +inf would get the top colour): keep them, and gaps stay gaps.
        return np.ma.masked_array(np.interp(np.ma.getdata(values), knots, positions), mask=np.ma.getmask(values))

    def inverse(values):
        return np.interp(values, positions, knots)

    return FuncNorm((forward, inverse), vmin=knots[0], vmax=knots[-1], clip=True)


def _extend(z, levels) -> str:
    below, above = z.min() < levels[0], z.max() > levels[-1]
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[(below, above)]


def shared_scale(kind: str, values: np.ndarray, levels) -> dict:
    """The keyword arguments of `plot_surface` that give panels of `values` one colour scale (and one arrow).

    Each panel would otherwise start its colours at its own minimum.
    """
    finite = np.ma.masked_invalid(np.asarray(values, dtype=np.float64))
    levels = np.asarray(levels, dtype=np.float64)
    if kind == "contourf":
        return {"extend": _extend(finite, levels)}
    return {"norm": _basin_norm(finite, levels)}


def colorbar_beside(ax, artist, metric: str, levels, log: bool = False):
    """A colour bar beside `ax` (or a list of Axes), as tall as them, whose length is proportional to value.

    The colours stay spent evenly on the levels (many in the basin), but a
    distance along the bar is a distance in `metric`, or in its logarithm
    where the levels are positive and span COLORBAR_LOG_RATIO or more, as
    they do in a basin.

    Returns:
        The `Colorbar`.
    """
    if isinstance(ax, (list, tuple)):
        colorbar = ax[0].figure.colorbar(artist, ax=ax, label=metric, spacing="proportional", aspect=30)
    else:
        colorbar_axes = ax.inset_axes([1.04, 0.0, 0.045, 1.0])
        colorbar = ax.figure.colorbar(artist, cax=colorbar_axes, label=metric, spacing="proportional")
    low, high = levels[0], levels[-1]
    logarithmic = log or (low > 0 and high / low >= COLORBAR_LOG_RATIO)
    colorbar.ax.set_yscale("log" if logarithmic else "linear")
    linear_ticks = MaxNLocator(MAX_COLORBAR_TICKS, steps=LINEAR_TICK_STEPS)
    colorbar.set_ticks(_log_ticks(low, high) if logarithmic else linear_ticks.tick_values(low, high))
    colorbar.ax.set_ylim(low, high)
    colorbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    colorbar.ax.yaxis.set_minor_formatter(NullFormatter())
    return colorbar


def _log_ticks(low, high) -> np.ndarray:
    """1-2-5 ticks between low and high; finer steps on a short range."""
    decades = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    for steps in ((1.0,), (1.0, 2.0, 5.0), tuple(range(1, 10))):
        ticks = np.array([step * 10.0**decade for decade in decades for step in steps])
        ticks = ticks[(ticks >= low) & (ticks <= high)]
        if len(ticks) >= 3:
            return ticks
    return np.geomspace(low, high, 4)


def _label_lines_inside(ax, contour_set, max_labels: int = 6):
    """Labels up to `max_labels` lines, each where it is farthest from the other lines and labels, inside the axes.

    A label placed well inside the axes is never cut at an edge, and one
    placed where the lines are sparse does not cover its neighbours.
    """
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    scale = np.array([x1 - x0, y1 - y0])
    units = [(path.vertices - [x0, y0]) / scale for path in contour_set.get_paths()]  # in axes fractions
    levels = list(contour_set.levels)
    labellable = {}
    for index, unit in enumerate(units):
        if len(unit) == 0 or np.ptp(unit, axis=0).max() < MIN_LABELLED_EXTENT:
            continue
        inside = np.all((unit >= LABEL_MARGIN) & (unit <= 1 - LABEL_MARGIN), axis=1)
        if inside.any():
            labellable[index] = unit[inside][:: max(1, int(inside.sum()) // 200)]
    chosen = list(labellable)[:: -max(1, -(-len(labellable) // max_labels))]
    positions: list[np.ndarray] = []
    labelled = []
    for index in chosen:
        candidates = labellable[index]
        if positions:  # far enough from every label placed so far not to overlap it
            apart = np.abs(candidates[:, None, :] - np.reshape(positions, (1, -1, 2))) >= LABEL_SEPARATION
            candidates = candidates[np.all(apart.any(axis=2), axis=1)]
            if len(candidates) == 0:
                continue
        others = [unit for i, unit in enumerate(units) if i != index and len(unit)]
        lines = np.concatenate(others) if others else np.empty((0, 2))
        # Other lines, thinned to a few thousand vertices, and every label placed so far.
        obstacles = np.concatenate([lines[:: max(1, len(lines) // 4000)], np.reshape(positions, (-1, 2))])
        if len(obstacles) == 0:
            best = candidates[0]
        else:
            distances = np.min(np.linalg.norm(candidates[:, None, :] - obstacles[None, :, :], axis=2), axis=1)
            best = candidates[np.argmax(distances)]
        positions.append(best)
        labelled.append(levels[index])
    if positions:
        manual = [tuple(p * scale + [x0, y0]) for p in positions]
        ax.clabel(contour_set, levels=labelled, manual=manual, inline=True, fontsize=8, fmt=lambda value: f"{value:.3g}")


def _note_not_finite(landscape, ax, arrays) -> None:
    """Says on `ax` how many of the points drawn are NaN or infinite (gaps), in `artists_["not_finite"]`."""
    landscape.artists_.pop("not_finite", None)
    values = np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in arrays])
    gaps = int(np.sum(~np.isfinite(values)))
    if gaps == 0:
        return
    text = f"{gaps} of {values.size} points not finite (gaps)"
    if getattr(ax, "name", None) == "3d":  # at the top: the 3D axes' labels fill the bottom corners
        place, y, align = ax.text2D, 0.98, "top"
    else:
        place, y, align = ax.text, 0.01, "bottom"
    landscape.artists_["not_finite"] = place(
        0.01, y, text, transform=ax.transAxes, fontsize=7, ha="left", va=align, zorder=5,
        bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.8, linewidth=0),
    )


def _mark_origin(ax, surface):
    """A star at θ0 (α = β = 0), where it lies on the plot."""
    if surface.xcoords.min() <= 0 <= surface.xcoords.max() and surface.ycoords.min() <= 0 <= surface.ycoords.max():
        ax.plot(0.0, 0.0, marker="*", markersize=10, color="white", markeredgecolor="black", markeredgewidth=0.8,
                linestyle="none", zorder=4, label="θ0")


def _title(surface, label, metric) -> str:
    """The metric's name, with the dataset's label unless the user named no dataset."""
    label = label or surface.labels[0]
    unnamed = surface.settings.get("dataset_labels") == "default" and len(surface.labels) == 1
    return metric if unnamed else f"{label} {metric}"


def surface_kind(kind: str) -> str:
    """`kind` as one of SURFACE_KINDS, with "levels" and "3d" read as "contour" and "surface"."""
    if kind not in SURFACE_KINDS and kind not in KIND_ALIASES:
        raise ValueError(
            f"Expected `kind` to be one of {SURFACE_KINDS} (or {tuple(KIND_ALIASES)}), received: {kind!r}"
        )
    return KIND_ALIASES.get(kind, kind)


def check_axes_for_kind(ax, kind: str) -> None:
    """Raises a ValueError if `ax` cannot hold `kind`: a 3D surface on 2D axes, or a 2D plot on 3D axes."""
    if ax is None:
        return
    three_d = getattr(ax, "name", None) == "3d"
    if kind == "surface" and not three_d:
        raise ValueError(
            f"A 3D surface needs 3D axes, received 2D axes ({type(ax).__name__}): create them with "
            "`fig.add_subplot(projection='3d')`."
        )
    if kind != "surface" and three_d:
        raise ValueError(
            f"A {kind} plot needs 2D axes, received 3D axes: create them with `fig.add_subplot()`."
        )


def _axes_or_new(ax, projection=None):
    if ax is not None:
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
