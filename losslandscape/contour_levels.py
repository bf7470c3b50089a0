"""Default contour levels and colour scales that show the basin: dense near the minimum, clipped far from it."""

from __future__ import annotations

from typing import Optional

import numpy as np

from losslandscape.metric_names import CURVATURE_METRICS, accuracy_metric_name

DEFAULT_LEVEL_COUNT = 12
# Levels sit at these fractions of the grid's values (quantiles), geometrically spaced: the innermost
# line encloses the lowest 2 % of the points, the outermost leaves the highest 5 % above it, clipped.
INNERMOST_QUANTILE = 0.02
OUTERMOST_QUANTILE = 0.95
# With vmin/vmax given, levels are spaced evenly in log(L - vmin) from this fraction of vmax - vmin.
INNERMOST_FRACTION = 1e-2


def default_levels(
    values: np.ndarray,
    metric: str = "loss",
    count: int = DEFAULT_LEVEL_COUNT,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    log: bool = False,
) -> np.ndarray:
    """Contour levels for a landscape: several lines around its minimum, far-away values left above the last.

    Without `vmin`/`vmax` the levels are quantiles of the finite values, at
    fractions spaced geometrically from 2 % to 95 % (from the best value of
    an accuracy-like metric, whose basin is its maximum), rounded to 3
    significant digits: whatever the landscape's range, the innermost lines
    circle the minimum, and the highest 5 % of the values (the far edges
    of an exploding landscape) are clipped. With `vmin` and/or `vmax` (to
    share one scale across figures), the levels are spaced evenly in
    log(L − vmin) between them (in log L with `log=True`), independent of
    the values. The curvature maps' metrics (`CURVATURE_METRICS`), which
    have no basin to zoom into, get evenly spaced levels from `vmin` (their
    minimum) to `vmax` (their maximum).

    Args:
        values: The values, any shape; NaN and inf are ignored.
        metric: The metric's name; accuracy-like metrics have their basin at the top.
        count: Number of levels at most.
        vmin, vmax: Bounds of the levels; the data's by default.
        log: Levels for a logarithmic scale (positive values only).

    Returns:
        Strictly increasing levels.

    Examples:
        A bowl rising from 0.1 to 10.1: four of its twelve levels circle the
        centre within 0.3 of it (where the loss is below 0.55).

        >>> r = np.hypot(*np.meshgrid(np.linspace(-1, 1, 21), np.linspace(-1, 1, 21)))
        >>> [float(level) for level in default_levels(0.1 + 5 * r**2)[:5]]
        [0.28, 0.325, 0.35, 0.55, 0.6]
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite) & ((finite > 0) if log else True)]
    if finite.size == 0:
        raise ValueError(f"No finite{' positive' if log else ''} {metric} values to draw levels for.")
    top_is_best = accuracy_metric_name([metric]) is not None
    if metric in CURVATURE_METRICS and not log:
        low = finite.min() if vmin is None else float(vmin)
        high = finite.max() if vmax is None else float(vmax)
        return np.linspace(low, high if high > low else low + 1.0, count)
    if vmin is not None or vmax is not None:
        low = finite.min() if vmin is None else float(vmin)
        high = finite.max() if vmax is None else float(vmax)
        if not high > low:
            raise ValueError(f"Expected vmin < vmax for the levels, received vmin={low!r}, vmax={high!r}.")
        if log:
            return np.geomspace(max(low, np.finfo(float).tiny), high, count)
        steps = np.geomspace(INNERMOST_FRACTION, 1.0, count)
        return (high - steps[::-1] * (high - low)) if top_is_best else (low + steps * (high - low))
    fractions = np.geomspace(INNERMOST_QUANTILE, OUTERMOST_QUANTILE, count)
    quantiles = np.quantile(finite, 1.0 - fractions if top_is_best else fractions)
    levels = np.unique(_round_significant(quantiles, 3))
    levels = levels[(levels > finite.min()) | top_is_best]
    if len(levels) < 2:  # a flat or nearly flat landscape: evenly spaced levels over its whole range
        low, high = finite.min(), finite.max()
        return np.linspace(low, high if high > low else low + 1.0, count)
    return levels


def _round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    magnitude = np.floor(np.log10(np.where(values == 0, 1.0, np.abs(values))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(values * scale) / scale
