"""Checks the data a user passes and turns it into batches, once."""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import keras
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.backends.base import Batches, as_batch, is_tf_dataset
from losslandscape.batch_size_choice import DEFAULT_BATCH_SIZE, default_batch_size
from losslandscape.data_checks import check_data_fits_model, check_dataset_is_batched
from losslandscape.dataset_length import batches_within_memory, check_not_endless, number_of_batches, refuse_unbounded
from losslandscape.validation import check_positive_int


@dataclass(frozen=True)
class NpzData:
    """A dataset stored in a numpy `.npz` file, named by path and keys.

    It is small to send to other processes or machines, which load the
    file themselves (so the path must be readable there).

    Args:
        path: Path of the `.npz` file (a string or a `pathlib.Path`).
        x_key: Key of the inputs.
        y_key: Key of the targets.
        sample_weight_key: Key of per-sample weights, if any.

    Examples:
        >>> np.savez("/tmp/data.npz", x=np.ones((4, 2)), y=np.zeros(4))
        >>> x, y = NpzData("/tmp/data.npz").load()
        >>> x.shape
        (4, 2)
    """

    path: str
    x_key: str = "x"
    y_key: str = "y"
    sample_weight_key: Optional[str] = None

    def __post_init__(self):
        # A pathlib.Path is kept as its string, so that messages name the file plainly.
        object.__setattr__(self, "path", os.fspath(self.path))

    def load(self) -> tuple:
        """Reads the arrays: `(x, y)` or `(x, y, sample_weight)`."""
        try:
            loaded = np.load(self.path)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"No data file at {self.path!r}.") from error
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"{self.path!r} is not a .npz file (write one with np.savez): {error}") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{self.path!r} holds one array, not a .npz archive of named arrays; write one with "
                "np.savez(path, x=x, y=y)."
            )
        with loaded as file:
            keys = [self.x_key, self.y_key] + ([self.sample_weight_key] if self.sample_weight_key else [])
            missing = [key for key in keys if key not in file.files]
            if missing:
                raise KeyError(f"{self.path!r} has no array named {missing[0]!r}; it holds {sorted(file.files)}.")
            return tuple(file[key] for key in keys)


def is_single_dataset(data) -> bool:
    """Whether `data` is one dataset rather than a collection of datasets.

    One dataset is a `tf.data.Dataset`, a `keras.utils.PyDataset` or a tuple
    `(x, y)` / `(x, y, sample_weight)` of arrays. A collection is a dict of
    datasets or a tuple/list whose items are all datasets themselves.
    """
    if isinstance(data, dict):
        return False
    if _is_dataset_object(data):
        return True
    if isinstance(data, (tuple, list)) and data and all(
        _is_dataset_object(item) or _is_array_tuple(item) for item in data
    ):
        return False
    return True


def prepare_data(
    data,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    max_batches: Optional[int] = None,
    stream: bool = False,
    model: Optional[keras.Model] = None,
) -> Batches:
    """Validates one dataset and converts it, once, to batches the engine loops over.

    Args:
        data: `(x, y)`, `(x, y, sample_weight)`, a `tf.data.Dataset` yielding
            batches (or, on the torch backend, a `torch.utils.data.DataLoader`),
            a `keras.utils.PyDataset` or an `NpzData`.
        batch_size: Batch size for in-memory arrays. By default 128, or,
            given `model` on an accelerator, the largest that fits a share
            of its memory (`losslandscape.batch_size_choice`).
        max_samples: Evaluate only the first `max_samples` samples.
        max_batches: Evaluate only the first `max_batches` batches (of 128
            samples each when `batch_size` is not given).
        stream: For a `tf.data.Dataset` (or `DataLoader`) larger than memory:
            read it again at every point instead of keeping its batches in
            memory.
        model: The model the data is for, which sizes the default batch on
            an accelerator.

    Returns:
        The backend's batches object, with `num_samples` (how many samples
        one pass sees); for arrays, the data is then resident on the device.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("max_samples", max_samples)
    check_positive_int("max_batches", max_batches)
    backend = current_backend()
    if backend.is_native_dataset(data) or isinstance(data, keras.utils.PyDataset):
        check_not_endless(data, max_samples, max_batches)
    if backend.is_native_dataset(data):
        if batch_size is not None and max_samples is None:
            raise ValueError(
                f"`batch_size` must be None when `data` is a {type(data).__name__}: "
                "it is already batched. Batch it yourself, or pass "
                "arrays `(x, y)` with `batch_size`."
            )
        budget = None if stream or max_samples or max_batches else batches_within_memory(data)
        if budget is not None:
            max_batches = budget[0] + 1  # one past the budget tells data too large to hold from data that fits
        batches = backend.native_dataset_to_batches(
            _first_of_dataset(data, batch_size or DEFAULT_BATCH_SIZE, max_samples, max_batches), stream
        )
        if budget is not None and batches is not None and batches.num_samples > budget[0] * budget[1]:
            refuse_unbounded(data, budget[0])
    else:
        if stream:
            raise ValueError(
                "`stream=True` is for a tf.data.Dataset larger than memory; arrays, "
                "PyDatasets and NpzData are held in memory. Pass a tf.data.Dataset or stream=False."
            )
        if isinstance(data, NpzData):
            data = data.load()
        if isinstance(data, keras.utils.PyDataset):
            data, batch_size = _concatenate_py_dataset(data, batch_size, max_samples, max_batches)
        arrays = _validated_arrays(data)
        limit = _sample_limit(max_samples, max_batches, batch_size or DEFAULT_BATCH_SIZE)
        if limit is not None:
            arrays = keras.tree.map_structure(lambda a: a[:limit], arrays)
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZE if model is None or max_batches else default_batch_size(model, arrays)
        batches = backend.arrays_to_batches(arrays, batch_size)
    if batches is None or batches.num_samples == 0:
        raise ValueError(
            "The dataset is empty: it yields no samples, so no loss can be "
            "computed. Pass data with at least one sample."
        )
    return batches


def _first_of_dataset(dataset, batch_size, max_samples, max_batches):
    """A batched `tf.data.Dataset` cut to its first `max_samples` samples (rebatched) or `max_batches` batches.

    Another backend's loader (a torch `DataLoader`) is cut as it is read.
    """
    if max_samples is None and max_batches is None:
        return dataset
    if not is_tf_dataset(dataset):
        return FirstBatches(dataset, max_samples, max_batches)
    if max_samples is not None:
        dataset = dataset.unbatch().take(max_samples).batch(batch_size)
    if max_batches is not None:
        dataset = dataset.take(max_batches)
    return dataset


class FirstBatches:
    """The first `max_batches` batches of a loader, the last one cut at `max_samples` samples in all; re-iterable."""

    def __init__(self, loader, max_samples: Optional[int], max_batches: Optional[int]):
        self._loader, self._max_samples, self._max_batches = loader, max_samples, max_batches

    def __iter__(self):
        seen = 0
        for batch in itertools.islice(self._loader, self._max_batches):  # no batch read past the last one kept
            parts = as_batch(batch)
            size = len(keras.tree.flatten(parts[0])[0])
            if self._max_samples is not None and seen + size >= self._max_samples:
                keep = self._max_samples - seen
                yield keras.tree.map_structure(lambda a: a[:keep], parts)
                return
            seen += size
            yield parts


def _sample_limit(max_samples, max_batches, batch_size):
    limits = [n for n in (max_samples, max_batches and max_batches * batch_size) if n]
    return min(limits) if limits else None


def _validated_arrays(data) -> tuple:
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise TypeError(
            "Expected data as `(x, y)`, `(x, y, sample_weight)`, a "
            "tf.data.Dataset or a keras.utils.PyDataset, received: "
            f"{type(data).__name__}"
            + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
        )
    if data[1] is None:
        raise ValueError(
            "Targets `y` are None: a loss needs targets. Pass `(x, y)`."
        )
    arrays = tuple(
        keras.tree.map_structure(np.asarray, part) for part in data if part is not None
    )
    names = ("x", "y", "sample_weight")
    lengths = {
        name: sorted({len(a) for a in keras.tree.flatten(part)})
        for name, part in zip(names, arrays)
    }
    distinct = sorted({n for values in lengths.values() for n in values})
    if len(distinct) > 1:
        described = ", ".join(f"{name}: {values}" for name, values in lengths.items())
        raise ValueError(
            "x, y and sample_weight must have the same number of samples "
            f"(first dimension), received: {described}."
        )
    return arrays


def _concatenate_py_dataset(data, batch_size, max_samples, max_batches):
    """The PyDataset's batches joined, read up to its end or the caps (an endless one has a cap)."""
    count = min(number_of_batches(data), math.inf if max_batches is None else max_batches)
    batches, seen = [], 0
    while len(batches) < count and (max_samples is None or seen < max_samples):
        batches.append(tuple(data[len(batches)]))
        seen += len(keras.tree.flatten(batches[-1][0])[0])
    if not batches:
        raise ValueError(
            "The dataset is empty: the PyDataset has no batches. Pass data "
            "with at least one sample."
        )
    try:
        arrays = tuple(
            keras.tree.map_structure(lambda *parts: np.concatenate(parts), *parts)
            for parts in zip(*batches)
        )
    except ValueError as error:
        raise ValueError(
            "The PyDataset's batches could not be joined into arrays (their "
            "shapes differ beyond the batch axis). Wrap it in a "
            f"tf.data.Dataset instead. ({error})"
        ) from error
    first_batch_size = len(keras.tree.flatten(batches[0][0])[0])
    return arrays, batch_size or first_batch_size


def _is_dataset_object(data) -> bool:
    return isinstance(data, (keras.utils.PyDataset, NpzData)) or current_backend().is_native_dataset(data)


def _is_array_tuple(item) -> bool:
    return isinstance(item, tuple) and len(item) in (2, 3)


class DatasetLabelError(ValueError, AssertionError):
    """The number of dataset labels differs from the number of datasets.

    It is an `AssertionError` too, so code written for the earlier Keras
    tool, which asserted the counts, keeps catching it.
    """


def labelled_datasets(data, labels: Optional[Sequence[str]] = None) -> dict:
    """Splits `data` into `{label: dataset}`.

    Args:
        data: One dataset, a tuple/list of datasets, or a dict of them.
        labels: One label per dataset. Defaults to "train" for one dataset,
            "train" and "test" for two, "dataset0", ... otherwise; the keys
            of a dict are its labels.

    Returns:
        A dict from label to dataset, in the given order.
    """
    if isinstance(data, dict):
        datasets = list(data.values())
        labels = list(data.keys()) if labels is None else labels
    elif is_single_dataset(data):
        datasets = [data]
    else:
        datasets = list(data)
    if labels is None:
        labels = {1: ["train"], 2: ["train", "test"]}.get(
            len(datasets), [f"dataset{i}" for i in range(len(datasets))]
        )
    labels = [str(label) for label in labels]
    if len(labels) != len(datasets):
        raise DatasetLabelError(
            f"Received {len(labels)} dataset labels {labels} for "
            f"{len(datasets)} datasets. Pass one label per dataset."
        )
    if any("/" in label or not label for label in labels):
        raise ValueError(f"Dataset labels must be non-empty and contain no '/', received: {labels}")
    if len(set(labels)) != len(labels):
        raise DatasetLabelError(f"Dataset labels must be distinct, received: {labels}")
    return dict(zip(labels, datasets))


def prepare_labelled_data(
    model: keras.Model,
    data,
    labels: Optional[Sequence[str]] = None,
    batch_size: Optional[int] = None,
    max_samples: Optional[int] = None,
    max_batches: Optional[int] = None,
    stream: bool = False,
) -> dict:
    """`{label: batches}` for one dataset, a tuple of them or a dict, each checked against the model's input.

    Args:
        model: The model the data is for; its input shape is checked.
        data, labels: As in `labelled_datasets`.
        batch_size, max_samples, max_batches, stream: As in `prepare_data`.

    Returns:
        `{label: batches}`, in the order of the datasets.
    """
    prepared = {}
    for label, dataset in labelled_datasets(data, labels).items():
        name = f"{label!r}" + (f" ({dataset.path!r})" if isinstance(dataset, NpzData) else "")
        if is_tf_dataset(dataset):
            check_dataset_is_batched(model, dataset, name)
        prepared[label] = prepare_data(dataset, batch_size, max_samples, max_batches, stream, model)
        check_data_fits_model(model, prepared[label], name)
    return prepared
