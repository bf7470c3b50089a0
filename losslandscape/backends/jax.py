"""The JAX backend: device-resident batches and jit-compiled, `vmap`-vectorized point evaluators."""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import keras
import numpy as np

from losslandscape.backends import base
from losslandscape.backends.base import (
    ArrayBatches, PointEvaluator, as_batch, batch_loss, is_tf_dataset, join_batches,
)
from losslandscape.backends.padded_calls import evaluate_in_padded_calls
from losslandscape.backends.stateless_step import stateless_metric_results, stateless_predict, stateless_test_step
from losslandscape.input_layer_fold import fold_arguments, foldable_input_dense, folded_dense
from losslandscape.keras_internals import build_for_batch


OUT_OF_MEMORY_ERRORS = (jax.errors.JaxRuntimeError,)


class DeviceBatches(ArrayBatches):
    """Whole arrays held on the default JAX device, sliced into batches inside the compiled loop.

    The arrays are passed to the compiled functions as arguments, never
    captured as constants, so compiling does not copy the data: inside a
    compiled function, loop over `batches.with_arrays(traced_arrays)`.
    """

    def __init__(self, arrays: tuple, batch_size: int):
        try:
            self.arrays = jax.device_put(keras.tree.map_structure(np.asarray, arrays))
        except jax.errors.JaxRuntimeError as error:
            raise MemoryError(
                "The data does not fit in the accelerator's memory, where the JAX backend keeps it. "
                "Pass `max_samples=` to evaluate on fewer samples, or use the TensorFlow backend "
                f"with a tf.data.Dataset and `stream=True`. ({error})"
            ) from error
        self.batch_size = batch_size
        self.num_samples = int(keras.tree.flatten(self.arrays)[0].shape[0])

    def first_batch(self):
        return keras.tree.map_structure(lambda a: a[: self.batch_size], self.arrays)

    def with_arrays(self, arrays) -> "DeviceBatches":
        """The same batching over `arrays`, e.g. the traced arguments of a compiled function."""
        rebound = copy.copy(self)
        rebound.arrays = arrays
        return rebound

    def accumulate(self, step, state):
        """Threads `state` through `step(batch, state)` over all batches, in a compiled loop.

        Full batches run in a `fori_loop`; a last, shorter batch runs after it,
        as in `model.evaluate`.
        """
        arrays, size = self.arrays, self.batch_size
        full_batches, remainder = divmod(self.num_samples, size)

        def body(index, state):
            batch = keras.tree.map_structure(lambda a: jax.lax.dynamic_slice_in_dim(a, index * size, size), arrays)
            return step(batch, state)

        if full_batches:
            state = jax.lax.fori_loop(0, full_batches, body, state)
        if remainder:
            state = step(keras.tree.map_structure(lambda a: a[full_batches * size :], arrays), state)
        return state

    def _nests(self):
        return [keras.tree.map_structure(np.asarray, self.arrays)]


def _native_dataset_to_batches(dataset, stream: bool = False) -> Optional[DeviceBatches]:
    """Runs a batched `tf.data.Dataset` once and joins its batches into device-resident arrays."""
    if stream:
        raise ValueError(
            "`stream=True` needs the TensorFlow backend: the JAX backend keeps the data in the "
            "accelerator's memory. Set KERAS_BACKEND=tensorflow, or pass stream=False."
        )
    joined = join_batches(
        [keras.tree.map_structure(np.asarray, batch) for batch in dataset],
        "The JAX backend needs arrays: pad them to one shape, or use the TensorFlow backend.",
    )
    return None if joined is None else DeviceBatches(*joined)


class _PointsEvaluator(PointEvaluator):
    """Loss and compiled metrics at θ0 + Σ_k c_k·d_k, computed by one jit-compiled function.

    The function builds each point's weights from θ0 and the directions,
    folds the model's `test_step` (the step `model.evaluate` runs) over the
    resident batches, and reads the metric results, all on the device. It is
    pure: the model's variables are never written.
    """

    points_per_call = 1

    def __init__(self, model, batches, origin, directions, include_regularization=True, variables=None):
        self._model = model
        self._batches = batches
        self._include_regularization = include_regularization
        build_for_batch(model, batches.first_batch())
        self._moved = list(model.trainable_variables) if variables is None else list(variables)
        position = {id(v): p for p, v in enumerate(self._moved)}
        self._trainable_positions = [position.get(id(v)) for v in model.trainable_variables]
        self._non_trainable_positions = [position.get(id(v)) for v in model.non_trainable_variables]
        self.rebind(origin, directions)
        self._function = jax.jit(self._evaluate_points)

    def rebind(self, origin, directions) -> None:
        """The compiled function's inputs: jit compiles for their shapes, so new values compile nothing."""
        model = self._model
        for metric in model.metrics:  # every point starts from reset metric states (the caller restores them)
            metric.reset_state()
        self._inputs = dict(
            origin=[jnp.asarray(w, dtype=v.dtype) for w, v in zip(origin, self._moved)],
            directions=[
                jnp.asarray(np.stack([d[p] for d in directions]), dtype=v.dtype) for p, v in enumerate(self._moved)
            ],
            trainable=[v.value for v in model.trainable_variables],
            non_trainable=[v.value for v in model.non_trainable_variables],
            metric_states=[v.value for v in model.metrics_variables],
            arrays=self._batches.arrays,
        )

    def evaluate(self, points: np.ndarray) -> list[dict[str, float]]:
        """Values at each row of coefficients, `points_per_call` rows per compiled call."""
        return evaluate_in_padded_calls(
            points, self.points_per_call, lambda padded: self._function(padded, self._inputs), np.float32
        )

    def _evaluate_points(self, points, inputs):
        return jax.lax.map(lambda point: self._evaluate_point(point, inputs), points)

    def _evaluate_point(self, coefficients, inputs):
        moved = [
            w + jnp.tensordot(coefficients.astype(w.dtype), d, axes=1)
            for w, d in zip(inputs["origin"], inputs["directions"])
        ]

        def place(values, positions):
            return [value if p is None else moved[p] for value, p in zip(values, positions)]

        trainable = place(inputs["trainable"], self._trainable_positions)
        non_trainable = place(inputs["non_trainable"], self._non_trainable_positions)

        def step(batch, states):
            return self._step(batch, trainable, non_trainable, states)

        states = self._batches.with_arrays(inputs["arrays"]).accumulate(step, inputs["metric_states"])
        return self._results(states)

    def _step(self, batch, trainable, non_trainable, states):
        model = self._model
        if self._include_regularization:
            # The model's own step, which a subclass may override (one point per call only).
            _, (_, _, states) = model.test_step((trainable, non_trainable, states), batch)
            return states
        return stateless_test_step(model, trainable, non_trainable, model.metrics_variables, states, batch, False)

    def _results(self, states):
        return stateless_metric_results(self._model, self._model.metrics_variables, states)


class CompiledPointEvaluator(_PointsEvaluator):
    """One grid point per compiled call: `variables` (default: the trainable ones) move along the directions."""


class VectorizedPointEvaluator(_PointsEvaluator):
    """K grid points per compiled call: the point function is `jax.vmap`-ed over the K points.

    Extra memory is K copies of the weights plus K batches of activations.
    The values equal `model.evaluate`'s. A first Dense layer runs once per
    batch for all K points (`losslandscape.input_layer_fold`).
    """

    def __init__(self, model, batches, origin, directions, include_regularization: bool = True,
                 points_per_call: int = 8):
        super().__init__(model, batches, origin, directions, include_regularization)
        self.points_per_call = points_per_call
        self._folded_layer = foldable_input_dense(model)

    def _evaluate_points(self, points, inputs):
        return jax.vmap(lambda point: self._evaluate_point(point, inputs))(points)

    def _evaluate_point(self, coefficients, inputs):
        if self._folded_layer is None:
            return super()._evaluate_point(coefficients, inputs)
        origin, directions = fold_arguments(
            self._folded_layer, self._model.trainable_variables, inputs["origin"], inputs["directions"]
        )
        with folded_dense(self._folded_layer, origin, directions, coefficients):
            return super()._evaluate_point(coefficients, inputs)


class HessianVectorProduct(base.HessianVectorProduct):
    """H·v in one compiled pass over the batches, forward-over-reverse (`jax.jvp` of `jax.grad`)."""

    _batches: DeviceBatches

    def __init__(self, model: keras.Model, batches: DeviceBatches, include_regularization: bool = True):
        super().__init__(model, batches, include_regularization)
        self._function = jax.jit(self._sum_over_batches)

    def _product(self, vector: Sequence[np.ndarray]) -> list:
        model = self._model
        return self._function(
            [v.value for v in self._variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.metrics_variables],
            [jnp.asarray(a, dtype=v.dtype) for a, v in zip(vector, self._variables)],
            self._batches.arrays,
        )

    def _sum_over_batches(self, weights, non_trainable, metric_states, vector, arrays):
        model = self._model

        def loss_of_batch(trainable, batch):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
            if self._include_regularization:
                loss, _ = model.compute_loss_and_updates(
                    trainable, non_trainable, metric_states, x, y, sample_weight, training=False
                )
                return loss
            y_pred = stateless_predict(model, trainable, non_trainable, x)
            return batch_loss(model, x, y, y_pred, sample_weight, include_regularization=False)

        def step(batch, totals):
            _, product = jax.jvp(lambda w: jax.grad(loss_of_batch)(w, batch), (weights,), (vector,))
            size = keras.tree.flatten(batch)[0].shape[0]
            return [total + h * size for total, h in zip(totals, product)]

        totals = self._batches.with_arrays(arrays).accumulate(step, [jnp.zeros_like(w) for w in weights])
        return [total / self._batches.num_samples for total in totals]


class JaxBackend(base.Backend):
    """Keras on JAX: data as device arrays passed to `jax.jit`-compiled functions, K points with `jax.vmap`."""

    name = "jax"
    out_of_memory_errors = OUT_OF_MEMORY_ERRORS
    point_evaluator = CompiledPointEvaluator
    vectorized_evaluator = VectorizedPointEvaluator
    hessian_vector_product = HessianVectorProduct

    def device_description(self) -> str:
        return f"JAX {jax.__version__}, devices: {[str(device) for device in jax.devices()]}"

    def is_native_dataset(self, data) -> bool:
        return is_tf_dataset(data)

    def arrays_to_batches(self, arrays: tuple, batch_size: int) -> DeviceBatches:
        return DeviceBatches(arrays, batch_size)

    def native_dataset_to_batches(self, dataset, stream: bool = False) -> Optional[DeviceBatches]:
        return _native_dataset_to_batches(dataset, stream)

    def why_stacking_is_slower(self, model: keras.Model) -> Optional[str]:
        # On 2 CPU cores the digits CNN took 64 ms per point at K = 64 against 9.1 ms one per call.
        if jax.default_backend() == "cpu" and base.reuses_weights_across_positions(model):
            return "on a CPU, JAX runs K stacked points of a model with convolutions slower"
        return None

    def why_float32_is_reduced(self) -> Optional[str]:
        precision = jax.config.jax_default_matmul_precision  # type: ignore[attr-defined]  # set at run time
        if jax.default_backend() != "cpu" and precision not in ("highest", "float32"):
            return (f"JAX's default matmul precision ({precision or 'default'}) rounds float32 products on "
                    f"{jax.default_backend()} (TF32 on NVIDIA GPUs)")
        return None

    def full_precision(self):
        return jax.default_matmul_precision("highest")

    def accelerator_memory(self) -> Optional[int]:
        device = jax.devices()[0]
        stats = None if device.platform == "cpu" else device.memory_stats()
        return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None

    def batch_memory(self, model: keras.Model, batch) -> Optional[int]:
        # XLA's plan for the compiled pass: its scratch buffers and its output (the weights and inputs are
        # held already). Read from the compiled executable, so it holds on any device and needs no run.
        x = as_batch(batch)[0]
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        forward = jax.jit(lambda t, n, x: stateless_predict(model, t, n, x))
        stats = forward.lower(trainable, non_trainable, x).compile().memory_analysis()
        return None if stats is None else int(stats.temp_size_in_bytes + stats.output_size_in_bytes)


BACKEND = JaxBackend()
