"""A second landscape of the same model and data reuses the compiled evaluators, and a changed model never does."""

import keras
import numpy as np
import pytest

from conftest import count_evaluate_calls, evaluate_at, weights_at
from losslandscape import compute_line, compute_surface, random_directions
from losslandscape.backends import current_backend
from losslandscape.evaluator_cache import MAX_CACHED_EVALUATORS, clear_evaluator_cache

GRID = np.linspace(-0.5, 0.5, 12)  # 144 points: "auto" probes


@pytest.fixture
def built(monkeypatch):
    """Counts the evaluators the backend builds."""
    backend = current_backend()
    counts = {"point": 0, "vectorized": 0}
    for kind, cls in (("point", backend.point_evaluator), ("vectorized", backend.vectorized_evaluator)):
        original = cls.__init__

        def counting(self, *args, _original=original, _kind=kind, **kwargs):
            counts[_kind] += 1
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    return counts


def _classifier():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(96, 6)).astype("float32"), rng.integers(0, 3, 96)


def _check_against_evaluate(model, x, y, surface, point=(3, 7)):
    origin = [v.numpy() for v in model.trainable_weights]
    coefficients = [surface.xcoords[point[0]], surface.ycoords[point[1]]]
    expected = evaluate_at(model, weights_at(model, origin, surface.directions, coefficients), x=x, y=y, batch_size=32)
    np.testing.assert_allclose(surface.losses["train"][point], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(surface.metrics["train"]["accuracy"][point], expected["accuracy"], rtol=1e-6)


@pytest.mark.parametrize("points_per_call", [1, 16, "auto"])
def test_a_second_surface_with_other_directions_compiles_nothing(built, points_per_call):
    model, x, y = _classifier()
    first = compute_surface(model, (x, y), xcoords=GRID, seed=0, batch_size=32, points_per_call=points_per_call,
                            verbose=0)
    counts = dict(built)
    second = compute_surface(model, (x, y), xcoords=GRID, seed=1, batch_size=32, points_per_call=points_per_call,
                             verbose=0)
    assert built == counts and sum(counts.values()) >= 1
    assert not np.array_equal(first.losses["train"], second.losses["train"])
    _check_against_evaluate(model, x, y, second)
    clear_evaluator_cache()
    fresh = compute_surface(model, (x, y), xcoords=GRID, seed=1, batch_size=32, points_per_call=points_per_call,
                            verbose=0)
    np.testing.assert_allclose(second.losses["train"], fresh.losses["train"], rtol=1e-6)


@pytest.mark.parametrize("points_per_call", [1, 16])
@pytest.mark.parametrize("change", ["recompile", "trainable", "data", "trained"])
def test_a_changed_model_or_data_never_gets_a_stale_evaluator(built, change, points_per_call):
    model, x, y = _classifier()
    compute_surface(model, (x, y), xcoords=GRID, seed=0, batch_size=32, points_per_call=points_per_call, verbose=0)
    before = dict(built)
    if change == "recompile":
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                      weighted_metrics=["accuracy"])
    elif change == "trainable":
        model.layers[0].trainable = False
    elif change == "data":
        x = x.copy()
        x[5, 2] += 1.0  # one value of one sample
    else:
        model.fit(x, y, epochs=1, verbose=0)  # new θ0, same variables: reused, around the new θ0
    surface = compute_surface(model, (x, y), xcoords=GRID, seed=0, batch_size=32, points_per_call=points_per_call,
                              verbose=0)
    rebuilt = built["vectorized"] > before["vectorized"] or built["point"] > before["point"]
    assert rebuilt == (change != "trained")
    if change != "trainable":  # with a frozen layer the directions move fewer variables than `weights_at` sets
        _check_against_evaluate(model, x, y, surface)


def test_only_a_few_evaluators_are_kept(built):
    models = [_classifier() for _ in range(MAX_CACHED_EVALUATORS + 1)]
    for model, x, y in models:
        compute_surface(model, (x, y), xcoords=GRID[:3], seed=0, batch_size=32, points_per_call=1, verbose=0)
    model, x, y = models[0]
    compute_surface(model, (x, y), xcoords=GRID[:3], seed=0, batch_size=32, points_per_call=1, verbose=0)
    assert built["point"] == MAX_CACHED_EVALUATORS + 2  # the first model's was forgotten, so it was built again


def test_directions_that_are_zero_elsewhere_get_their_own_evaluator(built):
    model, x, y = _classifier()
    for layer in model.layers:
        layer.bias.assign(np.full(layer.bias.shape, 0.1))  # filter normalization gives a zero bias a zero direction
    biasbn = random_directions(model, 2, seed=0, ignore="biasbn")
    every_weight = random_directions(model, 2, seed=0, ignore=None)
    compute_surface(model, (x, y), biasbn, xcoords=GRID[:4], batch_size=32, points_per_call=1, verbose=0)
    surface = compute_surface(model, (x, y), every_weight, xcoords=GRID[:4], batch_size=32, points_per_call=1,
                              verbose=0)
    assert built["point"] == 2
    _check_against_evaluate(model, x, y, surface, point=(1, 2))


def _model_with_inputs_b_then_a():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    model = keras.Model([b, a], keras.layers.Dense(2)(keras.layers.Concatenate()([b, a])))
    model.compile(loss="mse")
    rng = np.random.default_rng(0)
    x1, x2, y = (rng.normal(size=(40, n)).astype("float32") for n in (3, 3, 2))
    return model, x1, x2, y


@pytest.mark.parametrize("points_per_call", [1, 4])
def test_the_same_arrays_in_another_structure_are_other_data(built, points_per_call):
    """A list feeds the inputs by position ([b, a]), a dict by name: the same two arrays are two datasets."""
    model, x1, x2, y = _model_with_inputs_b_then_a()
    for x in ([x1, x2], {"a": x1, "b": x2}, {"b": x2, "a": x1}):
        line = compute_line(model, (x, y), coords=np.array([0.0, 0.5]), batch_size=16,
                            points_per_call=points_per_call, verbose=0)
        expected = model.evaluate(x, y, batch_size=16, verbose=0)
        np.testing.assert_allclose(line.losses["train"][0], expected, rtol=1e-5)
    assert built["point"] + built["vectorized"] == 2  # the two dicts, in either key order, are one dataset


def test_resuming_the_same_arrays_in_another_structure_is_refused(tmp_path):
    model, x1, x2, y = _model_with_inputs_b_then_a()
    path = tmp_path / "line.h5"
    compute_line(model, ([x1, x2], y), coords=np.array([0.0, 0.5]), path=path, verbose=0)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="another `data`"):
        compute_line(model, ({"a": x1, "b": x2}, y), coords=np.array([0.0, 0.5]), path=path, verbose=0)
    assert path.read_bytes() == before
    compute_line(model, ([x1, x2], y), coords=np.array([0.0, 0.5]), path=path, verbose=0)


def test_the_last_four_used_are_kept_and_a_hit_is_moved_to_the_new_point():
    from losslandscape.evaluator_cache import cached_evaluator

    class Evaluator:
        def __init__(self):
            self.bound = None

        def rebind(self, origin, directions):
            self.bound = (origin, directions)

    first = [cached_evaluator(("key", index), "θ0", "d", Evaluator) for index in range(MAX_CACHED_EVALUATORS)]
    assert cached_evaluator(("key", 0), "θ1", "e", Evaluator) is first[0] and first[0].bound == ("θ1", "e")
    cached_evaluator(("key", "new"), "θ0", "d", Evaluator)  # forgets the least recently used, key 1
    assert [cached_evaluator(("key", index), "θ0", "d", Evaluator) is first[index] for index in (0, 2, 3)] == [True] * 3
    assert cached_evaluator(("key", 1), "θ0", "d", Evaluator) is not first[1]
    assert cached_evaluator(None, "θ0", "d", Evaluator) is not cached_evaluator(None, "θ0", "d", Evaluator)


def test_the_key_tells_which_variables_move():
    from losslandscape.datasets import prepare_data
    from losslandscape.evaluator_cache import evaluator_key

    model, x, y = _classifier()
    batches = prepare_data((x, y), batch_size=32)
    variables = list(model.trainable_variables)
    directions = [[np.ones(v.shape) for v in variables]]
    every = evaluator_key(model, batches, variables, directions, True)
    assert every == evaluator_key(model, batches, list(variables), directions, True)
    assert every != evaluator_key(model, batches, variables[:2], [d[:2] for d in directions], True)
    assert every != evaluator_key(model, batches, variables[2:] + variables[:2], directions, True)


def test_each_points_per_call_has_its_own_evaluator_and_the_evaluate_engine_none(built, monkeypatch):
    """One point per call and each K are cached apart, so none is answered with another's evaluator; the
    reference engine is `model.evaluate` itself, never cached."""
    from losslandscape.datasets import prepare_data
    from losslandscape.engine import build_evaluator

    clear_evaluator_cache()
    model, x, y = _classifier()
    batches = prepare_data((x, y), batch_size=32)
    origin = [v.numpy() for v in model.trainable_variables]
    directions = random_directions(model, seed=0)
    evaluators = [build_evaluator(model, batches, origin, directions, points_per_call=k) for k in (1, 2, 3, 2, 1)]
    assert [e.points_per_call for e in evaluators] == [1, 2, 3, 2, 1]
    assert evaluators[3] is evaluators[1] and evaluators[4] is evaluators[0]
    assert built == {"point": 1, "vectorized": 2}
    calls = count_evaluate_calls(monkeypatch, model)
    points = np.array([[0.1, -0.2], [0.3, 0.4]])
    by_evaluate = build_evaluator(model, batches, origin, directions, engine="evaluate").evaluate(points)
    assert len(calls) == 2 and built == {"point": 1, "vectorized": 2}
    np.testing.assert_allclose([v["loss"] for v in by_evaluate],
                               [v["loss"] for v in evaluators[0].evaluate(points)], rtol=1e-5)
