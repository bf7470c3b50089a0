"""Checks that data fits the model it is evaluated on, made once before the first grid point."""

from __future__ import annotations

import warnings
from typing import Optional

import keras
import numpy as np

_SPARSE_LOSS_NAMES = ("sparse_categorical_crossentropy",)


def check_data_fits_model(model: keras.Model, batches, name: str) -> None:
    """Raises a ValueError if the inputs' shapes or the labels of a sparse loss cannot fit `model`.

    Args:
        model: The compiled model.
        batches: Batches from `prepare_data`; resident arrays are checked in
            full, a streamed dataset by its first batch.
        name: How the error names the data, e.g. "'train' ('data.npz')".
    """
    arrays = getattr(batches, "arrays", None)
    x, y, _ = keras.utils.unpack_x_y_sample_weight(arrays if arrays is not None else batches.first_batch())
    _check_input_shapes(model, x, name)
    _check_sparse_labels(model, y, name)
    _warn_of_values_that_are_not_finite(x, y, name)


def check_dataset_is_batched(model: keras.Model, dataset, name: str) -> None:
    """Raises a ValueError if a `tf.data.Dataset` yields single samples where the model takes batches.

    Args:
        model: The model the data is for.
        dataset: A `tf.data.Dataset`.
        name: How the error names the data, e.g. "'train'".
    """
    expected = _input_shapes(model)
    spec = dataset.element_spec
    x_spec = spec[0] if isinstance(spec, tuple) else spec
    given = keras.tree.flatten(x_spec)
    if expected is None or len(given) != len(expected):
        return
    for tensor_spec, shape in zip(given, expected):
        sample = tuple(tensor_spec.shape)
        if len(sample) == len(shape) - 1 and all(w is None or f is None or w == f for w, f in zip(shape[1:], sample)):
            raise ValueError(
                f"The dataset {name} yields single samples of shape {sample}, not batches: the model takes "
                f"batches of shape {_describe(shape)}. Batch it first, e.g. `dataset.batch(128)`."
            )


def _check_input_shapes(model, x, name) -> None:
    expected = _input_shapes(model)
    if expected is None:
        return
    given = keras.tree.flatten(x)
    if len(given) != len(expected):
        return  # inputs by name in another structure: Keras itself reports a mismatch clearly
    for position, (array, shape) in enumerate(zip(given, expected)):
        found = tuple(array.shape[1:])
        wanted = tuple(shape[1:])
        if len(found) != len(wanted) or any(w is not None and w != f for w, f in zip(wanted, found)):
            which = "" if len(expected) == 1 else f" (input {position})"
            raise ValueError(
                f"The data {name} has samples of shape {found}{which}, but the model expects "
                f"{_describe(wanted)}. Pass data that matches the model's input."
            )


def _input_shapes(model) -> Optional[list]:
    try:
        return [tuple(tensor.shape) for tensor in model.inputs]
    except (AttributeError, ValueError):
        return None  # a subclassed model: its inputs are only known from its `call`


def _check_sparse_labels(model, y, name) -> None:
    loss = model.loss
    config = loss.get_config() if isinstance(loss, keras.losses.Loss) else {}
    loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", None) or config.get("name")
    if loss_name not in _SPARSE_LOSS_NAMES or y is None or keras.tree.is_nested(y):
        return
    try:
        classes = model.outputs[0].shape[-1]
    except (AttributeError, ValueError, IndexError):
        return
    labels = np.asarray(keras.ops.convert_to_numpy(y))
    if classes is None or labels.size == 0 or not np.issubdtype(labels.dtype, np.number):
        return
    if classes > 1 and labels.ndim == len(model.outputs[0].shape) and labels.shape[-1] == classes:
        raise ValueError(
            f"The data {name} has labels of shape {labels.shape}, one value per class (one-hot), but the model's "
            f"loss `{loss_name}` takes one class index per sample. Pass `y.argmax(axis=-1)`, or compile the "
            "model with `categorical_crossentropy`."
        )
    labels = labels.ravel()
    ignored = config.get("ignore_class")
    if ignored is not None:
        labels = labels[labels != ignored]
    outside = labels[(labels < 0) | (labels >= classes) | (labels != np.round(labels))]
    if outside.size:
        raise ValueError(
            f"The data {name} has the label {outside[0]:g}, but the model's sparse loss takes labels "
            f"0 to {classes - 1} (its output has {classes} units). Pass labels in that range."
        )


def _warn_of_values_that_are_not_finite(x, y, name) -> None:
    """Warns in one line if inputs or targets hold NaN or infinite values: the mean loss over them is NaN everywhere."""
    for what, nest in (("input", x), ("target", y)):
        arrays = [np.asarray(keras.ops.convert_to_numpy(leaf)) for leaf in keras.tree.flatten(nest)]
        arrays = [array for array in arrays if np.issubdtype(array.dtype, np.floating)]
        bad = sum(int(np.size(array) - np.isfinite(array).sum()) for array in arrays)
        if bad:
            total = sum(array.size for array in arrays)
            warnings.warn(
                f"The data {name} holds {bad} NaN or infinite {what} values (of {total}): losses over it will be "
                "NaN at every point. Drop or fix those samples, e.g. with np.isfinite.",
                stacklevel=2,
            )


def _describe(shape) -> str:
    return "(" + ", ".join("any" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
