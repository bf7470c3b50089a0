"""Endless data is refused before it is read, capped data reads only its first batches, and data of unknown
length stops within a memory budget instead of filling the machine."""

import itertools
import math
import re

import keras
import numpy as np
import pytest

from conftest import tensorflow_only, torch_only
from losslandscape import compute_line, dataset_length
from losslandscape.datasets import prepare_data

COORDS = np.array([0.0, 0.5])


def _model_and_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(100, 4)).astype("float32"), rng.integers(0, 3, 100)


class _Batches(keras.utils.PyDataset):
    """Batches of 20 samples, cycling through the data: endless unless `length` is given."""

    def __init__(self, x, y, length=None):
        super().__init__()
        self.x, self.y, self.length, self.read = x, y, length, []

    @property
    def num_batches(self):
        return self.length

    def __getitem__(self, index):
        self.read.append(index)
        start = index * 20 % len(self.x)
        return self.x[start : start + 20], self.y[start : start + 20]


class _NoLength(keras.utils.PyDataset):
    def __getitem__(self, index):
        return np.zeros((2, 4)), np.zeros(2)


def test_an_endless_py_dataset_is_refused_before_any_batch_is_read():
    model, x, y = _model_and_data()
    data = _Batches(x, y)
    with pytest.raises(ValueError, match=r"^The _Batches never ends \(a PyDataset without a length\); pass "
                                         r"`max_batches=` or `max_samples=` to read its first batches\.$"):
        compute_line(model, data, coords=COORDS, verbose=0)
    assert data.read == []
    with pytest.raises(ValueError, match="The _NoLength never ends"):
        compute_line(model, _NoLength(), coords=COORDS, verbose=0)


@pytest.mark.parametrize("cap, samples", [(dict(max_batches=3), 60), (dict(max_samples=50), 50),
                                          (dict(max_batches=4, max_samples=70), 70)])
def test_a_capped_endless_py_dataset_reads_only_its_first_batches(cap, samples):
    model, x, y = _model_and_data()
    data = _Batches(x, y)
    line = compute_line(model, data, coords=COORDS, verbose=0, **cap)
    assert data.read == list(range(math.ceil(samples / 20)))
    assert line.settings["num_samples"]["train"] == samples
    expected = model.evaluate(x[:samples], y[:samples], batch_size=20, verbose=0)
    np.testing.assert_allclose(line.losses["train"][0], expected, rtol=1e-5)


def test_a_py_dataset_of_known_length_is_read_to_its_end():
    model, x, y = _model_and_data()
    data = _Batches(x, y, length=5)
    line = compute_line(model, data, coords=COORDS, verbose=0)
    assert data.read == [0, 1, 2, 3, 4] and line.settings["num_samples"]["train"] == 100
    assert dataset_length.number_of_batches(data) == 5 and dataset_length.number_of_batches(_Batches(x, y)) == math.inf


@tensorflow_only
def test_a_repeated_tf_dataset_is_refused_at_once_and_read_when_capped():
    import tensorflow as tf

    model, x, y = _model_and_data()
    endless = tf.data.Dataset.from_tensor_slices((x, y)).batch(20).repeat()
    for stream in (False, True):
        with pytest.raises(ValueError, match=r"The \w+ never ends \(a tf.data.Dataset of infinite cardinality, "
                                             r"e.g. `.repeat\(\)`\)"):
            prepare_data(endless, stream=stream)
    line = compute_line(model, endless, coords=COORDS, max_batches=7, verbose=0)  # 7 batches: the data and 2 more
    assert line.settings["num_samples"]["train"] == 140
    expected = model.evaluate(np.concatenate([x, x[:40]]), np.concatenate([y, y[:40]]), batch_size=20, verbose=0)
    np.testing.assert_allclose(line.losses["train"][0], expected, rtol=1e-5)


@tensorflow_only
def test_a_tf_dataset_of_unknown_length_stops_at_the_memory_budget(monkeypatch):
    import tensorflow as tf

    model, x, y = _model_and_data()
    signature = (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None,), tf.int64))
    endless = tf.data.Dataset.from_generator(lambda: itertools.cycle([(x[:20], y[:20])]), output_signature=signature)
    finite = tf.data.Dataset.from_generator(lambda: iter([(x[:20], y[:20])] * 5), output_signature=signature)
    batch_bytes = x[:20].nbytes + y[:20].nbytes
    monkeypatch.setattr(dataset_length, "_memory_bytes", lambda: 10 * batch_bytes / dataset_length.MEMORY_SHARE_FOR_DATA)
    assert dataset_length.batches_within_memory(endless) == (10, 20)
    message = (f"The {type(endless).__name__} has no known length and went on past 10 batches, more than 50% of this "
               "machine's memory holds: it may never end. Pass `max_batches=` or `max_samples=` to read its first "
               "batches, or `stream=True` for data larger than memory.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        prepare_data(endless)
    assert prepare_data(finite).num_samples == 100
    monkeypatch.setattr(dataset_length, "_memory_bytes", lambda: 5 * batch_bytes / dataset_length.MEMORY_SHARE_FOR_DATA)
    assert prepare_data(finite).num_samples == 100  # exactly the budget still fits
    monkeypatch.setattr(dataset_length, "_memory_bytes", lambda: 4 * batch_bytes / dataset_length.MEMORY_SHARE_FOR_DATA)
    with pytest.raises(ValueError, match="went on past 4 batches"):
        prepare_data(finite)
    monkeypatch.setattr(dataset_length, "_memory_bytes", lambda: 0.5 * batch_bytes / dataset_length.MEMORY_SHARE_FOR_DATA)
    with pytest.raises(ValueError, match="went on past 1 batches"):  # not even one batch fits: one is read
        prepare_data(finite)
    known = tf.data.Dataset.from_tensor_slices((x, y)).batch(20)  # its length is known: read whole, whatever it holds
    assert dataset_length.batches_within_memory(known) is None and prepare_data(known).num_samples == 100
    empty = finite.take(0).filter(lambda *batch: True)
    assert dataset_length.batches_within_memory(empty) is None
    with pytest.raises(ValueError, match="The dataset is empty"):
        prepare_data(empty)


def test_the_memory_budget_is_a_share_of_this_machines_memory():
    with open("/proc/meminfo") as file:
        total = int(file.readline().split()[1]) * 1024  # "MemTotal:  N kB"
    assert dataset_length._memory_bytes() == pytest.approx(total, rel=0.02)


@torch_only
def test_an_endless_iterable_dataset_stops_at_the_memory_budget(monkeypatch):
    import torch

    class Endless(torch.utils.data.IterableDataset):
        def __iter__(self):
            while True:
                yield torch.zeros((20, 4)), torch.zeros(20, dtype=torch.int64)

    loader = torch.utils.data.DataLoader(Endless(), batch_size=None)
    monkeypatch.setattr(dataset_length, "_memory_bytes", lambda: 8 * 480 / dataset_length.MEMORY_SHARE_FOR_DATA)
    with pytest.raises(ValueError, match="The DataLoader has no known length and went on past 8 batches"):
        prepare_data(loader)
    assert prepare_data(loader, max_batches=3).num_samples == 60
