"""Curvature maps against closed forms: a quadratic loss (constant Hessian) and a product with a saddle."""

from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

from losslandscape import compute_surface, curvature_map, load_surface
from losslandscape.lanczos import extreme_eigenvalues
from conftest import same_on_every_backend

COORDS = np.linspace(-1.0, 1.0, 5)


@same_on_every_backend
def test_lanczos_finds_both_ends_of_a_known_spectrum():
    rng = np.random.default_rng(0)
    eigenvalues = np.concatenate([[-3.0], rng.uniform(-0.5, 1.0, 198), [7.0]])
    basis, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    matrix = basis @ np.diag(eigenvalues) @ basis.T
    found = extreme_eigenvalues(lambda v: matrix @ v, rng.standard_normal(200), max_iterations=60, tolerance=1e-8)
    assert found.smallest == pytest.approx(-3.0, rel=1e-6) and found.largest == pytest.approx(7.0, rel=1e-6)
    assert found.products <= 60
    overflowing = extreme_eigenvalues(lambda v: v * np.inf, np.ones(3))
    assert np.isnan(overflowing.smallest) and np.isnan(overflowing.largest) and overflowing.products == 1
    with pytest.raises(ValueError, match="start vector is zero"):
        extreme_eigenvalues(lambda v: v, np.zeros(3))


def _linear_regression(samples=24, features=3, seed=0, regularizer=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features)).astype("float32")
    y = rng.standard_normal((samples, 1)).astype("float32")
    model = keras.Sequential([
        keras.Input((features,)), keras.layers.Dense(1, use_bias=False, kernel_regularizer=regularizer),
    ])
    model.compile(loss="mse")
    return model, x, y


def test_a_quadratic_loss_has_its_constant_hessian_eigenvalues_everywhere():
    model, x, y = _linear_regression()
    before = [w.copy() for w in model.get_weights()]
    curvature = curvature_map(model, (x, y), xcoords=COORDS, seed=3, batch_size=8, verbose=0)
    # mse of a linear model: L(w) = (1/N)·|Xw − y|², Hessian 2/N · XᵀX at every w.
    exact = np.linalg.eigvalsh(2.0 / len(x) * x.astype(np.float64).T @ x)
    np.testing.assert_allclose(curvature.values(metric="lambda_max"), exact[-1], rtol=1e-4)
    np.testing.assert_allclose(curvature.values(metric="lambda_min"), exact[0], rtol=1e-4)
    np.testing.assert_allclose(curvature.values(metric="eigen_ratio"), exact[0] / exact[-1], rtol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # The loss at each point is the loss surface's on the same plane.
    surface = compute_surface(model, (x, y), curvature.directions, COORDS, batch_size=8, verbose=0)
    np.testing.assert_allclose(curvature.losses["train"], surface.losses["train"], rtol=1e-6)


def _product_model():
    """ŷ = a·b·x: with x = 1 and y = 0 the loss is (ab)², a saddle at the origin."""
    model = keras.Sequential([
        keras.Input((1,)), keras.layers.Dense(1, use_bias=False), keras.layers.Dense(1, use_bias=False),
    ])
    model.compile(loss="mse")
    model.set_weights([np.full((1, 1), 0.5), np.full((1, 1), -0.25)])
    along_a = [np.ones((1, 1)), np.zeros((1, 1))]
    along_b = [np.zeros((1, 1)), np.ones((1, 1))]
    return model, (np.ones((6, 1)), np.zeros((6, 1))), [along_a, along_b]


def _saddle_eigenvalues():
    """The Hessian of (ab)² is [[2b², 4ab], [4ab, 2a²]]: eigenvalues a² + b² ± √((a² − b²)² + 16a²b²)."""
    a, b = np.meshgrid(0.5 + COORDS, -0.25 + COORDS, indexing="ij")
    root = np.sqrt((a**2 - b**2) ** 2 + 16 * a**2 * b**2)
    return a**2 + b**2 - root, a**2 + b**2 + root, (a * b) ** 2


def test_a_saddle_has_the_negative_eigenvalue_of_its_closed_form():
    model, data, directions = _product_model()
    curvature = curvature_map(model, data, directions, COORDS, verbose=0)
    smallest, largest, loss = _saddle_eigenvalues()
    np.testing.assert_allclose(curvature.values(metric="lambda_min"), smallest, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(curvature.values(metric="lambda_max"), largest, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(curvature.losses["train"], loss, rtol=1e-5, atol=1e-7)
    assert (curvature.values(metric="lambda_min") < 0).sum() >= 16
    ratio = curvature.values(metric="eigen_ratio")
    np.testing.assert_allclose(ratio, np.abs(smallest / largest), rtol=1e-3, atol=1e-6)


def test_a_curvature_map_resumes_and_runs_on_workers(tmp_path, monkeypatch):
    import losslandscape.distributed as distributed

    model, data, directions = _product_model()
    whole = curvature_map(model, data, directions, COORDS, path=tmp_path / "whole.h5", verbose=0)
    half = load_surface(tmp_path / "whole.h5")
    half.computed["train"][:, 3:] = False
    half.losses["train"][:, 3:] = np.nan
    for values in half.metrics["train"].values():
        values[:, 3:] = np.nan
    half.save(tmp_path / "half.h5")
    sent = []
    evaluate_chunk = distributed.evaluate_chunk
    monkeypatch.setattr(distributed, "evaluate_chunk",
                        lambda job, label, rows: sent.extend(rows.tolist()) or evaluate_chunk(job, label, rows))
    with ThreadPoolExecutor(1) as pool:
        resumed = curvature_map(model, data, directions, COORDS, path=tmp_path / "half.h5", executor=pool,
                                verbose=0)
    assert len(sent) == 10  # the workers computed the two missing columns, and nothing else
    for metric in ("lambda_min", "lambda_max", "eigen_ratio"):
        np.testing.assert_allclose(resumed.values(metric=metric), whole.values(metric=metric), rtol=1e-6)
    assert load_surface(tmp_path / "half.h5").computed["train"].all()


@same_on_every_backend
def test_a_loss_surface_file_is_not_resumed_as_a_curvature_map(tmp_path):
    model, data, directions = _product_model()
    compute_surface(model, data, directions, COORDS, path=tmp_path / "loss.h5", verbose=0)
    with pytest.raises(ValueError, match="curvature"):
        curvature_map(model, data, directions, COORDS, path=tmp_path / "loss.h5", verbose=0)


@same_on_every_backend
@pytest.mark.parametrize("arguments, message", [
    (dict(max_iterations=1), "`max_iterations` to be an integer >= 2, received: 1"),
    (dict(max_iterations=5.0), "`max_iterations` to be an integer >= 2, received: 5.0"),
    (dict(tolerance=0.0), r"`tolerance` to be a number in \(0, 1\), received: 0.0"),
    (dict(tolerance=1), r"`tolerance` to be a number in \(0, 1\), received: 1"),
    (dict(tolerance=1.5), r"`tolerance` to be a number in \(0, 1\), received: 1.5"),
    (dict(xcoords=[0.5]), "xcoords"),
])
def test_bad_arguments_fail_before_any_work(arguments, message):
    model, data, directions = _product_model()
    with pytest.raises(ValueError, match=message):
        curvature_map(model, data, directions, **arguments, verbose=0)


@same_on_every_backend
def test_the_ratio_map_is_drawn_on_an_even_colour_scale():
    model, data, directions = _product_model()
    curvature = curvature_map(model, data, directions, COORDS, verbose=0)
    mesh = curvature.plot("heatmap", metric="eigen_ratio").artists_["heatmap"]
    ratio = curvature.values(metric="eigen_ratio")
    assert mesh.norm(ratio.min()) == pytest.approx(0.0) and mesh.norm(ratio.max()) == pytest.approx(1.0)
    middle = (ratio.min() + ratio.max()) / 2
    assert mesh.norm(middle) == pytest.approx(0.5, abs=0.05)


def test_lanczos_takes_at_most_max_iterations_and_stops_early_at_a_loose_tolerance():
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    matrix = basis @ np.diag(np.linspace(-1.0, 4.0, 100)) @ basis.T
    start = rng.standard_normal(100)
    assert extreme_eigenvalues(lambda v: matrix @ v, start, max_iterations=5, tolerance=1e-12).products == 5
    loose = extreme_eigenvalues(lambda v: matrix @ v, start, max_iterations=60, tolerance=1e-2)
    tight = extreme_eigenvalues(lambda v: matrix @ v, start, max_iterations=60, tolerance=1e-9)
    assert loose.products <= 12 < tight.products  # 9 and 44 here
    # Ritz values lie inside the spectrum and move outwards as the basis grows.
    assert -1.0 - 1e-9 <= tight.smallest <= loose.smallest and loose.largest <= tight.largest <= 4.0 + 1e-9
    assert tight.smallest == pytest.approx(-1.0, abs=1e-6) and tight.largest == pytest.approx(4.0, abs=1e-6)


def test_the_regularization_term_adds_its_own_curvature_only_when_asked():
    model, x, y = _linear_regression(regularizer=keras.regularizers.l2(0.3))
    data_hessian = np.linalg.eigvalsh(2.0 / len(x) * x.astype(np.float64).T @ x)
    # Keras' l2(λ) adds λ·Σw², whose Hessian is 2λ·I.
    for given, shift in (({}, 0.6), (dict(include_regularization=True), 0.6),
                         (dict(include_regularization=False), 0.0)):  # included by default
        curvature = curvature_map(model, (x, y), xcoords=[-0.5, 0.5], seed=1, verbose=0, **given)
        include = given.get("include_regularization", True)
        np.testing.assert_allclose(curvature.values(metric="lambda_max"), data_hessian[-1] + shift, rtol=1e-4)
        np.testing.assert_allclose(curvature.values(metric="lambda_min"), data_hessian[0] + shift, rtol=1e-4)
        surface = compute_surface(model, (x, y), curvature.directions, [-0.5, 0.5], include_regularization=include,
                                  verbose=0)
        np.testing.assert_allclose(curvature.losses["train"], surface.losses["train"], rtol=1e-6)


def test_an_mlp_has_the_eigenvalues_of_its_hessian_built_column_by_column():
    """Four variables of other shapes: the flat vectors Lanczos works on map back to each of them."""
    from losslandscape.backends import current_backend
    from losslandscape.datasets import prepare_data

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
    model.compile(loss="mse")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 3)).astype("float32"), rng.standard_normal((40, 2)).astype("float32")
    curvature = curvature_map(model, (x, y), xcoords=[0.0, 0.7], ycoords=[0.0, 0.1], seed=5, ignore=None,
                              max_iterations=40, tolerance=1e-9, verbose=0)
    origin = [np.array(v.numpy()) for v in model.trainable_variables]
    shapes = [w.shape for w in origin]
    for index, alpha in enumerate([0.0, 0.7]):
        for variable, w, d in zip(model.trainable_variables, origin, curvature.directions[0]):
            variable.assign(w + alpha * d)
        product = current_backend().hessian_vector_product(model, prepare_data((x, y)))
        size = sum(int(np.prod(s)) for s in shapes)
        columns = []
        for unit in np.eye(size):
            pieces = np.split(unit, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
            columns.append(np.concatenate([h.ravel() for h in product([p.reshape(s) for p, s in zip(pieces, shapes)])]))
        exact = np.linalg.eigvalsh((np.array(columns) + np.array(columns).T) / 2)
        assert curvature.values(metric="lambda_max")[index, 0] == pytest.approx(exact[-1], rel=1e-4)
        assert curvature.values(metric="lambda_min")[index, 0] == pytest.approx(exact[0], rel=1e-3, abs=1e-5)
    for variable, w in zip(model.trainable_variables, origin):
        variable.assign(w)


def test_drawn_directions_follow_the_drawing_arguments():
    from losslandscape import random_directions

    model, x, y = _linear_regression(features=4)
    curvature = curvature_map(model, (x, y), xcoords=[-1, 1], seed=7, normalization=None, orthogonal=True,
                              max_samples=10, batch_size=4, verbose=0)
    expected = random_directions(model, 2, seed=7, normalization=None, ignore="biasbn", orthogonal=True)
    for got, wanted in zip(curvature.directions, expected):
        np.testing.assert_array_equal(got[0], wanted[0])
    assert curvature.settings["num_samples"] == {"train": 10} and curvature.settings["batch_size"] == 4
    assert curvature.settings["lanczos_max_iterations"] == 40 and curvature.settings["lanczos_tolerance"] == 1e-3
    keras.utils.set_random_seed(0)
    biased = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    biased.compile(loss="mse")
    biased.layers[0].bias.assign([0.5, -0.5])
    targets = np.zeros((len(x), 2), "float32")
    by_default = curvature_map(biased, (x, targets), xcoords=[-1, 1], ycoords=[0.0, 0.5, 1.0], labels=["mine"],
                               seed=7, max_iterations=2, verbose=0)
    expected = random_directions(biased, 2, seed=7)  # filter-normalized, biases left out
    for got, wanted in zip(by_default.directions, expected):
        for got_part, wanted_part in zip(got, wanted):
            np.testing.assert_array_equal(got_part, wanted_part)
    assert not np.any(by_default.directions[0][1])
    np.testing.assert_array_equal(by_default.ycoords, [0.0, 0.5, 1.0])
    assert list(by_default.losses) == ["mine"] and by_default.values("mine", "lambda_max").shape == (2, 3)


def test_lanczos_stops_at_an_invariant_subspace_and_otherwise_after_40_products_by_default():
    scale = np.repeat([1.0, 2.0, 3.0], 4)  # three distinct eigenvalues: the Krylov space has 3 dimensions
    start = np.random.default_rng(0).standard_normal(12)
    for factor in (1.0, 1e6):  # the test for it is relative to the spectral radius
        found = extreme_eigenvalues(lambda v: factor * scale * v, start)
        assert (found.smallest, found.largest, found.products) == (pytest.approx(factor), pytest.approx(3 * factor), 3)
    start = np.random.default_rng(0).standard_normal(12).astype(np.float32)  # normalized in float64 all the same
    found = extreme_eigenvalues(lambda v: scale * v, start)
    assert abs(found.smallest - 1.0) < 1e-12 and abs(found.largest - 3.0) < 1e-12
    found = extreme_eigenvalues(lambda v: scale * v, np.eye(12)[0])  # an eigenvector: exact after one product
    assert (found.smallest, found.largest, found.products) == (1.0, 1.0, 1)
    calls = []

    def growing(v):  # a product whose Ritz values never settle
        calls.append(1)
        return len(calls) * np.linspace(1.0, 2.0, 100) * v

    assert extreme_eigenvalues(growing, np.ones(100)).products == 40
    with pytest.raises(ValueError, match=r"^The Lanczos start vector is zero\.$"):
        extreme_eigenvalues(lambda v: v, np.zeros(3))


def test_a_flat_hessian_has_an_infinite_ratio_and_a_map_saves_after_every_point_with_progress(tmp_path, monkeypatch,
                                                                                              capsys):
    from losslandscape import LossSurface

    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 2)).astype("float32")
    y = np.full((16, 1), 100.0, "float32")  # far above every prediction: the absolute error is linear in the weights
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(loss="mae")
    saves = []
    save = LossSurface.save
    monkeypatch.setattr(LossSurface, "save", lambda self, path: saves.append(path) or save(self, path))
    curvature = curvature_map(model, (x, y), xcoords=[-1.0, 1.0], max_iterations=2, seed=0, path=tmp_path / "c.h5")
    np.testing.assert_array_equal(curvature.values(metric="lambda_max"), 0.0)
    assert np.isposinf(curvature.values(metric="eigen_ratio")).all()
    assert len(saves) == 4  # one point at a time
    assert curvature.settings["orthogonal"] is False
    assert capsys.readouterr().out.splitlines()[-1].startswith("4/4 points in ")


def test_a_map_of_the_first_batches_has_their_hessian():
    model, x, y = _linear_regression(samples=24)
    curvature = curvature_map(model, (x, y), xcoords=[-1.0, 1.0], seed=0, batch_size=8, max_batches=1, verbose=0)
    first = x[:8].astype(np.float64)
    exact = np.linalg.eigvalsh(2.0 / 8 * first.T @ first)
    np.testing.assert_allclose(curvature.values(metric="lambda_max"), exact[-1], rtol=1e-4)
    accepted = curvature_map(model, (x, y), xcoords=[-1.0, 1.0], seed=0, max_iterations=2, verbose=0)
    assert accepted.values(metric="lambda_max").shape == (2, 2)
