"""Files written by the paper's reference code load, plot and describe, with unfinished points as gaps."""

import re

import h5py
import numpy as np
import pytest

from losslandscape import load_line, load_surface
from losslandscape.cli import main

X = np.linspace(-1, 1, 21)
Y = np.linspace(-0.5, 0.5, 11)  # not square: the reference's own plotting scripts assume square grids


def reference_surface(path, unfinished=()):
    """A surface as the reference code writes it: meshgrid order [j, i], accuracy in percent, -1 not computed."""
    grid_x, grid_y = np.meshgrid(X, Y)
    loss = 1 + grid_x + 10 * grid_y**2
    accuracy = 90 - 10 * np.abs(grid_x)
    for j, i in unfinished:
        loss[j, i] = accuracy[j, i] = -1
    with h5py.File(path, "w") as file:
        file["xcoordinates"], file["ycoordinates"] = X, Y
        file["train_loss"], file["train_acc"] = loss, accuracy
        file["test_loss"], file["test_acc"] = loss + 0.5, accuracy - 5
    return path


def test_a_half_filled_reference_surface_loads_in_our_order(tmp_path):
    unfinished = [(j, i) for j in range(6, 11) for i in range(21)]  # the upper rows are not computed yet
    surface = load_surface(reference_surface(tmp_path / "surface.h5", unfinished))
    assert surface.labels == ["train", "test"] and surface.losses["train"].shape == (21, 11)
    i, j = 3, 2  # the point (x_3, y_2)
    np.testing.assert_allclose(surface.losses["train"][i, j], 1 + X[i] + 10 * Y[j] ** 2)
    np.testing.assert_allclose(surface.metrics["test"]["accuracy"][i, j], (85 - 10 * abs(X[i])) / 100)
    assert not surface.computed["train"][:, 6:].any() and surface.computed["train"][:, :6].all()
    assert np.isnan(surface.losses["train"][:, 6:]).all() and not surface.is_complete
    drawn = surface.plot("heatmap").artists_["heatmap"].get_array()
    assert np.ma.count_masked(drawn) == len(unfinished)


def test_a_reference_line_loads_and_each_loader_names_the_other(tmp_path):
    with h5py.File(tmp_path / "line.h5", "w") as file:
        file["xcoordinates"] = X
        file["train_loss"], file["train_acc"] = X**2, 100 - X**2
    line = load_line(tmp_path / "line.h5")
    np.testing.assert_allclose(line.losses["train"], X**2)
    np.testing.assert_allclose(line.metrics["train"]["accuracy"], 1 - X**2 / 100)
    named = re.escape(repr(str(tmp_path / "line.h5")))
    with pytest.raises(ValueError, match=rf"^{named} holds a line \(reference layout\), not a surface; use `load_line`"):
        load_surface(tmp_path / "line.h5")
    named = re.escape(repr(str(tmp_path / "surface.h5")))
    with pytest.raises(ValueError, match=rf"^{named} holds a surface \(reference layout\), not a line; use `load_surface`"):
        load_line(reference_surface(tmp_path / "surface.h5"))


def test_a_damaged_reference_file_is_named(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as file:
        file["xcoordinates"], file["ycoordinates"] = X, Y
        file["train_loss"] = np.zeros((21, 11))  # in [i, j] order: not how the reference writes it
    message = f"{str(tmp_path / 'bad.h5')!r}: `train_loss` has shape (21, 11), but the coordinates make (11, 21)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        load_surface(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "bad_line.h5", "w") as file:
        file["xcoordinates"], file["train_loss"] = X, np.zeros(X.size + 2)
    message = f"{str(tmp_path / 'bad_line.h5')!r}: `train_loss` has shape ({X.size + 2},), but the coordinates make ({X.size},)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        load_line(tmp_path / "bad_line.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as file:
        file["xcoordinates"] = X
    with pytest.raises(ValueError, match="holds no landscape"):
        load_line(tmp_path / "empty.h5")


def test_the_command_line_plots_and_describes_reference_files(tmp_path, capsys):
    path = reference_surface(tmp_path / "surface.h5", unfinished=[(0, 0)])
    assert main(["plot", str(path), "--kind", "contourf", "--out", str(tmp_path / "surface.png")]) == 0
    assert (tmp_path / "surface.png").stat().st_size > 5000
    assert main(["info", str(path)]) == 0
    assert "train: 230/231 points computed" in capsys.readouterr().out
    with h5py.File(tmp_path / "line.h5", "w") as file:
        file["xcoordinates"], file["train_loss"], file["train_acc"] = X, X**2, 100 - X**2
    assert main(["info", str(tmp_path / "line.h5")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'line.h5'}: LossLine(grid=({X.size},)")


def test_labels_come_train_then_test_then_the_rest_by_name_in_float64(tmp_path):
    with h5py.File(tmp_path / "labels.h5", "w") as file:
        file["xcoordinates"] = X
        for index, label in enumerate(["val", "test", "a", "train"]):
            file[f"{label}_loss"] = (X**2 + index).astype(np.float32)
        file["_loss"] = X  # no label before the suffix: not a landscape
        file["a_acc"] = np.where(X > 0, -1.0, 50.0).astype(np.float32)
        file["train_loss"][3] = -1.0
    line = load_line(tmp_path / "labels.h5")
    assert line.labels == ["train", "test", "a", "val"]
    assert line.losses["train"].dtype == np.float64 and line.metrics["a"]["accuracy"].dtype == np.float64
    np.testing.assert_array_equal(line.losses["val"], (X**2).astype(np.float32).astype(np.float64))
    assert np.isnan(line.losses["train"][3]) and not line.computed["train"][3] and line.computed["test"].all()
    np.testing.assert_array_equal(line.metrics["a"]["accuracy"], np.where(X > 0, -0.01, 0.5))
    assert line.settings == {"source": "reference layout"}


def test_a_damaged_accuracy_and_a_file_without_losses_name_the_file(tmp_path):
    with h5py.File(tmp_path / "bad_acc.h5", "w") as file:
        file["xcoordinates"], file["train_loss"], file["train_acc"] = X, X**2, np.zeros(3)
    message = f"{str(tmp_path / 'bad_acc.h5')!r}: `train_acc` has shape (3,), but the coordinates make ({X.size},)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        load_line(tmp_path / "bad_acc.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as file:
        file["xcoordinates"] = X
    message = (f"{str(tmp_path / 'empty.h5')!r} was not written by losslandscape, and has no `train_loss` (or other "
               "`*_loss`) as the reference code writes: it holds no landscape.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_line(tmp_path / "empty.h5")
