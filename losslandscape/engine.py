"""Evaluation of the loss and metrics at perturbed weights, with θ0 always restored."""

from __future__ import annotations

import contextlib
from typing import Callable, Mapping, Optional, Sequence, Union

import keras
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.backends.base import PointEvaluator, reuses_weights_across_positions
from losslandscape.curvature_evaluator import CurvatureEvaluator, CurvatureSettings
from losslandscape.directions import check_directions_match, variables_values
from losslandscape.evaluator_cache import cached_evaluator, evaluator_key
from losslandscape.keras_internals import compiled_loss
from losslandscape.points_per_call_probe import (
    PROBE_POINTS_PER_CALL, KnownValuesFirst, fastest_evaluator, report_points_per_call,
)
from losslandscape.progress import Progress
from losslandscape.reference_precision import full_precision_values, why_arithmetic_is_reduced

ENGINES = ("compiled", "evaluate")


class WeightSnapshot:
    """Context manager that puts every model and metric variable back on exit.

    Model variables (trainable and non-trainable) and the states of the
    compiled metrics are copied on entry and assigned back on exit, also
    when the block raises or is interrupted, so they end bitwise identical.

    Examples:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> before = model.layers[0].kernel.numpy()
        >>> with WeightSnapshot(model):
        ...     _ = model.layers[0].kernel.assign(np.zeros((2, 1)))
        >>> bool((model.layers[0].kernel.numpy() == before).all())
        True
    """

    def __init__(self, model: keras.Model):
        self._model = model

    def __enter__(self):
        variables = list(self._model.variables) + list(self._model.metrics_variables)
        self._saved = [(v, np.array(keras.ops.convert_to_numpy(v))) for v in variables]
        return self

    def __exit__(self, *exc_info):
        for metric in self._model.metrics:
            metric.reset_state()
        for variable, value in self._saved:
            variable.assign(value)
        return False


def check_compiled(model: keras.Model) -> None:
    """Raises a ValueError unless `model` is a compiled Keras model with a loss."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"Expected a keras.Model, received: {type(model).__name__}")
    if not model.compiled or (model.loss is None and not model.losses):
        raise ValueError(
            "The model is not compiled with a loss. Call "
            "`model.compile(loss=..., metrics=[...])` first; the landscape "
            "shows the compiled loss and metrics."
        )


def check_engine(engine: str, include_regularization: bool) -> None:
    """Raises a ValueError unless `engine` is one of `ENGINES` and can leave out regularization if asked to."""
    if engine not in ENGINES:
        raise ValueError(f"Expected `engine` to be one of {ENGINES}, received: {engine!r}")
    if engine == "evaluate" and not include_regularization:
        raise ValueError(
            "`include_regularization=False` needs `engine='compiled'`: "
            "`model.evaluate` always adds the regularization losses."
        )


def check_data_loss(model: keras.Model, include_regularization: bool) -> None:
    """Raises a ValueError if `include_regularization=False` leaves no loss: the model's loss comes only from its layers."""
    if not include_regularization and compiled_loss(model) is None:
        raise ValueError(
            "`include_regularization=False` needs a loss passed to "
            "`model.compile(loss=...)`; this model's only losses come from "
            "its layers."
        )


def evaluate_grid(
    model: keras.Model,
    datasets: Mapping[str, object],
    directions: Sequence[Sequence[np.ndarray]],
    coefficients: np.ndarray,
    engine: str = "compiled",
    include_regularization: bool = True,
    verbose: int = 1,
    *,
    pending: Optional[Mapping[str, np.ndarray]] = None,
    on_chunk: Optional[Callable[[str, np.ndarray, dict], None]] = None,
    chunk_size: int = 32,
    variables: Optional[Sequence] = None,
    points_per_call: Union[int, str, Mapping[str, int]] = 1,
    on_evaluator: Optional[Callable[[str, int], None]] = None,
    on_agreement: Optional[Callable[[str, dict], None]] = None,
    curvature: Optional[CurvatureSettings] = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Evaluates loss and metrics at θ0 + Σ_k c_k·d_k for each row c of `coefficients`.

    Args:
        model: A compiled Keras model; its current weights are θ0.
        datasets: `{label: batches}` as returned by `prepare_data`; all are
            evaluated along the same directions.
        directions: k directions, each a list of arrays shaped like
            `model.trainable_weights`.
        coefficients: Array of shape `(num_points, k)`.
        engine: `"compiled"` (fast, on-device) or `"evaluate"` (set the
            weights and call `model.evaluate` per point; the reference).
        include_regularization: If `False`, the loss leaves out the losses
            that layers add (weight regularizers, `add_loss`).
        verbose: 0 for silence, 1 for a progress bar over points (and one
            line on the points per call "auto" chose), 2 to also show what
            "auto" measured.
        pending: `{label: indices of rows of coefficients}` to evaluate; all by default.
        on_chunk: Called as `on_chunk(label, row_indices, {name: values})`
            after every `chunk_size` points of a dataset (e.g. to save
            progress). It runs while the model holds perturbed weights.
        chunk_size: Points per `on_chunk` call.
        variables: The variables the directions move, in their order; the
            model's trainable variables by default.
        points_per_call: Grid points evaluated per compiled call: 1 (one
            forward pass per point), K > 1 (K points' weights stacked, one
            vectorized pass per batch), or "auto" (time one point and
            K = 16, 64, 256... points per call on the first points of a
            large grid and keep the fastest whose values agree with one
            point per call to 1e-5 relative, or, where the arithmetic
            rounds float32 (a bfloat16 or float16 policy, TF32 on GPUs),
            err against exact float32 at most twice as much as one point
            per call does; a small model without
            convolutions is stacked without timing one point; see
            `points_per_call_probe.fastest_evaluator`), or `{label: K}`. Only the
            model's trainable weights can be moved K at a time.
        on_evaluator: Called as `on_evaluator(label, points_per_call)` with
            the points per call chosen for a dataset, before its first point.
        on_agreement: Called as `on_agreement(label, agreement)` where
            "auto" chose the points per call, with the check their values
            passed (`points_per_call_probe.agreement_rule`).
        curvature: With `CurvatureSettings`, also the Hessian's extreme
            eigenvalues at each point (see `curvature_map`), one point per call.

    Returns:
        `{label: {metric_name: values}}` with one value per row of
        `coefficients` (NaN for rows not evaluated); "loss" is always
        present.

    Examples:
        >>> from losslandscape.datasets import prepare_data
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(loss="mse")
        >>> data = {"train": prepare_data((np.ones((4, 2)), np.zeros((4, 1))))}
        >>> d = [[np.ones((2, 1)), np.zeros(1)]]
        >>> values = evaluate_grid(model, data, d, np.array([[0.0], [1.0]]), verbose=0)
        >>> values["train"]["loss"].shape
        (2,)
    """
    check_compiled(model)
    check_engine(engine, include_regularization)
    trainable_only = variables is None
    variables = list(model.trainable_variables) if variables is None else list(variables)
    check_directions_match(directions, variables)
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if pending is None:
        pending = {label: np.arange(len(coefficients)) for label in datasets}
    progress = Progress(sum(len(indices) for indices in pending.values()), verbose, unit="point")
    origin = variables_values(variables)
    results: dict[str, dict[str, np.ndarray]] = {}
    with WeightSnapshot(model):
        for label, batches in datasets.items():
            indices = np.asarray(pending.get(label, []), dtype=np.int64)
            if len(indices) == 0:
                continue
            per_call_asked = points_per_call[label] if isinstance(points_per_call, Mapping) else points_per_call
            evaluator = build_evaluator(
                model, batches, origin, directions, engine=engine, include_regularization=include_regularization,
                points_per_call=per_call_asked, points=coefficients[indices], verbose=verbose,
                variables=None if trainable_only else variables, curvature=curvature,
            )
            results[label] = {}
            per_call = evaluator.points_per_call
            if on_evaluator is not None:
                on_evaluator(label, per_call)
            if on_agreement is not None and evaluator.agreement is not None:
                on_agreement(label, evaluator.agreement)
            step = max(chunk_size, per_call)
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                chunk_values = []
                for call_start in range(0, len(chunk), per_call):
                    call_indices = chunk[call_start : call_start + per_call]
                    chunk_values.extend(evaluator.evaluate(coefficients[call_indices]))
                    progress.add(len(call_indices), first_call=start == call_start == 0)
                named = {name: np.array([v[name] for v in chunk_values]) for name in chunk_values[0]}
                for name, values in named.items():
                    results[label].setdefault(name, np.full(len(coefficients), np.nan))[chunk] = values
                if on_chunk is not None:
                    on_chunk(label, chunk, named)
    progress.close()
    return results


def build_evaluator(model, batches, origin, directions, *, engine="compiled", include_regularization=True,
                    points_per_call=1, points=(), verbose=0, variables=None, curvature=None) -> PointEvaluator:
    """The per-point or vectorized evaluator for one dataset; "auto" probes them on the first of `points`.

    Its `evaluate(points)` returns one `{name: value}` per row of coefficients.
    `variables` are the ones the directions move when not the model's
    trainable variables; only those can be moved K points at a time.
    Compiled evaluators are kept for the next call on the same model and
    data (`losslandscape.evaluator_cache`), and so is what "auto" chose.
    """
    backend = current_backend()
    trainable_only = variables is None
    variables = list(model.trainable_variables) if trainable_only else variables
    if engine == "evaluate":
        return _ModelEvaluatePerPoint(model, batches, origin, directions, variables)
    check_data_loss(model, include_regularization)
    check_points_per_call(points_per_call)
    if curvature is not None:
        return CurvatureEvaluator(model, batches, origin, directions, include_regularization, curvature)

    shared_key = evaluator_key(model, batches, variables, directions, include_regularization)

    def key(points_per_call):
        return None if shared_key is None else (*shared_key, points_per_call)

    def point_evaluator():
        return cached_evaluator(key(1), origin, directions, lambda: backend.point_evaluator(
            model, batches, origin, directions, include_regularization, variables
        ))

    def vectorized_evaluator(k):
        return cached_evaluator(key(k), origin, directions, lambda: backend.vectorized_evaluator(
            model, batches, origin, directions, include_regularization, k
        ))

    if points_per_call == 1 or not trainable_only or not _supports_vectorized(model):
        return point_evaluator()
    if points_per_call != "auto":
        return vectorized_evaluator(int(points_per_call))
    if len(points) < 8 * PROBE_POINTS_PER_CALL:
        return point_evaluator()
    known_slower = backend.why_stacking_is_slower(model)
    if known_slower:
        report_points_per_call(1, known_slower, verbose)
        return point_evaluator()

    def probe():
        parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        reduced = why_arithmetic_is_reduced(model)
        full_precision = None
        if reduced:
            with contextlib.suppress(ValueError):  # a subclassed model: K points must agree with one point per call
                full_precision = full_precision_values(model, batches, origin, directions, include_regularization)
        best, values, agreement = fastest_evaluator(
            point_evaluator(), vectorized_evaluator, points, parameters, verbose,
            convolutional=reuses_weights_across_positions(model), full_precision=full_precision, reduced=reduced,
        )
        return KnownValuesFirst(best, points[: len(values)], values, agreement)

    return cached_evaluator(key("auto"), origin, directions, probe)


def check_points_per_call(points_per_call) -> None:
    """Raises a ValueError unless `points_per_call` is a positive integer or "auto"."""
    if points_per_call != "auto" and (
        isinstance(points_per_call, bool) or not isinstance(points_per_call, (int, np.integer)) or points_per_call < 1
    ):
        raise ValueError(f'Expected `points_per_call` to be a positive integer or "auto", received: {points_per_call!r}')


def _supports_vectorized(model: keras.Model) -> bool:
    """Whether the model evaluates with Keras' own test step, which the vectorized evaluators reproduce."""
    own = keras.Model
    return (
        type(model).test_step is own.test_step
        and type(model).compute_loss is own.compute_loss
        and type(model).compute_metrics is own.compute_metrics
        and compiled_loss(model) is not None
    )


class _ModelEvaluatePerPoint(PointEvaluator):
    """The naive reference: weights set from numpy, then `model.evaluate`."""

    points_per_call = 1

    def __init__(self, model, batches, origin, directions, variables):
        self._model = model
        self._variables = variables
        self._batches = batches
        self._origin = origin
        self._directions = directions

    def evaluate(self, points):
        return [self(point) for point in points]

    def rebind(self, origin, directions) -> None:
        self._origin, self._directions = origin, directions

    def __call__(self, point):
        for position, variable in enumerate(self._variables):
            shift = sum(c * d[position] for c, d in zip(point, self._directions))
            variable.assign(self._origin[position] + shift)
        values = self._model.evaluate(
            **self._batches.evaluate_arguments(), verbose=0, return_dict=True
        )
        return {name: float(value) for name, value in values.items()}
