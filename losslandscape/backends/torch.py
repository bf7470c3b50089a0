"""The PyTorch backend: device-resident batches, evaluators under `torch.no_grad`, K points with `torch.func.vmap`."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import keras
import numpy as np
import torch

from losslandscape.backends import base
from losslandscape.backends.base import (
    ArrayBatches, Batches, PointEvaluator, as_batch, batch_loss, batch_size_of, is_tf_dataset, join_batches,
)
from losslandscape.backends.padded_calls import evaluate_in_padded_calls
from losslandscape.backends.stateless_step import stateless_metric_results, stateless_test_step
from losslandscape.input_layer_fold import fold_arguments, foldable_input_dense, folded_dense
from losslandscape.keras_internals import build_for_batch, torch_convolutions_without_memory_format

# torch.OutOfMemoryError from PyTorch 2.5 on; torch.cuda.OutOfMemoryError before.
OUT_OF_MEMORY_ERROR = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
OUT_OF_MEMORY_ERRORS = (OUT_OF_MEMORY_ERROR,)


def _to_device(value, dtype=None):
    return keras.ops.convert_to_tensor(value, dtype=dtype)


def _numpy(value) -> np.ndarray:
    """A host copy of a torch tensor (on any device), a tf.data tensor or an array."""
    return value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)


class DeviceBatches(ArrayBatches):
    """Whole arrays held as tensors on Keras' torch device, sliced into batches (views, no copies)."""

    def __init__(self, arrays: tuple, batch_size: int):
        self._host_arrays = arrays
        try:
            self.arrays = keras.tree.map_structure(_to_device, arrays)
        except OUT_OF_MEMORY_ERROR as error:
            raise MemoryError(
                "The data does not fit in the accelerator's memory, where the torch backend keeps it. "
                f"Pass `max_samples=` to evaluate on fewer samples. ({error})"
            ) from error
        self.batch_size = batch_size
        self.num_samples = int(keras.tree.flatten(self.arrays)[0].shape[0])

    def first_batch(self):
        return keras.tree.map_structure(lambda a: a[: self.batch_size], self.arrays)

    def accumulate(self, step, state):
        for start in range(0, self.num_samples, self.batch_size):
            batch = keras.tree.map_structure(lambda a: a[start : start + self.batch_size], self.arrays)
            state = step(batch, state)
        return state

    def evaluate_arguments(self) -> dict:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(self._host_arrays)
        return dict(x=x, y=y, sample_weight=sample_weight, batch_size=self.batch_size)

    def _nests(self):
        return [keras.tree.map_structure(np.asarray, self._host_arrays)]


class StreamedBatches(Batches):
    """A `torch.utils.data.DataLoader` (or `tf.data.Dataset`) read again at every grid point, for data larger than memory.

    It must yield the same batches in the same order each time (no
    shuffling, no random augmentation).
    """

    def __init__(self, loader):
        self._loader = loader
        self._first, self.num_samples = None, 0
        for batch in loader:  # one pass: the first batch (to build the model) and the number of samples
            parts = as_batch(batch)
            if self._first is None:
                self._first = keras.tree.map_structure(lambda a: _to_device(_numpy(a)), parts)
            self.num_samples += int(batch_size_of(parts[0]))
        self.batch_size = None if self._first is None else int(batch_size_of(self._first[0]))

    def first_batch(self):
        return self._first

    def accumulate(self, step, state):
        for batch in self._loader:
            state = step(keras.tree.map_structure(lambda a: _to_device(_numpy(a)), as_batch(batch)), state)
        return state

    def evaluate_arguments(self) -> dict:
        return dict(x=_LoaderAsPyDataset(self._loader))

    def _nests(self):
        return (keras.tree.map_structure(_numpy, as_batch(batch)) for batch in self._loader)


class _LoaderAsPyDataset(keras.utils.PyDataset):
    """A DataLoader as the `keras.utils.PyDataset` `model.evaluate` reads, batch for batch."""

    def __init__(self, loader):
        super().__init__()
        self._batches = [keras.tree.map_structure(_numpy, as_batch(b)) for b in loader]

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        return self._batches[index]


def _loader_to_batches(loader, stream: bool = False) -> Optional[Batches]:
    if stream:
        batches = StreamedBatches(loader)
        return None if batches.first_batch() is None else batches
    joined = join_batches(
        [keras.tree.map_structure(_numpy, as_batch(b)) for b in loader],
        "Pad them to one shape, or pass stream=True.",
    )
    return None if joined is None else DeviceBatches(*joined)


class CompiledPointEvaluator(PointEvaluator):
    """One grid point per call: the point's weights written into the model, then the model's own test step.

    Under `torch.no_grad`, each call writes θ0 + Σ_k c_k·d_k into the
    variables the directions move and runs `model.test_step` (the step
    `model.evaluate` runs) over the resident batches, so values equal
    `model.evaluate` at the same weights. The caller restores θ0.
    """

    points_per_call = 1

    def __init__(self, model, batches, origin, directions, include_regularization=True, variables=None):
        self._batches = batches
        self._variables = list(model.trainable_variables if variables is None else variables)
        self._step = base.StatefulTestStep(model, include_regularization)
        build_for_batch(model, batches.first_batch())
        self.rebind(origin, directions)

    def rebind(self, origin, directions) -> None:
        self._perturbed = []
        for position, variable in enumerate(self._variables):
            stacked = np.stack([d[position] for d in directions])
            if np.any(stacked):
                self._perturbed.append(
                    (variable, _to_device(origin[position], variable.dtype), _to_device(stacked, variable.dtype))
                )

    def evaluate(self, points: np.ndarray) -> list[dict[str, float]]:
        return [self._at(point) for point in points]

    def _at(self, coefficients) -> dict[str, float]:
        with torch.no_grad():
            for variable, origin, stacked in self._perturbed:
                shift = torch.tensordot(_to_device(np.asarray(coefficients), stacked.dtype), stacked, dims=1)
                variable.assign(origin + shift)
            self._step.reset()
            self._batches.accumulate(base.stateful_step(self._step), None)
            return {name: float(keras.ops.convert_to_numpy(value)) for name, value in self._step.results().items()}


class VectorizedPointEvaluator(PointEvaluator):
    """K grid points per call: the test step on stacked weights, vectorized with `torch.func.vmap`.

    Each point's loss and compiled metrics accumulate in its own copy of the
    metric state, through Keras' stateless APIs; the model's variables are
    never written. A first Dense layer runs once per batch for all K points
    (`losslandscape.input_layer_fold`). Extra memory is K copies of the
    weights plus K batches of activations.
    """

    def __init__(self, model, batches, origin, directions, include_regularization: bool = True,
                 points_per_call: int = 8):
        self._model = model
        self._batches = batches
        self._include_regularization = include_regularization
        self.points_per_call = points_per_call
        self._folded_layer = foldable_input_dense(model)
        build_for_batch(model, batches.first_batch())
        self.rebind(origin, directions)

    def rebind(self, origin, directions) -> None:
        model = self._model
        for metric in model.metrics:
            metric.reset_state()
        self._origin = [_to_device(w, v.dtype) for w, v in zip(origin, model.trainable_variables)]
        self._directions = [
            _to_device(np.stack([d[p] for d in directions]), v.dtype) for p, v in enumerate(model.trainable_variables)
        ]
        self._non_trainable = [v.value for v in model.non_trainable_variables]
        self._metric_states = [v.value for v in model.metrics_variables]

    def evaluate(self, points: np.ndarray) -> list[dict[str, float]]:
        def call(padded):
            with torch.no_grad(), torch_convolutions_without_memory_format():
                # "same": a DataLoader streamed inside vmap draws its base seed there, once for the K points.
                values = torch.func.vmap(self._evaluate_point, randomness="same")(_to_device(padded, "float64"))
            return {name: keras.ops.convert_to_numpy(value) for name, value in values.items()}

        return evaluate_in_padded_calls(points, self.points_per_call, call, np.float64)

    def _evaluate_point(self, coefficients):
        if self._folded_layer is None:
            return self._values(coefficients)
        origin, directions = fold_arguments(
            self._folded_layer, self._model.trainable_variables, self._origin, self._directions
        )
        with folded_dense(self._folded_layer, origin, directions, coefficients):
            return self._values(coefficients)

    def _values(self, coefficients):
        model = self._model
        trainable = [
            w + torch.tensordot(coefficients.to(w.dtype), d, dims=1) for w, d in zip(self._origin, self._directions)
        ]

        def step(batch, states):
            return stateless_test_step(model, trainable, self._non_trainable, model.metrics_variables, states, batch,
                                       self._include_regularization)

        states = self._batches.accumulate(step, self._metric_states)
        return stateless_metric_results(model, model.metrics_variables, states)


class HessianVectorProduct(base.HessianVectorProduct):
    """H·v by double backward: the gradient of (∇L · v), batch by batch, at the model's current weights."""

    def _product(self, vector: Sequence[np.ndarray]) -> list:
        model = self._model
        vector = [_to_device(a, v.dtype) for a, v in zip(vector, self._variables)]
        weights = [v.value.detach().clone().requires_grad_(True) for v in self._variables]
        others = [(v, v.value.detach()) for v in model.variables if not any(v is w for w in self._variables)]
        mapping = list(zip(self._variables, weights)) + others
        totals = [torch.zeros_like(w) for w in weights]

        def step(batch, totals):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
            with keras.StatelessScope(state_mapping=mapping):
                y_pred = model(x, training=False)
                loss = batch_loss(model, x, y, y_pred, sample_weight, self._include_regularization)
            gradients = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
            directional = sum((g * v).sum() for g, v in zip(gradients, vector) if g is not None)
            if not torch.is_tensor(directional) or not directional.requires_grad:
                return totals
            products = torch.autograd.grad(directional, weights, allow_unused=True)
            size = int(batch_size_of(x))
            return [t if h is None else t + h.detach() * size for t, h in zip(totals, products)]

        totals = self._batches.accumulate(step, totals)
        return [keras.ops.convert_to_numpy(total / self._batches.num_samples) for total in totals]


class TorchBackend(base.Backend):
    """Keras on PyTorch: resident tensors, eager evaluators, K points with `torch.func.vmap`."""

    name = "torch"
    out_of_memory_errors = OUT_OF_MEMORY_ERRORS
    point_evaluator = CompiledPointEvaluator
    vectorized_evaluator = VectorizedPointEvaluator
    hessian_vector_product = HessianVectorProduct

    def device_description(self) -> str:
        devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or ["cpu"]
        return f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, devices: {devices}"

    def is_native_dataset(self, data) -> bool:
        """A `torch.utils.data.DataLoader`, or a `tf.data.Dataset` (read through numpy)."""
        return isinstance(data, torch.utils.data.DataLoader) or is_tf_dataset(data)

    def arrays_to_batches(self, arrays: tuple, batch_size: int) -> DeviceBatches:
        return DeviceBatches(arrays, batch_size)

    def native_dataset_to_batches(self, dataset, stream: bool = False) -> Optional[Batches]:
        return _loader_to_batches(dataset, stream)

    def why_float32_is_reduced(self) -> Optional[str]:
        if torch.cuda.is_available() and (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32):
            return "PyTorch runs float32 convolutions or matrix products on CUDA in TF32 (`allow_tf32`)"
        return None

    @contextlib.contextmanager
    def full_precision(self) -> Iterator[None]:
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

    def accelerator_memory(self) -> Optional[int]:
        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)

    def batch_memory(self, model: keras.Model, batch) -> Optional[int]:
        # The caching allocator's peak over one pass, above what was allocated before it (the weights, the data).
        x = as_batch(batch)[0]
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.no_grad():
            model(x, training=False)
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)


BACKEND = TorchBackend()
