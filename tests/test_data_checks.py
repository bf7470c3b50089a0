"""Data that cannot fit the model is named, with the fix, before the first point."""

import re

import keras
import numpy as np
import pytest

from conftest import tensorflow_only
from losslandscape.data_checks import check_data_fits_model, check_dataset_is_batched
from losslandscape.datasets import prepare_data


def _sequence_model(length=None):
    model = keras.Sequential([keras.Input((length, 3)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])
    model.compile(loss="mse")
    return model


def test_a_shape_with_free_dimensions_is_described_with_any():
    model = _sequence_model()
    batches = prepare_data((np.zeros((4, 5, 2), "float32"), np.zeros((4, 1), "float32")))
    with pytest.raises(ValueError) as error:
        check_data_fits_model(model, batches, "'train'")
    assert str(error.value) == ("The data 'train' has samples of shape (5, 2), but the model expects (any, 3). "
                                "Pass data that matches the model's input.")


@tensorflow_only
def test_single_samples_are_refused_whichever_dimensions_are_known():
    import tensorflow as tf

    free = _sequence_model()  # (any, 3): a sample of (5, 3) is one sample, not a batch of five
    samples = tf.data.Dataset.from_tensor_slices(np.zeros((4, 5, 3), "float32"))  # x only, not a tuple
    with pytest.raises(ValueError) as error:
        check_dataset_is_batched(free, samples, "'train'")
    assert str(error.value) == ("The dataset 'train' yields single samples of shape (5, 3), not batches: the model "
                                "takes batches of shape (any, any, 3). Batch it first, e.g. `dataset.batch(128)`.")
    dense = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    unknown = tf.data.Dataset.from_generator(  # samples of unknown length, as a generator gives them
        lambda: iter([np.zeros(8, "float32")]), output_signature=tf.TensorSpec((None,), tf.float32))
    with pytest.raises(ValueError, match=r"yields single samples of shape \(None,\), not batches: the model takes "
                                         r"batches of shape \(any, 8\)\."):
        check_dataset_is_batched(dense, unknown, "'train'")
    check_dataset_is_batched(dense, samples.map(lambda x: tf.zeros((2, 8))), "'train'")  # batches pass
    check_dataset_is_batched(free, samples.batch(2), "'train'")


@tensorflow_only
def test_a_dataset_for_another_number_of_inputs_is_left_to_keras():
    import tensorflow as tf

    first, second = keras.Input((8,)), keras.Input((4,))
    model = keras.Model([first, second], keras.layers.Dense(1)(keras.layers.Concatenate()([first, second])))
    one_input = tf.data.Dataset.from_tensor_slices(np.zeros((4, 8), "float32"))
    check_dataset_is_batched(model, one_input, "'train'")  # one input for two: Keras names that mismatch itself


def test_a_one_dimensional_sample_shape_is_written_as_a_tuple():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    batches = prepare_data((np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32")))
    with pytest.raises(ValueError) as error:
        check_data_fits_model(model, batches, "'train'")
    assert str(error.value) == ("The data 'train' has samples of shape (2,), but the model expects (3,). "
                                "Pass data that matches the model's input.")


def _classifier(loss, units=3):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units)])
    model.compile(loss=loss)
    return model


def _refusal(model, y, x=None):
    x = np.zeros((len(y), 2), "float32") if x is None else x
    with pytest.raises(ValueError) as error:
        check_data_fits_model(model, prepare_data((x, np.asarray(y))), "'train'")
    return str(error.value)


def _range_message(label, classes=3):
    return (f"The data 'train' has the label {label}, but the model's sparse loss takes labels 0 to {classes - 1} "
            f"(its output has {classes} units). Pass labels in that range.")


@pytest.mark.parametrize("loss", [
    "sparse_categorical_crossentropy",
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    keras.losses.sparse_categorical_crossentropy,
])
def test_sparse_labels_outside_the_outputs_range_are_refused_whichever_way_the_loss_is_named(loss):
    model = _classifier(loss)
    check_data_fits_model(model, prepare_data((np.zeros((3, 2), "float32"), np.array([0, 1, 2]))), "'train'")
    assert _refusal(model, [0, 5, 7]) == _range_message(5)  # the first one outside
    assert _refusal(model, [0.0, -1.0]) == _range_message(-1)
    assert _refusal(model, [0.0, 1.5]) == _range_message(1.5)
    assert _refusal(model, [3, 1]) == _range_message(3)
    one_hot = np.eye(3, dtype="float32")[[0, 1, 2, 1]]
    assert _refusal(model, one_hot) == (
        "The data 'train' has labels of shape (4, 3), one value per class (one-hot), but the model's loss "
        "`sparse_categorical_crossentropy` takes one class index per sample. Pass `y.argmax(axis=-1)`, or compile "
        "the model with `categorical_crossentropy`.")


def test_the_ignored_class_is_allowed_and_other_losses_are_not_checked():
    model = _classifier(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    check_data_fits_model(model, prepare_data((np.zeros((3, 2), "float32"), np.array([0, -1, 2]))), "'train'")
    assert _refusal(model, [-1, 4]) == _range_message(4)
    check_data_fits_model(_classifier("mse"), prepare_data((np.zeros((2, 2), "float32"),
                                                            np.full((2, 3), 9.0, "float32"))), "'train'")
    single = _classifier("sparse_categorical_crossentropy", units=1)  # one unit: a label of shape (n, 1) is an index
    assert _refusal(single, np.array([[0], [1]])) == _range_message(1, classes=1)


def test_inputs_and_targets_that_are_not_finite_are_counted_in_one_warning_each():
    model = _classifier("mse", units=1)
    x = np.zeros((4, 2), "float32")
    x[1, 0], x[2, 1] = np.nan, np.inf
    y = np.zeros((4, 1), "float32")
    y[3] = -np.inf
    with pytest.warns(UserWarning) as caught:
        check_data_fits_model(model, prepare_data((x, y)), "'train'")
    assert [str(w.message) for w in caught] == [
        "The data 'train' holds 2 NaN or infinite input values (of 8): losses over it will be NaN at every point. "
        "Drop or fix those samples, e.g. with np.isfinite.",
        "The data 'train' holds 1 NaN or infinite target values (of 4): losses over it will be NaN at every point. "
        "Drop or fix those samples, e.g. with np.isfinite.",
    ]


@tensorflow_only
def test_a_streamed_dataset_is_checked_by_its_first_batch():
    import tensorflow as tf

    model = _classifier("sparse_categorical_crossentropy")
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2), "float32"), np.array([0, 9, 1, 2]))).batch(2)
    with pytest.raises(ValueError, match=re.escape(_range_message(9))):
        check_data_fits_model(model, prepare_data(dataset, stream=True), "'train'")


def test_samples_of_another_rank_are_refused_even_where_their_leading_sizes_match():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    extra_axis = prepare_data((np.ones((4, 5, 1), "float32"), np.ones((4, 1), "float32")))
    message = "The data 'train' has samples of shape (5, 1), but the model expects (5,). Pass data that matches the " \
              "model's input."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_data_fits_model(model, extra_axis, "'train'")
    check_data_fits_model(model, prepare_data((np.ones((4, 5), "float32"), np.ones((4, 1), "float32"))), "'train'")


def test_resident_arrays_are_checked_in_full_not_by_their_first_batch():
    model = _classifier("sparse_categorical_crossentropy")
    x, y = np.zeros((40, 2), "float32"), np.zeros(40, "int64")
    y[-1] = 7  # in the last batch of 4
    with pytest.raises(ValueError, match=f"^{re.escape(_range_message(7))}$"):
        check_data_fits_model(model, prepare_data((x, y), batch_size=4), "'train'")
    x[-1, 0] = np.nan
    with pytest.warns(UserWarning, match=r"holds 1 NaN or infinite input values \(of 80\)"):
        check_data_fits_model(_classifier("mse", units=1), prepare_data((x, np.zeros((40, 1), "float32")),
                                                                        batch_size=4), "'train'")


def test_the_input_that_does_not_fit_is_named_among_several():
    first, second = keras.Input((8,)), keras.Input((4,))
    model = keras.Model([first, second], keras.layers.Dense(1)(keras.layers.Concatenate()([first, second])))
    model.compile(loss="mse")
    data = prepare_data(((np.zeros((2, 8), "float32"), np.zeros((2, 5), "float32")), np.zeros((2, 1), "float32")))
    with pytest.raises(ValueError) as error:
        check_data_fits_model(model, data, "'train'")
    assert str(error.value) == ("The data 'train' has samples of shape (5,) (input 1), but the model expects (4,). "
                                "Pass data that matches the model's input.")


def test_labels_the_check_cannot_read_are_left_to_keras():
    model = _classifier("sparse_categorical_crossentropy")
    x = np.zeros((2, 2), "float32")
    check_data_fits_model(model, prepare_data((x, np.array(["cat", "dog"]))), "'train'")  # not numbers
    assert _refusal(model, [9]) == _range_message(9)  # a single sample is checked
    two = _classifier("sparse_categorical_crossentropy", units=2)
    assert "one value per class (one-hot)" in _refusal(two, np.eye(2, dtype="float32")[[0, 1, 1]])
    inputs = keras.Input((2,))
    outputs = {"a": keras.layers.Dense(3)(inputs), "b": keras.layers.Dense(3)(inputs)}
    both = keras.Model(inputs, outputs)
    both.compile(loss="sparse_categorical_crossentropy")
    check_data_fits_model(both, prepare_data((x, {"a": np.array([0, 1]), "b": np.array([2, 0])})), "'train'")


@tensorflow_only
def test_batches_whose_sizes_equal_the_features_or_are_unknown_pass():
    import tensorflow as tf

    dense = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    check_dataset_is_batched(dense, tf.data.Dataset.from_tensor_slices(np.zeros((16, 8), "float32")).batch(8),
                             "'train'")  # batches of (None, 8), and of (8, 8)
    check_dataset_is_batched(dense, tf.data.Dataset.from_tensor_slices(np.zeros((16, 8), "float32")).batch(
        8, drop_remainder=True), "'train'")


def test_a_sequence_classifiers_labels_are_checked_against_its_last_axis():
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.Dense(3)])  # 3 classes at each of 5 steps
    model.compile(loss="sparse_categorical_crossentropy")
    x = np.zeros((2, 5, 2), "float32")
    check_data_fits_model(model, prepare_data((x, np.array([[0, 1, 2, 0, 1], [2, 2, 1, 0, 0]]))), "'train'")
    assert _refusal(model, np.array([[0, 1, 2, 3, 1], [0, 0, 0, 0, 0]]), x) == _range_message(3)
    one_hot = np.eye(3, dtype="float32")[np.zeros((2, 5), int)]
    assert "labels of shape (2, 5, 3), one value per class (one-hot)" in _refusal(model, one_hot, x)
