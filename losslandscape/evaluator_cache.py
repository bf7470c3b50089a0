"""Compiled evaluators kept between calls in one process, so that a second landscape of a model compiles nothing.

An evaluator is reused only for the same model object with the same
variables and compiled metrics (a `compile()` or a changed `trainable`
makes new ones), the same data (by content hash), the same moved
variables, the same number of directions, zero for the same whole
variables, and the same settings. Directions, θ0 and coefficients are
inputs of the compiled functions, so they may change.
"""

from __future__ import annotations

import collections
from typing import Callable, Sequence

import keras
import numpy as np

from losslandscape.backends.base import ArrayBatches, PointEvaluator

# Each entry holds its model, data and compiled functions alive: a few are enough for the usual
# notebook (plot_loss, then plot_loss_3D, on one or two models).
MAX_CACHED_EVALUATORS = 4

_CACHE: collections.OrderedDict = collections.OrderedDict()


def evaluator_key(model: keras.Model, batches, variables: Sequence, directions, include_regularization: bool
                  ) -> tuple | None:
    """What must match for an evaluator to be reused, but for its points per call; None for streamed data."""
    if not isinstance(batches, ArrayBatches):
        return None  # a stream larger than memory: hashing it would read it all again
    moved = tuple(
        bool(np.any([np.any(direction[position]) for direction in directions])) for position in range(len(variables))
    )
    return (
        id(model),
        tuple(id(v) for v in model.variables),
        tuple(id(m) for m in model.metrics),
        tuple(id(v) for v in variables),
        len(directions),
        moved,
        include_regularization,
        type(batches).__name__,
        batches.batch_size,
        batches.num_samples,
        batches.fingerprint(),
    )


def cached_evaluator(key, origin, directions, build: Callable[[], PointEvaluator]) -> PointEvaluator:
    """The evaluator cached under `key`, moved to `origin` and `directions`, or a new one from `build()`."""
    if key is None:
        return build()
    evaluator = _CACHE.get(key)
    if evaluator is None:
        evaluator = build()
    else:
        evaluator.rebind(origin, directions)
    # Kept as the most recently used; the least recently used beyond MAX_CACHED_EVALUATORS are forgotten.
    _CACHE[key] = evaluator
    _CACHE.move_to_end(key)
    while len(_CACHE) > MAX_CACHED_EVALUATORS:
        _CACHE.popitem(last=False)
    return evaluator


def clear_evaluator_cache() -> None:
    """Forgets every cached evaluator (and the models and data they hold).

    Examples:
        >>> clear_evaluator_cache()
    """
    _CACHE.clear()
