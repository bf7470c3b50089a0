"""TensorFlow implementation: data pipelines and the compiled point evaluator."""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from losslandscape.resume import weights_fingerprint


def is_native_dataset(data) -> bool:
    """Whether `data` is a `tf.data.Dataset`."""
    return isinstance(data, tf.data.Dataset)


class DeviceBatches:
    """Whole arrays held as tensors on the device, sliced into batches in the compiled loop.

    Slicing resident tensors inside `tf.function` costs microseconds per
    batch, while iterating a `tf.data.Dataset` there costs about a
    millisecond per batch, more than the forward pass of a small model.
    """

    def __init__(self, arrays: tuple, batch_size: int):
        self.arrays = tf.nest.map_structure(tf.convert_to_tensor, arrays)
        self.batch_size = batch_size
        self.num_samples = int(tf.shape(tf.nest.flatten(self.arrays)[0])[0])

    def first_batch(self):
        return self._slice(0)

    def for_each_batch(self, step):
        for start in tf.range(0, self.num_samples, self.batch_size):
            step(self._slice(start))

    def fingerprint(self) -> str:
        return weights_fingerprint(tf.nest.flatten(self.arrays))

    def evaluate_arguments(self) -> dict:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(self.arrays)
        return dict(x=x, y=y, sample_weight=sample_weight, batch_size=self.batch_size)

    def _slice(self, start):
        return tf.nest.map_structure(lambda a: a[start : start + self.batch_size], self.arrays)


class StreamedBatches:
    """A cached `tf.data.Dataset`, for batches that cannot be joined into arrays."""

    def __init__(self, dataset: tf.data.Dataset, num_samples: int):
        self.dataset = dataset
        self.num_samples = num_samples

    def first_batch(self):
        return next(iter(self.dataset))

    def for_each_batch(self, step):
        for batch in self.dataset:
            step(batch)

    def fingerprint(self) -> str:
        return weights_fingerprint(leaf for batch in self.dataset for leaf in tf.nest.flatten(batch))

    def evaluate_arguments(self) -> dict:
        return dict(x=self.dataset)



def arrays_to_batches(arrays: tuple, batch_size: int) -> DeviceBatches:
    """Puts `(x, y[, sample_weight])` on the device once."""
    return DeviceBatches(arrays, batch_size)


def native_dataset_to_batches(
    dataset: tf.data.Dataset,
    batch_size: Optional[int],
    max_samples: Optional[int],
    max_batches: Optional[int],
):
    """Runs a batched `tf.data.Dataset` once and keeps its batches.

    The batches are joined into device-resident arrays when their shapes
    allow (re-sliced with the first batch's size), else kept in a cached
    dataset. Either way every grid point sees the same samples in the same
    order, even from a shuffling or augmenting pipeline.
    """
    if max_samples is not None:
        dataset = dataset.unbatch().take(max_samples).batch(batch_size)
    if max_batches is not None:
        dataset = dataset.take(max_batches)
    batches = [tf.nest.map_structure(np.asarray, batch) for batch in dataset]
    if not batches:
        return None
    first_batch_size = len(tf.nest.flatten(batches[0])[0])
    try:
        arrays = tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches)
    except ValueError:
        num_samples = sum(len(tf.nest.flatten(batch)[0]) for batch in batches)
        return StreamedBatches(dataset.cache(), num_samples)
    return DeviceBatches(arrays, first_batch_size)


class CompiledPointEvaluator:
    """Evaluates the compiled loss and metrics at θ0 + Σ_k c_k·d_k.

    θ0 and the directions are given per variable of `variables` (by default
    the model's trainable variables) and copied to the device once. Each call runs one
    `tf.function` that writes the perturbed weights into the model's
    variables on the device and loops over the resident batches with the
    model's own `test_step` (the code `model.evaluate` runs), so values equal
    `model.evaluate` at the same weights. The caller restores θ0.
    """

    def __init__(
        self,
        model: keras.Model,
        batches,
        origin: Sequence[np.ndarray],
        directions: Sequence[Sequence[np.ndarray]],
        include_regularization: bool = True,
        variables: Optional[Sequence] = None,
    ):
        self._model = model
        self._batches = batches
        self._perturbed = []
        variables = model.trainable_variables if variables is None else variables
        for position, variable in enumerate(variables):
            stacked = np.stack([d[position] for d in directions])
            if np.any(stacked):
                self._perturbed.append(
                    (
                        variable,
                        tf.constant(origin[position], dtype=variable.dtype),
                        tf.constant(stacked, dtype=variable.dtype),
                    )
                )
        if not include_regularization and model._compile_loss is None:
            raise ValueError(
                "`include_regularization=False` needs a loss passed to "
                "`model.compile(loss=...)`; this model's only losses come from "
                "its layers."
            )
        self._data_loss = None if include_regularization else keras.metrics.Mean()
        self._build_metrics()
        self._function = tf.function(self._evaluate, reduce_retracing=True)

    def __call__(self, coefficients: Sequence[float]) -> dict[str, float]:
        values = self._function(tf.constant(coefficients, dtype=tf.float64))
        return {name: float(value) for name, value in values.items()}

    def _build_metrics(self):
        """Runs one eager step so that lazily built metrics own their variables."""
        self._step(self._batches.first_batch())

    def _evaluate(self, coefficients):
        for variable, origin, stacked in self._perturbed:
            shift = tf.tensordot(tf.cast(coefficients, variable.dtype), stacked, axes=1)
            variable.assign(origin + shift)
        self._reset_metrics()
        self._batches.for_each_batch(self._step)
        return self._results()

    def _step(self, batch):
        if self._data_loss is None:
            return self._model.test_step(batch)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = self._model(x, training=False)
        loss = self._model._compile_loss(y, y_pred, sample_weight)
        self._data_loss.update_state(
            loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0]
        )
        return self._model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _reset_metrics(self):
        for metric in self._model.metrics:
            metric.reset_state()
        if self._data_loss is not None:
            self._data_loss.reset_state()

    def _results(self):
        results = self._model.get_metrics_result()
        if self._data_loss is not None:
            results = dict(results, loss=self._data_loss.result())
        return results


class HessianVectorProduct:
    """Computes H·v for the Hessian H of the compiled loss at the model's current weights.

    The loss is the one `model.evaluate` reports (batch losses weighted by
    batch size, in inference mode), so H is exactly the Hessian of the
    landscape at θ0. Each product is one compiled pass over the resident
    batches with nested gradient tapes.
    """

    def __init__(self, model: keras.Model, batches, include_regularization: bool = True):
        self._model = model
        self._batches = batches
        self._include_regularization = include_regularization
        self._variables = list(model.trainable_variables)
        self._sums = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self._variables]
        self._function = tf.function(self._product)

    def __call__(self, vector: Sequence[np.ndarray]) -> list[np.ndarray]:
        tensors = [tf.constant(v, dtype=var.dtype) for v, var in zip(vector, self._variables)]
        return [np.asarray(h, dtype=np.float64) for h in self._function(tensors)]

    def _product(self, vector):
        for total in self._sums:
            total.assign(tf.zeros_like(total))
        self._batches.for_each_batch(lambda batch: self._accumulate(batch, vector))
        return [total / self._batches.num_samples for total in self._sums]

    def _accumulate(self, batch, vector):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                y_pred = self._model(x, training=False)
                if self._include_regularization:
                    loss = self._model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
                else:
                    loss = self._model._compile_loss(y, y_pred, sample_weight)
            gradients = inner.gradient(loss, self._variables, unconnected_gradients="zero")
            directional = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(gradients, vector)])
        products = outer.gradient(directional, self._variables, unconnected_gradients="zero")
        batch_size = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], self._variables[0].dtype)
        for total, product in zip(self._sums, products):
            total.assign_add(product * batch_size)
