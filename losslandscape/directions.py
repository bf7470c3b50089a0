"""Random directions in weight space, their normalization and HDF5 form.

A direction is a list of numpy arrays, one per trainable variable of the
model, in the order of `model.trainable_weights`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import numpy as np
from losslandscape.keras_internals import layers_outermost_first

NORMALIZATIONS = ("filter", "layer", "model", None)
IGNORE_OPTIONS = ("biasbn", None)

_EPSILON = 1e-10

_TRANSPOSED_CONV_TYPES = tuple(
    getattr(keras.layers, name)
    for name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
)
_DEPTHWISE_TYPES = tuple(
    getattr(keras.layers, name)
    for name in (
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
    )
)


def random_directions(
    model: keras.Model,
    n: int = 2,
    seed: Optional[int] = None,
    normalization: Optional[str] = "filter",
    ignore: Optional[str] = "biasbn",
    orthogonal: bool = False,
) -> list[list[np.ndarray]]:
    """Draws random Gaussian directions normalized to the model's weights.

    "Filter" means the weights that feed one output unit (its fan-in), in
    Keras' storage layout:

    - `Dense` kernel `(in, out)` and recurrent kernels `(in, 4 * units)`:
      one filter per column `[:, o]`.
    - `Conv1D/2D/3D` kernel `(..., in, out)`, `SeparableConv` pointwise
      kernel and any other variable of rank >= 2 (e.g. `EinsumDense`):
      one filter per slice `[..., o]` of the last axis.
    - `Conv1D/2D/3DTranspose` kernel `(..., out, in)`: one filter per
      slice `[..., o, :]` of the second-to-last axis.
    - `DepthwiseConv` and `SeparableConv` depthwise kernel
      `(..., in, multiplier)`: one filter per spatial slice `[..., c, m]`,
      since each output channel sees one input channel only.
    - `Embedding` table `(vocab, dim)`: one filter per row (token).

    Variables of rank <= 1 (biases, BatchNorm/LayerNorm gamma and beta)
    get a zero direction with `ignore="biasbn"`, as in the paper's code.
    With `ignore=None` they are normalized to their own norm as a whole
    (the paper's code copies the weight itself instead). Non-trainable
    variables (BatchNorm moving statistics) have no direction at all.

    Args:
        model: A built Keras model with trainable weights.
        n: Number of directions.
        seed: Seed for numpy's random generator; the same seed gives the
            same directions.
        normalization: `"filter"` (one norm per filter, the paper's
            choice), `"layer"` (one norm per variable), `"model"` (one norm
            for the whole weight vector) or `None` (raw Gaussian).
        ignore: `"biasbn"` to zero the direction of rank <= 1 variables,
            or `None` to perturb them too.
        orthogonal: If `True`, each direction after the first is made
            orthogonal to the earlier ones unit by unit (filter by filter
            for `"filter"`), so that they stay exactly orthogonal after
            normalization.

    Returns:
        A list of `n` directions; each is a list of numpy arrays with the
        shapes and dtypes of `model.trainable_weights`.

    Examples:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x_dir, y_dir = random_directions(model, seed=0)
        >>> [d.shape for d in x_dir]
        [(4, 3), (3,)]
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"Expected `n` >= 1 directions, received: n={n!r}")
    weights = trainable_weight_values(model)
    fan_in_axes = filter_fan_in_axes(model)
    generator = np.random.default_rng(seed)
    directions: list[list[np.ndarray]] = []
    for _ in range(n):
        raw = [generator.standard_normal(w.shape) for w in weights]
        if orthogonal:
            raw = _orthogonalize(raw, directions, fan_in_axes, normalization)
        normalized = normalize_direction(
            raw, weights, fan_in_axes, normalization, ignore
        )
        directions.append(
            [d.astype(w.dtype) for d, w in zip(normalized, weights)]
        )
    return directions


def trainable_weight_values(model: keras.Model) -> list[np.ndarray]:
    """Returns copies of the model's trainable weights as numpy arrays.

    Args:
        model: A Keras model.

    Returns:
        A list of numpy arrays in the order of `model.trainable_weights`.

    Examples:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> [w.shape for w in trainable_weight_values(model)]
        [(4, 3), (3,)]
    """
    if not model.trainable_weights:
        raise ValueError(
            "The model has no trainable weights, so there is no landscape "
            "to explore. Build the model (call it on data or pass "
            "`keras.Input` to it) and make sure some layers are trainable."
        )
    return variables_values(model.trainable_weights)


def variables_values(variables) -> list[np.ndarray]:
    """Returns copies of the values of Keras variables as numpy arrays."""
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def filter_fan_in_axes(model: keras.Model) -> list[Optional[tuple[int, ...]]]:
    """Finds, for each trainable variable, the axes that span one filter.

    Args:
        model: A Keras model.

    Returns:
        One entry per trainable variable: the tuple of axes to reduce over
        to get one norm per filter, or `None` for variables of rank <= 1.

    Examples:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> filter_fan_in_axes(model)
        [(0,), None]
    """
    owners = _innermost_owning_layers(model)
    return [
        _fan_in_axes(owners.get(id(variable)), variable)
        for variable in model.trainable_weights
    ]


def normalize_direction(
    direction: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    fan_in_axes: Sequence[Optional[tuple[int, ...]]],
    normalization: Optional[str] = "filter",
    ignore: Optional[str] = "biasbn",
) -> list[np.ndarray]:
    """Scales a direction unit by unit to the norms of the weights.

    Args:
        direction: Arrays with the shapes of `weights`.
        weights: The weights the direction starts from.
        fan_in_axes: As returned by `filter_fan_in_axes`.
        normalization: `"filter"`, `"layer"`, `"model"` or `None`.
        ignore: `"biasbn"` to zero rank <= 1 entries, or `None`.

    Returns:
        The normalized direction as float64 arrays.

    Examples:
        >>> w = [np.array([[3.0, 0.0], [4.0, 1.0]])]
        >>> d = normalize_direction([np.ones((2, 2))], w, [(0,)])
        >>> np.round(np.linalg.norm(d[0], axis=0), 6)
        array([5., 1.])
    """
    _check_choice("normalization", normalization, NORMALIZATIONS)
    _check_choice("ignore", ignore, IGNORE_OPTIONS)
    result = []
    for d, w, axes in zip(direction, weights, fan_in_axes):
        d = np.asarray(d, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        unit_axes = _unit_axes(axes, d.ndim, normalization)
        if axes is None and ignore == "biasbn":
            result.append(np.zeros_like(d))
        elif unit_axes is not None:
            result.append(_scale_units(d, w, unit_axes))
        else:
            result.append(d)
    if normalization == "model":
        perturbed = [i for i, d in enumerate(result) if np.any(d)]
        d_norm = np.sqrt(sum(np.sum(result[i] ** 2) for i in perturbed))
        w_norm = np.sqrt(
            sum(np.sum(np.asarray(weights[i], np.float64) ** 2) for i in perturbed)
        )
        result = [d * (w_norm / (d_norm + _EPSILON)) for d in result]
    return result


def check_directions_match(directions: Sequence[Sequence[np.ndarray]], variables) -> None:
    """Raises a ValueError unless each direction fits the shapes of `variables`."""
    shapes = [tuple(v.shape) for v in variables]
    for index, direction in enumerate(directions):
        direction_shapes = [tuple(np.shape(d)) for d in direction]
        if direction_shapes != shapes:
            raise ValueError(
                f"Direction {index} does not fit the model: its arrays have "
                f"shapes {direction_shapes}, the model's trainable weights "
                f"have shapes {shapes}. Draw directions for this model with "
                "`random_directions(model)`."
            )


def _orthogonalize(raw, earlier, fan_in_axes, normalization):
    """Removes from `raw` its projection on each earlier direction.

    The projection is removed within each normalization unit (filter or
    variable), so that rescaling the units afterwards keeps every dot
    product at zero. Without per-unit normalization the whole vector is
    the unit.
    """
    if normalization in ("model", None):
        return _orthogonalize_whole(raw, earlier)
    result = []
    for position, (d, axes) in enumerate(zip(raw, fan_in_axes)):
        unit_axes = _unit_axes(axes, d.ndim, normalization)
        for other in earlier:
            d = d - _unit_projection(d, other[position], unit_axes)
        result.append(d)
    return result


def _orthogonalize_whole(raw, earlier):
    flat = np.concatenate([d.ravel() for d in raw])
    for other in earlier:
        o = np.concatenate([d.ravel() for d in other])
        flat = flat - (flat @ o) / (o @ o + _EPSILON) * o
    pieces = np.split(flat, np.cumsum([d.size for d in raw])[:-1])
    return [p.reshape(d.shape) for p, d in zip(pieces, raw)]


def _unit_projection(d, o, axes):
    dot = np.sum(d * o, axis=axes, keepdims=True)
    norm_sq = np.sum(o * o, axis=axes, keepdims=True)
    # A unit where `o` is zero (an ignored bias) projects to zero; the guard only avoids 0 / 0.
    return dot / np.where(norm_sq > 0, norm_sq, 1.0) * o


def _unit_axes(fan_in_axes, ndim, normalization):
    """Axes spanning one normalization unit, or None for no per-unit scaling."""
    if normalization == "filter" and fan_in_axes is not None:
        return fan_in_axes
    if normalization in ("filter", "layer"):
        return tuple(range(ndim))
    return None


def _scale_units(d, w, axes):
    d_norm = np.sqrt(np.sum(d * d, axis=axes, keepdims=True))
    w_norm = np.sqrt(np.sum(w * w, axis=axes, keepdims=True))
    return d * (w_norm / (d_norm + _EPSILON))


def _fan_in_axes(layer, variable):
    ndim = len(variable.shape)
    if ndim <= 1:
        return None
    if isinstance(layer, _TRANSPOSED_CONV_TYPES) and variable.name == "kernel":
        return tuple(a for a in range(ndim) if a != ndim - 2)
    if isinstance(layer, _DEPTHWISE_TYPES) and variable.name in ("kernel", "depthwise_kernel"):
        return tuple(range(ndim - 2))
    if isinstance(layer, keras.layers.Embedding):
        return tuple(range(1, ndim))
    return tuple(range(ndim - 1))


def _innermost_owning_layers(model):
    """Maps id(variable) to the smallest layer that holds it.

    Layers come outermost first, so on a tie (a model whose one layer holds
    all its weights, a wrapper around one layer) the inner layer wins.
    """
    owners = {}
    sizes = {}
    for layer in layers_outermost_first(model):
        size = len(layer.weights)
        for variable in layer.weights:
            key = id(variable)
            if key not in owners or size <= sizes[key]:
                owners[key] = layer
                sizes[key] = size
    return owners


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Expected `{name}` to be one of {choices}, received: {value!r}"
        )
