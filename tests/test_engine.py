import re

import keras
import numpy as np
import pytest
from conftest import (
    ON_TENSORFLOW,
    all_state,
    assert_same_state,
    count_evaluate_calls,
    evaluate_at,
    tensorflow_only,
    weights_at,
)

import losslandscape.points_per_call_probe as probe_module
from losslandscape import WeightSnapshot, compute_line, evaluate_grid, random_directions
from losslandscape.backends import current_backend
from losslandscape.datasets import prepare_data
from losslandscape.engine import check_compiled
from losslandscape.input_layer_fold import foldable_input_dense
from losslandscape.progress import Progress

POINTS = np.array([[0.0, 0.0], [0.4, -0.3], [-1.0, 0.8]])


def engine_values(model, data, directions, engine="compiled", **kwargs):
    batches = {"train": prepare_data(data, batch_size=kwargs.pop("batch_size", 32))}
    return evaluate_grid(model, batches, directions, POINTS, engine=engine, verbose=0, **kwargs)["train"]


def assert_each_point_is_model_evaluate(values, model, directions, x, y, batch_size=32, names=("loss", "mae")):
    """The values at each of POINTS equal `model.evaluate` at θ0 + Σ c_k·d_k, the weights set by hand in numpy."""
    origin = [v.numpy() for v in model.trainable_variables]
    for index, point in enumerate(POINTS):
        expected = evaluate_at(model, weights_at(model, origin, directions, point), x=x, y=y, batch_size=batch_size)
        np.testing.assert_allclose([values[name][index] for name in names], [expected[name] for name in names],
                                   rtol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_engine_equals_model_evaluate(trained_cnn, image_data, weighted):
    x, y, sample_weight = image_data
    data = (x, y, sample_weight) if weighted else (x, y)
    directions = random_directions(trained_cnn, seed=0)
    origin = [v.numpy() for v in trained_cnn.trainable_weights]
    values = engine_values(trained_cnn, data, directions)
    for index, point in enumerate(POINTS):
        expected = evaluate_at(
            trained_cnn,
            weights_at(trained_cnn, origin, directions, point),
            x=x,
            y=y,
            sample_weight=sample_weight if weighted else None,
            batch_size=32,
        )
        for name in ("loss", "accuracy"):
            np.testing.assert_allclose(values[name][index], expected[name], rtol=1e-5)
    assert len(set(np.round(values["loss"], 6))) == len(POINTS)


def test_weighted_and_unweighted_losses_differ(trained_cnn, image_data):
    x, y, sample_weight = image_data
    directions = random_directions(trained_cnn, seed=0)
    plain = engine_values(trained_cnn, (x, y), directions)["loss"]
    weighted = engine_values(trained_cnn, (x, y, sample_weight), directions)["loss"]
    assert np.all(np.abs(plain - weighted) > 1e-4)


def test_evaluate_engine_equals_compiled_engine(trained_cnn, image_data):
    directions = random_directions(trained_cnn, seed=1)
    compiled = engine_values(trained_cnn, image_data, directions)  # with sample weights
    reference = engine_values(trained_cnn, image_data, directions, engine="evaluate")
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(compiled[name], reference[name], rtol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_without_regularization_subtracts_the_l2_penalty(trained_cnn, image_data, weighted):
    x, y, sample_weight = image_data
    data = (x, y, sample_weight) if weighted else (x, y)
    directions = random_directions(trained_cnn, seed=2)
    origin = [v.numpy() for v in trained_cnn.trainable_weights]
    total = engine_values(trained_cnn, data, directions)["loss"]
    data_only = engine_values(trained_cnn, data, directions, include_regularization=False)["loss"]
    kernels = [i for i, v in enumerate(trained_cnn.trainable_weights) if v.name == "kernel"]
    for index, point in enumerate(POINTS):
        weights = weights_at(trained_cnn, origin, directions, point)
        penalty = sum(1e-2 * np.sum(weights[i].astype(np.float64) ** 2) for i in kernels)
        np.testing.assert_allclose(total[index] - data_only[index], penalty, rtol=1e-4)


def test_dataset_and_pydataset_inputs_match_arrays(trained_cnn, image_data):
    tf = pytest.importorskip("tensorflow")
    x, y, sample_weight = image_data
    directions = random_directions(trained_cnn, seed=3)
    arrays = engine_values(trained_cnn, (x, y, sample_weight), directions)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, sample_weight)).batch(50)
    batches = {"train": prepare_data(dataset)}
    from_dataset = evaluate_grid(trained_cnn, batches, directions, POINTS, verbose=0)["train"]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            part = slice(50 * index, 50 * (index + 1))
            return x[part], y[part], sample_weight[part]

    batches = {"train": prepare_data(Batches())}
    from_pydataset = evaluate_grid(trained_cnn, batches, directions, POINTS, verbose=0)["train"]
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(from_dataset[name], arrays[name], rtol=1e-5)
        np.testing.assert_allclose(from_pydataset[name], arrays[name], rtol=1e-5)


@tensorflow_only
def test_batches_of_different_lengths_stream_from_a_cached_dataset():
    tf = pytest.importorskip("tensorflow")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((None, 3)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)]
    )
    model.compile(loss="mse")
    rng = np.random.default_rng(0)
    # Sequence length changes from batch to batch, so batches cannot be joined.
    batches = [(rng.normal(size=(8, length, 3)), rng.normal(size=(8, 1))) for length in (2, 5, 3)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(tf.TensorSpec((None, None, 3), tf.float64), tf.TensorSpec((None, 1), tf.float64)),
    )
    prepared = prepare_data(dataset)
    assert type(prepared).__name__ == "StreamedBatches" and prepared.num_samples == 24
    directions = random_directions(model, seed=0)
    compiled = evaluate_grid(model, {"train": prepared}, directions, POINTS, verbose=0)["train"]
    origin = [v.numpy() for v in model.trainable_weights]
    for index, point in enumerate(POINTS):
        expected = evaluate_at(model, weights_at(model, origin, directions, point), x=dataset)
        np.testing.assert_allclose(compiled["loss"][index], expected["loss"], rtol=1e-5)


def test_max_samples_and_max_batches_use_the_first_samples(small_mlp, regression_data):
    x, y = regression_data
    directions = random_directions(small_mlp, seed=0)
    head = engine_values(small_mlp, (x[:40], y[:40]), directions, batch_size=20)
    limited = evaluate_grid(
        small_mlp, {"train": prepare_data((x, y), batch_size=20, max_samples=40)}, directions, POINTS, verbose=0
    )["train"]
    by_batches = evaluate_grid(
        small_mlp, {"train": prepare_data((x, y), batch_size=20, max_batches=2)}, directions, POINTS, verbose=0
    )["train"]
    np.testing.assert_allclose(limited["loss"], head["loss"], rtol=1e-6)
    np.testing.assert_allclose(by_batches["loss"], head["loss"], rtol=1e-6)


def test_state_is_bitwise_identical_after_return(trained_cnn, image_data):
    x, y, _ = image_data
    before = all_state(trained_cnn)
    engine_values(trained_cnn, (x, y), random_directions(trained_cnn, seed=4))
    engine_values(trained_cnn, (x, y), random_directions(trained_cnn, seed=4), engine="evaluate")
    assert_same_state(before, all_state(trained_cnn))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_state_is_restored_when_interrupted_mid_grid(trained_cnn, image_data, monkeypatch, error):
    x, y, _ = image_data
    before = all_state(trained_cnn)
    calls = []

    def add_then_fail(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            if ON_TENSORFLOW:  # the weights are at the second point now, far from θ0; JAX never writes them
                assert not np.array_equal(trained_cnn.trainable_weights[0].numpy(), before[0])
            raise error("stopped")

    monkeypatch.setattr(Progress, "add", add_then_fail)
    with pytest.raises(error):
        engine_values(trained_cnn, (x, y), random_directions(trained_cnn, seed=5))
    assert len(calls) == 2
    assert_same_state(before, all_state(trained_cnn))


def test_weight_snapshot_restores_non_trainable_variables(trained_cnn):
    moving_mean = trained_cnn.layers[1].moving_mean
    before = moving_mean.numpy().copy()
    with WeightSnapshot(trained_cnn):
        moving_mean.assign(before + 1.0)
    np.testing.assert_array_equal(moving_mean.numpy(), before)


def test_uncompiled_model_is_rejected(regression_data):
    message = ("The model is not compiled with a loss. Call `model.compile(loss=..., metrics=[...])` first; the "
               "landscape shows the compiled loss and metrics.")
    batches = {"train": prepare_data(regression_data)}
    regularized = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, kernel_regularizer="l2")])
    without_loss = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    without_loss.compile()
    # Uncompiled (even with a layer's loss), or compiled with no loss at all.
    for model in (keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)]), regularized, without_loss):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            evaluate_grid(model, batches, random_directions(model), POINTS, verbose=0)
    with pytest.raises(TypeError, match="^Expected a keras.Model, received: str$"):
        check_compiled("model.keras")


def test_unknown_engine_and_mismatched_directions_are_rejected(small_mlp, regression_data):
    batches = {"train": prepare_data(regression_data)}
    directions = random_directions(small_mlp)
    with pytest.raises(ValueError, match="engine"):
        evaluate_grid(small_mlp, batches, directions, POINTS, engine="fast", verbose=0)
    with pytest.raises(ValueError, match="does not fit"):
        evaluate_grid(small_mlp, batches, [directions[0][:1], directions[1]], POINTS, verbose=0)


@pytest.mark.parametrize("include_regularization", [True, False])
@pytest.mark.parametrize("min_values_per_step", [1, 2**30])  # batches of 32 as given, or all 200 samples in one
def test_vectorized_points_equal_model_evaluate(trained_cnn, image_data, include_regularization, min_values_per_step,
                                                monkeypatch):
    if ON_TENSORFLOW:
        monkeypatch.setattr("losslandscape.backends.tensorflow.MIN_INPUT_VALUES_PER_STEP", min_values_per_step)
    elif min_values_per_step > 1:
        pytest.skip("only the TensorFlow backend joins batches into larger steps")
    x, y, sample_weight = image_data
    directions = random_directions(trained_cnn, seed=6)
    grid = np.random.default_rng(0).uniform(-1, 1, size=(7, 2))  # 7 points: the last call is padded
    batches = {"train": prepare_data((x, y, sample_weight), batch_size=32)}
    before = all_state(trained_cnn)
    stacked = evaluate_grid(trained_cnn, batches, directions, grid, verbose=0, points_per_call=3,
                            include_regularization=include_regularization)["train"]
    assert_same_state(before, all_state(trained_cnn))
    one_by_one = evaluate_grid(trained_cnn, batches, directions, grid, verbose=0, points_per_call=1,
                               include_regularization=include_regularization)["train"]
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(stacked[name], one_by_one[name], rtol=1e-5)
    if include_regularization:
        origin = [v.numpy() for v in trained_cnn.trainable_weights]
        expected = evaluate_at(trained_cnn, weights_at(trained_cnn, origin, directions, grid[4]),
                               x=x, y=y, sample_weight=sample_weight, batch_size=32)
        np.testing.assert_allclose(stacked["loss"][4], expected["loss"], rtol=1e-5)
        np.testing.assert_allclose(stacked["accuracy"][4], expected["accuracy"], rtol=1e-6)


def test_auto_probe_on_a_large_grid_keeps_values(small_mlp, regression_data, capsys):
    x, y = regression_data
    directions = random_directions(small_mlp, seed=0)
    grid = np.random.default_rng(1).uniform(-1, 1, size=(130, 2))
    batches = {"train": prepare_data((x, y))}
    auto = evaluate_grid(small_mlp, batches, directions, grid, verbose=1, points_per_call="auto")["train"]
    printed = [line for line in capsys.readouterr().out.split("\n") if line.startswith("losslandscape:")]
    assert len(printed) == 1 and re.fullmatch(r"losslandscape: evaluating (one point|\d+ points) at a time", printed[0])
    one = evaluate_grid(small_mlp, batches, directions, grid, verbose=0, points_per_call=1)["train"]
    np.testing.assert_allclose(auto["loss"], one["loss"], rtol=1e-5)
    with pytest.raises(ValueError, match="points_per_call"):
        evaluate_grid(small_mlp, batches, directions, grid[:2], verbose=0, points_per_call=0)


@pytest.mark.parametrize("timed", [False, True])  # the small MLP is stacked without timing one point, unless told
def test_auto_probe_keeps_one_point_per_call_when_the_values_disagree(small_mlp, regression_data, capsys,
                                                                      monkeypatch, timed):
    x, y = regression_data
    directions = random_directions(small_mlp, seed=0)
    grid = np.random.default_rng(1).uniform(-1, 1, size=(130, 2))
    batches = {"train": prepare_data((x, y))}
    monkeypatch.setattr(probe_module, "PROBE_AGREEMENT", -1.0)  # any difference, even 0, is too large
    if timed:
        monkeypatch.setattr(probe_module, "PROBE_STACKED_WITHOUT_TIMING_MAX_PARAMETERS", 0)
    calls, uncompiled = [], []
    point_evaluator = current_backend().point_evaluator
    evaluate, evaluate_uncompiled = point_evaluator.evaluate, point_evaluator.evaluate_uncompiled

    def spy_uncompiled(self, rows):
        calls.append(("evaluate_uncompiled", len(rows)))
        uncompiled.append(True)  # backends may run `evaluate` itself uncompiled: not counted twice
        try:
            return evaluate_uncompiled(self, rows)
        finally:
            uncompiled.pop()

    def spy(self, rows):
        if not uncompiled:
            calls.append(("evaluate", len(rows)))
        return evaluate(self, rows)

    monkeypatch.setattr(point_evaluator, "evaluate_uncompiled", spy_uncompiled)
    monkeypatch.setattr(point_evaluator, "evaluate", spy)
    auto = evaluate_grid(small_mlp, batches, directions, grid, verbose=2, points_per_call="auto")["train"]
    printed = capsys.readouterr().out
    # A grid under 8 × 64 points starts at 16 points per call.
    assert re.search(r"with 16 points per call, `\w+` was", printed) and "using one point per call" in printed
    # The probe's points are kept: every point is computed once.
    assert sum(count for _, count in calls) == len(grid)
    if timed:
        assert "ms per point with 1 per call" in printed
        assert calls[:2] == [("evaluate", probe_module.PROBE_REFERENCE_POINTS)] * 2
    else:
        assert "ms per point with 16 per call" in printed and "one per call not timed: no convolutions and 57 weights" in printed
        assert calls[0] == ("evaluate_uncompiled", probe_module.PROBE_UNCOMPILED_REFERENCE_POINTS)
        assert all(method == "evaluate" for method, _ in calls[1:])
    origin = [v.numpy() for v in small_mlp.trainable_weights]
    for point in (0, 1, 100):  # the probe's first points, and one computed one point per call
        expected = evaluate_at(small_mlp, weights_at(small_mlp, origin, directions, grid[point]), x=x, y=y, batch_size=128)
        np.testing.assert_allclose(auto["loss"][point], expected["loss"], rtol=1e-5)


@tensorflow_only
def test_streamed_dataset_is_read_at_every_point_with_the_same_values(small_mlp, regression_data):
    tf = pytest.importorskip("tensorflow")
    x, y = regression_data
    passes = []

    def batches():
        passes.append(1)
        for start in range(0, len(x), 32):
            yield x[start : start + 32], y[start : start + 32]

    signature = (tf.TensorSpec((None, 5), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    directions = random_directions(small_mlp, seed=0)
    streamed = prepare_data(dataset, stream=True)
    assert streamed.num_samples == len(x)
    values = evaluate_grid(small_mlp, {"train": streamed}, directions, POINTS, verbose=0)["train"]
    assert len(passes) >= 1 + len(POINTS)  # counted once, then read again at each point
    kept = evaluate_grid(small_mlp, {"train": prepare_data((x, y), batch_size=32)}, directions, POINTS, verbose=0)["train"]
    np.testing.assert_allclose(values["loss"], kept["loss"], rtol=1e-6)
    with pytest.raises(ValueError, match="stream=True"):
        prepare_data((x, y), stream=True)


@tensorflow_only
def test_a_streamed_dataset_gives_model_evaluate_its_batches_and_is_hashed_by_its_contents(small_mlp,
                                                                                            regression_data):
    tf = pytest.importorskip("tensorflow")
    x, y = regression_data

    def streamed(labels):
        return prepare_data(tf.data.Dataset.from_tensor_slices((x, labels)).batch(40), stream=True)

    batches = streamed(y)
    expected = small_mlp.evaluate(x, y, batch_size=40, verbose=0, return_dict=True)
    assert small_mlp.evaluate(**batches.evaluate_arguments(), verbose=0, return_dict=True) == pytest.approx(
        expected, rel=1e-6)
    relabelled = y.copy()
    relabelled[-1] += 1.0
    assert streamed(y).fingerprint() == batches.fingerprint()
    assert streamed(relabelled).fingerprint() != batches.fingerprint()


@tensorflow_only
def test_k_points_per_call_read_a_streamed_dataset_as_model_evaluate_does(small_mlp, regression_data):
    tf = pytest.importorskip("tensorflow")
    x, y = regression_data

    def batches():
        for start in range(0, len(x), 40):
            yield x[start : start + 40], y[start : start + 40]

    signature = (tf.TensorSpec((None, 5), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    streamed = prepare_data(tf.data.Dataset.from_generator(batches, output_signature=signature), stream=True)
    directions = random_directions(small_mlp, seed=0)
    chosen = {}
    values = evaluate_grid(small_mlp, {"train": streamed}, directions, POINTS, points_per_call=3, verbose=0,
                           on_evaluator=chosen.__setitem__)["train"]
    assert chosen == {"train": 3}
    assert_each_point_is_model_evaluate(values, small_mlp, directions, x, y, batch_size=40)


@pytest.mark.parametrize("engine", ["evaluate", "compiled"])
def test_a_model_that_centres_each_batch_is_evaluated_in_the_batches_given(regression_data, engine):
    """Its loss depends on how the samples are batched, so every engine must batch as `batch_size=` says."""
    x, y = regression_data
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Lambda(lambda t: t - keras.ops.mean(t, axis=0)),
                              keras.layers.Dense(1)])
    model.compile(loss="mse")
    directions = random_directions(model, seed=0)
    values = engine_values(model, (x, y), directions, engine=engine, batch_size=24)
    origin = [v.numpy() for v in model.trainable_variables]
    for index, point in enumerate(POINTS):
        weights = weights_at(model, origin, directions, point)
        expected = evaluate_at(model, weights, x=x, y=y, batch_size=24)["loss"]
        assert values["loss"][index] == pytest.approx(expected, rel=1e-5)
        assert abs(expected - evaluate_at(model, weights, x=x, y=y, batch_size=32)["loss"]) > 1e-3 * expected


@pytest.mark.parametrize("points_per_call", [1, 3])
def test_float64_directions_move_a_float32_model_as_their_values_say(small_mlp, regression_data, points_per_call):
    """Directions read back from a file or built by hand in numpy are often float64."""
    x, y = regression_data
    directions = [[np.float64(1.5) * d.astype("float64") for d in direction]
                  for direction in random_directions(small_mlp, seed=2)]
    values = engine_values(small_mlp, (x, y), directions, points_per_call=points_per_call)
    assert_each_point_is_model_evaluate(values, small_mlp, directions, x, y)


@pytest.mark.parametrize("use_bias", [True, False])
def test_k_points_through_a_folded_first_dense_layer_equal_model_evaluate(monkeypatch, use_bias):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 6)).astype("float32")
    y = rng.integers(0, 3, size=150)
    sample_weight = rng.uniform(0.1, 2.0, size=150).astype("float32")
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(12, activation="relu", use_bias=use_bias,
                                kernel_regularizer=keras.regularizers.l2(1e-2))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert foldable_input_dense(model) is model.layers[1]
    if use_bias:  # a trained bias, moved by its own direction
        model.layers[1].bias.assign(rng.normal(size=12).astype("float32"))
    directions = random_directions(model, seed=1, ignore=None)
    grid = np.random.default_rng(4).uniform(-1, 1, size=(5, 2))
    batches = {"train": prepare_data((x, y, sample_weight), batch_size=32)}
    called = []
    original_call = keras.layers.Dense.call
    monkeypatch.setattr(keras.layers.Dense, "call",
                        lambda self, *args, **kwargs: called.append(self.name) or original_call(self, *args, **kwargs))
    stacked = evaluate_grid(model, batches, directions, grid, verbose=0, points_per_call=4)["train"]
    # Building the metrics calls both layers alike; the vectorized pass traced the first one folded, past `call`.
    assert called.count(model.layers[2].name) > called.count(model.layers[1].name)
    expected = evaluate_at(model, weights_at(model, [v.numpy() for v in model.trainable_weights], directions, grid[3]),
                           x=x, y=y, sample_weight=sample_weight, batch_size=32)
    np.testing.assert_allclose(stacked["loss"][3], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(stacked["accuracy"][3], expected["accuracy"], rtol=1e-6)


def test_only_a_plain_dense_layer_reading_the_input_once_is_folded(trained_cnn):
    assert foldable_input_dense(trained_cnn) is None  # a Conv2D reads the input
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4)
    twice = keras.Model(inputs, shared(shared(inputs)))
    assert foldable_input_dense(twice) is None
    half = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, dtype="mixed_bfloat16")])
    assert foldable_input_dense(half) is None
    frozen = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    frozen.layers[0].trainable = False
    assert foldable_input_dense(frozen) is None
    low_rank = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    low_rank.layers[0].enable_lora(1)
    assert foldable_input_dense(low_rank) is None
    quantized = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    quantized.layers[0].quantize("int8")
    assert foldable_input_dense(quantized) is None
    # Conservative: only a model with one input is folded, even where a Dense reads one of two inputs.
    first, second = keras.Input((4,)), keras.Input((3,))
    two_inputs = keras.Model([first, second], keras.layers.Concatenate()([keras.layers.Dense(2)(first), second]))
    assert foldable_input_dense(two_inputs) is None
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert foldable_input_dense(plain) is plain.layers[0]


class _FakeEvaluator:
    """Stands in for an evaluator in the probe's logic: `points_per_call`, and uncompiled values that it counts."""

    def __init__(self, points_per_call):
        self.points_per_call = points_per_call
        self.uncompiled = []

    def evaluate_uncompiled(self, rows):
        self.uncompiled.append(len(rows))
        return [{"loss": 1.0}] * len(rows)


@pytest.mark.parametrize(
    "grid_points, parameters, convolutional, failing_k, setup, slower_than_one, chosen, tried",
    [
        (10_000, 2**19, False, None, 0.0, (), 64, [64]),  # 256 x 2**19 weights are too many: 64 is the first and last
        (10_000, 2**21, False, None, 0.0, (16,), 1, [1, 16]),  # over 2**20 weights one per call is timed, and faster
        (10_000, 100, False, None, 0.0, (256,), 256, [256, 1024]),  # a small dense model is stacked without timing one
        (600, 100, False, None, 0.0, (), 64, [64]),  # 256 per call needs a grid of 2048 points to probe
        (10_000, 100, True, 256, 0.0, (), 64, [1, 16, 64, 256]),  # 256 per call runs out of memory
        (10_000, 2**23, False, None, 0.0, (), 16, [1, 16]),  # 64 x 2**23 weights are more than PROBE_MAX_STACKED_VALUES
        (10_000, 2**19, False, None, 60.0, (), 64, [64]),  # compiling 64 per call took longer than the grid can save
        (300, 100, False, None, 0.0, (), 16, [16]),  # a grid under 8 x 64 points starts at 16 and cannot probe 64
        (10_000, 100, True, None, 0.0, (), 64, [1, 16, 64, 256]),  # a convolutional model starts at 16; 256 is slower
    ],
)
def test_auto_probe_grows_points_per_call_while_it_pays(monkeypatch, capsys, grid_points, parameters, convolutional,
                                                        failing_k, setup, slower_than_one, chosen, tried):
    seconds_per_point = {1: 1e-2, 16: 4e-3, 64: 2e-3, 256: 3e-3, 1024: 1e-1}
    seconds_per_point.update({k: 2e-2 for k in slower_than_one})
    timed = []

    def fake_time_evaluator(evaluator, rows, k):
        timed.append(evaluator.points_per_call)
        return [{"loss": 1.0}] * k, seconds_per_point[evaluator.points_per_call], setup

    def build_vectorized(k):
        if k == failing_k:
            raise MemoryError("fake")
        return _FakeEvaluator(k)

    monkeypatch.setattr(probe_module, "time_evaluator", fake_time_evaluator)
    rows = np.zeros((grid_points, 2))
    per_point = _FakeEvaluator(1)
    best, _, _ = probe_module.fastest_evaluator(per_point, build_vectorized, rows, parameters, verbose=2,
                                                convolutional=convolutional)
    assert best.points_per_call == chosen
    assert timed == [k for k in tried if k != failing_k]  # a K that runs out of memory is built, never timed
    # One point per call, where it is not timed, is the reference at PROBE_UNCOMPILED_REFERENCE_POINTS points.
    assert per_point.uncompiled == ([] if 1 in tried else [probe_module.PROBE_UNCOMPILED_REFERENCE_POINTS])
    printed = capsys.readouterr().out
    assert ("using one point per call" if chosen == 1 else f"using {chosen} points per call") in printed
    assert ("one per call not timed" in printed) == (1 not in tried)


def test_weight_sharing_layers_are_told_from_dense_ones(small_mlp, trained_cnn):
    from losslandscape.backends.base import reuses_weights_across_positions

    recurrent = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(5), keras.layers.Dense(1)])
    attention_input = keras.Input((4, 6))
    attention = keras.Model(attention_input, keras.layers.MultiHeadAttention(2, 3)(attention_input, attention_input))
    assert [reuses_weights_across_positions(m) for m in (small_mlp, recurrent, trained_cnn, attention)] == [
        False, False, True, True
    ]


def test_auto_skips_the_probe_where_the_backend_knows_stacking_is_slower(small_mlp, regression_data, monkeypatch,
                                                                         capsys):
    x, y = regression_data
    backend = current_backend()
    monkeypatch.setattr(type(backend), "why_stacking_is_slower", lambda self, model: "a reason the backend gives")
    monkeypatch.setattr(backend, "vectorized_evaluator", None)  # building one would fail
    grid = np.random.default_rng(1).uniform(-1, 1, size=(300, 2))
    values = evaluate_grid(small_mlp, {"train": prepare_data((x, y))}, random_directions(small_mlp, seed=0), grid,
                           verbose=2, points_per_call="auto")["train"]
    assert "using one point per call without probing: a reason the backend gives" in capsys.readouterr().out
    assert np.isfinite(values["loss"]).all()


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX backend only")
def test_jax_on_a_cpu_evaluates_convolutional_models_one_point_per_call(small_mlp, trained_cnn):
    backend = current_backend()
    assert backend.why_stacking_is_slower(small_mlp) is None
    assert backend.why_stacking_is_slower(trained_cnn) == (
        "on a CPU, JAX runs K stacked points of a model with convolutions slower")


@tensorflow_only
def test_vectorized_evaluator_falls_back_from_xla_for_ops_it_cannot_compile(regression_data, monkeypatch):
    import tensorflow as tf

    from losslandscape.backends import tensorflow as tensorflow_backend

    class NumpyIdentity(keras.layers.Layer):
        def call(self, inputs):
            return tf.ensure_shape(tf.numpy_function(lambda a: a, [inputs], tf.float32), inputs.shape)

    x, y = regression_data
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), NumpyIdentity(), keras.layers.Dense(1)])
    model.compile(loss="mse")
    directions = random_directions(model, seed=0)
    origin = [v.numpy() for v in model.trainable_weights]
    grid = np.random.default_rng(2).uniform(-1, 1, size=(3, 2))
    batches = prepare_data((x, y), batch_size=32)
    monkeypatch.setattr(tensorflow_backend.VectorizedPointEvaluator, "jit_compile", True)  # as on a GPU
    fallback = tensorflow_backend.VectorizedPointEvaluator(model, batches, origin, directions, points_per_call=2)
    with pytest.warns(UserWarning, match="XLA cannot compile") as warned:
        values = fallback.evaluate(grid)
    assert re.fullmatch(r"XLA cannot compile this model \(Detected unsupported operations [^\n]*PyFunc[^\n]*\); "
                        r"evaluating 2 points per call without XLA, which may be slower\.", str(warned[0].message))
    assert fallback.uses_xla is False
    expected = evaluate_at(model, weights_at(model, origin, directions, grid[2]), x=x, y=y, batch_size=32)
    np.testing.assert_allclose(values[2]["loss"], expected["loss"], rtol=1e-5)
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    plain.compile(loss="mse")
    compiled = tensorflow_backend.VectorizedPointEvaluator(
        plain, batches, [v.numpy() for v in plain.trainable_weights], random_directions(plain, seed=0),
        points_per_call=2,
    )
    compiled.evaluate(grid)
    assert compiled.uses_xla is True
    monkeypatch.setattr(tensorflow_backend.VectorizedPointEvaluator, "jit_compile", None)
    on_this_cpu = tensorflow_backend.VectorizedPointEvaluator(
        plain, batches, [v.numpy() for v in plain.trainable_weights], random_directions(plain, seed=0),
        points_per_call=2,
    )
    assert on_this_cpu.uses_xla is bool(tf.config.list_logical_devices("GPU"))
    np.testing.assert_allclose([v["loss"] for v in on_this_cpu.evaluate(grid)],
                               [v["loss"] for v in compiled.evaluate(grid)], rtol=1e-6)


def test_the_probes_points_are_kept_and_equal_what_its_choice_computes(small_mlp, regression_data):
    from losslandscape.evaluator_cache import clear_evaluator_cache

    x, y = regression_data
    directions = random_directions(small_mlp, seed=0)
    grid = np.random.default_rng(1).uniform(-1, 1, size=(130, 2))
    batches = {"train": prepare_data((x, y))}
    chosen = {}
    auto = evaluate_grid(small_mlp, batches, directions, grid, verbose=0, points_per_call="auto",
                         on_evaluator=lambda label, k: chosen.update({label: k}))["train"]
    clear_evaluator_cache()
    again = evaluate_grid(small_mlp, batches, directions, grid, verbose=0, points_per_call=chosen["train"])["train"]
    for name in auto:
        np.testing.assert_array_equal(auto[name], again[name])


def test_a_model_never_evaluated_reports_no_metric_state_from_the_grid(small_mlp, regression_data):
    """Metrics built during the grid are not in the snapshot taken before it; they are reset, as Keras leaves them."""
    x, y = regression_data
    fresh = [np.array(v.numpy()) for v in small_mlp.metrics_variables]
    evaluate_grid(small_mlp, {"train": prepare_data((x, y))}, random_directions(small_mlp, seed=0), POINTS,
                  verbose=0)
    for variable in small_mlp.metrics_variables:
        np.testing.assert_array_equal(variable.numpy(), np.zeros(variable.shape))
    assert len(small_mlp.metrics_variables) >= len(fresh)
    # The next evaluate counts from zero: its mean absolute error is that of the model's own predictions.
    expected = float(np.mean(np.abs(small_mlp.predict(x, verbose=0) - y)))
    np.testing.assert_allclose(small_mlp.evaluate(x, y, verbose=0, return_dict=True)["mae"], expected, rtol=1e-5)


def test_a_model_whose_only_loss_comes_from_its_layers_is_evaluated(regression_data, capsys):
    x, y = regression_data
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.1))(inputs)
    model = keras.Model(inputs, outputs)
    model.compile()  # no loss: the weights' penalty is the whole loss
    directions = random_directions(model, seed=1)
    values = engine_values(model, (x, y), directions, engine="evaluate")
    assert capsys.readouterr().out == ""  # Keras' own progress bars stay silent too
    compiled = engine_values(model, (x, y), directions)
    origin = [v.numpy() for v in model.trainable_weights]
    for index, point in enumerate(POINTS):
        expected = evaluate_at(model, weights_at(model, origin, directions, point), x=x, y=y, batch_size=32)
        np.testing.assert_allclose(values["loss"][index], expected["loss"], rtol=1e-5)
        np.testing.assert_allclose(compiled["loss"][index], expected["loss"], rtol=1e-5)
    message = ("`include_regularization=False` needs a loss passed to `model.compile(loss=...)`; this model's only "
               "losses come from its layers.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        engine_values(model, (x, y), directions, include_regularization=False)


def test_rows_left_out_of_pending_stay_nan_and_chunks_name_their_rows(small_mlp, regression_data):
    x, y = regression_data
    directions = random_directions(small_mlp, seed=2)
    chunks = []
    values = evaluate_grid(
        small_mlp, {"train": prepare_data((x, y), batch_size=32)}, directions, POINTS, verbose=0,
        pending={"train": np.array([0, 2])}, chunk_size=1, points_per_call=1,
        on_chunk=lambda label, rows, named: chunks.append((label, rows.tolist(), named["loss"].tolist())),
    )["train"]
    assert np.isnan(values["loss"][1]) and np.isnan(values["mae"][1])
    origin = [v.numpy() for v in small_mlp.trainable_weights]
    for row in (0, 2):
        expected = evaluate_at(small_mlp, weights_at(small_mlp, origin, directions, POINTS[row]), x=x, y=y,
                               batch_size=32)
        np.testing.assert_allclose(values["loss"][row], expected["loss"], rtol=1e-5)
    assert [(label, rows) for label, rows, _ in chunks] == [("train", [0]), ("train", [2])]
    assert [loss for _, _, (loss,) in chunks] == [values["loss"][0], values["loss"][2]]


@pytest.mark.parametrize(("grid_points", "probed"), [(127, False), (128, True)])
def test_auto_probes_stacking_on_grids_of_128_points_or_more(small_mlp, regression_data, grid_points, probed):
    x, y = regression_data
    grid = np.random.default_rng(4).uniform(-1, 1, size=(grid_points, 2))
    chosen = {}
    evaluate_grid(small_mlp, {"train": prepare_data((x, y))}, random_directions(small_mlp, seed=0), grid, verbose=0,
                  points_per_call="auto", on_evaluator=chosen.__setitem__)
    assert (chosen["train"] > 1) is probed


def test_points_per_call_must_be_a_positive_integer_or_auto(small_mlp, regression_data):
    batches = {"train": prepare_data(regression_data)}
    directions = random_directions(small_mlp, seed=0)
    for wrong in (0, -1, True, 2.0, "fast"):
        with pytest.raises(ValueError, match=re.escape(f'Expected `points_per_call` to be a positive integer or "auto", '
                                                       f'received: {wrong!r}')):
            evaluate_grid(small_mlp, batches, directions, POINTS, verbose=0, points_per_call=wrong)
    chosen = {}
    evaluate_grid(small_mlp, batches, directions, POINTS, verbose=0, points_per_call=np.int64(2),
                  on_evaluator=chosen.__setitem__)
    assert chosen == {"train": 2}


class MetricsOnDoubledPredictionsLessAnInput(keras.Model):
    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, 2 * y_pred - x[:, :1], sample_weight)


@pytest.mark.parametrize("include_regularization", [True, False])
def test_a_model_with_its_own_compute_metrics_is_evaluated_one_point_per_call_as_evaluate_does(
        regression_data, include_regularization):
    x, y = regression_data
    keras.utils.set_random_seed(5)
    inputs = keras.Input((5,))
    model = MetricsOnDoubledPredictionsLessAnInput(inputs, keras.layers.Dense(1)(inputs))
    model.compile(loss="mse", metrics=["mae"])
    directions = random_directions(model, seed=0)
    chosen = {}
    values = engine_values(model, (x, y), directions, points_per_call=3, on_evaluator=chosen.__setitem__,
                           include_regularization=include_regularization)
    assert chosen == {"train": 1}
    assert_each_point_is_model_evaluate(values, model, directions, x, y)
    assert values["mae"][0] == pytest.approx(np.mean(np.abs(2 * model.predict(x, verbose=0) - x[:, :1] - y)), rel=1e-5)


class DropoutUnlessTold(keras.Model):
    """Dropout whose `call` defaults to training: `model.evaluate` passes `training=False` to it."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8)
        self.dropout = keras.layers.Dropout(0.5)
        self.out = keras.layers.Dense(1)

    def call(self, inputs, training=True):
        return self.out(self.dropout(self.hidden(inputs), training=training))


class WithoutTrainingArgument(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, inputs):
        return self.dense(inputs)


@pytest.mark.parametrize("model_class", [DropoutUnlessTold, WithoutTrainingArgument])
def test_k_points_of_a_subclassed_model_are_in_inference_mode_whatever_its_call_takes(regression_data, model_class):
    x, y = regression_data
    keras.utils.set_random_seed(6)
    model = model_class()
    model.compile(loss="mse", metrics=["mae"])
    model(x[:1])
    directions = random_directions(model, seed=0)
    chosen = {}
    values = engine_values(model, (x, y), directions, points_per_call=3, on_evaluator=chosen.__setitem__,
                           include_regularization=False)
    assert chosen == {"train": 3}
    assert_each_point_is_model_evaluate(values, model, directions, x, y)


def test_the_curvature_of_a_model_whose_call_defaults_to_training_is_taken_in_inference_mode(regression_data):
    from losslandscape import hessian_directions

    x, y = regression_data
    keras.utils.set_random_seed(6)
    model = DropoutUnlessTold()
    model.compile(loss="mse")
    model(x[:1])
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    plain.set_weights(model.get_weights())
    plain.compile(loss="mse")
    found = hessian_directions(model, (x, y), k=1, tolerance=1e-9, verbose=0).eigenvalues[0]
    reference = hessian_directions(plain, (x, y), k=1, tolerance=1e-9, verbose=0).eigenvalues[0]
    assert found == pytest.approx(reference, rel=1e-4)


def test_the_evaluate_engine_cannot_leave_out_the_penalty(small_mlp, regression_data):
    batches = {"train": prepare_data(regression_data)}
    message = ("`include_regularization=False` needs `engine='compiled'`: `model.evaluate` always adds the "
               "regularization losses.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        evaluate_grid(small_mlp, batches, random_directions(small_mlp, seed=0), POINTS, engine="evaluate",
                      include_regularization=False, verbose=0)
    with pytest.raises(ValueError, match=re.escape("Expected `engine` to be one of ('compiled', 'evaluate'), "
                                                   "received: 'fast'")):
        evaluate_grid(small_mlp, batches, random_directions(small_mlp, seed=0), POINTS, engine="fast", verbose=0)


def test_progress_counts_each_point_once_and_marks_each_datasets_first_call(small_mlp, regression_data, monkeypatch,
                                                                            capsys):
    """The first call of each dataset compiles and is left out of the rate; a dataset with nothing pending is skipped."""
    calls = []
    add = Progress.add
    monkeypatch.setattr(Progress, "add", lambda self, count, first_call=False: (
        calls.append((count, first_call)), add(self, count, first_call))[1])
    batches = prepare_data(regression_data, batch_size=32)
    pending = {"a": np.arange(3), "b": np.array([], dtype=np.int64), "c": np.array([1])}  # "d": nothing pending
    chosen = {}
    values = evaluate_grid(small_mlp, {"a": batches, "b": batches, "c": batches, "d": batches},
                           random_directions(small_mlp, seed=0), POINTS, verbose=1, chunk_size=2,
                           points_per_call={"a": 1, "c": 2}, pending=pending, on_evaluator=chosen.__setitem__)
    assert calls == [(1, True), (1, False), (1, False), (1, True)]
    assert "4/4 points in" in capsys.readouterr().out
    assert set(values) == {"a", "c"} and chosen == {"a": 1, "c": 2}
    assert values["c"]["loss"][1] == pytest.approx(values["a"]["loss"][1], rel=1e-6)
    assert np.isnan(values["c"]["loss"][[0, 2]]).all()


def test_the_evaluate_engine_calls_model_evaluate_once_per_point(small_mlp, regression_data, monkeypatch):
    calls = count_evaluate_calls(monkeypatch, small_mlp)
    directions = random_directions(small_mlp, seed=0)
    by_evaluate = engine_values(small_mlp, regression_data, directions, engine="evaluate")
    assert len(calls) == len(POINTS)
    np.testing.assert_allclose(by_evaluate["loss"], engine_values(small_mlp, regression_data, directions)["loss"],
                               rtol=1e-5)
    assert len(calls) == len(POINTS)


def test_auto_tells_the_probe_the_models_kind_and_size_and_keeps_its_choice(small_mlp, trained_cnn, regression_data,
                                                                            image_data, monkeypatch):
    """The probe hears whether weights are reused across positions (convolutions) and how many values move; a
    second "auto" on the same model and data reuses the choice without probing again."""
    import losslandscape.engine as engine_module
    from losslandscape.engine import build_evaluator
    from losslandscape.evaluator_cache import clear_evaluator_cache

    heard = []
    probe = engine_module.fastest_evaluator

    def listening(per_point, build_vectorized, points, parameters, verbose, **kwargs):
        heard.append((parameters, kwargs["convolutional"], kwargs["reduced"]))
        return probe(per_point, build_vectorized, points, parameters, verbose, **kwargs)

    monkeypatch.setattr(engine_module, "fastest_evaluator", listening)
    monkeypatch.setattr(current_backend(), "why_stacking_is_slower", lambda model: None)
    clear_evaluator_cache()
    grid = np.random.default_rng(0).uniform(-1, 1, size=(8 * probe_module.PROBE_POINTS_PER_CALL, 2))
    for model, data in ((small_mlp, regression_data), (trained_cnn, image_data[:2])):
        batches = prepare_data(data, batch_size=32)
        origin = [v.numpy() for v in model.trainable_variables]
        first = build_evaluator(model, batches, origin, random_directions(model, seed=0), points_per_call="auto",
                                points=grid)
        again = build_evaluator(model, batches, origin, random_directions(model, seed=1), points_per_call="auto",
                                points=grid)
        assert again is first
    assert heard == [(5 * 8 + 8 + 8 + 1, False, None),
                     (sum(int(np.prod(v.shape)) for v in trained_cnn.trainable_variables), True, None)]


@pytest.mark.parametrize("points_per_call", [1, 2])
def test_weighted_metrics_without_the_penalty_are_weighted_as_model_evaluate_weighs_them(points_per_call):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.1))])
    model.compile(loss="mse", weighted_metrics=["mae"])
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    weights = rng.uniform(0.0, 3.0, 64).astype("float32")
    line = compute_line(model, (x, y, weights), coords=[0.0, 1.0], include_regularization=False,
                        points_per_call=points_per_call, verbose=0)
    expected = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    unweighted = model.evaluate(x, y, verbose=0, return_dict=True)
    assert abs(expected["mae"] - unweighted["mae"]) > 1e-3
    assert line.metrics["train"]["mae"][0] == pytest.approx(expected["mae"], rel=1e-5)


def test_a_model_whose_compute_loss_reads_x_and_training_gets_model_evaluates_loss_and_curvature():
    from losslandscape import hessian_directions

    class Reconstructing(keras.Model):
        """The compiled loss plus one of the inputs, and a term only in training, which model.evaluate leaves out."""

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training)
            loss = loss + keras.ops.mean(keras.ops.square(y_pred - x))
            return loss + 100.0 * keras.ops.mean(keras.ops.square(y_pred)) if training else loss

    keras.utils.set_random_seed(5)
    inputs = keras.Input((3,))
    model = Reconstructing(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(32, 3)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")
    line = compute_line(model, (x, y), coords=[0.0, 1.0], points_per_call=1, verbose=0)
    assert line.losses["train"][0] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    # mse(y, ŷ) + mse(x, ŷ) = 2·mse((x + y)/2, ŷ) + a constant: twice the curvature of a plain model on (x + y)/2.
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    plain.set_weights(model.get_weights())
    plain.compile(loss="mse")
    found = hessian_directions(model, (x, y), k=1, tolerance=1e-9, verbose=0).eigenvalues[0]
    reference = hessian_directions(plain, (x, (x + y) / 2), k=1, tolerance=1e-9, verbose=0).eigenvalues[0]
    assert found == pytest.approx(2 * reference, rel=1e-4)
