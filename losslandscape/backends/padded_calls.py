"""K grid points per compiled call, for evaluators of either backend."""

from __future__ import annotations

from typing import Callable

import numpy as np


def evaluate_in_padded_calls(
    points: np.ndarray, points_per_call: int, call: Callable[[np.ndarray], dict], dtype
) -> list[dict[str, float]]:
    """Values at each row of coefficients, from `call(coefficients)` on `points_per_call` rows at a time.

    A short last chunk is padded with copies of its last row, so that every
    call has the shape the function was compiled for; the padding's values
    are dropped. `call` returns `{name: K values}`.
    """
    results: list[dict] = []
    for start in range(0, len(points), points_per_call):
        chunk = np.asarray(points[start : start + points_per_call], dtype=dtype)
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], points_per_call - len(chunk), axis=0)])
        values = {name: np.asarray(value) for name, value in call(padded).items()}
        results.extend({name: float(value[k]) for name, value in values.items()} for k in range(len(chunk)))
    return results
