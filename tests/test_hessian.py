import keras
import numpy as np
import pytest

from conftest import all_state, assert_same_state, same_on_every_backend, tensorflow_only
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


@pytest.mark.parametrize("include_regularization", [True, False])
def test_weighted_eigenpairs_match_the_weighted_closed_form(include_regularization):
    """Keras divides Σ wᵢ·ℓᵢ by N, not by Σ wᵢ: the Hessian is 2·AᵀWA/N, plus 2λ on the kernel with the penalty."""
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(300, 3)) * [2.0, 1.0, 0.5]).astype("float32")
    y = (x @ np.array([1.0, -1.0, 2.0]) + 0.1 * rng.normal(size=300)).astype("float32")[:, None]
    weights = rng.uniform(0.1, 3.0, size=300).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.3))])
    model.compile(loss="mse")
    design = np.hstack([x, np.ones((300, 1))]).astype(np.float64)
    hessian = 2 * design.T @ (weights[:, None].astype(np.float64) * design) / 300
    if include_regularization:
        hessian += np.diag([2 * 0.3] * 3 + [0.0])
    found = hessian_directions(model, (x, y, weights), k=2, max_iterations=1000, tolerance=1e-9, batch_size=64,
                               include_regularization=include_regularization)
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    np.testing.assert_allclose(found.eigenvalues, eigenvalues[::-1][:2], rtol=1e-4)
    for direction, expected in zip(found.directions, eigenvectors[:, ::-1].T):
        vector = np.concatenate([a.ravel() for a in direction])
        assert abs(vector @ expected) > 0.9999


@pytest.fixture(scope="module")
def regularized_regression(linear_regression):
    """The same regression with an L2 penalty λ‖W‖² on the kernel: 2λ more curvature along the kernel's entries."""
    _, (x, y), hessian = linear_regression
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.5))])
    model.compile(loss="mse")
    return model, (x, y), hessian + np.diag([1.0, 1.0, 1.0, 0.0])


def test_the_defaults_two_eigenpairs_with_the_penalty_and_progress(regularized_regression, capsys):
    model, data, hessian = regularized_regression
    found = hessian_directions(model, data)
    assert "2/2 eigenvectors in" in capsys.readouterr().out
    np.testing.assert_allclose(found.eigenvalues, np.linalg.eigvalsh(hessian)[::-1][:2], rtol=1e-3)
    again = hessian_directions(model, data, seed=0, verbose=0)
    assert again.iterations == found.iterations and max(found.iterations) < 100  # converged before the cap
    assert [a.dtype for a in found.directions[0]] == [np.float32, np.float32]
    for a, b in zip(again.directions[1], found.directions[1]):
        np.testing.assert_array_equal(a, b)
    without = hessian_directions(model, data, k=1, include_regularization=False, tolerance=1e-9, max_iterations=1000,
                                 verbose=0)
    np.testing.assert_allclose(without.eigenvalues[0], np.linalg.eigvalsh(hessian - np.diag([1.0, 1, 1, 0]))[-1],
                               rtol=1e-4)
    assert hessian_directions(model, data, k=2, max_iterations=3, tolerance=0.0, verbose=0).iterations == [3, 3]


def test_the_sample_limit_and_a_seed_reach_the_eigenpairs(linear_regression, capsys):
    import tensorflow as tf

    model, (x, y), _ = linear_regression
    design = np.hstack([x[:100], np.ones((100, 1))]).astype(np.float64)
    found = hessian_directions(model, (x, y), k=1, max_samples=100, tolerance=1e-9, max_iterations=1000, seed=3,
                               verbose=0)
    np.testing.assert_allclose(found.eigenvalues[0], np.linalg.eigvalsh(2 * design.T @ design / 100)[-1], rtol=1e-4)
    again = hessian_directions(model, (x, y), k=1, max_samples=100, max_iterations=5, tolerance=0.0, seed=3, verbose=0)
    other = hessian_directions(model, (x, y), k=1, max_samples=100, max_iterations=5, tolerance=0.0, seed=3, verbose=0)
    np.testing.assert_array_equal(again.directions[0][0], other.directions[0][0])  # a seed gives one start
    assert capsys.readouterr().out == ""  # verbose=0
    with pytest.raises(ValueError, match="`batch_size` must be None"):
        hessian_directions(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(50), batch_size=7, verbose=0)


def _rademacher_forms(hessian, seed, samples):
    """vᵀHv for each of the seed's Rademacher vectors, drawn as the library draws them (kernel (3, 1), bias (1,))."""
    generator = np.random.default_rng(seed)
    forms = []
    for _ in range(samples):
        v = np.concatenate([generator.choice([-1.0, 1.0], size=(3, 1)).ravel(), generator.choice([-1.0, 1.0], size=1)])
        forms.append(v @ hessian @ v)
    return forms


def test_the_trace_estimate_and_its_error_are_those_of_the_seeds_rademacher_vectors(linear_regression, capsys):
    model, data, hessian = linear_regression
    summary = hessian_spectrum_summary(model, data, trace_samples=2, seed=4, tolerance=1e-9, max_iterations=1000)
    assert "3/3 steps in" in capsys.readouterr().out  # λ_max, then one step per sample
    forms = _rademacher_forms(hessian, 4, 2)
    assert summary["trace"] == pytest.approx(np.mean(forms), rel=1e-4)
    assert summary["trace_standard_error"] == pytest.approx(np.std(forms, ddof=1) / np.sqrt(2), rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(summary["lambda_max"], np.linalg.eigvalsh(hessian)[-1], rtol=1e-4)
    one = hessian_spectrum_summary(model, data, trace_samples=1, verbose=0)
    assert np.isnan(one["trace_standard_error"]) and np.isfinite(one["trace"])
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match=rf"^Expected `trace_samples` >= 1, received: {bad}$"):
            hessian_spectrum_summary(model, data, trace_samples=bad, verbose=0)


def test_a_negative_curvature_of_largest_magnitude_is_found_with_its_sign(linear_regression):
    """The negated MSE has the Hessian −2·AᵀA/N: power iteration finds its eigenvalues, negative, as Rayleigh quotients."""
    model, (x, y), hessian = linear_regression
    negated = keras.models.clone_model(model)
    negated.set_weights(model.get_weights())
    negated.compile(loss=lambda target, prediction: -keras.ops.mean(keras.ops.square(target - prediction), axis=-1))
    found = hessian_directions(negated, (x, y), k=2, max_iterations=1000, tolerance=1e-9, verbose=0)
    np.testing.assert_allclose(found.eigenvalues, -np.linalg.eigvalsh(hessian)[::-1][:2], rtol=1e-4)


def test_the_tolerance_is_relative_so_scaling_the_loss_changes_no_iteration_count(linear_regression):
    model, (x, y), hessian = linear_regression
    scaled = keras.models.clone_model(model)
    scaled.set_weights(model.get_weights())
    scaled.compile(loss=lambda target, prediction: 1e4 * keras.ops.mean(keras.ops.square(target - prediction), axis=-1))
    plain = hessian_directions(model, (x, y), k=1, tolerance=1e-3, verbose=0)
    large = hessian_directions(scaled, (x, y), k=1, tolerance=1e-3, verbose=0)
    assert large.iterations == plain.iterations and plain.iterations[0] < 100
    np.testing.assert_allclose(large.eigenvalues, 1e4 * plain.eigenvalues, rtol=1e-4)


def _counted_products(monkeypatch):
    """A list that grows by one at each Hessian-vector product the library computes."""
    from losslandscape.backends import current_backend

    backend = current_backend()
    original = backend.hessian_vector_product
    calls = []

    def counting(*args):
        product = original(*args)

        def counted(vector):
            calls.append(1)
            return product(vector)

        return counted

    monkeypatch.setattr(backend, "hessian_vector_product", counting)
    return calls




def test_the_summary_by_default_is_seed_0s_lambda_max_with_the_penalty_and_100_rademacher_samples(
        regularized_regression, monkeypatch, capsys):
    model, data, hessian = regularized_regression
    calls = _counted_products(monkeypatch)
    summary = hessian_spectrum_summary(model, data)
    assert "101/101 steps in" in capsys.readouterr().out
    products = len(calls)
    top = hessian_directions(model, data, k=1, verbose=0)  # seed 0, tolerance 1e-4, at most 100 iterations
    assert products == top.iterations[0] + 100 and top.iterations[0] < 100
    assert summary["lambda_max"] == top.eigenvalues[0]
    np.testing.assert_allclose(summary["lambda_max"], np.linalg.eigvalsh(hessian)[-1], rtol=1e-3)
    assert summary["trace"] == pytest.approx(np.mean(_rademacher_forms(hessian, 0, 100)), rel=1e-4)


def test_by_default_power_iteration_stops_after_100_products(monkeypatch):
    """Eigenvalues 1.0 and 0.98: the estimate still moves after 100 iterations, which are the default's cap."""
    x = np.array([[1.0, 0.0], [0.0, 0.98**0.5], [-1.0, 0.0], [0.0, -(0.98**0.5)]], "float32")
    data = (x, np.zeros((4, 1), "float32"))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(loss="mse")
    calls = _counted_products(monkeypatch)
    assert hessian_directions(model, data, k=1, tolerance=0.0, verbose=0).iterations == [100]
    assert len(calls) == 100
    calls.clear()
    hessian_spectrum_summary(model, data, trace_samples=1, tolerance=0.0, verbose=0)
    assert len(calls) == 100 + 1  # λ_max's iterations, then one Rademacher sample


def test_the_summary_passes_the_sample_limit_batch_size_and_seed_on(linear_regression, capsys):
    import tensorflow as tf

    model, (x, y), _ = linear_regression
    design = np.hstack([x[:100], np.ones((100, 1))]).astype(np.float64)
    summary = hessian_spectrum_summary(model, (x, y), max_samples=100, trace_samples=1, tolerance=1e-9,
                                       max_iterations=1000, verbose=0)
    np.testing.assert_allclose(summary["lambda_max"], np.linalg.eigvalsh(2 * design.T @ design / 100)[-1], rtol=1e-4)
    short = dict(trace_samples=1, max_iterations=2, tolerance=0.0, seed=3, verbose=0)
    early = hessian_directions(model, (x, y), k=1, max_iterations=2, tolerance=0.0, seed=3, verbose=0)
    assert hessian_spectrum_summary(model, (x, y), **short)["lambda_max"] == early.eigenvalues[0]
    assert capsys.readouterr().out == ""  # verbose=0
    with pytest.raises(ValueError, match="`batch_size` must be None"):
        hessian_spectrum_summary(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(50), batch_size=7, verbose=0)


def test_one_trace_sample_has_no_standard_error_and_no_warning(linear_regression):
    import warnings

    model, data, _ = linear_regression
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's, for the standard deviation of one value
        summary = hessian_spectrum_summary(model, data, trace_samples=1, verbose=0)
    assert np.isnan(summary["trace_standard_error"])


def test_power_iteration_counts_and_stops_exactly(linear_regression, monkeypatch):
    """A 1×1 Hessian 2·mean(x²) = 0.5 is found exactly at the second iteration, which changes nothing; each
    iteration is one product."""
    x = np.array([[0.5], [-0.5]], "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(loss="mse")
    calls = _counted_products(monkeypatch)
    found = hessian_directions(model, (x, np.zeros((2, 1), "float32")), k=1, tolerance=0.0, verbose=0)
    assert found.iterations == [2] and len(calls) == 2
    assert found.eigenvalues[0] == pytest.approx(0.5, rel=1e-6) and abs(float(found.directions[0][0][0, 0])) == 1.0
    regression, data, hessian = linear_regression
    calls.clear()
    capped = hessian_directions(regression, data, k=1, max_iterations=3, tolerance=0.0, seed=5, verbose=0)
    assert len(calls) == 3
    generator = np.random.default_rng(5)  # the seed's start, three products later
    vector = np.concatenate([generator.standard_normal((3, 1)).ravel(), generator.standard_normal(1)])
    for _ in range(3):
        vector = hessian @ vector / np.linalg.norm(hessian @ vector)
    np.testing.assert_allclose(np.concatenate([a.ravel() for a in capped.directions[0]]), vector, rtol=1e-4)


def test_a_loss_linear_in_the_weights_has_a_zero_hessian_and_finite_directions():
    x = np.array([[1.0], [2.0]], "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(loss=lambda target, prediction: keras.ops.mean(prediction, axis=-1))
    found = hessian_directions(model, (x, np.zeros((2, 1), "float32")), k=1, verbose=0)
    assert found.eigenvalues.tolist() == [0.0] and found.iterations == [1]
    assert all(np.isfinite(a).all() for a in found.directions[0])


def test_a_model_whose_only_loss_is_its_penalty_has_the_penalty_hessian(linear_regression):
    """L2(0.5)·‖W‖² has the Hessian 1.0 on each kernel entry and 0 on the bias."""
    _, data, _ = linear_regression
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.5))])
    model.compile()
    found = hessian_directions(model, data, k=1, verbose=0)
    assert found.eigenvalues[0] == pytest.approx(1.0, rel=1e-4)
    assert found.directions[0][1].tolist() == pytest.approx([0.0], abs=1e-6)


def test_only_the_first_eigenvector_is_timed_as_a_compiling_call(linear_regression, monkeypatch):
    import losslandscape.hessian

    added = []

    class Recorded(losslandscape.hessian.Progress):
        def add(self, count, first_call=False):
            added.append((count, first_call))
            super().add(count, first_call)

    monkeypatch.setattr(losslandscape.hessian, "Progress", Recorded)
    model, data, _ = linear_regression
    hessian_directions(model, data, k=3, max_iterations=2, verbose=0)
    assert added == [(1, True), (1, False), (1, False)]


def test_the_hessian_is_taken_in_inference_mode(linear_regression):
    """Dropout is off at θ0, as in `model.evaluate`."""
    _, (x, y), hessian = linear_regression
    dropped = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.5), keras.layers.Dense(1)])
    dropped.compile(loss="mse")
    found = hessian_directions(dropped, (x, y), k=1, tolerance=1e-9, max_iterations=1000, verbose=0)
    np.testing.assert_allclose(found.eigenvalues[0], np.linalg.eigvalsh(hessian)[-1], rtol=1e-4)


@tensorflow_only  # JAX computes float64 as float32 unless x64 is enabled
def test_a_float64_model_gets_float64_products(linear_regression):
    _, (x, y), hessian = linear_regression
    wide = keras.Sequential([keras.Input((3,), dtype="float64"), keras.layers.Dense(1, dtype="float64")])
    wide.compile(loss="mse")
    found = hessian_directions(wide, (x.astype("float64"), y.astype("float64")), k=1, tolerance=1e-12,
                               max_iterations=1000, verbose=0)
    assert found.directions[0][0].dtype == np.float64
    np.testing.assert_allclose(found.eigenvalues[0], np.linalg.eigvalsh(hessian)[-1], rtol=1e-9)
    penalty = keras.Sequential([keras.Input((3,), dtype="float64"),
                                keras.layers.Dense(1, dtype="float64", kernel_regularizer=keras.regularizers.L2(0.5))])
    penalty.compile()  # the bias is unconnected: its zero gradient in float64 too
    found = hessian_directions(penalty, (x.astype("float64"), y.astype("float64")), k=1, verbose=0)
    assert found.eigenvalues[0] == pytest.approx(1.0, rel=1e-9)


@same_on_every_backend
def test_the_backends_product_is_the_hessian_times_the_vector_in_float64_with_the_penalty_by_default(
        regularized_regression):
    from losslandscape.backends import current_backend
    from losslandscape.datasets import prepare_data

    model, data, hessian = regularized_regression
    batches = prepare_data(data)
    vector = [np.array([[1.0], [-2.0], [0.5]], "float32"), np.array([3.0], "float32")]
    flat = np.concatenate([part.ravel() for part in vector]).astype(np.float64)
    product_class = current_backend().hessian_vector_product
    for product, matrix in ((product_class(model, batches), hessian),
                            (product_class(model, batches, include_regularization=False),
                             hessian - np.diag([1.0, 1.0, 1.0, 0.0]))):
        result = product(vector)
        assert [part.dtype for part in result] == [np.float64, np.float64]
        np.testing.assert_allclose(np.concatenate([part.ravel() for part in result]), matrix @ flat, rtol=1e-4)
