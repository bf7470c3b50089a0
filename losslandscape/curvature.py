"""Curvature maps: the extreme eigenvalues of the loss Hessian at every point of a plane (Li et al., Section 6)."""

from __future__ import annotations

import os
from concurrent.futures import Executor
from typing import Optional, Sequence, Union

import keras
import numpy as np
from numpy.typing import ArrayLike

from losslandscape.compute import compute_surface_with
from losslandscape.curvature_evaluator import CurvatureSettings
from losslandscape.evaluation_settings import EvaluationSettings
from losslandscape.surface import LossSurface

def curvature_map(
    model: keras.Model,
    data,
    directions: Optional[Sequence[Sequence[np.ndarray]]] = None,
    xcoords: ArrayLike = np.linspace(-1.0, 1.0, 11),
    ycoords: Optional[ArrayLike] = None,
    *,
    labels: Optional[Sequence[str]] = None,
    seed: Optional[int] = None,
    normalization: Optional[str] = "filter",
    ignore: Optional[str] = "biasbn",
    orthogonal: bool = False,
    max_iterations: int = 40,
    tolerance: float = 1e-3,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    max_batches: Optional[int] = None,
    include_regularization: bool = True,
    path: Optional[Union[str, os.PathLike]] = None,
    executor: Optional[Executor] = None,
    chunk_size: Optional[int] = None,
    verbose: int = 1,
) -> LossSurface:
    """The Hessian's largest and most negative eigenvalues at every point of a plane, and their ratio.

    At each point θ0 + α·δ + β·η, the Hessian of the loss with respect to
    all trainable weights is probed with Hessian-vector products (automatic
    differentiation over all the data, inference mode, as `model.evaluate`'s
    loss), and Lanczos (`losslandscape.lanczos.extreme_eigenvalues`) finds
    its extreme eigenvalues λ_max and λ_min. The paper's convexity map is
    |λ_min / λ_max|: near 0 where the landscape is locally convex, large
    where it bends down as strongly as up. Lanczos finds both ends of the
    spectrum in one run, where power iteration would need a second, shifted
    run for λ_min, and converges in far fewer products.

    Each point costs up to `max_iterations` Hessian-vector products (each
    about 3–4 forward passes) plus one loss evaluation, so the grid is
    usually coarser than the loss surface's. Like `compute_surface`, the
    run saves to `path` after every chunk, resumes from it, and spreads over
    `executor`.

    Args:
        model: A compiled Keras model; its weights are θ0 and are restored, bitwise.
        data: One dataset, a tuple or a dict of them (see `compute_surface`).
        directions: `[δ, η]`; drawn with `random_directions` when `None`.
        xcoords: The α values (at least 2).
        ycoords: The β values; `xcoords` when `None`.
        labels, seed, normalization, ignore, orthogonal: As in `compute_surface`.
        max_iterations: Hessian-vector products per point at most.
        tolerance: Lanczos stops when both eigenvalues move by less than
            this, relative to the larger of |λ_min| and |λ_max|, in one step.
        **others: `batch_size`, `max_samples`, `max_batches`,
            `include_regularization`, `path`, `executor`, `chunk_size` and
            `verbose` are as in `compute_surface`.

    Returns:
        A `LossSurface` whose `losses` hold the loss and whose `metrics`
        hold, next to the compiled metrics, "lambda_max", "lambda_min" and
        "eigen_ratio" (|λ_min / λ_max|). Draw the paper's map with
        `surface.plot("heatmap", metric="eigen_ratio")`.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
        >>> model.compile(loss="mse")
        >>> x = np.array([[1.0, 0.0], [0.0, 2.0]]); y = np.zeros((2, 1))
        >>> curvature = curvature_map(model, (x, y), xcoords=[-1, 1], verbose=0)
        >>> curvature.values(metric="lambda_max").round(4).tolist()  # 2/N · XᵀX: eigenvalues 1 and 4
        [[4.0, 4.0], [4.0, 4.0]]
    """
    if not isinstance(max_iterations, (int, np.integer)) or isinstance(max_iterations, bool) or max_iterations < 2:
        raise ValueError(f"Expected `max_iterations` to be an integer >= 2, received: {max_iterations!r}")
    if not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
        raise ValueError(f"Expected `tolerance` to be a number in (0, 1), received: {tolerance!r}")
    evaluation = EvaluationSettings(
        batch_size=batch_size, max_samples=max_samples, max_batches=max_batches,
        include_regularization=include_regularization, points_per_call=1, chunk_size=chunk_size or 1,
        verbose=verbose, curvature=CurvatureSettings(int(max_iterations), float(tolerance)),
    )
    return compute_surface_with(
        model, data, directions, xcoords, ycoords, evaluation, labels=labels, path=path, executor=executor,
        drawing=dict(seed=seed, normalization=normalization, ignore=ignore, orthogonal=orthogonal),
    )
