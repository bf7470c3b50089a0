"""Curvature at θ0: top Hessian eigenvectors as directions, λ_max and the Hessian trace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import keras
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.datasets import prepare_data
from losslandscape.directions import trainable_weight_values
from losslandscape.engine import check_compiled, check_data_loss
from losslandscape.progress import Progress


@dataclass
class HessianDirections:
    """Top eigenpairs of the loss Hessian.

    Attributes:
        directions: One unit-norm eigenvector per eigenvalue, each a list of
            arrays shaped like the trainable weights (pass two of them to
            `compute_surface`).
        eigenvalues: The eigenvalues, largest magnitude first.
        iterations: Power iterations each eigenpair took.
    """

    directions: list
    eigenvalues: np.ndarray
    iterations: list


def hessian_directions(
    model: keras.Model,
    data,
    k: int = 2,
    *,
    max_iterations: int = 100,
    tolerance: float = 1e-4,
    seed: Optional[int] = 0,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    include_regularization: bool = True,
    verbose: int = 1,
) -> HessianDirections:
    """Top-k eigenvectors and eigenvalues of the Hessian of the compiled loss at θ0.

    Power iteration with deflation on Hessian-vector products (automatic
    differentiation, averaged over all batches like `model.evaluate`'s loss,
    inference mode). It finds the eigenvalues of largest magnitude, as
    PyHessian does; near a minimum these are the largest positive ones.

    Args:
        model: A compiled Keras model; its weights are θ0 and stay unchanged.
        data: One dataset (`(x, y)`, `tf.data.Dataset`, ...).
        k: Number of eigenpairs.
        max_iterations: Power iterations per eigenpair at most.
        tolerance: Stop when the eigenvalue changes by less than this,
            relative to its size.
        seed: Seed of the starting vectors.
        batch_size, max_samples: As in `compute_surface`.
        include_regularization: Whether the loss includes the layers'
            regularization losses.
        verbose: 0 for silence, 1 for progress over the eigenvectors.

    Returns:
        A `HessianDirections`.

    Examples:
        >>> hessian = hessian_directions(model, (x, y), k=2)  # doctest: +SKIP
        >>> surface = compute_surface(model, (x, y), hessian.directions)  # doctest: +SKIP
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"Expected `k` >= 1, received: {k!r}")
    product, weights = _hessian_vector_product(model, data, batch_size, max_samples, include_regularization)
    progress = Progress(k, verbose, unit="eigenvector")
    found = _top_eigenpairs(product, weights, k, max_iterations, tolerance, seed, progress)
    progress.close()
    return found


def hessian_spectrum_summary(
    model: keras.Model,
    data,
    *,
    trace_samples: int = 100,
    max_iterations: int = 100,
    tolerance: float = 1e-4,
    seed: Optional[int] = 0,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    include_regularization: bool = True,
    verbose: int = 1,
) -> dict:
    """λ_max and a Hutchinson estimate of the trace of the loss Hessian at θ0.

    Args:
        model: A compiled Keras model.
        data: One dataset.
        trace_samples: Rademacher vectors v for the estimate tr(H) ≈ mean(vᵀHv).
        **others: `max_iterations`, `tolerance`, `seed`, `batch_size`,
            `max_samples` and `include_regularization` are as in
            `hessian_directions`.
        verbose: 0 for silence, 1 for progress over λ_max and the trace samples.

    Returns:
        `{"lambda_max", "trace", "trace_standard_error"}`.

    Examples:
        >>> hessian_spectrum_summary(model, (x, y))["lambda_max"]  # doctest: +SKIP
    """
    if not isinstance(trace_samples, (int, np.integer)) or trace_samples < 1:
        raise ValueError(f"Expected `trace_samples` >= 1, received: {trace_samples!r}")
    product, weights = _hessian_vector_product(model, data, batch_size, max_samples, include_regularization)
    progress = Progress(1 + trace_samples, verbose, unit="step")
    top = _top_eigenpairs(product, weights, 1, max_iterations, tolerance, seed, progress)
    generator = np.random.default_rng(seed)
    quadratic_forms: list[float] = []
    for _ in range(trace_samples):
        probe = [generator.choice([-1.0, 1.0], size=w.shape) for w in weights]
        quadratic_forms.append(_dot(probe, product(probe)))
        progress.add(1)
    progress.close()
    samples = np.array(quadratic_forms)
    return {
        "lambda_max": float(top.eigenvalues[0]),
        "trace": float(samples.mean()),
        "trace_standard_error": float(samples.std(ddof=1) / np.sqrt(trace_samples)) if trace_samples > 1 else float("nan"),
    }


def _hessian_vector_product(model, data, batch_size, max_samples, include_regularization):
    """The product H·v at θ0, and θ0 itself (whose shapes and dtypes the vectors take)."""
    check_compiled(model)
    check_data_loss(model, include_regularization)
    weights = trainable_weight_values(model)
    batches = prepare_data(data, batch_size, max_samples)
    return current_backend().hessian_vector_product(model, batches, include_regularization), weights


def _top_eigenpairs(product, weights, k, max_iterations, tolerance, seed, progress) -> HessianDirections:
    """Power iteration with deflation: each eigenvector in turn, with the found ones projected out."""
    generator = np.random.default_rng(seed)
    vectors: list[list[np.ndarray]] = []
    eigenvalues: list[float] = []
    iterations: list[int] = []
    for _ in range(k):
        vector = _unit([generator.standard_normal(w.shape) for w in weights])
        eigenvalue = 0.0
        for iteration in range(1, max_iterations + 1):
            image = _deflated(product(vector), vector, vectors, eigenvalues)
            new_eigenvalue = _dot(vector, image)
            vector = _unit(image)
            converged = abs(new_eigenvalue - eigenvalue) <= tolerance * abs(new_eigenvalue)
            eigenvalue = new_eigenvalue
            if converged:
                break
        vectors.append(vector)
        eigenvalues.append(eigenvalue)
        iterations.append(iteration)
        progress.add(1, first_call=len(vectors) == 1)  # the first product compiles
    directions = [[v.astype(w.dtype) for v, w in zip(vector, weights)] for vector in vectors]
    return HessianDirections(directions, np.array(eigenvalues), iterations)


def _deflated(image, vector, vectors, eigenvalues):
    """Removes the found eigenpairs: (H − Σ λ_j u_j u_jᵀ) v."""
    for found, eigenvalue in zip(vectors, eigenvalues):
        weight = eigenvalue * _dot(found, vector)
        image = [a - weight * b for a, b in zip(image, found)]
    return image


def _dot(a, b) -> float:
    return float(sum(np.sum(x * y) for x, y in zip(a, b)))


def _unit(vector):
    norm = np.sqrt(_dot(vector, vector))
    return [v / norm for v in vector] if norm > 0 else vector
