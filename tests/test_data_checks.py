"""Data that cannot fit the model is named, with the fix, before the first point."""

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
