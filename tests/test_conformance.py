"""Every evaluation path equals `model.evaluate` at weights set by hand, on a zoo of real Keras models.

Each cell computes a 2×2 surface (4 grid points; with K = 3 points per call
the second call is padded) and compares the loss and every compiled metric,
per-output losses and metrics included, with `model.evaluate` after setting
θ0 + α·δ + β·η into the model in numpy. The file runs again on JAX and
PyTorch (`test_other_backends.py`). On a GPU, where float32 products round
to TF32, it compares with exact float32 under the bound "auto" uses there
(`Expected`); run it there with `KERAS_BACKEND=jax python -m pytest
tests/test_conformance.py`.
"""

import contextlib
import sys

import numpy as np
import pytest

import losslandscape.backends
from conftest import ON_TENSORFLOW, TENSORFLOW_ON_GPU, evaluate_at, weights_at
from losslandscape import compute_surface, process_pool, random_directions
from losslandscape.input_layer_fold import foldable_input_dense
from losslandscape.points_per_call_probe import PROBE_REDUCED_PRECISION_FACTOR, largest_relative_difference
from model_zoo import BATCH_SIZE, SAMPLES, ZOO

XCOORDS = np.array([-0.5, 0.6])
YCOORDS = np.array([-0.2, 0.7])
FLOAT32_BOUND = 1e-5
# float16 keeps 11 bits of mantissa (relative rounding 4.9e-4). K stacked points compiled with XLA
# (TensorFlow on GPUs) run other kernels than `model.evaluate`, which round differently: 4.2e-5
# measured; 9e-8 in TensorFlow's graph (on CPUs) and on JAX.
FLOAT16_BOUND = 1e-3
# These variants pair the two direction conventions with and without sample weights.
VARIANTS = {"all_weights_weighted": (None, True), "biasbn_unweighted": ("biasbn", False)}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    built = {}

    def case(name):
        if name not in built:
            built[name] = ZOO[name](folder) if name == "reloaded" else ZOO[name]()
        return built[name]

    return case


@pytest.fixture(scope="module")
def evaluated():
    """`expected_values` of each model and variant, computed once: every path of a row compares with the same
    `model.evaluate` values, taken before any path ran, so a path that left the weights moved fails the next."""
    return {}


class Expected(list):
    """`expected[i][j][name]`, `model.evaluate` at (XCOORDS[i], YCOORDS[j]).

    Where the device rounds float32 (TF32 on a GPU), the values are computed
    in exact float32 (`Backend.full_precision`), and `reduced_error` is the
    largest relative difference of `model.evaluate` itself to them: a path
    may then err PROBE_REDUCED_PRECISION_FACTOR times as much, the rule
    "auto" applies there. Elsewhere `reduced_error` is 0.
    """

    reduced_error = 0.0


def expected_values(case, directions, weighted):
    """`model.evaluate` at each grid point, as `Expected`."""
    backend = losslandscape.backends.current_backend()
    expected = Expected(_evaluated_grid(case, directions, weighted))
    if backend.why_float32_is_reduced():
        as_run = expected
        with backend.full_precision():
            expected = Expected(_evaluated_grid(case, directions, weighted))
        expected.reduced_error = largest_relative_difference(
            [values for row in as_run for values in row], [values for row in expected for values in row]
        )[0]
    return expected


def _evaluated_grid(case, directions, weighted):
    model = case.model
    origin = [v.numpy() for v in model.trainable_variables]
    return [
        [
            evaluate_at(
                model, weights_at(model, origin, directions, (a, b)), x=case.x, y=case.y,
                sample_weight=case.sample_weight if weighted else None, batch_size=BATCH_SIZE,
            )
            for b in YCOORDS
        ]
        for a in XCOORDS
    ]


def assert_conforms(surface, expected, bound):
    names = set(expected[0][0])
    bound = max(bound, PROBE_REDUCED_PRECISION_FACTOR * expected.reduced_error)
    assert set(surface.metrics["train"]) | {"loss"} == names
    for i in range(len(XCOORDS)):
        for j in range(len(YCOORDS)):
            for name in names:
                got = surface.values("train", name)[i, j]
                np.testing.assert_allclose(got, expected[i][j][name], rtol=bound, atol=1e-7, err_msg=f"{name} at {(i, j)}")
    assert len(np.unique(surface.losses["train"])) == surface.losses["train"].size, "the directions must move the loss"


def cells():
    for name in ZOO:
        marks = [pytest.mark.slow] if name == "recurrent" else []  # 3 times the time of the others' row
        for variant in VARIANTS:
            yield pytest.param(name, variant, 1, True, id=f"{name}-{variant}-1", marks=marks)
            yield pytest.param(name, variant, 3, True, id=f"{name}-{variant}-K", marks=marks)
            if name in ("mlp", "two_outputs", "custom_metric", "reloaded"):
                yield pytest.param(name, variant, 3, False, id=f"{name}-{variant}-K_nofold")
            if ON_TENSORFLOW and not TENSORFLOW_ON_GPU:  # XLA, which TensorFlow uses for K points on GPUs only
                yield pytest.param(name, variant, 3, "xla", id=f"{name}-{variant}-K_xla", marks=pytest.mark.slow)
            if ON_TENSORFLOW:  # the eager reference "auto" checks small dense models against (JAX compiles it)
                yield pytest.param(name, variant, 1, "uncompiled", id=f"{name}-{variant}-1_uncompiled",
                                   marks=pytest.mark.slow)


@pytest.mark.parametrize("name, variant, points_per_call, fold", list(cells()))
def test_every_path_equals_model_evaluate(zoo, evaluated, monkeypatch, name, variant, points_per_call, fold):
    if name == "custom_metric" and not ON_TENSORFLOW:
        pytest.skip("Keras' own model.evaluate fails on JAX for a metric whose result() returns a variable")
    case = zoo(name)
    ignore, weighted = VARIANTS[variant]
    if points_per_call > 1:
        folded = foldable_input_dense(case.model)
        assert (folded is not None) == case.foldable
        if folded is not None:
            assert np.all(folded.bias.numpy() != 0), "the fold must be tested with a trained, non-zero bias"
        backend_module = sys.modules[type(losslandscape.backends.current_backend()).__module__]
        if not fold:
            monkeypatch.setattr(backend_module, "foldable_input_dense", lambda model: None)
        if fold == "xla":
            monkeypatch.setattr(backend_module.VectorizedPointEvaluator, "jit_compile", True)
    if fold == "uncompiled":
        point_evaluator = losslandscape.backends.current_backend().point_evaluator
        monkeypatch.setattr(point_evaluator, "evaluate", point_evaluator.evaluate_uncompiled)
    directions = random_directions(case.model, 2, seed=1, ignore=ignore)
    if (name, variant) not in evaluated:
        evaluated[name, variant] = expected_values(case, directions, weighted)
    if ignore is None:
        assert any(np.any(d) for d, v in zip(directions[0], case.model.trainable_variables) if "bias" in v.path)
    data = (case.x, case.y, case.sample_weight) if weighted else (case.x, case.y)
    # XLA (used on a GPU) has no kernel for the TensorList ops of recurrent layers under `vectorized_map`.
    xla_fallback = name == "recurrent" and points_per_call > 1 and (TENSORFLOW_ON_GPU or fold == "xla")
    with pytest.warns(UserWarning, match="XLA cannot compile") if xla_fallback else contextlib.nullcontext():
        surface = compute_surface(
            case.model, data, directions, XCOORDS, YCOORDS, batch_size=BATCH_SIZE,
            points_per_call=points_per_call, verbose=0,
        )
    bound = FLOAT16_BOUND if name == "mixed_float16" else FLOAT32_BOUND
    assert_conforms(surface, evaluated[name, variant], bound)


@pytest.mark.slow
def test_mixed_float16_bound_is_needed(zoo, monkeypatch):
    """The float16 bound holds, and with XLA on TensorFlow it is needed: K stacked points differ by more than float32's."""
    if ON_TENSORFLOW:
        backend_module = sys.modules[type(losslandscape.backends.current_backend()).__module__]
        monkeypatch.setattr(backend_module.VectorizedPointEvaluator, "jit_compile", True)
    case = zoo("mixed_float16")
    directions = random_directions(case.model, 2, seed=1, ignore=None)
    surface = compute_surface(
        case.model, (case.x, case.y), directions, XCOORDS, YCOORDS, batch_size=BATCH_SIZE, points_per_call=3, verbose=0
    )
    expected = expected_values(case, directions, False)
    differences = [
        abs(surface.losses["train"][i, j] - expected[i][j]["loss"]) / abs(expected[i][j]["loss"])
        for i in range(len(XCOORDS)) for j in range(len(YCOORDS))
    ]
    print(f"largest relative loss difference under mixed_float16: {max(differences):.2e}")
    assert max(differences) < FLOAT16_BOUND
    if ON_TENSORFLOW:
        assert max(differences) > FLOAT32_BOUND


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as executor:
        yield executor


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "two_outputs", "cnn"])
def test_workers_equal_model_evaluate(zoo, pool, name):
    """Workers load the model from `.keras` bytes: K stacked points, with the first-layer fold, still conform."""
    case = zoo(name)
    directions = random_directions(case.model, 2, seed=2, ignore=None)
    data = (case.x, case.y, case.sample_weight)
    surface = compute_surface(
        case.model, data, directions, XCOORDS, YCOORDS, batch_size=BATCH_SIZE,
        points_per_call=3, executor=pool, chunk_size=2, verbose=0,
    )
    assert_conforms(surface, expected_values(case, directions, True), FLOAT32_BOUND)


def test_per_output_losses_are_sample_means(zoo):
    """With a short last batch, per-output losses are means over samples on every path and backend.

    `model.evaluate` on TensorFlow averages per-output losses unweighted
    over batches when its graph does not know the batch size (the total
    loss and the metrics are sample means either way); on JAX it gives the
    sample mean. losslandscape gives the sample mean, which is
    `model.evaluate` with every sample in one batch.
    """
    case = zoo("two_outputs")
    x, y = case.x[:80], {key: value[:80] for key, value in case.y.items()}
    directions = random_directions(case.model, 2, seed=3)
    origin = [v.numpy() for v in case.model.trainable_variables]
    for points_per_call in (1, 3):
        surface = compute_surface(
            case.model, (x, y), directions, XCOORDS, YCOORDS, batch_size=BATCH_SIZE,
            points_per_call=points_per_call, verbose=0,
        )
        weights = weights_at(case.model, origin, directions, (XCOORDS[1], YCOORDS[0]))
        one_batch = evaluate_at(case.model, weights, x=x, y=y, batch_size=80)
        for name in ("loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"):
            np.testing.assert_allclose(surface.values("train", name)[1, 0], one_batch[name], rtol=FLOAT32_BOUND)
    assert SAMPLES % BATCH_SIZE == 0 and 80 % BATCH_SIZE != 0


def test_probe_names_the_value_that_differs(zoo, monkeypatch, capsys):
    """When K points disagree with one point per call, "auto" keeps one and says which value differed."""
    import losslandscape.points_per_call_probe as probe

    case = zoo("two_outputs")
    backend = losslandscape.backends.current_backend()
    original = backend.vectorized_evaluator.evaluate

    def off_in_reg_loss(self, rows):
        return [dict(values, reg_loss=values["reg_loss"] * 1.01) for values in original(self, rows)]

    monkeypatch.setattr(backend.vectorized_evaluator, "evaluate", off_in_reg_loss)
    grid = np.linspace(-0.5, 0.5, 12)
    compute_surface(case.model, (case.x, case.y), xcoords=grid, seed=0, batch_size=BATCH_SIZE, verbose=2)
    printed = capsys.readouterr().out
    assert "using one point per call" in printed
    assert "`reg_loss`" in printed and "relative difference 9.9e-03" in printed
    assert "TF32" not in printed
    assert probe.PROBE_AGREEMENT == 1e-5
