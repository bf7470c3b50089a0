"""1D linear interpolation between two solutions (Goodfellow et al. 2015; Li et al. Fig. 3)."""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
from numpy.typing import ArrayLike

from losslandscape.datasets import prepare_labelled_data
from losslandscape.directions import variables_values
from losslandscape.engine import check_compiled, evaluate_grid
from losslandscape.surface import LossLine
from losslandscape.validation import checked_coords


def interpolate(
    model_a: keras.Model,
    model_b: keras.Model,
    data,
    coords: ArrayLike = np.linspace(-0.5, 1.5, 41),
    *,
    labels: Optional[Sequence[str]] = None,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    include_regularization: bool = True,
    verbose: int = 1,
) -> LossLine:
    """Loss and metrics along θ(t) = (1 − t)·θa + t·θb.

    Every weight is interpolated, BatchNorm moving means and variances
    included (the reference's "states"), so that t = 0 and t = 1 reproduce
    `model_a.evaluate` and `model_b.evaluate` (to float32 rounding at t = 1). Evaluation runs on
    `model_a`, whose weights are restored afterwards; `model_b` is only read.

    Args:
        model_a: Compiled model at t = 0.
        model_b: A model of the same architecture at t = 1.
        data: One dataset, a tuple of datasets or `{label: dataset}`.
        coords: The values of t (the reference uses [-0.5, 1.5]).
        labels: One label per dataset (default "train", "test").
        batch_size, max_samples, include_regularization, verbose: As in
            `compute_line`.

    Returns:
        A `LossLine` over t, with `settings["kind"] == "interpolation"`.

    Examples:
        >>> line = interpolate(small_batch_model, large_batch_model,
        ...                    ((x_train, y_train), (x_test, y_test)))  # doctest: +SKIP
        >>> plot_interpolation(line)  # doctest: +SKIP
    """
    grid = checked_coords("coords", coords)
    variables_a = list(model_a.weights)
    differences = _weight_differences(model_a, model_b)
    check_compiled(model_a)
    prepared = prepare_labelled_data(model_a, data, labels, batch_size, max_samples)
    settings = {
        "kind": "interpolation",
        "num_samples": {label: b.num_samples for label, b in prepared.items()},
        "batch_size": batch_size,
        "max_samples": max_samples,
        "include_regularization": include_regularization,
    }
    line = LossLine(
        grid,
        {label: np.full(len(grid), np.nan) for label in prepared},
        {},
        settings=settings,
        computed={label: np.zeros(len(grid), bool) for label in prepared},
    )
    evaluate_grid(
        model_a, prepared, [differences], grid[:, None], include_regularization=include_regularization,
        verbose=verbose, variables=variables_a, on_chunk=line.record,
    )
    return line


def _weight_differences(model_a, model_b) -> list[np.ndarray]:
    """θb − θa for every weight, after checking that the architectures match."""
    weights_a, weights_b = list(model_a.weights), list(model_b.weights)
    shapes_a = [(v.name, tuple(v.shape)) for v in weights_a]
    shapes_b = [(v.name, tuple(v.shape)) for v in weights_b]
    if shapes_a != shapes_b:
        raise ValueError(
            "The two models have different architectures: their weights are "
            f"{len(shapes_a)} arrays {shapes_a[:3]}... and {len(shapes_b)} arrays "
            f"{shapes_b[:3]}... Interpolate between two trainings of the same model."
        )
    values_a, values_b = variables_values(weights_a), variables_values(weights_b)
    return [(b.astype(np.float64) - a.astype(np.float64)) for a, b in zip(values_a, values_b)]
