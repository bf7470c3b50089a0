"""Keras' test step and metric results on explicit variable values, for the compiled evaluators of every backend."""

from __future__ import annotations

from typing import Sequence

import keras
from losslandscape.backends.base import batch_loss, batch_size_of
from losslandscape.keras_internals import call_takes_training, loss_tracker


def stateless_test_step(
    model: keras.Model,
    trainable: Sequence,
    non_trainable: Sequence,
    metric_variables: Sequence,
    states: Sequence,
    batch,
    include_regularization: bool,
) -> list:
    """The metric states after one batch of the step `model.evaluate` runs, at the given values; no variable is written.

    The loss is computed inside the scope as well: a multi-output compiled
    loss updates its per-output loss metrics (`out1_loss`, ...) while it
    computes. With `include_regularization=False` the loss is the compiled
    loss alone, without the losses layers add.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
    y_pred = stateless_predict(model, trainable, non_trainable, x)
    mapping = [
        *zip(model.trainable_variables, trainable),
        *zip(model.non_trainable_variables, non_trainable),
        *zip(metric_variables, states),
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        loss = batch_loss(model, x, y, y_pred, sample_weight, include_regularization)
        loss_tracker(model).update_state(loss, sample_weight=batch_size_of(x))
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    return [scope.get_current_value(v) for v in metric_variables]


def stateless_predict(model: keras.Model, trainable: Sequence, non_trainable: Sequence, x):
    """The model's output in inference mode at the given variable values."""
    # As in Keras' test step: a subclassed model's `call` may take no `training` argument.
    call_arguments = {"training": False} if call_takes_training(model) else {}
    y_pred, _ = model.stateless_call(trainable, non_trainable, x, **call_arguments)
    return y_pred


def stateless_metric_results(model: keras.Model, metric_variables: Sequence, states: Sequence) -> dict:
    """`model.get_metrics_result()` read from `states`, every value a tensor.

    A metric's `result()` may return one of its own variables; it is read
    here, inside the scope, so the value is the state's, not the variable's.
    """
    with keras.StatelessScope(state_mapping=list(zip(metric_variables, states))):
        return {
            name: keras.ops.convert_to_tensor(value.value if isinstance(value, keras.Variable) else value)
            for name, value in model.get_metrics_result().items()
        }
