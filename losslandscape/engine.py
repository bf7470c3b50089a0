"""Evaluation of the loss and metrics at perturbed weights, with θ0 always restored."""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

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
    >>> with WeightSnapshot(model):
    ...     model.layers[0].kernel.assign(np.zeros((2, 1)))
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
    variables = list(model.trainable_variables if variables is None else variables)
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
            if engine == "compiled":
                evaluate_point = current_backend().CompiledPointEvaluator(
                    model, batches, origin, directions, include_regularization, variables
                )
            else:
                evaluate_point = _ModelEvaluatePerPoint(model, batches, origin, directions, variables)
            results[label] = {}
            for start in range(0, len(rows), chunk_size):
                chunk = rows[start : start + chunk_size]
                chunk_values = []
                for row in chunk:
                    chunk_values.append(evaluate_point(coefficients[row]))
                    progress.add(1)
                named = {name: np.array([v[name] for v in chunk_values]) for name in chunk_values[0]}
                for name, values in named.items():
                    results[label].setdefault(name, np.full(len(coefficients), np.nan))[chunk] = values
                if on_chunk is not None:
                    on_chunk(label, chunk, named)
    return results


class _ModelEvaluatePerPoint:
    """The naive reference: weights set from numpy, then `model.evaluate`."""

    def __init__(self, model, batches, origin, directions, variables):
        self._model = model
        self._variables = variables
        self._batches = batches
        self._origin = origin
        self._directions = directions

    def __call__(self, row):
        for position, variable in enumerate(self._variables):
            shift = sum(c * d[position] for c, d in zip(row, self._directions))
            variable.assign(self._origin[position] + shift)
        values = self._model.evaluate(
            **self._batches.evaluate_arguments(), verbose=0, return_dict=True
        )
        return {name: float(value) for name, value in values.items()}
