import h5py
import numpy as np
import pytest

from losslandscape import LossLine, LossSurface, compute_line, compute_surface, load_line, load_surface


def test_surface_round_trip_on_a_non_square_grid_in_reference_layout(small_mlp, regression_data, tmp_path):
    x, y = regression_data
    small_mlp.compile(loss="mse", metrics=["mae", "accuracy"])
    surface = compute_surface(
        small_mlp,
        {"train": (x, y), "test": (x[:30], y[:30])},
        xcoords=np.linspace(-1, 1, 4),
        ycoords=np.linspace(-0.5, 0.5, 3),
        seed=0,
        verbose=0,
    )
    path = tmp_path / "surface.h5"
    surface.save(path)
    with h5py.File(path, "r") as file:
        assert file["xcoordinates"].shape == (4,) and file["ycoordinates"].shape == (3,)
        assert file["train_loss"].shape == (3, 4)
        # The reference layout: file[j, i] holds the value at (x_i, y_j).
        np.testing.assert_array_equal(file["train_loss"][2, 1], surface.losses["train"][1, 2])
        np.testing.assert_allclose(file["test_acc"][()], 100 * surface.metrics["test"]["accuracy"].T)
        assert len(file["xdirection"]) == len(small_mlp.trainable_weights)
    loaded = load_surface(path)
    np.testing.assert_array_equal(loaded.xcoords, surface.xcoords)
    np.testing.assert_array_equal(loaded.ycoords, surface.ycoords)
    for label in ("train", "test"):
        np.testing.assert_array_equal(loaded.losses[label], surface.losses[label])
        for name in ("mae", "accuracy"):
            np.testing.assert_array_equal(loaded.metrics[label][name], surface.metrics[label][name])
    for a, b in zip(loaded.directions[1], surface.directions[1]):
        np.testing.assert_array_equal(a, b)
    assert loaded.settings["seed"] == 0 and loaded.settings["normalization"] == "filter"


def test_line_round_trip_writes_train_acc_even_without_accuracy(small_mlp, regression_data, tmp_path):
    line = compute_line(small_mlp, regression_data, coords=np.linspace(-1, 1, 5), verbose=0)
    path = tmp_path / "line.h5"
    line.save(path)
    with h5py.File(path, "r") as file:
        assert file["train_loss"].shape == (5,)
        assert file["train_acc"].shape == (5,)
    loaded = load_line(path)
    np.testing.assert_array_equal(loaded.losses["train"], line.losses["train"])
    np.testing.assert_array_equal(loaded.metrics["train"]["mae"], line.metrics["train"]["mae"])
    np.testing.assert_array_equal(loaded.direction[0], line.direction[0])


def test_loading_the_wrong_kind_says_which_loader(tmp_path):
    path = tmp_path / "line.h5"
    LossLine(np.arange(3.0), {"train": np.ones(3)}, {"train": {}}).save(path)
    with pytest.raises(ValueError, match="load_line"):
        load_surface(path)
    with h5py.File(tmp_path / "foreign.h5", "w") as file:
        file["xcoordinates"] = np.arange(3.0)
    with pytest.raises(ValueError, match="not written by losslandscape"):
        load_line(tmp_path / "foreign.h5")


def test_values_reports_unknown_labels_and_metrics():
    surface = LossSurface(np.arange(2.0), np.arange(3.0), {"train": np.zeros((2, 3))}, {"train": {"mae": np.ones((2, 3))}})
    assert surface.values(metric="mae").sum() == 6
    with pytest.raises(KeyError, match="test"):
        surface.values("test")
    with pytest.raises(KeyError, match="mae"):
        surface.values(metric="accuracy")
