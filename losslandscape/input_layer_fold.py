"""K points at once through a first Dense layer that runs once per batch, not K times.

The layer's pre-activation output is affine in its weights:

    x·(W0 + Σ_k c_k·D_k) + (b0 + Σ_k c_k·e_k) = (x·W0 + b0) + Σ_k c_k·(x·D_k + e_k)

Inside a vectorized map over the points, the bracketed terms on the right do
not depend on the point, so `vmap` and `vectorized_map` compute them once per
batch; each point only combines them with its coefficients. For an MLP, whose
first layer holds most of the arithmetic, this removes most of the per-point work.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import keras
from losslandscape.keras_internals import inbound_nodes


def foldable_input_dense(model: keras.Model) -> Optional[keras.layers.Dense]:
    """The plain `Dense` layer that reads the model's only input and nothing else, if there is one.

    Every call of it must read that input (a Sequential model reloaded from
    a `.keras` file has two such calls, one from building it), it must run
    in full precision, without LoRA or quantization, and its kernel must be
    trainable, so that the folded form computes the same function.
    """
    inputs = _model_inputs(model)
    if inputs is None or len(inputs) != 1:
        return None
    for layer in model.layers:
        if type(layer) is not keras.layers.Dense:
            continue
        nodes = inbound_nodes(layer)
        if (
            nodes
            and all(len(node.input_tensors) == 1 and node.input_tensors[0] is inputs[0] for node in nodes)
            and not layer.lora_enabled
            and layer.quantization_mode is None
            and layer.dtype_policy.compute_dtype == layer.dtype_policy.variable_dtype
            and layer.kernel.trainable
            and (layer.bias is None or layer.bias.trainable)
        ):
            return layer
    return None


def _model_inputs(model):
    try:
        return model.inputs
    except (AttributeError, ValueError):
        return None


@contextlib.contextmanager
def folded_dense(layer: keras.layers.Dense, origin: dict, directions: dict, coefficients):
    """Makes `layer` compute its output from per-batch terms and the point's `coefficients` while inside.

    Args:
        layer: The layer from `foldable_input_dense`.
        origin: `{"kernel": W0, "bias": b0 or None}` as tensors.
        directions: `{"kernel": D, "bias": e or None}`, each stacked over the directions (first axis).
        coefficients: The point's coefficients, one per direction.
    """

    def call(inputs, training=None):
        terms = [_affine(inputs, origin["kernel"], origin["bias"])]
        for k in range(directions["kernel"].shape[0]):
            bias = None if directions["bias"] is None else directions["bias"][k]
            terms.append(_affine(inputs, directions["kernel"][k], bias))
        dtype = terms[0].dtype
        weights = keras.ops.concatenate([keras.ops.ones((1,), dtype), keras.ops.cast(coefficients, dtype)])
        # One contraction: vectorized over the points it is a single matrix product
        # that writes each point's output once, instead of a multiply and an add per direction.
        outputs = keras.ops.tensordot(weights, keras.ops.stack(terms), axes=1)
        return outputs if layer.activation is None else layer.activation(outputs)

    layer.call = call
    try:
        yield
    finally:
        del layer.call


def _affine(inputs, kernel, bias):
    outputs = keras.ops.matmul(inputs, kernel)
    return outputs if bias is None else outputs + bias


def fold_arguments(layer: keras.layers.Dense, variables: Sequence, origin: Sequence, directions: Sequence):
    """`(origin, directions)` dicts for `folded_dense`, picked from per-variable lists by the layer's variables.

    `directions` holds, per variable, the directions stacked on the first axis.
    """
    position = {id(v): p for p, v in enumerate(variables)}
    names = {"kernel": layer.kernel, "bias": layer.bias}
    picked_origin = {name: None if v is None else origin[position[id(v)]] for name, v in names.items()}
    picked_directions = {name: None if v is None else directions[position[id(v)]] for name, v in names.items()}
    return picked_origin, picked_directions
