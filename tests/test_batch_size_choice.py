"""The default batch size: 128 on a CPU, sized from measured memory on an accelerator, the user's always first."""

import keras
import numpy as np
import pytest

from conftest import evaluate_at, weights_at
from losslandscape import compute_surface, random_directions
from losslandscape.backends import current_backend
from losslandscape.batch_size_choice import DEFAULT_BATCH_SIZE, batch_size_within
from losslandscape.datasets import prepare_data, prepare_labelled_data


@pytest.mark.parametrize("budget, bytes_per_sample, samples, expected", [
    (300_000, 1_000, 1_000, 256),  # at most 300 a batch: 4 batches of 250, rounded up to a multiple of 8
    (5_000_000, 1_000, 10_000, 5_000),  # 2 batches of 5,000 exactly
    (4_999_000, 1_000, 10_000, 3_336),  # 4,999 a batch at most: 3 batches of 3,334, rounded up
    (10**12, 1_000, 10_000, 10_000),  # everything fits: one batch
    (10**12, 1_000, 10_001, 10_001),  # one batch, not rounded past the samples
    (1, 1_000, 10_000, 128),  # nothing fits the budget: never below 128 (79 batches of 127, rounded up)
    (1, 1_000, 50, 50),  # fewer samples than 128: one batch of them all
    (2_000, 0, 1_500, 1_500),  # a pass that needs no memory: counted as a byte a sample, one batch
])
def test_batches_are_the_fewest_equal_ones_within_the_budget(budget, bytes_per_sample, samples, expected):
    assert batch_size_within(budget, bytes_per_sample, samples) == expected


def _model_and_data(samples=1_000):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(samples, 4)).astype("float32"), rng.normal(size=(samples, 1)).astype("float32")


@pytest.fixture
def accelerator(monkeypatch):
    """The current backend as if on an accelerator of `memory` bytes, whose pass takes `per_sample` bytes a sample."""
    backend = current_backend()
    measured = []

    def on(memory, per_sample):
        def batch_memory(model, batch):
            assert model.built
            measured.append(len(batch[0]))
            return per_sample * len(batch[0])

        monkeypatch.setattr(backend, "accelerator_memory", lambda: memory)
        monkeypatch.setattr(backend, "batch_memory", batch_memory)
        return measured

    return on


def test_on_a_cpu_the_default_batch_is_128():
    model, x, y = _model_and_data()
    assert current_backend().accelerator_memory() is None
    assert prepare_labelled_data(model, (x, y))["train"].batch_size == DEFAULT_BATCH_SIZE == 128


def test_on_an_accelerator_the_default_batch_fits_its_share_of_memory(accelerator):
    """64 × 300,000 bytes of memory, 1,000 bytes a sample: 300 samples fit 1/64, so 4 equal batches of 256 at most."""
    measured = accelerator(memory=64 * 300_000, per_sample=1_000)
    model, x, y = _model_and_data()
    prepared = prepare_labelled_data(model, {"train": (x, y), "test": (x[:500], y[:500])})
    assert [(b.batch_size, b.num_samples) for b in prepared.values()] == [(256, 1_000), (256, 500)]
    assert measured == [128]  # once for both datasets: same model, same inputs
    directions = random_directions(model, seed=0)
    surface = compute_surface(model, (x, y), directions, [-0.5, 0.5], [-0.5, 0.5], points_per_call=1, verbose=0)
    assert measured == [128]  # nor again for the next call
    weights = weights_at(model, [v.numpy() for v in model.trainable_variables], directions, (0.5, -0.5))
    expected = evaluate_at(model, weights, x=x, y=y, batch_size=1_000)
    np.testing.assert_allclose(surface.losses["train"][1, 0], expected["loss"], rtol=1e-5)
    np.testing.assert_allclose(surface.values("train", "mae")[1, 0], expected["mae"], rtol=1e-5)


def test_the_users_batch_size_and_max_batches_keep_their_meaning_on_an_accelerator(accelerator):
    measured = accelerator(memory=10**12, per_sample=1_000)
    model, x, y = _model_and_data()
    assert prepare_data((x, y), batch_size=32, model=model).batch_size == 32
    two_batches = prepare_data((x, y), max_batches=2, model=model)
    assert (two_batches.batch_size, two_batches.num_samples) == (128, 256)
    assert prepare_data((x, y)).batch_size == 128  # no model to measure
    for samples in (100, 128):  # one batch of 128 at most: nothing to measure
        few = prepare_data((x[:samples], y[:samples]), model=model)
        assert (few.batch_size, few.num_samples) == (128, samples)
    assert measured == []
    cut = prepare_data((x, y), max_samples=600, model=model)
    assert (cut.batch_size, cut.num_samples) == (600, 600) and measured == [128]


def test_a_pass_the_backend_cannot_measure_keeps_128(accelerator, monkeypatch):
    """A backend measures nothing unless it says how (TensorFlow does not), and an unmeasured pass keeps 128."""
    from losslandscape.backends.base import Backend

    class Unmeasured(Backend):
        name = "unmeasured"
        device_description = is_native_dataset = arrays_to_batches = native_dataset_to_batches = None

    assert Unmeasured().accelerator_memory() is None and Unmeasured().batch_memory(None, None) is None
    accelerator(memory=10**12, per_sample=1_000)
    monkeypatch.setattr(current_backend(), "batch_memory", lambda model, batch: None)
    model, x, y = _model_and_data()
    assert prepare_data((x, y), model=model).batch_size == 128


def test_inputs_of_another_shape_or_dtype_are_measured_again(accelerator):
    """A model that takes sequences of any length measures each length (and each input dtype) once."""
    measured = accelerator(memory=10**12, per_sample=1_000)
    model = keras.Sequential([keras.Input((None, 4)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(loss="mse")
    rng = np.random.default_rng(1)
    y = rng.normal(size=(200, 1)).astype("float32")
    short, long = rng.normal(size=(200, 5, 4)).astype("float32"), rng.normal(size=(200, 10, 4)).astype("float32")
    data = {"short": (short, y), "long": (long, y), "short64": (short.astype("float64"), y), "again": (short, y)}
    prepare_labelled_data(model, data)
    assert measured == [128, 128, 128]
