"""plot_loss_3D takes every data form plot_loss takes, and bad input fails before the first grid point."""

import inspect

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest

from conftest import tensorflow_only
from losslandscape import NpzData, compute_surface, plot_loss, plot_loss_3D
from losslandscape.cli import build_parser
from losslandscape.progress import Progress


@pytest.fixture
def classifier_and_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 64)
    return model, x, y


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return self.x[16 * index : 16 * (index + 1)], self.y[16 * index : 16 * (index + 1)]


def _forms(x, y, tmp_path):
    np.savez(tmp_path / "data.npz", x=x, y=y)
    forms = {"PyDataset": _Batches(x, y), "NpzData": NpzData(str(tmp_path / "data.npz"))}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        forms["tf.data"] = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    return forms


def test_plot_loss_3d_takes_a_dataset_without_y(classifier_and_data, tmp_path):
    model, x, y = classifier_and_data
    expected = plot_loss_3D(model, "levels", x, y, 3, batch_size=16, seed=1, verbose=0)  # the seed's call, positional
    for name, data in _forms(x, y, tmp_path).items():
        batch_size = 16 if name == "NpzData" else None
        surface = plot_loss_3D(model, "levels", data, number_of_points=3, seed=1, batch_size=batch_size, verbose=0)
        np.testing.assert_allclose(surface.losses["train"], expected.losses["train"], rtol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match="`sample_weight` needs `y`"):
        plot_loss_3D(model, "levels", _Batches(x, y), sample_weight=np.ones(64), verbose=0)


@tensorflow_only
def test_an_unbatched_dataset_is_named_with_the_fix(classifier_and_data):
    import tensorflow as tf

    model, x, y = classifier_and_data
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    message = r"yields single samples of shape \(8, 8, 1\), not batches: .* `dataset.batch\(128\)`"
    with pytest.raises(ValueError, match=message):
        compute_surface(model, unbatched, xcoords=[0.0, 1.0], verbose=0)
    with pytest.raises(ValueError, match=message):
        plot_loss_3D(model, "levels", unbatched, verbose=0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, y, path: plot_loss_3D(m, "levels", x, y, metric="acc", verbose=0),
         r"The model computes no metric 'acc'; it computes \['loss', 'accuracy'\]"),
        (lambda m, x, y, path: plot_loss(m, (x, y), metric="acc", verbose=0), "no metric 'acc'"),
        (lambda m, x, y, path: plot_loss(m, (x, y), save=path / "missing" / "loss.png", verbose=0),
         "the folder .* does not exist"),
        (lambda m, x, y, path: plot_loss_3D(m, "contours", x, y, verbose=0), "Unknown plot type"),
        (lambda m, x, y, path: plot_loss(m, (x[:, :4], y), verbose=0), "samples of shape"),
        (lambda m, x, y, path: plot_loss(m, ((x, y), (x, y)), dataset_labels=["train"], verbose=0), "label"),
        (lambda m, x, y, path: plot_loss_3D(m, "3d", x, y, ax=plt.figure().add_subplot(), verbose=0),
         r"A 3D surface needs 3D axes, received 2D axes \(Axes\): create them with `fig.add_subplot\(projection='3d'\)`"),
        (lambda m, x, y, path: plot_loss_3D(m, "levels", x, y, ax=plt.figure().add_subplot(projection="3d"),
                                            verbose=0), "A contour plot needs 2D axes, received 3D axes"),
        (lambda m, x, y, path: plot_loss_3D(m, ("levels", "3d"), x, keras.utils.to_categorical(y, 3), verbose=0),
         r"has labels of shape \(64, 3\), one value per class \(one-hot\), but the model's loss "
         r"`sparse_categorical_crossentropy` takes one class index per sample. Pass `y.argmax\(axis=-1\)`"),
    ],
    ids=["metric-3d", "metric-1d", "save-path", "plot-type", "data-shape", "labels", "2d-axes-for-3d",
         "3d-axes-for-levels", "one-hot-sparse"],
)
def test_bad_input_fails_before_the_first_point(classifier_and_data, tmp_path, monkeypatch, call, message):
    model, x, y = classifier_and_data
    evaluated = []
    monkeypatch.setattr(Progress, "add", lambda self, count, first_call=False: evaluated.append(count))
    with pytest.raises((ValueError, OSError, AssertionError), match=message):
        call(model, x, y, tmp_path)
    assert evaluated == []


def test_the_command_line_and_python_share_one_default_grid():
    args = build_parser().parse_args(["surface", "model.keras", "--data", "data.npz"])
    assert args.points == len(inspect.signature(compute_surface).parameters["xcoords"].default) == 21
    assert inspect.signature(plot_loss_3D).parameters["number_of_points"].default == 21


def test_both_names_of_the_two_plot_types_draw_the_same_figures(classifier_and_data):
    model, x, y = classifier_and_data
    documented = plot_loss_3D(model, ("levels", "3d"), x, y, number_of_points=3, seed=0, verbose=0)
    other = plot_loss_3D(model, ("contour", "surface"), x, y, number_of_points=3, seed=0, verbose=0)
    assert set(documented.artists_) == set(other.artists_) == {"contour", "surface"}
    np.testing.assert_array_equal(documented.losses["train"], other.losses["train"])
    assert documented.plot("levels").artists_["contour"] is not None and "levels" not in documented.artists_
    assert documented.plot("3d").axes_["surface"].name == "3d"
