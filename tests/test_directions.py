import h5py
import keras
import numpy as np
import pytest

from losslandscape import filter_fan_in_axes, load_directions, normalize_direction, random_directions, save_directions
from losslandscape.directions import check_directions_match


def conv_dense_model():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(5, 3),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )
    return model


def test_filter_norms_match_each_output_unit_of_dense_and_conv():
    model = conv_dense_model()
    conv, bn, _, dense = model.layers
    direction = random_directions(model, n=1, seed=0)[0]
    by_variable = dict(zip([id(v) for v in model.trainable_weights], direction))
    conv_kernel = conv.kernel.numpy()  # (3, 3, 2, 5)
    conv_direction = by_variable[id(conv.kernel)]
    for o in range(5):
        np.testing.assert_allclose(
            np.linalg.norm(conv_direction[:, :, :, o]), np.linalg.norm(conv_kernel[:, :, :, o]), rtol=1e-5
        )
    dense_kernel = dense.kernel.numpy()  # (in, out)
    dense_direction = by_variable[id(dense.kernel)]
    for o in range(4):
        np.testing.assert_allclose(
            np.linalg.norm(dense_direction[:, o]), np.linalg.norm(dense_kernel[:, o]), rtol=1e-5
        )
    # The rows of a Dense kernel are not filters: their norms differ from the weights'.
    row_ratio = np.linalg.norm(dense_direction, axis=1) / np.linalg.norm(dense_kernel, axis=1)
    assert np.ptp(row_ratio) > 0.05


def test_biases_and_batchnorm_get_zero_direction_and_moving_stats_none():
    model = conv_dense_model()
    direction = random_directions(model, n=1, seed=0)[0]
    assert len(direction) == len(model.trainable_weights)
    for variable, d in zip(model.trainable_weights, direction):
        assert d.shape == tuple(variable.shape)
        if len(variable.shape) == 1:
            assert not np.any(d), variable.path
        else:
            assert np.all(np.abs(d) > 0)


def test_ignore_none_scales_rank_one_variables_to_their_own_norm():
    model = conv_dense_model()
    model.layers[1].gamma.assign(np.arange(1.0, 6.0))
    direction = random_directions(model, n=1, seed=0, ignore=None)[0]
    for variable, d in zip(model.trainable_weights, direction):
        if len(variable.shape) == 1:
            np.testing.assert_allclose(np.linalg.norm(d), np.linalg.norm(variable.numpy()), rtol=1e-5, atol=1e-6)


def test_layer_and_model_normalization_norms():
    model = conv_dense_model()
    weights = [v.numpy() for v in model.trainable_weights]
    layer_direction = random_directions(model, n=1, seed=1, normalization="layer")[0]
    for w, d in zip(weights, layer_direction):
        if w.ndim > 1:
            np.testing.assert_allclose(np.linalg.norm(d), np.linalg.norm(w), rtol=1e-5)
    model_direction = random_directions(model, n=1, seed=1, normalization="model")[0]
    kernels = [(w, d) for w, d in zip(weights, model_direction) if w.ndim > 1]
    total_w = np.sqrt(sum(np.sum(w.astype(np.float64) ** 2) for w, _ in kernels))
    total_d = np.sqrt(sum(np.sum(d.astype(np.float64) ** 2) for _, d in kernels))
    np.testing.assert_allclose(total_d, total_w, rtol=1e-5)
    raw = random_directions(model, n=1, seed=1, normalization=None)[0]
    expected = np.random.default_rng(1).standard_normal(weights[0].shape)
    np.testing.assert_allclose(raw[0], expected.astype(np.float32))


def test_same_seed_same_directions_and_other_seed_differs():
    model = conv_dense_model()
    first = random_directions(model, seed=7)
    second = random_directions(model, seed=7)
    other = random_directions(model, seed=8)
    for a, b, c in zip(first[0] + first[1], second[0] + second[1], other[0] + other[1]):
        np.testing.assert_array_equal(a, b)
        if np.any(a):
            assert not np.array_equal(a, c)
    assert not np.array_equal(first[0][0], first[1][0])


def test_orthogonal_directions_are_orthogonal_filter_by_filter():
    model = conv_dense_model()
    d1, d2 = random_directions(model, seed=0, orthogonal=True)
    weights = [v.numpy().astype(np.float64) for v in model.trainable_weights]
    for w, a, b in zip(weights, d1, d2):
        if w.ndim < 2:
            continue
        for o in range(w.shape[-1]):
            a_o, b_o = a[..., o].astype(np.float64), b[..., o].astype(np.float64)
            assert abs(np.sum(a_o * b_o)) <= 1e-5 * np.linalg.norm(a_o) * np.linalg.norm(b_o)
            np.testing.assert_allclose(np.linalg.norm(b_o), np.linalg.norm(w[..., o]), rtol=1e-5)


def test_transposed_depthwise_and_embedding_fan_in_axes():
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Embedding(10, 4, name="embedding"),
            keras.layers.Reshape((5, 4, 1)),
            keras.layers.Conv2DTranspose(3, 2, name="conv2d_transpose"),
            keras.layers.DepthwiseConv2D(2, depth_multiplier=2, name="depthwise_conv2d"),
            keras.layers.SeparableConv2D(2, 2, name="separable_conv2d"),
        ]
    )
    axes = dict(zip([v.path for v in model.trainable_weights], filter_fan_in_axes(model)))
    by_name = {path.split("/", 1)[-1]: a for path, a in axes.items()}
    assert by_name["embedding/embeddings"] == (1,)
    assert by_name["conv2d_transpose/kernel"] == (0, 1, 3)
    assert by_name["depthwise_conv2d/kernel"] == (0, 1)
    assert by_name["separable_conv2d/depthwise_kernel"] == (0, 1)
    assert by_name["separable_conv2d/pointwise_kernel"] == (0, 1, 2)
    transposed = model.layers[2].kernel.numpy()  # (kh, kw, out, in)
    direction = dict(zip([v.path for v in model.trainable_weights], random_directions(model, n=1, seed=0)[0]))
    d = direction[model.layers[2].kernel.path]
    for o in range(3):
        np.testing.assert_allclose(np.linalg.norm(d[:, :, o, :]), np.linalg.norm(transposed[:, :, o, :]), rtol=1e-5)


def test_directions_hdf5_round_trip(tmp_path):
    model = conv_dense_model()
    directions = random_directions(model, n=3, seed=0)
    path = tmp_path / "directions.h5"
    save_directions(path, directions, seed=0, normalization="filter")
    with h5py.File(path, "r") as file:
        assert sorted(file.keys()) == ["direction2", "xdirection", "ydirection"]
        assert len(file["xdirection"]) == len(model.trainable_weights)
        assert file.attrs["normalization"] == "filter"
    loaded = load_directions(path)
    assert len(loaded) == 3
    for original, restored in zip(directions, loaded):
        for a, b in zip(original, restored):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"normalization": "filters"}, "normalization"), ({"ignore": "bias"}, "ignore"), ({"n": 0}, "n")],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        random_directions(conv_dense_model(), **kwargs)


def test_model_without_trainable_weights_is_rejected():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="no trainable weights"):
        random_directions(model)


def test_orthogonal_filters_of_a_transposed_convolution_are_orthogonal():
    """Conv2DTranspose keeps its output units on axis 2 (kh, kw, out, in): each unit is orthogonalized on its own."""
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2DTranspose(5, 2, name="conv2d_transpose")])
    d1, d2 = random_directions(model, seed=1, orthogonal=True)
    kernel = model.trainable_weights[0].numpy().astype(np.float64)
    assert kernel.shape == (2, 2, 5, 3)
    for o in range(kernel.shape[2]):
        a_o, b_o = d1[0][:, :, o, :].astype(np.float64), d2[0][:, :, o, :].astype(np.float64)
        assert abs(np.sum(a_o * b_o)) <= 1e-5 * np.linalg.norm(a_o) * np.linalg.norm(b_o)
        np.testing.assert_allclose(np.linalg.norm(b_o), np.linalg.norm(kernel[:, :, o, :]), rtol=1e-5)


@pytest.mark.parametrize("normalization", [None, "model"])
def test_without_per_unit_normalization_the_whole_vector_is_orthogonalized(normalization):
    """The second direction is the raw draw minus its projection on the first, over all weights at once."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((3,)), *[keras.layers.Dense(units, use_bias=False) for units in (4, 5, 2)]]
    )
    d1, d2 = random_directions(model, seed=7, normalization=normalization, ignore=None, orthogonal=True)
    weights = [v.numpy().astype(np.float64) for v in model.trainable_weights]
    assert [d.shape for d in d2] == [w.shape for w in weights] == [(3, 4), (4, 5), (5, 2)]
    generator = np.random.default_rng(7)
    raw1 = np.concatenate([generator.standard_normal(w.shape).ravel() for w in weights])
    raw2 = np.concatenate([generator.standard_normal(w.shape).ravel() for w in weights])
    first = np.concatenate([d.astype(np.float64).ravel() for d in d1])
    second = np.concatenate([d.astype(np.float64).ravel() for d in d2])
    expected = raw2 - (raw2 @ first) / (first @ first) * first
    if normalization == "model":
        theta = np.concatenate([w.ravel() for w in weights])
        expected = expected * np.linalg.norm(theta) / np.linalg.norm(expected)
        raw1 = raw1 * np.linalg.norm(theta) / np.linalg.norm(raw1)
    np.testing.assert_allclose(first, raw1, rtol=1e-6)
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-6)


def test_bad_choices_and_counts_give_their_exact_one_line_message():
    model = conv_dense_model()
    cases = [
        ({"normalization": "filters"}, "Expected `normalization` to be one of ('filter', 'layer', 'model', None), "
                                        "received: 'filters'"),
        ({"ignore": "bias"}, "Expected `ignore` to be one of ('biasbn', None), received: 'bias'"),
        ({"n": 0}, "Expected `n` >= 1 directions, received: n=0"),
        ({"n": 2.0}, "Expected `n` >= 1 directions, received: n=2.0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as raised:
            random_directions(model, **kwargs)
        assert str(raised.value) == message


def test_normalize_direction_checks_its_choices_and_names_them():
    w = [np.ones((2, 2))]
    with pytest.raises(ValueError) as raised:
        normalize_direction(w, w, [(0,)], normalization="Filter")
    assert str(raised.value) == (
        "Expected `normalization` to be one of ('filter', 'layer', 'model', None), received: 'Filter'"
    )
    with pytest.raises(ValueError) as raised:
        normalize_direction(w, w, [(0,)], ignore="bn")
    assert str(raised.value) == "Expected `ignore` to be one of ('biasbn', None), received: 'bn'"


def test_normalize_direction_defaults_are_filter_and_biasbn_in_float64():
    """Called with its defaults, each column of a kernel gets its weights' norm and a bias is zeroed."""
    kernel = np.array([[3.0, 0.0], [4.0, 2.0]], np.float32)
    bias = np.array([1.0, -2.0], np.float32)
    direction = [np.ones((2, 2), np.float32), np.ones(2, np.float32)]
    scaled_kernel, scaled_bias = normalize_direction(direction, [kernel, bias], [(0,), None])
    assert scaled_kernel.dtype == scaled_bias.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(scaled_kernel, axis=0), [5.0, 2.0], rtol=1e-9)
    np.testing.assert_array_equal(scaled_bias, [0.0, 0.0])


@pytest.mark.parametrize("normalization", ["filter", "model"])
def test_norms_of_float16_weights_are_taken_in_float64(normalization):
    """300² overflows float16 (its largest value is 65,504): the norms must be taken in float64."""
    kernel = np.full((4, 3), 300.0, np.float16)
    direction = normalize_direction([np.ones((4, 3), np.float16)], [kernel], [(0,)], normalization=normalization)[0]
    assert np.all(np.isfinite(direction))
    if normalization == "filter":
        np.testing.assert_allclose(np.linalg.norm(direction, axis=0), np.full(3, 600.0), rtol=1e-9)
    else:
        np.testing.assert_allclose(np.linalg.norm(direction), np.linalg.norm(kernel.astype(np.float64)), rtol=1e-9)


def test_directions_have_the_dtypes_of_the_weights():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(2, dtype="float16")])
    for direction in random_directions(model, seed=0):
        assert [d.dtype for d in direction] == [np.dtype(v.dtype) for v in model.trainable_weights]
        assert [d.dtype for d in direction] == [np.float32, np.float32, np.float16, np.float16]


def test_directions_are_independent_draws_unless_orthogonal_is_asked():
    """By default the second direction is the generator's second draw, not orthogonalized against the first."""
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, use_bias=False)])
    first, second = random_directions(model, seed=9, normalization=None)
    generator = np.random.default_rng(9)
    np.testing.assert_allclose(first[0], generator.standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_allclose(second[0], generator.standard_normal((3, 4)).astype(np.float32))


def test_orthogonal_directions_stay_finite_where_a_weight_unit_is_zero():
    """A fresh Dense bias is all zeros: with `ignore=None` its direction scales to zero, and the second
    direction's projection on it must be zero, not 0 / 0."""
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    first, second = random_directions(model, seed=1, ignore=None, orthogonal=True)
    for d in first + second:
        assert np.all(np.isfinite(d))
    np.testing.assert_array_equal(second[1], np.zeros(4))
    kernel = model.trainable_weights[0].numpy()
    np.testing.assert_allclose(np.linalg.norm(second[0], axis=0), np.linalg.norm(kernel, axis=0), rtol=1e-5)


def test_model_without_trainable_weights_gets_the_whole_message():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Flatten()])
    with pytest.raises(ValueError) as raised:
        random_directions(model)
    assert str(raised.value) == (
        "The model has no trainable weights, so there is no landscape to explore. Build the model (call it on "
        "data or pass `keras.Input` to it) and make sure some layers are trainable."
    )


def test_directions_that_do_not_fit_the_model_get_the_whole_message():
    model = conv_dense_model()
    direction = random_directions(model, n=1, seed=0)[0]
    shapes = [tuple(v.shape) for v in model.trainable_weights]
    check_directions_match([direction, direction], model.trainable_weights)
    with pytest.raises(ValueError) as raised:
        check_directions_match([direction, direction[:-1]], model.trainable_weights)
    assert str(raised.value) == (
        f"Direction 1 does not fit the model: its arrays have shapes {shapes[:-1]}, the model's trainable "
        f"weights have shapes {shapes}. Draw directions for this model with `random_directions(model)`."
    )
