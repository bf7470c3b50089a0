"""Evaluation of the loss and metrics at perturbed weights, with θ0 always restored."""

from __future__ import annotations

import time
from typing import Callable, Mapping, Optional, Sequence, Union

import keras
import numpy as np

from losslandscape.backends import current_backend
from losslandscape.directions import check_directions_match, variables_values

ENGINES = ("compiled", "evaluate")


class WeightSnapshot:
    """Context manager that puts every model and metric variable back on exit.

    Model variables (trainable and non-trainable) and the states of the
    compiled metrics are copied on entry and assigned back on exit, also
    when the block raises or is interrupted, so they end bitwise identical.

    Example:

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
        variables = list(self._model.variables) + list(self._metric_variables())
        self._saved = [(v, np.array(keras.ops.convert_to_numpy(v))) for v in variables]
        return self

    def __exit__(self, *exc_info):
        for metric in self._model.metrics:
            metric.reset_state()
        for variable, value in self._saved:
            variable.assign(value)
        return False

    def _metric_variables(self):
        return self._model.metrics_variables if self._model.compiled else []


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


def check_data_loss(model: keras.Model, include_regularization: bool) -> None:
    """Raises a ValueError if `include_regularization=False` leaves no loss: the model's loss comes only from its layers."""
    if not include_regularization and model._compile_loss is None:
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
        verbose: 0 for silence, 1 for a progress bar over points.
        pending: `{label: row indices}` to evaluate; all rows by default.
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
            point per call to 1e-5 relative), or `{label: K}`. Only the
            model's trainable weights can be moved K at a time.
        on_evaluator: Called as `on_evaluator(label, points_per_call)` with
            the points per call chosen for a dataset, before its first point.

    Returns:
        `{label: {metric_name: values}}` with one value per row of
        `coefficients` (NaN for rows not evaluated); "loss" is always
        present.

    Example:

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
    if engine not in ENGINES:
        raise ValueError(f"Expected `engine` to be one of {ENGINES}, received: {engine!r}")
    if engine == "evaluate" and not include_regularization:
        raise ValueError(
            "`include_regularization=False` needs `engine='compiled'`: "
            "`model.evaluate` always adds the regularization losses."
        )
    trainable_only = variables is None
    variables = list(model.trainable_variables if trainable_only else variables)
    check_directions_match(directions, variables)
    coefficients = np.asarray(coefficients, dtype=np.float64)
    if pending is None:
        pending = {label: np.arange(len(coefficients)) for label in datasets}
    progress = keras.utils.Progbar(
        sum(len(rows) for rows in pending.values()), verbose=1 if verbose else 0, unit_name="point"
    )
    origin = variables_values(variables)
    results = {}
    with WeightSnapshot(model):
        for label, batches in datasets.items():
            rows = np.asarray(pending.get(label, []), dtype=np.int64)
            if len(rows) == 0:
                continue
            per_call_asked = points_per_call[label] if isinstance(points_per_call, Mapping) else points_per_call
            evaluator = build_evaluator(
                model, batches, origin, directions, engine, include_regularization, per_call_asked,
                coefficients[rows], verbose, None if trainable_only else variables,
            )
            results[label] = {}
            per_call = evaluator.points_per_call
            if on_evaluator is not None:
                on_evaluator(label, per_call)
            step = max(chunk_size, per_call)
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                chunk_values = []
                for call_start in range(0, len(chunk), per_call):
                    call_rows = chunk[call_start : call_start + per_call]
                    chunk_values.extend(evaluator.evaluate(coefficients[call_rows]))
                    progress.add(len(call_rows))
                named = {name: np.array([v[name] for v in chunk_values]) for name in chunk_values[0]}
                for name, values in named.items():
                    results[label].setdefault(name, np.full(len(coefficients), np.nan))[chunk] = values
                if on_chunk is not None:
                    on_chunk(label, chunk, named)
    return results


PROBE_POINTS_PER_CALL = 16
PROBE_GROWTH = 4
# K × trainable parameters the probe may stack: 2**26 float32 values are 256 MiB of weights.
PROBE_MAX_STACKED_VALUES = 2**26
# The vectorized evaluator runs other kernels than `model.evaluate`; "auto" keeps it only where the
# values agree this closely (they do in float32; TF32 convolutions on GPUs differ by about 1e-3).
PROBE_AGREEMENT = 1e-5


def build_evaluator(model, batches, origin, directions, engine="compiled", include_regularization=True,
                    points_per_call=1, rows=(), verbose=0, variables=None):
    """The per-point or vectorized evaluator for one dataset; "auto" probes them on the first of `rows`.

    Its `evaluate(rows)` returns one `{name: value}` per row of coefficients.
    `variables` are the ones the directions move when not the model's
    trainable variables; only those can be moved K points at a time.
    """
    backend = current_backend()
    trainable_only = variables is None
    variables = list(model.trainable_variables) if trainable_only else variables
    if engine == "evaluate":
        return _ModelEvaluatePerPoint(model, batches, origin, directions, variables)
    check_data_loss(model, include_regularization)
    per_point = backend.CompiledPointEvaluator(model, batches, origin, directions, include_regularization, variables)
    check_points_per_call(points_per_call)
    if points_per_call == 1 or not trainable_only or not _supports_vectorized(model):
        return per_point
    if points_per_call != "auto":
        return backend.VectorizedPointEvaluator(
            model, batches, origin, directions, include_regularization, int(points_per_call)
        )
    if len(rows) < 8 * PROBE_POINTS_PER_CALL:
        return per_point

    def build_vectorized(k):
        return backend.VectorizedPointEvaluator(model, batches, origin, directions, include_regularization, k)

    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return _probe(per_point, build_vectorized, rows, parameters, verbose)


def check_points_per_call(points_per_call) -> None:
    """Raises a ValueError unless `points_per_call` is a positive integer or "auto"."""
    if points_per_call != "auto" and (
        isinstance(points_per_call, bool) or not isinstance(points_per_call, (int, np.integer)) or points_per_call < 1
    ):
        raise ValueError(f'Expected `points_per_call` to be a positive integer or "auto", received: {points_per_call!r}')


def _probe(per_point, build_vectorized, rows, parameters, verbose):
    """The fastest evaluator on the first of `rows`: one point per call, or K = 16, 64, 256... per call.

    K grows while each step was faster than the last, the values agree
    with one point per call to PROBE_AGREEMENT, the grid has at least 8·K
    points, and the compile time of the last K is small next to what the
    rest of the grid still costs (a larger K compiles longer).
    """
    k = PROBE_POINTS_PER_CALL
    reference, best_seconds, _ = _time_evaluator(per_point, rows, k)
    best, timings, reason = per_point, {1: best_seconds}, None
    while reason is None:
        try:
            candidate = build_vectorized(k)
            values, seconds, setup = _time_evaluator(candidate, rows, k)
        except (MemoryError, *current_backend().OUT_OF_MEMORY_ERRORS):
            reason = f"{k} points per call run out of memory"
            break
        timings[k] = seconds
        difference, name, value, expected = _largest_relative_difference(values[: len(reference)], reference)
        if difference > PROBE_AGREEMENT:
            reason = (f"with {k} points per call, `{name}` was {value:.7g} where one point per call gave "
                      f"{expected:.7g} (relative difference {difference:.1e}, more than {PROBE_AGREEMENT:.0e})")
        elif seconds >= best_seconds:
            reason = f"{k} points per call are not faster"
        else:
            best, best_seconds = candidate, seconds
            k *= PROBE_GROWTH
            if len(rows) < 8 * k:
                reason = "the grid is too small to probe more points per call"
            elif k * parameters > PROBE_MAX_STACKED_VALUES:
                reason = "more points per call would stack too many weights"
            elif setup > 0.5 * len(rows) * best_seconds:
                reason = "compiling more points per call would cost more than it can save"
    if verbose:
        measured = ", ".join(f"{points} per call {1e3 * seconds:.3g}" for points, seconds in timings.items())
        using = "one point" if best.points_per_call == 1 else f"{best.points_per_call} points"
        print(f"losslandscape: ms per point with {measured}; using {using} per call: {reason}")
    return best


def _time_evaluator(evaluator, rows, k):
    """`(values at rows[:k], seconds per point at rows[k:2k], seconds of the first call beyond that)`.

    The first call compiles; its values are recomputed later, not kept.
    """
    started = time.perf_counter()
    values = evaluator.evaluate(rows[:k])
    first_call = time.perf_counter() - started
    started = time.perf_counter()
    evaluator.evaluate(rows[k : 2 * k])
    seconds = (time.perf_counter() - started) / k
    return values, seconds, max(first_call - seconds * k, 0.0)


def _supports_vectorized(model: keras.Model) -> bool:
    """Whether the model evaluates with Keras' own test step, which the vectorized evaluators reproduce."""
    own = keras.Model
    return (
        type(model).test_step is own.test_step
        and type(model).compute_loss is own.compute_loss
        and type(model).compute_metrics is own.compute_metrics
        and getattr(model, "_compile_loss", None) is not None
    )


def _largest_relative_difference(values, reference) -> tuple:
    """`(difference, name, value, expected)` for the largest |a - b| / max(|a|, |b|) over every named value.

    The difference is 0 where both values are 0, and 1 where one of them is NaN.
    """
    largest = (-1.0, None, None, None)
    for point, expected in zip(values, reference):
        for name, value in point.items():
            scale = max(abs(value), abs(expected[name]))
            if np.isnan(scale):
                difference = 0.0 if np.isnan(value) and np.isnan(expected[name]) else 1.0
            else:
                difference = abs(value - expected[name]) / scale if scale > 0 else 0.0
            if difference > largest[0]:
                largest = (difference, name, value, expected[name])
    return largest


class _ModelEvaluatePerPoint:
    """The naive reference: weights set from numpy, then `model.evaluate`."""

    points_per_call = 1

    def __init__(self, model, batches, origin, directions, variables):
        self._model = model
        self._variables = variables
        self._batches = batches
        self._origin = origin
        self._directions = directions

    def evaluate(self, rows):
        return [self(row) for row in rows]

    def __call__(self, row):
        for position, variable in enumerate(self._variables):
            shift = sum(c * d[position] for c, d in zip(row, self._directions))
            variable.assign(self._origin[position] + shift)
        values = self._model.evaluate(
            **self._batches.evaluate_arguments(), verbose=0, return_dict=True
        )
        return {name: float(value) for name, value in values.items()}
