import re

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from conftest import all_state, assert_same_state, regularized_cnn  # noqa: E402
from losslandscape import interpolate, plot_interpolation  # noqa: E402


@pytest.fixture(scope="module")
def two_solutions(image_data):
    x, y, _ = image_data
    model_a, model_b = regularized_cnn(seed=0), regularized_cnn(seed=1)
    model_a.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model_b.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return model_a, model_b


def test_endpoints_equal_each_models_evaluate_and_midpoint_mixes_batchnorm_states(two_solutions, image_data,
                                                                                  capsys):
    x, y, _ = image_data
    model_a, model_b = two_solutions
    before_a, before_b = all_state(model_a), all_state(model_b)
    line = interpolate(model_a, model_b, ((x, y), (x[:100], y[:100])), coords=[0.0, 0.5, 1.0], verbose=0)
    assert capsys.readouterr().out == ""
    assert_same_state(before_a, all_state(model_a))
    assert_same_state(before_b, all_state(model_b))
    for label, (data_x, data_y) in (("train", (x, y)), ("test", (x[:100], y[:100]))):
        for index, model in ((0, model_a), (2, model_b)):
            expected = model.evaluate(data_x, data_y, verbose=0, return_dict=True)
            np.testing.assert_allclose(line.losses[label][index], expected["loss"], rtol=1e-5)
            np.testing.assert_allclose(line.metrics[label]["accuracy"][index], expected["accuracy"], rtol=1e-5)
    # The midpoint, built independently: every weight averaged, moving statistics included.
    middle = regularized_cnn(seed=2)
    for target, a, b in zip(middle.weights, model_a.weights, model_b.weights):
        target.assign((a.numpy().astype(np.float64) + b.numpy()) / 2)
    expected = middle.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(line.losses["train"][1], expected["loss"], rtol=1e-5)


def test_different_architectures_are_refused(two_solutions, image_data):
    x, y, _ = image_data
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="different architectures"):
        interpolate(two_solutions[0], other, (x, y), verbose=0)


def test_plot_has_loss_and_accuracy_on_twin_axes(two_solutions, image_data):
    x, y, _ = image_data
    line = interpolate(*two_solutions, ((x, y), (x[:100], y[:100])), coords=np.linspace(-0.5, 1.5, 5), verbose=0)
    drawn = plot_interpolation(line).artists_
    assert [d.get_label() for d in drawn["line"]] == ["train loss", "test loss"]
    assert [d.get_linestyle() for d in drawn["metric"]] == ["-", "--"]
    np.testing.assert_allclose(drawn["metric"][1].get_ydata(), line.metrics["test"]["accuracy"])
    assert line.axes_["metric"] is not line.axes_["line"]
    plt.close("all")


def test_labels_sample_limit_batch_size_and_regularization_reach_the_line(two_solutions, image_data, capsys):
    import tensorflow as tf

    x, y, _ = image_data
    model_a, model_b = two_solutions
    line = interpolate(model_a, model_b, ((x, y), (x[100:], y[100:])), coords=[0.0, 1.0],
                       labels=["first", "second"], batch_size=7, max_samples=50, include_regularization=False)
    shown = capsys.readouterr().out
    assert "4/4 points in" in shown and "per call" not in shown  # verbose=1 by default: progress, not the probe's why
    assert line.labels == ["first", "second"] and all(line.computed[label].all() for label in line.labels)
    assert line.settings == {"kind": "interpolation", "num_samples": {"first": 50, "second": 50}, "batch_size": 7,
                             "max_samples": 50, "include_regularization": False}
    regularization = float(sum(keras.ops.convert_to_numpy(loss) for loss in model_a.losses))
    assert regularization > 1e-3
    for label, start in (("first", 0), ("second", 100)):
        expected = model_a.evaluate(x[start:start + 50], y[start:start + 50], verbose=0, return_dict=True)
        np.testing.assert_allclose(line.losses[label][0], expected["loss"] - regularization, rtol=1e-5)
    with pytest.raises(ValueError, match=r"^Expected `coords` to be strictly increasing"):
        interpolate(model_a, model_b, (x, y), coords=[1.0, 0.0], verbose=0)
    with pytest.raises(ValueError, match="`batch_size` must be None"):
        interpolate(model_a, model_b, tf.data.Dataset.from_tensor_slices((x, y)).batch(16), batch_size=7, verbose=0)


def test_the_refusal_shows_the_first_three_weights_of_each(two_solutions, image_data):
    x, y, _ = image_data
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    shapes_a = [(v.name, tuple(v.shape)) for v in two_solutions[0].weights]
    shapes_b = [(v.name, tuple(v.shape)) for v in other.weights]
    message = (f"The two models have different architectures: their weights are {len(shapes_a)} arrays "
               f"{shapes_a[:3]}... and 2 arrays {shapes_b}... Interpolate between two trainings of the same model.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        interpolate(two_solutions[0], other, (x, y), verbose=0)
