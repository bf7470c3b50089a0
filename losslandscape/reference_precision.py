"""Exact float32 values for "auto" to check K stacked points against, where the arithmetic rounds to fewer bits."""

from __future__ import annotations

from typing import Callable, Optional

import keras
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.keras_internals import layers_outermost_first
from losslandscape.precision import with_dtype_policy

REDUCED_COMPUTE_DTYPES = ("bfloat16", "float16")


def why_arithmetic_is_reduced(model: keras.Model) -> Optional[str]:
    """Why the model's values round to fewer bits than float32 here, or None where its arithmetic is exact.

    A layer that computes in bfloat16 or float16 (a mixed dtype policy),
    or a backend whose float32 kernels round (TF32 on NVIDIA GPUs), makes
    one point per call and K stacked points differ from exact float32, and
    from each other, by more than float32 rounding.

    Args:
        model: A Keras model.

    Returns:
        The reason in words, or None.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, dtype="mixed_bfloat16")])
        >>> why_arithmetic_is_reduced(model)
        'the model computes in bfloat16'
    """
    reduced = sorted({layer.compute_dtype for layer in layers_outermost_first(model)} & set(REDUCED_COMPUTE_DTYPES))
    if reduced:
        return f"the model computes in {' and '.join(reduced)}"
    return current_backend().why_float32_is_reduced()


def full_precision_values(model, batches, origin, directions, include_regularization) -> Callable[[np.ndarray], list]:
    """A function of points that gives the loss and metrics there in exact float32, one point per call.

    A model that computes in bfloat16 or float16 is evaluated as a float32
    copy (`precision.with_dtype_policy`), and every call runs under the
    backend's `full_precision`. The arguments are those of a
    `PointEvaluator`; the values are compiled once, on the first call.

    Raises:
        ValueError: For a model in reduced precision that cannot be copied
            to float32 (a subclassed model).
    """
    backend = current_backend()
    computes_reduced = any(layer.compute_dtype in REDUCED_COMPUTE_DTYPES for layer in layers_outermost_first(model))
    reference = with_dtype_policy(model, "float32") if computes_reduced else model
    evaluator = backend.point_evaluator(reference, batches, origin, directions, include_regularization)

    def values(points: np.ndarray) -> list:
        with backend.full_precision():
            return evaluator.evaluate(points)

    return values
