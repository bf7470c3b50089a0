"""Datasets before the engine: .npz files by name, PyDatasets joined, tf.data datasets cut at a sample count."""

import re

import keras
import numpy as np
import pytest

from losslandscape import NpzData
from losslandscape.datasets import prepare_data


def test_an_npz_file_gives_its_named_arrays_and_each_wrong_file_is_named(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.ones((4, 2)), y=np.zeros(4), w=np.arange(4.0))
    x, y = NpzData(str(tmp_path / "data.npz")).load()
    assert x.shape == (4, 2) and y.shape == (4,)
    *_, weights = NpzData(str(tmp_path / "data.npz"), sample_weight_key="w").load()
    np.testing.assert_array_equal(weights, np.arange(4.0))
    path = str(tmp_path / "data.npz")
    with pytest.raises(KeyError) as error:
        NpzData(path, y_key="labels").load()
    assert error.value.args[0] == f"{path!r} has no array named 'labels'; it holds ['w', 'x', 'y']."
    missing = str(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(f'No data file at {missing!r}.')}$"):
        NpzData(missing).load()
    np.save(tmp_path / "one.npy", np.ones(3))
    one = str(tmp_path / "one.npy")
    message = f"{one!r} holds one array, not a .npz archive of named arrays; write one with np.savez(path, x=x, y=y)."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        NpzData(one).load()
    (tmp_path / "text.npz").write_text("not numpy")
    text = str(tmp_path / "text.npz")
    with pytest.raises(ValueError, match=f"^{re.escape(f'{text!r} is not a .npz file (write one with np.savez): ')}"):
        NpzData(text).load()


class _Counted(keras.utils.PyDataset):
    def __init__(self, sizes, width=3):
        super().__init__()
        self.sizes, self.width, self.read = sizes, width, []

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, index):
        self.read.append(index)
        size = self.sizes[index]
        start = sum(self.sizes[:index])
        x = np.arange(start, start + size, dtype="float32")[:, None] * np.ones(self.width if index else 3, "float32")
        return x, np.zeros(size, "float32")


def test_a_pydataset_is_read_only_up_to_the_samples_asked_for_and_refused_when_empty_or_ragged():
    data = _Counted([10, 10, 10, 10])
    batches = prepare_data(data, max_samples=20)
    assert batches.num_samples == 20 and data.read == [0, 1]
    data = _Counted([10, 10, 10, 10])
    batches = prepare_data(data, max_samples=21)  # a third batch for the 21st sample, cut there
    assert batches.num_samples == 21 and data.read == [0, 1, 2]
    data = _Counted([10, 10, 10, 10])
    batches = prepare_data(data, max_batches=2)
    assert (batches.num_samples, batches.batch_size, data.read) == (20, 10, [0, 1])  # the PyDataset's batch size
    assert prepare_data(_Counted([10, 10, 10, 10]), batch_size=4).batch_size == 4
    with pytest.raises(ValueError, match=r"^The dataset is empty: the PyDataset has no batches\. Pass data with at "
                                         r"least one sample\.$"):
        prepare_data(_Counted([]))
    with pytest.raises(ValueError, match=r"^The PyDataset's batches could not be joined into arrays \(their shapes "
                                         r"differ beyond the batch axis\)\. Wrap it in a tf\.data\.Dataset instead\."):
        prepare_data(_Counted([2, 2], width=4))


def test_a_tf_dataset_is_cut_at_the_sample_count_and_rebatched():
    tf = pytest.importorskip("tensorflow")
    x = np.arange(100, dtype="float32")[:, None]
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(100, "float32"))).batch(30)
    assert prepare_data(dataset, max_samples=50).num_samples == 50
    cut = prepare_data(dataset, batch_size=7, max_samples=50)
    assert cut.num_samples == 50 and cut.batch_size == 7


def _first_x(batches):
    """The inputs `batches` holds, in order, as `model.evaluate` would read them."""
    return np.asarray(keras.ops.convert_to_numpy(batches.evaluate_arguments()["x"]))


def test_arrays_are_cut_at_the_first_samples_and_batches_asked_for():
    x, y = np.arange(100, dtype="float32")[:, None], np.zeros(100, "float32")
    cases = [(dict(batch_size=16, max_batches=2), 32), (dict(batch_size=16, max_samples=20), 20),
             (dict(batch_size=16, max_samples=40, max_batches=2), 32), (dict(batch_size=16, max_samples=20, max_batches=2), 20),
             (dict(max_batches=1), 100), (dict(batch_size=30, max_batches=4), 100), ({}, 100)]
    for arguments, count in cases:
        batches = prepare_data((x, y), **arguments)
        assert batches.num_samples == count, arguments
        assert batches.batch_size == arguments.get("batch_size", 128), arguments
        np.testing.assert_array_equal(_first_x(batches)[:, 0], np.arange(count), err_msg=str(arguments))


def test_a_tf_dataset_keeps_its_first_batches_and_refuses_a_batch_size_unless_it_is_cut():
    tf = pytest.importorskip("tensorflow")
    x = np.arange(100, dtype="float32")[:, None]
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(100, "float32"))).batch(30)
    assert prepare_data(dataset, max_batches=2).num_samples == 60
    assert prepare_data(dataset, max_batches=2, max_samples=50).num_samples == 50
    assert prepare_data(dataset, max_samples=45, batch_size=20, max_batches=2).num_samples == 40
    message = (f"`batch_size` must be None when `data` is a {type(dataset).__name__}: it is already batched. Batch it "
               "yourself, or pass arrays `(x, y)` with `batch_size`.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        prepare_data(dataset, batch_size=10)


def test_datasets_are_labelled_by_position_or_by_key_and_labels_are_checked():
    from losslandscape.datasets import DatasetLabelError, labelled_datasets

    one, two, three = ((np.ones((2, 1)), np.ones(2)),) * 3
    assert list(labelled_datasets(one)) == ["train"]
    assert list(labelled_datasets((one, two))) == ["train", "test"]
    assert list(labelled_datasets([one, two, three])) == ["dataset0", "dataset1", "dataset2"]
    assert list(labelled_datasets({"b": one, "a": two})) == ["b", "a"]
    assert list(labelled_datasets({"b": one, "a": two}, labels=["x", "y"])) == ["x", "y"]
    assert list(labelled_datasets((one, two), labels=("fit", 2))) == ["fit", "2"]
    with pytest.raises(DatasetLabelError, match=re.escape("Received 1 dataset labels ['a'] for 2 datasets. Pass one "
                                                          "label per dataset.")):
        labelled_datasets((one, two), labels=["a"])
    with pytest.raises(DatasetLabelError, match=re.escape("Dataset labels must be distinct, received: ['a', 'a']")):
        labelled_datasets((one, two), labels=["a", "a"])
    for wrong in (["a/b", "c"], ["", "c"]):
        with pytest.raises(ValueError, match=re.escape(f"Dataset labels must be non-empty and contain no '/', "
                                                       f"received: {wrong}")):
            labelled_datasets((one, two), labels=wrong)


def test_arrays_of_different_lengths_are_named_and_an_npz_files_sample_weights_are_used(tmp_path):
    with pytest.raises(ValueError, match=re.escape("x, y and sample_weight must have the same number of samples "
                                                   "(first dimension), received: x: [4], y: [3].")):
        prepare_data((np.ones((4, 1)), np.ones(3)))
    with pytest.raises(ValueError, match=re.escape("received: x: [4], y: [4], sample_weight: [5].")):
        prepare_data((np.ones((4, 1)), np.ones(4), np.ones(5)))
    np.savez(tmp_path / "data.npz", x=np.ones((4, 1)), y=np.ones(4), w=np.arange(4.0))
    batches = prepare_data(NpzData(str(tmp_path / "data.npz"), sample_weight_key="w"))
    weights = keras.ops.convert_to_numpy(batches.evaluate_arguments()["sample_weight"])
    np.testing.assert_array_equal(weights, np.arange(4.0))


def test_each_wrong_argument_and_empty_data_is_named_in_full():
    x, y = np.zeros((10, 3), "float32"), np.zeros(10, "float32")
    for name in ("batch_size", "max_samples", "max_batches"):
        with pytest.raises(ValueError, match=f"^Expected `{name}` to be a positive integer or None, received: 0$"):
            prepare_data((x, y), **{name: 0})
    with pytest.raises(ValueError) as error:
        prepare_data((x, y), stream=True)
    assert str(error.value) == ("`stream=True` is for a tf.data.Dataset larger than memory; arrays, PyDatasets and "
                                "NpzData are held in memory. Pass a tf.data.Dataset or stream=False.")
    with pytest.raises(ValueError) as error:
        prepare_data((x[:0], y[:0]))
    assert str(error.value) == ("The dataset is empty: it yields no samples, so no loss can be computed. Pass "
                                "data with at least one sample.")
    assert prepare_data((x[:1], y[:1])).num_samples == 1  # one sample is enough


def test_labelled_datasets_get_every_argument_and_are_named_in_errors(tmp_path):
    from losslandscape.datasets import prepare_labelled_data

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    x, y = np.arange(300, dtype="float32").reshape(100, 3), np.zeros(100, "float32")
    prepared = prepare_labelled_data(model, {"a": (x, y), "b": (x[:50], y[:50])}, batch_size=8, max_samples=30)
    assert [(b.batch_size, b.num_samples) for b in prepared.values()] == [(8, 30), (8, 30)]
    prepared = prepare_labelled_data(model, ((x, y),), batch_size=8, max_batches=2)
    assert [(label, b.num_samples) for label, b in prepared.items()] == [("train", 16)]
    with pytest.raises(ValueError, match="^`stream=True` is for a tf.data.Dataset larger than memory"):
        prepare_labelled_data(model, (x, y), stream=True)
    with pytest.raises(ValueError, match=r"^The data 'val' has samples of shape \(2,\), but the model expects"):
        prepare_labelled_data(model, {"val": (x[:, :2], y)})
    path = tmp_path / "wide.npz"
    np.savez(path, x=x[:, :2], y=y)
    with pytest.raises(ValueError, match=rf"^The data 'train' \({re.escape(repr(str(path)))}\) has samples of shape"):
        prepare_labelled_data(model, NpzData(path))


def test_one_dataset_is_told_from_a_collection_of_them(tmp_path):
    from losslandscape.datasets import is_single_dataset

    x, y = np.ones((4, 2), "float32"), np.zeros(4, "float32")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    npz = NpzData(str(tmp_path / "data.npz"))
    single = [(x, y), (x, y, y), [x, y], npz, _Counted([2])]
    collections = [{"train": (x, y)}, ((x, y), (x, y)), [(x, y, y), (x, y, y)], (npz, npz),
                   [_Counted([2]), _Counted([2])], ((x, y), npz)]
    assert [is_single_dataset(data) for data in single] == [True] * len(single)
    assert [is_single_dataset(data) for data in collections] == [False] * len(collections)


def test_data_that_is_not_x_and_y_is_refused_in_full():
    x, y = np.ones((4, 2), "float32"), np.zeros(4, "float32")
    expected = "Expected data as `(x, y)`, `(x, y, sample_weight)`, a tf.data.Dataset or a keras.utils.PyDataset, "
    for data, received in [((x, y, y, y), "tuple of length 4"), ([x], "list of length 1"), (x, "ndarray"),
                           (5, "int")]:
        with pytest.raises(TypeError, match=f"^{re.escape(expected + 'received: ' + received)}$"):
            prepare_data(data)
    with pytest.raises(ValueError, match=r"^Targets `y` are None: a loss needs targets\. Pass `\(x, y\)`\.$"):
        prepare_data((x, None))


def test_a_tf_dataset_of_unknown_length_is_read_whole_or_at_the_batches_asked_for():
    tf = pytest.importorskip("tensorflow")
    x = np.arange(200, dtype="float32")[:, None]
    unknown = tf.data.Dataset.from_tensor_slices((x, np.zeros(200, "float32"))).filter(lambda *_: True).batch(4)
    assert int(unknown.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    assert prepare_data(unknown).num_samples == 200  # 50 batches of 4 samples: far below the memory budget
    assert prepare_data(unknown, max_batches=2).num_samples == 8


def test_tf_datasets_are_datasets_in_a_collection_and_named_when_unbatched():
    tf = pytest.importorskip("tensorflow")
    from losslandscape.datasets import is_single_dataset, prepare_labelled_data

    x, y = np.ones((6, 3), "float32"), np.zeros(6, "float32")
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    assert is_single_dataset(batched) and not is_single_dataset((batched, batched))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match=r"^The dataset 'mine' yields single samples of shape \(3,\)"):
        prepare_labelled_data(model, {"mine": tf.data.Dataset.from_tensor_slices((x, y))})


def test_another_backends_loader_is_cut_as_it_is_read_and_no_further():
    from losslandscape.datasets import FirstBatches

    class Loader:
        def __init__(self):
            self.read = 0

        def __iter__(self):
            for index in range(4):
                self.read += 1
                yield np.full((10, 1), index, "float32"), np.zeros(10, "float32")

    for max_samples, max_batches, sizes, read in [(20, None, [10, 10], 2), (25, None, [10, 10, 5], 3),
                                                  (None, 3, [10, 10, 10], 3), (15, 3, [10, 5], 2)]:
        loader = Loader()
        batches = list(FirstBatches(loader, max_samples, max_batches))
        assert [len(x) for x, _ in batches] == sizes and loader.read == read, (max_samples, max_batches)
        assert [float(x[0, 0]) for x, _ in batches] == list(range(len(sizes)))
    assert [len(x) for x, _ in FirstBatches(Loader(), 20, None)] == [10, 10]  # re-iterable
