"""Evaluating a landscape in lower precision: a copy of the model under another dtype policy."""

from __future__ import annotations

import keras


def with_dtype_policy(model: keras.Model, dtype_policy: str) -> keras.Model:
    """Returns a copy of `model` that computes under `dtype_policy`, with the same weights, loss and metrics.

    Every layer of the copy takes the policy (e.g. "mixed_bfloat16":
    bfloat16 arithmetic, float32 variables), so the variables, and the
    directions drawn on the original model, keep their float32 values and
    shapes. The original model is not touched. Keras' losses and metrics
    cast predictions back to float32 before they reduce them.

    Args:
        model: A compiled Sequential or functional Keras model.
        dtype_policy: A Keras dtype policy name, such as "mixed_bfloat16"
            or "mixed_float16".

    Returns:
        The compiled copy.

    Raises:
        ValueError: For an unknown policy, a quantized policy, or a model
            that cannot be cloned or recompiled from its config (for
            example a subclassed model); the message says what to do.

    Examples:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model.compile(loss="mse")
        >>> with_dtype_policy(model, "mixed_bfloat16").layers[0].compute_dtype
        'bfloat16'
    """
    try:
        policy = keras.dtype_policies.get(dtype_policy)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Unknown `dtype_policy` {dtype_policy!r}: use a Keras policy name such as "
            f'"mixed_bfloat16", "mixed_float16" or "float32". ({error})'
        ) from error
    if policy.quantization_mode is not None:
        raise ValueError(
            f"`dtype_policy` {dtype_policy!r} quantizes the weights, so the directions would not "
            'apply to them; use "mixed_bfloat16" or "mixed_float16".'
        )

    def layer_under_policy(layer):
        config = layer.get_config()
        config["dtype"] = policy.name
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=layer_under_policy)
        copy.set_weights(model.get_weights())
        copy.compile_from_config(model.get_compile_config())
    except (ValueError, TypeError, NotImplementedError) as error:
        raise ValueError(
            f"Could not rebuild the model under `dtype_policy={dtype_policy!r}`: {error}. "
            "It needs a Sequential or functional model compiled with serializable losses "
            "and metrics; otherwise build the model under the policy yourself "
            "(`keras.config.set_dtype_policy`) and leave `dtype_policy` unset."
        ) from error
    return copy
