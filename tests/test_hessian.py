import keras
import numpy as np
import pytest

from conftest import all_state, assert_same_state, same_on_every_backend
from losslandscape import compute_line, hessian_directions, hessian_spectrum_summary


@pytest.fixture(scope="module")
def linear_regression():
    """MSE linear regression: the Hessian is 2·AᵀA/N with A = [X, 1], exactly."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 3)) * [3.0, 1.0, 0.5]).astype("float32")
    y = (x @ np.array([1.0, 2.0, 3.0]) + 0.1 * rng.normal(size=400)).astype("float32")[:, None]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    design = np.hstack([x, np.ones((400, 1))]).astype(np.float64)
    hessian = 2 * design.T @ design / 400
    return model, (x, y), hessian


def test_top_eigenpairs_match_the_closed_form(linear_regression):
    model, data, hessian = linear_regression
    before = all_state(model)
    found = hessian_directions(model, data, k=2, max_iterations=1000, tolerance=1e-9, batch_size=64)
    assert_same_state(before, all_state(model))
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    np.testing.assert_allclose(found.eigenvalues, eigenvalues[::-1][:2], rtol=1e-4)
    for direction, expected in zip(found.directions, eigenvectors[:, ::-1].T):
        vector = np.concatenate([a.ravel() for a in direction])  # kernel (3, 1), then bias (1,)
        assert abs(vector @ expected) > 0.9999


def test_curvature_along_the_top_direction_equals_the_eigenvalue(linear_regression):
    model, data, _ = linear_regression
    found = hessian_directions(model, data, k=1, max_iterations=1000, tolerance=1e-9)
    step = 0.05
    line = compute_line(model, data, found.directions[0], coords=[-step, 0.0, step], verbose=0)
    losses = line.losses["train"]
    second_difference = (losses[0] - 2 * losses[1] + losses[2]) / step**2
    np.testing.assert_allclose(second_difference, found.eigenvalues[0], rtol=1e-3)


def test_spectrum_summary_lambda_max_and_trace(linear_regression):
    model, data, hessian = linear_regression
    summary = hessian_spectrum_summary(model, data, trace_samples=400, tolerance=1e-9, max_iterations=1000)
    np.testing.assert_allclose(summary["lambda_max"], np.linalg.eigvalsh(hessian)[-1], rtol=1e-4)
    assert abs(summary["trace"] - np.trace(hessian)) < 4 * summary["trace_standard_error"]
    assert summary["trace_standard_error"] < 0.05 * np.trace(hessian)


@same_on_every_backend
def test_bad_k_is_refused(linear_regression):
    model, data, _ = linear_regression
    with pytest.raises(ValueError, match="k"):
        hessian_directions(model, data, k=0)


def test_weighted_eigenpairs_match_the_weighted_closed_form():
    """Keras divides Σ wᵢ·ℓᵢ by N, not by Σ wᵢ: the Hessian is 2·AᵀWA/N."""
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(300, 3)) * [2.0, 1.0, 0.5]).astype("float32")
    y = (x @ np.array([1.0, -1.0, 2.0]) + 0.1 * rng.normal(size=300)).astype("float32")[:, None]
    weights = rng.uniform(0.1, 3.0, size=300).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    design = np.hstack([x, np.ones((300, 1))]).astype(np.float64)
    hessian = 2 * design.T @ (weights[:, None].astype(np.float64) * design) / 300
    found = hessian_directions(model, (x, y, weights), k=2, max_iterations=1000, tolerance=1e-9, batch_size=64)
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    np.testing.assert_allclose(found.eigenvalues, eigenvalues[::-1][:2], rtol=1e-4)
    for direction, expected in zip(found.directions, eigenvectors[:, ::-1].T):
        vector = np.concatenate([a.ravel() for a in direction])
        assert abs(vector @ expected) > 0.9999
