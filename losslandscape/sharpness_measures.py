"""Sharpness of a 1D landscape as numbers: how fast the loss rises around θ0 and how wide its basin is."""

from __future__ import annotations

from typing import Optional

import numpy as np

from losslandscape.surface import LossLine


def sharpness(line: LossLine, label: Optional[str] = None, metric: str = "loss") -> dict:
    """The rise of the loss at α = ±0.5 and the widths of the basin around α = 0, as the sanity checks report them.

    Widths are measured between the points nearest α = 0 on either side
    where the curve first reaches the threshold (linearly interpolated); a
    curve that stays below it up to an end of the range is as wide as the
    range there. Average the numbers over several directions for a figure
    that does not depend on one random direction.

    Args:
        line: A `LossLine` over a range that contains α = 0.
        label: Dataset label; the first dataset by default.
        metric: "loss" or a compiled metric name.

    Returns:
        `{"rise_at_0.5": mean of L(±0.5) − L(0), "doubling_width": width
        where L < 2·L(0), "width_plus_1": width where L < L(0) + 1}`.

    Examples:
        >>> alpha = np.linspace(-1, 1, 201)
        >>> numbers = sharpness(LossLine(alpha, {"train": 1 + 4 * alpha**2}, {"train": {}}))
        >>> round(numbers["rise_at_0.5"], 3), round(numbers["doubling_width"], 3)
        (1.0, 1.0)
    """
    coords = np.asarray(line.coords, dtype=np.float64)
    values = np.asarray(line.values(label, metric), dtype=np.float64)
    if not coords.min() <= 0.0 <= coords.max():
        raise ValueError(f"Sharpness is measured around α = 0, but the line spans [{coords.min():g}, {coords.max():g}].")
    centre = int(np.argmin(np.abs(coords)))
    at_zero = values[centre]
    return {
        "rise_at_0.5": float(np.mean(np.interp([-0.5, 0.5], coords, values)) - at_zero),
        "doubling_width": _width_below(coords, values, centre, 2 * at_zero),
        "width_plus_1": _width_below(coords, values, centre, at_zero + 1.0),
    }


def _width_below(coords: np.ndarray, values: np.ndarray, centre: int, threshold: float) -> float:
    """Width of the interval around `coords[centre]` where the curve stays below `threshold`."""
    left, right = coords[0], coords[-1]
    for k in range(centre, 0, -1):
        if values[k - 1] >= threshold:
            left = np.interp(threshold, [values[k], values[k - 1]], [coords[k], coords[k - 1]])
            break
    for k in range(centre, len(coords) - 1):
        if values[k + 1] >= threshold:
            right = np.interp(threshold, [values[k], values[k + 1]], [coords[k], coords[k + 1]])
            break
    return float(right - left)
