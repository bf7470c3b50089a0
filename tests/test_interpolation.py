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


def test_endpoints_equal_each_models_evaluate_and_midpoint_mixes_batchnorm_states(two_solutions, image_data):
    x, y, _ = image_data
    model_a, model_b = two_solutions
    before_a, before_b = all_state(model_a), all_state(model_b)
    line = interpolate(model_a, model_b, ((x, y), (x[:100], y[:100])), coords=[0.0, 0.5, 1.0], verbose=0)
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
