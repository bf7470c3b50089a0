"""The TensorFlow backend: device-resident or streamed batches, and `tf.function`-compiled evaluators."""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Iterator, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from losslandscape.backends import base
from losslandscape.backends.base import ArrayBatches, Batches, PointEvaluator, batch_loss, batch_size_of
from losslandscape.backends.padded_calls import evaluate_in_padded_calls
from losslandscape.backends.stateless_step import stateless_metric_results, stateless_test_step
from losslandscape.input_layer_fold import fold_arguments, foldable_input_dense, folded_dense
from losslandscape.keras_internals import build_for_batch, tracks_loss_per_output


OUT_OF_MEMORY_ERRORS = (tf.errors.ResourceExhaustedError,)


class DeviceBatches(ArrayBatches):
    """Whole arrays held as tensors on the device, sliced into batches in the compiled loop.

    Slicing resident tensors inside `tf.function` costs microseconds per
    batch, while iterating a `tf.data.Dataset` there costs about a
    millisecond per batch, more than the forward pass of a small model.
    """

    batch_size: int

    def __init__(self, arrays: tuple, batch_size: int):
        self.arrays = _on_accelerator_if_it_fits(arrays)
        self.batch_size = batch_size
        self.num_samples = int(tf.shape(tf.nest.flatten(self.arrays)[0])[0])

    def first_batch(self):
        return self._slice(0)

    def accumulate(self, step, state, static_shapes: bool = True):
        """Threads `state` through `step(batch, state)` over all batches, inside a compiled loop.

        With `static_shapes` (what XLA needs to compile the loop body once),
        the full batches run in a loop with a static batch shape and the
        last, shorter batch runs after it, so `step` is traced twice.
        Without, one loop runs over all batches, the last one shorter, so
        `step` is traced once, for a batch axis of unknown size: on the
        digits MLP that spared 0.2 s of tracing the K-point step.
        """
        if not static_shapes:
            def next_batch(index, state):
                start = index * self.batch_size
                size = tf.minimum(self.batch_size, self.num_samples - start)
                return index + 1, step(self._sized_slice(start, size), state)

            num_batches = -(-self.num_samples // self.batch_size)
            return tf.while_loop(lambda index, _: index < num_batches, next_batch, (tf.constant(0), state))[1]
        full_batches, remainder = divmod(self.num_samples, self.batch_size)
        if full_batches:  # XLA compiles a loop body even if it never runs: its slice must fit the data
            _, state = tf.while_loop(
                lambda index, _: index < full_batches,
                lambda index, state: (index + 1, step(self._sized_slice(index * self.batch_size, self.batch_size), state)),
                (tf.constant(0), state),
            )
        if remainder:
            state = step(self._sized_slice(full_batches * self.batch_size, remainder), state)
        return state

    def _nests(self):
        return [self.arrays]

    def with_min_batch_size(self, batch_size: int) -> "DeviceBatches":
        """The same resident arrays, sliced into batches of at least `batch_size` samples."""
        rebatched = copy.copy(self)
        rebatched.batch_size = max(self.batch_size, batch_size)
        return rebatched

    def _slice(self, start):
        return tf.nest.map_structure(lambda a: a[start : start + self.batch_size], self.arrays)

    def _sized_slice(self, start, size):
        return tf.nest.map_structure(
            lambda a: tf.slice(a, [start] + [0] * (a.shape.rank - 1), [size] + [-1] * (a.shape.rank - 1)),
            self.arrays,
        )


def _graph_function(python_function, **options):
    """`tf.function` without AutoGraph, which on a small model took 60 % of the time to trace the K-point evaluator.

    Keras runs a model's code without AutoGraph as well (it never converts
    code it calls), so every model `model.evaluate` runs traces here too.
    """
    return tf.function(python_function, autograph=False, **options)


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_logical_devices("GPU"))


def _on_accelerator_if_it_fits(arrays):
    """Tensors in GPU memory when a GPU is present and they fit there, else in host memory.

    Resident data spares a host-to-device copy of every batch at every grid point.
    """
    if not has_gpu():
        return tf.nest.map_structure(tf.convert_to_tensor, arrays)
    try:
        with tf.device("/GPU:0"):
            return tf.nest.map_structure(lambda a: tf.identity(tf.convert_to_tensor(a)), arrays)
    except tf.errors.ResourceExhaustedError:
        with tf.device("/CPU:0"):
            return tf.nest.map_structure(tf.convert_to_tensor, arrays)


def _needs_static_batch_shapes(model: keras.Model) -> bool:
    """Whether the model's batches must have static shapes even without XLA.

    Keras weights each output's loss metric by the batch's static size; in
    a loop body that does not know it, it would average the batches'
    losses unweighted, and a shorter last batch would count as a full one.
    """
    return tracks_loss_per_output(model)


class StreamedBatches(Batches):
    """A `tf.data.Dataset` read batch by batch at every point.

    Used for batches that cannot be joined into arrays (then cached in
    memory), and for data larger than memory (`stream=True`, not cached).
    """

    batch_size = None

    def __init__(self, dataset: tf.data.Dataset, num_samples: int):
        self.dataset = dataset
        self.num_samples = num_samples

    def first_batch(self):
        return next(iter(self.dataset))

    def accumulate(self, step, state, static_shapes: bool = True):
        """Threads `state` through `step(batch, state)` over all batches, inside a compiled loop.

        The batches' shapes are the dataset's whatever `static_shapes` says.
        """
        if isinstance(state, list):  # tf.data would take a list of states (K points' metrics) for one tensor
            return list(self.dataset.reduce(tuple(state), lambda state, batch: tuple(step(batch, list(state)))))
        return self.dataset.reduce(state, lambda state, batch: step(batch, state))

    def _nests(self):
        return iter(self.dataset)

    def evaluate_arguments(self) -> dict:
        return dict(x=self.dataset)


def _native_dataset_to_batches(dataset: tf.data.Dataset, stream: bool = False) -> Optional[Batches]:
    """Runs a batched `tf.data.Dataset` once and keeps its batches.

    The batches are joined into device-resident arrays when their shapes
    allow (re-sliced with the first batch's size), else kept in a cached
    dataset. Either way every grid point sees the same samples in the same
    order, even from a shuffling or augmenting pipeline. With `stream=True`
    nothing is kept: the pipeline runs again at every point, so data larger
    than memory works (it must then yield the same batches every time).
    """
    if stream:
        num_samples = sum(int(tf.shape(tf.nest.flatten(batch)[0])[0]) for batch in dataset)
        return StreamedBatches(dataset, num_samples) if num_samples else None
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


# The smallest batches `CompiledPointEvaluator.evaluate_uncompiled` runs: it checks the stacked evaluator
# on a model known to be small, whose activations for this many samples take little memory.
UNCOMPILED_MIN_BATCH_SIZE = 4096


class CompiledPointEvaluator(PointEvaluator):
    """Evaluates the compiled loss and metrics at θ0 + Σ_k c_k·d_k.

    θ0 and the directions are given per variable of `variables` (by default
    the model's trainable variables) and copied to the device once. Each call runs one
    `tf.function` that writes the perturbed weights into the model's
    variables on the device and loops over the resident batches with the
    model's own `test_step` (the code `model.evaluate` runs), so values equal
    `model.evaluate` at the same weights. The caller restores θ0.
    """

    points_per_call = 1

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
        # Held in tf.Variables, not constants, so that `rebind` gives the compiled function other values.
        for position, variable in enumerate(variables):
            stacked = np.stack([d[position] for d in directions])
            if np.any(stacked):
                self._perturbed.append(
                    (
                        position,
                        variable,
                        tf.Variable(origin[position], dtype=variable.dtype, trainable=False),
                        tf.Variable(stacked, dtype=variable.dtype, trainable=False),
                    )
                )
        self._step = base.StatefulTestStep(model, include_regularization)
        build_for_batch(model, batches.first_batch())  # metric variables cannot be created while tracing
        self._function = _graph_function(self._evaluate)

    def __call__(self, coefficients: Sequence[float]) -> dict[str, float]:
        values = self._function(tf.constant(coefficients, dtype=tf.float64))
        return {name: float(value) for name, value in values.items()}

    def evaluate(self, points: np.ndarray) -> list[dict[str, float]]:
        """Values at each row of coefficients, one compiled call per point."""
        return [self(point) for point in points]

    def evaluate_uncompiled(self, points: np.ndarray) -> list[dict[str, float]]:
        """Values at each row of coefficients, the same code run eagerly, op by op, on batches of at least
        UNCOMPILED_MIN_BATCH_SIZE samples: Keras' test step costs milliseconds of Python per batch run
        eagerly (on the digits MLP 120 ms per point in batches of 128, 14 ms in one batch)."""
        batches = self._batches.with_min_batch_size(UNCOMPILED_MIN_BATCH_SIZE)
        values = [self._evaluate(tf.constant(point, dtype=tf.float64), batches) for point in points]
        return [{name: float(value) for name, value in point.items()} for point in values]

    def rebind(self, origin, directions) -> None:
        for position, _, origin_variable, stacked_variable in self._perturbed:
            origin_variable.assign(origin[position])
            stacked_variable.assign(np.stack([d[position] for d in directions]))

    def _evaluate(self, coefficients, batches=None):
        for _, variable, origin, stacked in self._perturbed:
            shift = tf.tensordot(tf.cast(coefficients, variable.dtype), stacked, axes=1)
            variable.assign(origin + shift)
        self._step.reset()
        (self._batches if batches is None else batches).accumulate(
            base.stateful_step(self._step), tf.constant(0), static_shapes=_needs_static_batch_shapes(self._model)
        )
        return self._step.results()


class HessianVectorProduct(base.HessianVectorProduct):
    """H·v in one compiled pass over the batches, with nested gradient tapes."""

    def __init__(self, model: keras.Model, batches, include_regularization: bool = True):
        super().__init__(model, batches, include_regularization)
        self._sums = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self._variables]
        self._function = _graph_function(self._sum_over_batches)

    def _product(self, vector):
        return self._function([tf.constant(v, dtype=var.dtype) for v, var in zip(vector, self._variables)])

    def _sum_over_batches(self, vector):
        for total in self._sums:
            total.assign(tf.zeros_like(total))
        self._batches.accumulate(
            base.stateful_step(lambda batch: self._add_batch(batch, vector)), tf.constant(0), static_shapes=False
        )
        return [total / self._batches.num_samples for total in self._sums]

    def _add_batch(self, batch, vector):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                y_pred = self._model(x, training=False)
                loss = batch_loss(self._model, x, y, y_pred, sample_weight, self._include_regularization)
            gradients = _gradients_or_zeros(inner, loss, self._variables)
            directional = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(gradients, vector)])
        products = _gradients_or_zeros(outer, directional, self._variables)
        batch_size = tf.cast(batch_size_of(x), self._variables[0].dtype)
        for total, product in zip(self._sums, products):
            total.assign_add(product * batch_size)


def _gradients_or_zeros(tape, target, variables):
    """The tape's gradients of `target`, zeros for variables it does not depend on.

    TensorFlow's own `unconnected_gradients="zero"` fails on Keras variables, whose dtype is a string.
    """
    gradients = tape.gradient(target, variables)
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(gradients, variables)]


# A batch step of K stacked points reads at least this many input values (K × samples × values per sample).
MIN_INPUT_VALUES_PER_STEP = 2**19


def _vectorize_bitcast():
    """Registers a `tf.vectorized_map` rule for Bitcast, which TensorFlow lacks.

    Keras' argmax, which the categorical accuracy metrics use, bitcasts
    floats to read their sign bit. Without a rule, `vectorized_map` runs
    that op in a while loop, one point at a time. Bitcast only reshapes
    trailing dimensions, so it applies to the stacked tensor as is.
    """
    try:
        from tensorflow.python.ops.parallel_for import pfor
    except ImportError:
        return
    registry = getattr(pfor, "_pfor_converter_registry", None)
    if registry is None or "Bitcast" in registry:
        return  # a TensorFlow laid out differently, or one with its own rule

    @pfor.RegisterPFor("Bitcast")
    def _convert_bitcast(pfor_input):
        return pfor.wrap(tf.bitcast(pfor_input.stacked_input(0), pfor_input.get_attr("type")), True)


_vectorize_bitcast()


def _input_values_per_sample(batches) -> int:
    x, _, _ = keras.utils.unpack_x_y_sample_weight(batches.first_batch())
    return max(sum(math.prod(leaf.shape[1:]) for leaf in tf.nest.flatten(x)), 1)


class VectorizedPointEvaluator(PointEvaluator):
    """Evaluates K grid points per compiled call, with the weights of the K points stacked.

    Inside one `tf.function`, each batch runs the K forward passes at once
    (`tf.vectorized_map` over `model.stateless_call`), and the loss and
    compiled metrics of each point accumulate in its own copy of the metric
    state, through Keras' stateless APIs. The numbers equal
    `model.evaluate`'s; extra memory is K copies of the weights plus K
    batches of activations. The model's variables are never written.

    On a GPU the function is compiled with XLA, which fuses the K points'
    element-wise work, unless XLA cannot compile the model (then with a
    warning, without); `jit_compile` set on the class decides otherwise. On
    a CPU it runs as a graph: XLA's compile took 0.5 s more than the graph's
    on the digits MLP, for the same speed at the K the probe picks (graph
    K = 256 and XLA K = 64 both 0.23 ms per point). A first Dense layer runs once per batch for all K
    points (`losslandscape.input_layer_fold`). On small inputs, resident
    arrays are sliced into larger batches, so that a step reads at least
    `MIN_INPUT_VALUES_PER_STEP` input values: every step has a fixed cost
    that would otherwise dominate for small models. Images keep the given
    batch size. The values do not depend on the batch size.
    """

    jit_compile: Optional[bool] = None  # None: with XLA on a GPU

    def __init__(self, model, batches, origin, directions, include_regularization: bool = True,
                 points_per_call: int = 8):
        self._model = model
        self._batches = batches.with_min_batch_size(
            math.ceil(MIN_INPUT_VALUES_PER_STEP / (points_per_call * _input_values_per_sample(batches)))
        )
        self._include_regularization = include_regularization
        self.points_per_call = points_per_call
        # Held in tf.Variables, not constants, so that `rebind` gives the compiled function other values.
        self._origin = [tf.Variable(w, dtype=v.dtype, trainable=False) for w, v in zip(origin, model.trainable_variables)]
        self._directions = [
            tf.Variable(np.stack([d[position] for d in directions]), dtype=v.dtype, trainable=False)
            for position, v in enumerate(model.trainable_variables)
        ]
        build_for_batch(model, batches.first_batch())  # metric variables cannot be created while tracing
        self._metric_variables = list(model.metrics_variables)
        self._folded_layer = foldable_input_dense(model)
        jit_compile = has_gpu() if self.jit_compile is None else self.jit_compile
        self._function = _graph_function(self._evaluate, jit_compile=jit_compile)
        self.uses_xla = None if jit_compile else False  # known after the first call

    def evaluate(self, points: np.ndarray) -> list[dict[str, float]]:
        """Values at each row of coefficients, `points_per_call` rows per compiled call."""
        return evaluate_in_padded_calls(
            points, self.points_per_call, lambda padded: self._call(tf.constant(padded)), np.float64
        )

    def rebind(self, origin, directions) -> None:
        for position, (origin_variable, stacked_variable) in enumerate(zip(self._origin, self._directions)):
            origin_variable.assign(origin[position])
            stacked_variable.assign(np.stack([d[position] for d in directions]))

    def _call(self, coefficients):
        """One compiled call; the first one falls back to a graph without XLA if XLA cannot compile the model."""
        if self.uses_xla is not None:
            return self._function(coefficients)
        try:
            values = self._function(coefficients)
            self.uses_xla = True
        except OUT_OF_MEMORY_ERRORS:
            raise
        except tf.errors.OpError as error:
            # Some ops (strings, py_function, some custom kernels) have no XLA kernel.
            warnings.warn(
                f"XLA cannot compile this model ({error.message.splitlines()[0]}); evaluating "
                f"{self.points_per_call} points per call without XLA, which may be slower.",
                stacklevel=3,
            )
            self.uses_xla = False
            self._function = _graph_function(self._evaluate)
            values = self._function(coefficients)
        return values

    def _evaluate(self, coefficients):
        weights = [
            origin[None] + tf.tensordot(tf.cast(coefficients, origin.dtype), stacked, axes=1)
            for origin, stacked in zip(self._origin, self._directions)
        ]
        states = [tf.zeros((self.points_per_call, *v.shape), v.dtype) for v in self._metric_variables]
        non_trainable = [v.value for v in self._model.non_trainable_variables]

        def step(batch, states):
            def one_point(point):
                point_coefficients, point_weights, point_states = point
                with self._folding(point_coefficients):
                    return self._point_step(batch, point_weights, non_trainable, point_states)

            return tf.vectorized_map(one_point, (coefficients, weights, states), fallback_to_while_loop=True)

        static_shapes = self.uses_xla is not False or _needs_static_batch_shapes(self._model)
        states = self._batches.accumulate(step, states, static_shapes=static_shapes)
        return tf.vectorized_map(
            lambda point_states: stateless_metric_results(self._model, self._metric_variables, point_states),
            states, fallback_to_while_loop=True,
        )

    def _folding(self, coefficients):
        if self._folded_layer is None:
            return contextlib.nullcontext()
        origin, directions = fold_arguments(
            self._folded_layer, self._model.trainable_variables, self._origin, self._directions
        )
        return folded_dense(self._folded_layer, origin, directions, coefficients)

    def _point_step(self, batch, weights, non_trainable, states):
        return stateless_test_step(
            self._model, weights, non_trainable, self._metric_variables, states, batch, self._include_regularization
        )


class TensorFlowBackend(base.Backend):
    """Keras on TensorFlow: data as device-resident tensors (or a streamed `tf.data.Dataset`), `tf.function` and XLA."""

    name = "tensorflow"
    out_of_memory_errors = OUT_OF_MEMORY_ERRORS
    point_evaluator = CompiledPointEvaluator
    vectorized_evaluator = VectorizedPointEvaluator
    hessian_vector_product = HessianVectorProduct

    def device_description(self) -> str:
        gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
        return f"TensorFlow {tf.__version__}, GPUs: {gpus or 'none'}"

    def is_native_dataset(self, data) -> bool:
        return isinstance(data, tf.data.Dataset)

    def arrays_to_batches(self, arrays: tuple, batch_size: int) -> DeviceBatches:
        return DeviceBatches(arrays, batch_size)

    def native_dataset_to_batches(self, dataset, stream: bool = False) -> Optional[Batches]:
        return _native_dataset_to_batches(dataset, stream)

    def why_float32_is_reduced(self) -> Optional[str]:
        if tf.config.list_logical_devices("GPU") and tf.config.experimental.tensor_float_32_execution_enabled():
            return "TensorFlow runs float32 convolutions and matrix products on the GPU in TF32"
        return None

    @contextlib.contextmanager
    def full_precision(self) -> Iterator[None]:
        enabled = tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        try:
            yield
        finally:
            tf.config.experimental.enable_tensor_float_32_execution(enabled)


BACKEND = TensorFlowBackend()
