"""The agreement rule of "auto" where the arithmetic rounds float32: K points against exact float32 values."""

import keras
import numpy as np
import pytest

import losslandscape.points_per_call_probe as probe_module
from conftest import evaluate_at, same_on_every_backend, trained_classifier, weights_at
from losslandscape import compute_surface, load_surface, random_directions
from losslandscape.backends import current_backend
from losslandscape.reference_precision import full_precision_values, why_arithmetic_is_reduced

GRID = np.linspace(-0.5, 0.5, 12)  # 144 points: "auto" probes


@pytest.fixture(scope="module")
def classifier():
    return trained_classifier(samples=256, features=12, hidden=16)


class _Evaluator:
    """Gives `loss = 1 + offset` at every point, K points per call."""

    def __init__(self, points_per_call, offset=0.0):
        self.points_per_call = points_per_call
        self.offset = offset

    def evaluate(self, rows):
        return [{"loss": 1.0 + self.offset}] * len(rows)


def _probe(monkeypatch, k_offset, one_point_offset=0.0, exact=None, reduced="the model computes in bfloat16"):
    """Runs the probe with one point per call at 1 + one_point_offset, K at 1 + k_offset, exact values 1 + exact."""
    def fake_time(evaluator, rows, k):
        return evaluator.evaluate(rows[: 2 * k]), {1: 1e-2, 16: 1e-3, 64: 2e-3}[evaluator.points_per_call], 0.0

    monkeypatch.setattr(probe_module, "time_evaluator", fake_time)
    calls = []

    def full_precision(rows):
        calls.append(len(rows))
        return [{"loss": 1.0 + exact}] * len(rows)

    best, _, agreement = probe_module.fastest_evaluator(
        _Evaluator(1, one_point_offset), lambda k: _Evaluator(k, k_offset), np.zeros((10_000, 2)), 2**21, verbose=2,
        convolutional=True, full_precision=None if exact is None else full_precision, reduced=reduced,
    )
    return best.points_per_call, agreement, calls


@same_on_every_backend
@pytest.mark.parametrize(
    "one_point_offset, k_offset, chosen, tolerance",
    [
        (1e-3, 1.5e-3, 16, 2 * 1e-3 / 1.001),  # K errs 1.5 times as much as one point per call: kept
        (1e-3, -1e-3, 16, 2 * 1e-3 / 1.001),  # errs as much, on the other side: kept
        (1e-3, 3e-3, 1, 2 * 1e-3 / 1.001),  # errs 3 times as much (a dropped sample weight): refused
        (0.0, 2e-5, 1, 1e-5),  # one point per call is exact: K must still be within 1e-5
        (0.0, 5e-6, 16, 1e-5),
    ],
)
def test_reduced_precision_compares_both_with_exact_float32(monkeypatch, capsys, one_point_offset, k_offset, chosen,
                                                            tolerance):
    per_call, agreement, calls = _probe(monkeypatch, k_offset, one_point_offset, exact=0.0)
    assert per_call == chosen
    assert calls == [16]  # exact values at the 2 × PROBE_REFERENCE_POINTS points one point per call was timed on
    assert agreement["compared_with"] == "exact float32"
    assert agreement["reduced_because"] == "the model computes in bfloat16"
    assert agreement["one_point_error"] == pytest.approx(abs(one_point_offset) / (1 + one_point_offset), rel=1e-9)
    assert agreement["tolerance"] == pytest.approx(tolerance, rel=1e-9)
    assert ("largest_difference" in agreement) == (chosen > 1)
    if chosen > 1:
        assert agreement["largest_difference"] == pytest.approx(abs(k_offset) / (1 + max(k_offset, 0)), rel=1e-9)
    printed = capsys.readouterr().out
    assert "the model computes in bfloat16, so K points are checked against exact float32" in printed
    assert f"one point per call errs {agreement['one_point_error']:.1e}" in printed
    if chosen == 1:
        assert "where exact float32 gave 1" in printed


@same_on_every_backend
@pytest.mark.parametrize("k_offset, chosen", [(2e-5, 1), (5e-6, 16)])
def test_exact_arithmetic_asks_k_points_to_agree_with_one_point_per_call(monkeypatch, capsys, k_offset, chosen):
    per_call, agreement, calls = _probe(monkeypatch, k_offset, one_point_offset=0.3, reduced=None)
    # one point per call gives 1.3: K points at 1.00002 or 1.000005 differ from it by far more than 1e-5
    assert per_call == 1 and calls == []
    assert agreement == {"compared_with": "one point per call", "tolerance": 1e-5}
    per_call, _, _ = _probe(monkeypatch, k_offset, one_point_offset=0.0, reduced=None)
    assert per_call == chosen
    assert "K points must agree with one point per call to 1e-05" in capsys.readouterr().out


@same_on_every_backend
def test_agreement_rule_in_closed_form():
    one_point = [{"loss": 2.0, "acc": 0.5}, {"loss": 4.0, "acc": 0.25}]
    exact = [{"loss": 2.0, "acc": 0.5}, {"loss": 4.4, "acc": 0.25}]
    rule = probe_module.agreement_rule(one_point, exact, "TF32")
    assert rule["one_point_error"] == pytest.approx(0.4 / 4.4)
    assert rule["tolerance"] == pytest.approx(2 * 0.4 / 4.4)
    assert rule["reduced_because"] == "TF32" and rule["compared_with"] == "exact float32"
    tiny = probe_module.agreement_rule(one_point, one_point, "TF32")
    assert tiny["one_point_error"] == 0.0 and tiny["tolerance"] == 1e-5


def test_reduced_arithmetic_is_told_from_exact(monkeypatch):
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert why_arithmetic_is_reduced(dense) is None  # a CPU computes exact float32
    for policy, dtype in [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")]:
        nested = keras.Sequential([keras.Input((3,)), keras.Sequential([keras.layers.Dense(2, dtype=policy)])])
        assert why_arithmetic_is_reduced(nested) == f"the model computes in {dtype}"
    monkeypatch.setattr(type(current_backend()), "why_float32_is_reduced", lambda self: "TF32 on the GPU")
    assert why_arithmetic_is_reduced(dense) == "TF32 on the GPU"


def test_full_precision_values_are_those_of_a_float32_model_under_the_backends_full_precision(classifier, monkeypatch):
    import contextlib

    from losslandscape.datasets import prepare_data
    from losslandscape.precision import with_dtype_policy

    model, x, y = classifier
    low = with_dtype_policy(model, "mixed_bfloat16")
    directions = random_directions(model, seed=4)
    origin = [v.numpy() for v in model.trainable_variables]
    entered = []

    @contextlib.contextmanager
    def full_precision(self):
        entered.append(True)
        yield

    monkeypatch.setattr(type(current_backend()), "full_precision", full_precision)
    values = full_precision_values(low, prepare_data((x, y)), origin, directions, True)
    points = np.array([[0.0, 0.0], [0.3, -0.2]])
    computed = values(points)
    assert entered == [True]
    for point, value in zip(points, computed):
        expected = evaluate_at(model, weights_at(model, origin, directions, point), x=x, y=y, batch_size=128)
        assert value["loss"] == pytest.approx(expected["loss"], rel=1e-6)
        assert value["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-7)
    assert low.layers[0].compute_dtype == "bfloat16"  # the user's model is not changed


def test_a_bfloat16_surface_records_the_check_and_its_bound(classifier, tmp_path, capsys):
    from losslandscape.precision import with_dtype_policy

    model, x, y = classifier
    directions = random_directions(model, seed=5)
    path = tmp_path / "surface.h5"
    surface = compute_surface(model, (x, y), directions, xcoords=GRID, dtype_policy="mixed_bfloat16", path=path,
                              verbose=2)
    agreement = surface.settings["points_per_call_agreement"]["train"]
    assert agreement["compared_with"] == "exact float32"
    assert agreement["reduced_because"] == "the model computes in bfloat16"
    # Independently: the surface's bfloat16 values at the probe's reference points (the grid's first) against
    # float32 `model.evaluate` there, and bfloat16 `model.evaluate`'s own error as a scale. Which bfloat16 kernels
    # run depends on the CPU (oneDNN uses native bfloat16 instructions where they exist), so the two bfloat16
    # paths agree only in size, not digit for digit.
    low = with_dtype_policy(model, "mixed_bfloat16")
    origin = [v.numpy() for v in model.trainable_variables]
    errors, evaluate_errors = [], []
    for i in range(probe_module.PROBE_UNCOMPILED_REFERENCE_POINTS):
        weights = weights_at(model, origin, directions, (GRID[0], GRID[i]))
        exact = evaluate_at(model, weights, x=x, y=y, batch_size=128)
        rounded = evaluate_at(low, weights, x=x, y=y, batch_size=128)
        found = {"loss": surface.losses["train"][0, i], "accuracy": surface.metrics["train"]["accuracy"][0, i]}
        errors += [abs(found[name] - exact[name]) / max(abs(found[name]), abs(exact[name])) for name in exact]
        evaluate_errors += [abs(rounded[name] - exact[name]) / max(abs(rounded[name]), abs(exact[name]))
                            for name in exact]
    assert max(evaluate_errors) > 1e-5  # really rounded
    assert agreement["one_point_error"] == pytest.approx(max(errors), rel=1e-5)
    assert max(evaluate_errors) / 8 < agreement["one_point_error"] < 8 * max(evaluate_errors)
    assert agreement["tolerance"] == pytest.approx(2 * agreement["one_point_error"])
    assert surface.settings["points_per_call_used"]["train"] > 1
    assert agreement["largest_difference"] <= agreement["tolerance"]
    assert "checked against exact float32" in capsys.readouterr().out
    assert load_surface(path).settings["points_per_call_agreement"] == {"train": agreement}


def test_a_float32_surface_records_agreement_with_one_point_per_call(classifier):
    model, x, y = classifier
    surface = compute_surface(model, (x, y), xcoords=GRID, seed=1, verbose=0)
    assert surface.settings["points_per_call_agreement"]["train"]["compared_with"] == "one point per call"
    assert surface.settings["points_per_call_agreement"]["train"]["tolerance"] == 1e-5
    one = compute_surface(model, (x, y), xcoords=GRID, seed=1, points_per_call=1, verbose=0)
    assert "points_per_call_agreement" not in one.settings  # nothing was probed


def test_both_reduced_dtypes_are_named():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, dtype="mixed_float16"),
                              keras.layers.Dense(1, dtype="mixed_bfloat16")])
    assert why_arithmetic_is_reduced(model) == "the model computes in bfloat16 and float16"


def test_one_reduced_layer_is_enough_for_a_float32_copy_and_regularization_is_passed_on():
    from losslandscape.datasets import prepare_data

    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    model = keras.Sequential([
        keras.Input((5,)), keras.layers.Dense(8, activation="tanh", kernel_regularizer=keras.regularizers.L2(0.5)),
        keras.layers.Dense(1, dtype="mixed_bfloat16"),
    ])
    model.compile(loss="mse")
    exact = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh",
                                                                    kernel_regularizer=keras.regularizers.L2(0.5)),
                              keras.layers.Dense(1)])
    exact.compile(loss="mse")
    exact.set_weights(model.get_weights())
    origin = [v.numpy() for v in model.trainable_variables]
    directions = [[np.ones_like(w) * 0.1 for w in origin]]
    points = np.array([[0.0], [1.0]])
    with_regularization = full_precision_values(model, prepare_data((x, y)), origin, directions, True)(points)
    without = full_precision_values(model, prepare_data((x, y)), origin, directions, False)(points)
    for point, a, b in zip(points, with_regularization, without):
        weights = weights_at(exact, origin, directions, point)
        assert a["loss"] == pytest.approx(evaluate_at(exact, weights, x=x, y=y, batch_size=128)["loss"], rel=1e-6)
        penalty = 0.5 * float(np.sum(weights[0].astype(np.float64) ** 2))
        assert a["loss"] - b["loss"] == pytest.approx(penalty, rel=1e-4)


def test_a_float32_model_is_its_own_reference_and_a_copy_is_made_in_float32(classifier, monkeypatch):
    import losslandscape.reference_precision as reference_precision
    from losslandscape.datasets import prepare_data
    from losslandscape.precision import with_dtype_policy

    model, x, y = classifier
    copies = []

    def recorded(model, policy):
        copies.append(policy)
        return with_dtype_policy(model, policy)

    monkeypatch.setattr(reference_precision, "with_dtype_policy", recorded)
    directions = random_directions(model, seed=4)
    origin = [v.numpy() for v in model.trainable_variables]
    full_precision_values(model, prepare_data((x, y)), origin, directions, True)
    assert copies == []  # nothing to copy: its arithmetic is already exact
    full_precision_values(with_dtype_policy(model, "mixed_bfloat16"), prepare_data((x, y)), origin, directions, True)
    assert copies == ["float32"]


def test_a_regularized_bfloat16_surface_is_checked_against_exact_values_with_the_same_penalty():
    """The exact float32 reference carries the weights' penalty where the surface does (and not where it does not):
    otherwise one point per call would seem to err by the whole penalty, a third of the loss here."""
    keras.utils.set_random_seed(8)
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(128, 12)).astype("float32"), rng.integers(0, 3, 128)
    model = keras.Sequential([keras.Input((12,)),
                              keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05)),
                              keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    for include_regularization in (True, False):
        surface = compute_surface(model, (x, y), xcoords=GRID, seed=2, dtype_policy="mixed_bfloat16",
                                  include_regularization=include_regularization, verbose=0)
        agreement = surface.settings["points_per_call_agreement"]["train"]
        assert agreement["compared_with"] == "exact float32"
        assert 0 < agreement["one_point_error"] < 1e-2, include_regularization
    penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
    assert penalty > 0.3 * float(surface.losses["train"][6, 6])  # large next to the data loss near θ0
