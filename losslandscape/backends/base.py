"""The contract every backend implements, and the code all backends share.

A backend is a `Backend` subclass with one instance, `BACKEND`, in the
module `losslandscape/backends/{name}.py`. It says how data lives on the
device (`Batches`), and provides three classes with the constructor
signatures below: a one-point-per-call evaluator and a K-points-per-call
evaluator (both `PointEvaluator`s whose values equal `model.evaluate` at
the same weights), and a `HessianVectorProduct`. Everything else (drawing
directions, the grid loop, files, plots) is backend-neutral.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Callable, ClassVar, Iterable, Optional, Sequence

import keras
import numpy as np

from losslandscape.hashing import content_hash
from losslandscape.keras_internals import build_for_batch, compiled_loss


class Batches(abc.ABC):
    """A dataset prepared once and read the same way at every grid point.

    Attributes:
        num_samples: The number of samples in all batches together.
        batch_size: The samples per batch (the last batch may be shorter).
    """

    num_samples: int
    batch_size: Optional[int]

    @abc.abstractmethod
    def first_batch(self):
        """The first batch, `(x, y[, sample_weight])`, e.g. to build the model and its metrics."""

    @abc.abstractmethod
    def accumulate(self, step: Callable, state):
        """Threads `state` through `state = step(batch, state)` over all batches, inside compiled code."""

    def fingerprint(self) -> str:
        """A hash of every batch's contents and structure (`losslandscape.hashing.content_hash`), computed once."""
        if "_fingerprint" not in self.__dict__:
            self._fingerprint = content_hash(self._nests())
        return self._fingerprint

    @abc.abstractmethod
    def _nests(self) -> Iterable:
        """The data as it is structured (`(x, y[, sample_weight])`, dicts and lists kept), as one nest or one per batch."""

    @abc.abstractmethod
    def evaluate_arguments(self) -> dict:
        """Keyword arguments for `model.evaluate` that read the same samples in the same batches."""

    def with_min_batch_size(self, batch_size: int) -> "Batches":
        """The same samples in batches of at least `batch_size` where the layout allows; itself otherwise."""
        return self


class ArrayBatches(Batches):
    """Whole arrays `(x, y[, sample_weight])` held on the device and sliced into batches."""

    arrays: tuple

    def evaluate_arguments(self) -> dict:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(self.arrays)
        return dict(x=x, y=y, sample_weight=sample_weight, batch_size=self.batch_size)


class PointEvaluator(abc.ABC):
    """Loss and compiled metrics at θ0 + Σ_k c_k·d_k for rows of coefficients c.

    One-point evaluators are built as
    `cls(model, batches, origin, directions, include_regularization=True, variables=None)`
    (`variables`: what the directions move, by default the trainable
    variables); K-point evaluators as
    `cls(model, batches, origin, directions, include_regularization=True, points_per_call=8)`.
    The values equal `model.evaluate` at the same weights; the model's
    weights may be written during a call, and the caller restores them.

    Attributes:
        points_per_call: Grid points per compiled call.
        agreement: The check of its values against one point per call or
            exact float32 that "auto" made when it chose this evaluator
            (`points_per_call_probe.agreement_rule`); None where it did not.
    """

    points_per_call: int = 1
    agreement: Optional[dict] = None

    @abc.abstractmethod
    def evaluate(self, points: np.ndarray) -> list[dict[str, float]]:
        """`{name: value}` at each row of `points`, an array of coefficients of shape `(n, k)`."""

    def evaluate_uncompiled(self, points: np.ndarray) -> list[dict[str, float]]:
        """The values of `evaluate`, computed op by op without compiling where that is faster.

        For a few points of a small model, where tracing and compiling cost
        more than the points themselves. This default calls `evaluate`: on
        the digits MLP, JAX's first call took 3.8 s longer with its 2
        reference points run op by op than compiled. Backends whose eager
        ops are cheap override it.
        """
        return self.evaluate(points)

    @abc.abstractmethod
    def rebind(self, origin: Sequence[np.ndarray], directions: Sequence[Sequence[np.ndarray]]) -> None:
        """Evaluates around `origin` along `directions` from now on, without compiling again.

        They have the shapes of those the evaluator was built with, and zero
        where those were zero for a whole variable. The model's other
        variables and the metric states are read again as they are now.
        """


class HessianVectorProduct(abc.ABC):
    """H·v for the Hessian H, at the model's current weights, of the loss `model.evaluate` reports.

    Built as `cls(model, batches, include_regularization=True)`. The loss
    is each batch's loss weighted by its size, divided by the number of
    samples, in inference mode.
    """

    def __init__(self, model: keras.Model, batches: Batches, include_regularization: bool = True):
        self._model = model
        self._batches = batches
        self._include_regularization = include_regularization
        self._variables = list(model.trainable_variables)

    def __call__(self, vector: Sequence[np.ndarray]) -> list[np.ndarray]:
        """H·v, one float64 array per trainable variable, for `vector` shaped like the trainable weights."""
        return [np.asarray(h, dtype=np.float64) for h in self._product(vector)]

    @abc.abstractmethod
    def _product(self, vector: Sequence[np.ndarray]) -> list:
        """H·v as the backend's tensors."""


class Backend(abc.ABC):
    """One Keras backend: its data pipeline and its three compiled computations.

    Subclasses set the class attributes below and implement the methods.
    """

    name: ClassVar[str]
    out_of_memory_errors: ClassVar[tuple]
    point_evaluator: ClassVar[type]  # a PointEvaluator, one point per call
    vectorized_evaluator: ClassVar[type]  # a PointEvaluator, K points per call
    hessian_vector_product: ClassVar[type]  # a HessianVectorProduct

    @abc.abstractmethod
    def device_description(self) -> str:
        """The framework's version and the devices it computes on, for benchmark reports."""

    @abc.abstractmethod
    def is_native_dataset(self, data) -> bool:
        """Whether `data` is a `tf.data.Dataset`."""

    @abc.abstractmethod
    def arrays_to_batches(self, arrays: tuple, batch_size: int) -> Batches:
        """Puts `(x, y[, sample_weight])` on the device once."""

    @abc.abstractmethod
    def native_dataset_to_batches(self, dataset, stream: bool = False) -> Optional[Batches]:
        """Reads a batched `tf.data.Dataset` once (with `stream=True`, at every point); `None` if it is empty.

        Every grid point must see the same samples in the same order, even
        from a shuffling or augmenting pipeline.
        """

    def build_metrics(self, model: keras.Model, batches: Batches) -> None:
        """Builds the model and its compiled loss and metrics for the data, as `model.evaluate` does first."""
        build_for_batch(model, batches.first_batch())

    def why_stacking_is_slower(self, model: keras.Model) -> Optional[str]:
        """Why K stacked points are known to run slower than one point per call here, or None if they may not.

        With a reason, "auto" skips its probe and evaluates one point per call.
        """
        return None

    def why_float32_is_reduced(self) -> Optional[str]:
        """Why float32 convolutions and matrix products round to fewer bits here (TF32 on NVIDIA GPUs), or None.

        Then K stacked points and one point per call each differ from exact
        float32 by about 1e-3, and "auto" checks both against values
        computed under `full_precision`. CPUs compute exact float32.
        """
        return None

    def accelerator_memory(self) -> Optional[int]:
        """Bytes of memory of the accelerator the data and the model are put on; None on a CPU.

        With a number, the default batch size is sized from it and from
        `batch_memory` (`losslandscape.batch_size_choice`); with None it
        stays 128. It is the device's whole memory (the framework's pool),
        not what is free, so that a run resumed on the same device batches
        its samples as the first did.
        """
        return None

    def batch_memory(self, model: keras.Model, batch) -> Optional[int]:
        """Bytes one inference pass of the built `model` over `batch` takes on the accelerator, beyond the data.

        Only called where `accelerator_memory` gives a number; None where it
        cannot be measured, which keeps the default batch at 128.
        """
        return None

    def full_precision(self) -> contextlib.AbstractContextManager:
        """A context in which float32 arithmetic is exact float32, even where `why_float32_is_reduced` says why not."""
        return contextlib.nullcontext()


def reuses_weights_across_positions(model: keras.Model) -> bool:
    """Whether a trainable variable has rank 3 or more: a convolution kernel, or an attention projection.

    Each such weight enters many multiply-adds per sample, so a forward
    pass is bound by arithmetic rather than by the per-call overheads that
    stacking K points saves.
    """
    return any(len(v.shape) >= 3 for v in model.trainable_variables)


def batch_loss(model: keras.Model, x, y, y_pred, sample_weight, include_regularization: bool):
    """The loss of one batch as `model.evaluate` computes it, or without the losses layers add.

    Without them it is the compiled loss alone (`model.compile(loss=...)`).
    """
    if include_regularization:
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
    return compiled_loss(model)(y, y_pred, sample_weight)


class StatefulTestStep:
    """The step `model.evaluate` runs on one batch, writing the model's metric states.

    With `include_regularization=False` the loss is the compiled loss alone,
    kept in a `Mean` of its own. For the one-point evaluators that write the
    point's weights into the model (TensorFlow, PyTorch); `reset()` before a
    point, `results()` after its batches.
    """

    def __init__(self, model: keras.Model, include_regularization: bool = True):
        self._model = model
        self._data_loss = None if include_regularization else keras.metrics.Mean()

    def reset(self) -> None:
        for metric in self._model.metrics:
            metric.reset_state()
        if self._data_loss is not None:
            self._data_loss.reset_state()

    def __call__(self, batch):
        model = self._model
        if self._data_loss is None:
            return model.test_step(batch)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = model(x, training=False)
        loss = batch_loss(model, x, y, y_pred, sample_weight, include_regularization=False)
        self._data_loss.update_state(loss, sample_weight=batch_size_of(x))
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def results(self) -> dict:
        results = self._model.get_metrics_result()
        if self._data_loss is not None:
            results = dict(results, loss=self._data_loss.result())
        return results


def stateful_step(step: Callable):
    """`step(batch)`, which works by writing variables, as a step of `Batches.accumulate` with a dummy state."""

    def step_with_state(batch, state):
        step(batch)
        return state

    return step_with_state


def as_batch(batch) -> tuple:
    """A loader's batch (a list, from PyTorch's default collate, or a tuple) as `(x, y[, sample_weight])`."""
    return tuple(batch) if isinstance(batch, (list, tuple)) else (batch,)


def join_batches(batches: Sequence, hint: str) -> Optional[tuple]:
    """`(arrays, batch_size)`: host batches `(x, y[, sample_weight])` joined along the batch axis; None if none.

    `hint` ends the error raised when their shapes differ beyond the batch
    axis: what the user can do instead.
    """
    if not batches:
        return None
    try:
        arrays = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *batches)
    except ValueError as error:
        raise ValueError(
            f"The dataset's batches could not be joined into arrays (their shapes differ beyond the batch axis). "
            f"{hint} ({error})"
        ) from error
    return tuple(arrays), len(keras.tree.flatten(batches[0])[0])


def is_tf_dataset(data) -> bool:
    """Whether `data` is a `tf.data.Dataset`, without importing TensorFlow."""
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


def batch_size_of(x):
    """The number of samples in a batch's inputs `x` (an array or a structure of them), as a tensor."""
    return keras.ops.shape(keras.tree.flatten(x)[0])[0]
