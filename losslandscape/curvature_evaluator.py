"""The evaluator of curvature maps: loss, metrics and the Hessian's extreme eigenvalues at each grid point."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.backends.base import PointEvaluator
from losslandscape.lanczos import extreme_eigenvalues


@dataclass(frozen=True)
class CurvatureSettings:
    """How `curvature_map` runs Lanczos at each point (see `losslandscape.lanczos.extreme_eigenvalues`).

    Attributes:
        max_iterations: Hessian-vector products per point at most.
        tolerance: Stop when both extreme eigenvalues move by less than
            this, relative to the spectral radius, in one step.
        seed: Seed of the start vector, the same at every point.
    """

    max_iterations: int = 40
    tolerance: float = 1e-3
    seed: int = 0


class CurvatureEvaluator(PointEvaluator):
    """Loss, compiled metrics and the Hessian's extreme eigenvalues at θ0 + Σ_k c_k·d_k.

    Built as `CurvatureEvaluator(model, batches, origin, directions,
    include_regularization, settings)`. It writes each point's weights into
    the model's trainable variables (the caller restores them); every point
    starts Lanczos from the same seeded vector, so a resumed run computes
    what an uninterrupted one would.
    """

    points_per_call = 1

    def __init__(self, model: keras.Model, batches, origin, directions, include_regularization: bool,
                 settings: CurvatureSettings):
        backend = current_backend()
        self._loss = backend.point_evaluator(model, batches, origin, directions, include_regularization)
        self._product = backend.hessian_vector_product(model, batches, include_regularization)
        self._variables = list(model.trainable_variables)
        self._settings = settings
        self._shapes = [tuple(v.shape) for v in self._variables]
        self._sizes = [int(np.prod(shape)) for shape in self._shapes]
        self._start = np.random.default_rng(settings.seed).standard_normal(sum(self._sizes))
        self.rebind(origin, directions)

    def rebind(self, origin, directions) -> None:
        self._loss.rebind(origin, directions)
        self._origin, self._directions = origin, directions

    def evaluate(self, points: np.ndarray) -> list[dict[str, float]]:
        return [self._at(point) for point in points]

    def _at(self, point) -> dict[str, float]:
        values = self._loss.evaluate(np.asarray([point]))[0]
        for position, variable in enumerate(self._variables):
            shift = sum(c * d[position] for c, d in zip(point, self._directions))
            variable.assign(np.asarray(self._origin[position] + shift, dtype=variable.dtype))
        found = extreme_eigenvalues(self._flat_product, self._start, self._settings.max_iterations,
                                    self._settings.tolerance)
        ratio = abs(found.smallest / found.largest) if found.largest != 0 else float("inf")
        return dict(values, lambda_max=found.largest, lambda_min=found.smallest, eigen_ratio=ratio)

    def _flat_product(self, flat: np.ndarray) -> np.ndarray:
        pieces = np.split(flat, np.cumsum(self._sizes)[:-1])
        vector = [piece.reshape(shape) for piece, shape in zip(pieces, self._shapes)]
        return np.concatenate([h.ravel() for h in self._product(vector)])
