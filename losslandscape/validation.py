"""Checks of the arguments every compute function shares, made before any work starts."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np


def checked_coords(name: str, coords) -> np.ndarray:
    """`coords` as a float64 array, or a ValueError unless it is 1D, finite, strictly increasing and has 2+ values.

    Examples:
        >>> checked_coords("xcoords", [-1, 0, 1])
        array([-1.,  0.,  1.])
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 1 or len(coords) < 2:
        raise ValueError(
            f"Expected `{name}` to be a 1D sequence of at least 2 values, "
            f"received shape {coords.shape}. Use e.g. np.linspace(-1, 1, 21)."
        )
    if not np.all(np.isfinite(coords)):
        raise ValueError(f"`{name}` must be finite, received: {coords}")
    if np.any(np.diff(coords) <= 0):
        raise ValueError(
            f"Expected `{name}` to be strictly increasing, received: {coords}. "
            "Sort them and drop repeats, e.g. with np.unique."
        )
    return coords


def evenly_spaced_coords(count_name: str, count, coordinate_range) -> np.ndarray:
    """`count` evenly spaced coordinates over `coordinate_range`, after checking both.

    Args:
        count_name: The argument's name in the caller, for the error message.
        count: Number of coordinates (at least 2).
        coordinate_range: `(min, max)` with min < max.

    Examples:
        >>> evenly_spaced_coords("points", 3, (-1, 1))
        array([-1.,  0.,  1.])
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 2:
        raise ValueError(f"Expected `{count_name}` >= 2, received: {count!r}")
    low, high = coordinate_range
    if not low < high:
        raise ValueError(f"Expected `coordinate_range` as (min, max) with min < max, received: {coordinate_range!r}")
    return np.linspace(low, high, count)


def check_positive_int(name: str, value: Optional[int]) -> None:
    """Raises a ValueError unless `value` is None or an integer >= 1.

    Examples:
        >>> check_positive_int("chunk_size", 0)
        Traceback (most recent call last):
        ...
        ValueError: Expected `chunk_size` to be a positive integer or None, received: 0
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise ValueError(f"Expected `{name}` to be a positive integer or None, received: {value!r}")


def check_writable(path, option: str = "`path`") -> None:
    """Raises an OSError unless a file can be written at `path` (its folder exists and is writable).

    The error names `option`, the argument that gave `path`, in its fix.

    Examples:
        >>> check_writable("/no/such/folder/surface.h5")
        Traceback (most recent call last):
        ...
        FileNotFoundError: Cannot write '/no/such/folder/surface.h5': the folder '/no/such/folder' does not exist. Create it, or pass another `path`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"Cannot write {path!r}: the folder {folder!r} does not exist. Create it, or pass another {option}."
        )
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise PermissionError(f"Cannot write {path!r}: no permission to write there. Pass another {option}.")
