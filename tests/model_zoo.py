"""Small versions of the Keras models people train, with data, for the conformance tests.

Each builder returns a `Case`: a compiled model at non-trivial weights
(trained for an epoch or two, so biases and BatchNorm statistics are not at
their initial values) and its data. The data has 96 samples and the batch
size is 32, so every batch is full: Keras' `model.evaluate` on TensorFlow
averages the per-output losses of a multi-output model unweighted over
batches, which differs from the sample mean only when the last batch is
shorter (see `test_conformance.test_per_output_losses_are_sample_means`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from conftest import regularized_cnn

SAMPLES = 96
BATCH_SIZE = 32


@dataclass
class Case:
    model: keras.Model
    x: object
    y: object
    sample_weight: np.ndarray
    foldable: bool  # whether a first Dense layer is folded when K points are stacked


@keras.saving.register_keras_serializable(package="losslandscape_tests")
class LargestOutput(keras.metrics.Metric):
    """The largest |prediction| seen: a metric whose `result()` returns one of its variables."""

    def __init__(self, name="largest_output", **kwargs):
        super().__init__(name=name, **kwargs)
        self.largest = self.add_variable(shape=(), initializer="zeros", name="largest")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.largest.assign(keras.ops.maximum(self.largest, keras.ops.max(keras.ops.abs(y_pred))))

    def result(self):
        return self.largest


class TwoLayerRegressor(keras.Model):
    """A subclassed model: layers created in `__init__`, the forward pass written in `call`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.out = keras.layers.Dense(1)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def _rng():
    return np.random.default_rng(0)


def _classes(x):
    flat = x.reshape(len(x), -1)
    return (flat[:, :2].sum(axis=1) > 0).astype("int64") + (flat[:, 2:4].sum(axis=1) > 0)


def _weights():
    return _rng().uniform(0.2, 2.0, SAMPLES).astype("float32")


def _fit(model, x, y, epochs=2):
    model.fit(x, y, epochs=epochs, batch_size=BATCH_SIZE, verbose=0)
    return model


def _mlp(dtype=None, metrics=("accuracy",)):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(12, activation="relu", dtype=dtype),
            keras.layers.Dense(3, activation="softmax", dtype=dtype),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


def mlp():
    x = _rng().normal(size=(SAMPLES, 6)).astype("float32")
    return Case(_fit(_mlp(), x, _classes(x), epochs=3), x, _classes(x), _weights(), foldable=True)


def cnn():
    x = _rng().normal(size=(SAMPLES, 8, 8, 1)).astype("float32")
    return Case(_fit(regularized_cnn(), x, _classes(x)), x, _classes(x), _weights(), foldable=False)


def subclassed():
    keras.utils.set_random_seed(0)
    x = _rng().normal(size=(SAMPLES, 5)).astype("float32")
    y = (x @ _rng().normal(size=(5, 1))).astype("float32")
    model = TwoLayerRegressor()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return Case(_fit(model, x, y), x, y, _weights(), foldable=False)


def dict_inputs():
    keras.utils.set_random_seed(0)
    inputs = {"image": keras.Input((4,), name="image"), "meta": keras.Input((3,), name="meta")}
    joined = keras.layers.Concatenate()([inputs["image"], inputs["meta"]])
    hidden = keras.layers.Dense(8, activation="relu")(joined)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = _rng()
    x = {"image": rng.normal(size=(SAMPLES, 4)).astype("float32"), "meta": rng.normal(size=(SAMPLES, 3)).astype("float32")}
    y = _classes(x["image"])
    return Case(_fit(model, x, y), x, y, _weights(), foldable=False)


def two_outputs():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(12, activation="relu")(inputs)
    outputs = {"cls": keras.layers.Dense(3, name="cls")(hidden), "reg": keras.layers.Dense(1, name="reg")(hidden)}
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss={"cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "reg": "mse"},
        loss_weights={"cls": 1.0, "reg": 0.5},
        metrics={"cls": ["accuracy"], "reg": ["mae"]},
    )
    x = _rng().normal(size=(SAMPLES, 6)).astype("float32")
    y = {"cls": _classes(x), "reg": x[:, :1] * 2 - x[:, 1:2]}
    return Case(_fit(model, x, y), x, y, _weights(), foldable=True)


def recurrent():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            keras.layers.Embedding(20, 4),
            keras.layers.LSTM(6, return_sequences=True),
            keras.layers.GRU(5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = _rng().integers(0, 20, size=(SAMPLES, 7)).astype("int32")
    y = (x[:, 0] % 3).astype("int64")
    return Case(_fit(model, x, y), x, y, _weights(), foldable=False)


def mixed_float16():
    x = _rng().normal(size=(SAMPLES, 6)).astype("float32")
    model = _fit(_mlp(dtype="mixed_float16"), x, _classes(x))
    return Case(model, x, _classes(x), _weights(), foldable=False)


def custom_metric():
    x = _rng().normal(size=(SAMPLES, 6)).astype("float32")
    model = _fit(_mlp(metrics=("accuracy", LargestOutput())), x, _classes(x))
    return Case(model, x, _classes(x), _weights(), foldable=True)


def reloaded(folder):
    case = mlp()
    path = os.path.join(folder, "mlp.keras")
    case.model.save(path)
    case.model = keras.models.load_model(path)
    return case


ZOO: dict[str, Callable[..., Case]] = {
    "mlp": mlp,
    "cnn": cnn,
    "subclassed": subclassed,
    "dict_inputs": dict_inputs,
    "two_outputs": two_outputs,
    "recurrent": recurrent,
    "mixed_float16": mixed_float16,
    "custom_metric": custom_metric,
    "reloaded": reloaded,
}
