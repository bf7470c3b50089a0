"""The extreme eigenvalues of a symmetric operator known only through its products H·v (Lanczos)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ExtremeEigenvalues:
    """The smallest and the largest eigenvalue found, and the products they took.

    Attributes:
        smallest: The smallest (most negative) eigenvalue.
        largest: The largest eigenvalue.
        products: The number of products H·v computed.
    """

    smallest: float
    largest: float
    products: int


def extreme_eigenvalues(
    product: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    max_iterations: int = 40,
    tolerance: float = 1e-3,
) -> ExtremeEigenvalues:
    """The smallest and largest eigenvalues of a symmetric H, from products H·v only.

    Lanczos with full reorthogonalization: each step adds H·q to a Krylov
    basis, and the extreme eigenvalues of the small tridiagonal matrix
    (the Ritz values) approach those of H from inside. It stops when both
    moved by less than `tolerance` times the spectral radius found
    (max(|smallest|, |largest|)) in one step, when the basis spans an
    invariant subspace (then they are exact), or after `max_iterations`
    products. Both are NaN if a product is not finite (the loss
    overflowed there). The tolerance is relative to the spectral radius,
    not to each eigenvalue: near a minimum the smallest eigenvalue is close
    to 0, and a stopping rule relative to it (ARPACK's) would not stop.

    Args:
        product: Returns H·v for a flat float64 vector v.
        start: The first vector (any non-zero vector; normalized here).
        max_iterations: Products at most.
        tolerance: Stop when both extremes move by less than this,
            relative to the spectral radius.

    Returns:
        An `ExtremeEigenvalues`.

    Examples:
        >>> h = np.diag([-2.0, 0.5, 1.0, 3.0])
        >>> found = extreme_eigenvalues(lambda v: h @ v, np.ones(4))
        >>> round(found.smallest, 6), round(found.largest, 6), found.products
        (-2.0, 3.0, 4)
    """
    vector = np.asarray(start, dtype=np.float64).ravel()
    norm = np.linalg.norm(vector)
    if not norm > 0:
        raise ValueError("The Lanczos start vector is zero.")
    basis = [vector / norm]
    diagonal: list[float] = []
    off_diagonal: list[float] = []
    previous = None
    for iteration in range(1, max_iterations + 1):
        image = np.asarray(product(basis[-1]), dtype=np.float64).ravel()
        if not np.all(np.isfinite(image)):  # e.g. a point where the loss overflows
            return ExtremeEigenvalues(float("nan"), float("nan"), iteration)
        diagonal.append(float(basis[-1] @ image))
        stacked = np.asarray(basis)
        for _ in range(2):  # twice: one pass leaves rounding errors that grow into spurious copies
            image = image - stacked.T @ (stacked @ image)
        ritz = np.linalg.eigvalsh(_tridiagonal(diagonal, off_diagonal))
        smallest, largest = float(ritz[0]), float(ritz[-1])
        radius = max(abs(smallest), abs(largest))
        residual = np.linalg.norm(image)
        if residual <= 1e-10 * max(radius, np.finfo(float).tiny) or len(basis) == vector.size:
            break  # the basis spans an invariant subspace: the Ritz values are eigenvalues
        if previous is not None and max(abs(smallest - previous[0]), abs(largest - previous[1])) <= tolerance * radius:
            break
        previous = (smallest, largest)
        off_diagonal.append(float(residual))
        basis.append(image / residual)
    return ExtremeEigenvalues(smallest, largest, iteration)


def _tridiagonal(diagonal, off_diagonal) -> np.ndarray:
    matrix = np.diag(diagonal)
    if off_diagonal:
        steps = np.arange(len(off_diagonal))
        matrix[steps, steps + 1] = matrix[steps + 1, steps] = off_diagonal
    return matrix
