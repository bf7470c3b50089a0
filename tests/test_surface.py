import re

import h5py
import numpy as np
import pytest

from conftest import edited, trained_classifier

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
        assert file.attrs["format_version"] == 1
    loaded = load_line(path)
    np.testing.assert_array_equal(loaded.losses["train"], line.losses["train"])
    np.testing.assert_array_equal(loaded.metrics["train"]["mae"], line.metrics["train"]["mae"])
    np.testing.assert_array_equal(loaded.direction[0], line.direction[0])


def test_a_failed_write_is_one_oserror_and_leaves_no_temporary_file(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()  # a folder where the file should go: the final rename fails
    message = f"Could not write {str(taken)!r} (Is a directory); the previous file is kept."
    with pytest.raises(OSError, match=f"^{re.escape(message)}$"):
        LossLine([0.0, 1.0], {"train": [1.0, 2.0]}, {"train": {}}).save(taken)
    assert [path.name for path in tmp_path.iterdir()] == ["taken"]


def test_a_missing_file_is_named_and_integer_coordinates_are_stored_as_floats(tmp_path):
    missing = tmp_path / "missing.h5"
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(f'No landscape file at {str(missing)!r}.')}$"):
        load_surface(missing)
    surface = LossSurface([0, 1], [0, 1, 2], {"train": np.ones((2, 3))}, {"train": {}})
    assert surface.xcoords.dtype == surface.ycoords.dtype == np.float64
    surface.save(tmp_path / "surface.h5")
    with h5py.File(tmp_path / "surface.h5", "r") as file:
        assert file["xcoordinates"].dtype == file["ycoordinates"].dtype == np.float64


def test_loading_the_wrong_kind_says_which_loader(tmp_path):
    path = tmp_path / "line.h5"
    LossLine(np.arange(3.0), {"train": np.ones(3)}, {"train": {}}).save(path)
    message = f"{str(path)!r} holds a line, not a surface; use `load_line`."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
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


def test_accuracy_in_the_file_is_in_percent(tmp_path):
    model, x, y = trained_classifier(400, 6, 16, epochs=5)
    surface = compute_surface(model, (x, y), xcoords=np.linspace(-0.2, 0.2, 3), seed=0, verbose=0)
    accuracy = surface.metrics["train"]["accuracy"]
    assert 0.6 < accuracy[1, 1] <= 1.0
    surface.save(tmp_path / "surface.h5")
    with h5py.File(tmp_path / "surface.h5", "r") as file:
        np.testing.assert_allclose(file["train_acc"][()], 100 * accuracy.T)
    np.testing.assert_allclose(load_surface(tmp_path / "surface.h5").metrics["train"]["accuracy"], accuracy)


def _saved_surface(path):
    x = np.linspace(-1, 1, 4)
    LossSurface(x, x[:3], {"train": np.ones((4, 3))}, {"train": {"accuracy": np.ones((4, 3))}}).save(path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f.__delitem__("train_loss"), f.create_dataset("train_loss", data=np.ones(3))), "`train_loss` has shape (3,)"),
        (lambda f: (f.__delitem__("computed/train"), f.create_dataset("computed/train", data=np.ones((2, 2), bool))),
         "`computed/train` has shape (2, 2)"),
        (lambda f: f.__delitem__("ycoordinates"), "has no `ycoordinates`"),
        (lambda f: f.__delitem__("train_loss"), "has no `train_loss`"),
        (lambda f: (f.__delitem__("metrics/train/accuracy"), f.create_dataset("metrics/train/accuracy", data=np.ones(12))),
         "`metrics/train/accuracy` has shape (12,)"),
    ],
)
@pytest.mark.parametrize("sealed", [True, False])
def test_damaged_files_are_refused_naming_the_file_and_the_dataset(tmp_path, damage, message, sealed):
    """Sealed, the checksum finds the change; without one (a file of another tool), the layout checks do."""
    path = tmp_path / "surface.h5"
    _saved_surface(path)
    with edited(path, seal=False) if not sealed else h5py.File(path, "r+") as file:
        damage(file)
    with pytest.raises(ValueError, match="surface.h5") as error:
        load_surface(path)
    expected = "is damaged or was changed after it was saved: its bytes do not match its checksum" if sealed else message
    assert expected in str(error.value)


def test_a_damaged_line_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "line.h5"
    LossLine([-1.0, 0.0, 1.0], {"train": [1.0, 0.5, 1.0]}, {"train": {}}).save(path)
    with edited(path, seal=False) as file:
        del file["xcoordinates"]
    message = f"{str(path)!r} has no `xcoordinates`: it is damaged or not a landscape file."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_line(path)


def test_a_file_without_computed_masks_counts_every_point_and_is_still_checked(tmp_path):
    path = tmp_path / "surface.h5"
    _saved_surface(path)
    with edited(path, seal=False) as file:
        del file["computed/train"]  # as files of other tools are
    assert load_surface(path).computed["train"].all()
    with edited(path, seal=False) as file:
        del file["metrics/train/accuracy"]
        file.create_dataset("metrics/train/accuracy", data=np.ones(12))
    with pytest.raises(ValueError, match=re.escape("`metrics/train/accuracy` has shape (12,)")):
        load_surface(path)


def test_a_file_with_a_kind_but_no_labels_is_refused_by_name(tmp_path):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as file:
        file.attrs["kind"] = "surface"
        file["xcoordinates"] = file["ycoordinates"] = np.linspace(-1, 1, 3)
    message = f"{str(path)!r} was not written by losslandscape (no 'kind' and 'labels' attributes)."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_surface(path)


@pytest.mark.parametrize("size", [0, 100, 700])
def test_empty_or_truncated_files_are_refused(tmp_path, size):
    path = tmp_path / "surface.h5"
    _saved_surface(path)
    saved = len(path.read_bytes())
    path.write_bytes(path.read_bytes()[:size])
    message = {
        0: f"{str(path)!r} is not a readable HDF5 file (empty, truncated or of another format): ",
        100: f"{str(path)!r} is truncated: it ends after 100 bytes, inside its seal.",
        700: f"{str(path)!r} is truncated: it holds 188 of the {saved - 512} bytes it was saved with.",
    }[size]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        load_surface(path)


def test_repr_coords_and_value_errors_name_what_there_is(tmp_path):
    line = LossLine([-1, 0, 1], {"train": [1.0, 0.5, 1.0]}, {"train": {"accuracy": [0.5, 0.9, 0.5]}})
    assert line.coords.dtype == np.float64
    assert repr(line) == "LossLine(grid=(3,), labels=['train'], metrics=['loss', 'accuracy'])"
    with pytest.raises(KeyError, match=r"Unknown metric 'acc' for dataset 'train'; available: \['loss', 'accuracy'\]\."):
        line.values("train", "acc")
    line.save(tmp_path / "line.h5")
    assert load_line(tmp_path / "line.h5").direction is None  # saved without a direction
    surface = LossSurface([0.0, 1.0], [0.0, 1.0], {"train": np.ones((2, 2))}, {"train": {}})
    surface.save(tmp_path / "surface.h5")
    path = str(tmp_path / "surface.h5")
    with pytest.raises(ValueError, match=rf"^{re.escape(repr(path))} holds a surface, not a line; use `load_surface`\.$"):
        load_line(path)


def test_a_new_landscape_holds_float64_values_masks_of_computed_points_and_nothing_drawn():
    settings = {"normalization": "filter"}
    surface = LossSurface(
        [0.0, 1.0], [0.0, 1.0, 2.0],
        losses={"train": np.ones((2, 3), np.float32), "test": [[1, 2, 3], [4, 5, 6]]},
        metrics={"train": {"accuracy": np.full((2, 3), 0.5, np.float32)}},
        settings=settings,
        computed={"train": [[1, 0, 1], [1, 1, 1]]},
    )
    assert surface.losses["train"].dtype == surface.losses["test"].dtype == np.float64
    np.testing.assert_array_equal(surface.losses["test"], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert surface.metrics["train"]["accuracy"].dtype == np.float64
    assert surface.metrics["test"] == {}
    assert surface.computed["train"].dtype == surface.computed["test"].dtype == np.bool_
    np.testing.assert_array_equal(surface.computed["train"], [[True, False, True], [True, True, True]])
    np.testing.assert_array_equal(surface.computed["test"], np.ones((2, 3), bool))
    assert not surface.is_complete
    assert surface.settings == settings and surface.settings is not settings
    assert (surface.figures_, surface.axes_, surface.artists_) == ({}, {}, {})
    assert surface.figure_ is None and surface.ax_ is None
    line = LossLine([0.0, 1.0], {"train": [1.0, 2.0]}, {}, settings=None)
    assert line.settings == {} and line.metrics == {"train": {}} and line.is_complete
    assert line.computed["train"].dtype == np.bool_


def test_recording_points_marks_them_computed():
    x = np.linspace(-1, 1, 3)
    surface = LossSurface(x, x[:2], {"train": np.full((3, 2), np.nan)}, {}, computed={"train": np.zeros((3, 2))})
    surface.record("train", np.array([1, 4]), {"loss": np.array([0.5, 0.25]), "accuracy": np.array([1.0, 0.0])})
    np.testing.assert_array_equal(surface.computed["train"], [[False, True], [False, False], [True, False]])
    assert surface.losses["train"][0, 1] == 0.5 and surface.metrics["train"]["accuracy"][2, 0] == 0.0
    surface.record("train", np.array([0, 2, 3, 5]), {"loss": np.zeros(4)})
    assert surface.is_complete


@pytest.mark.parametrize("kind", ["line", "surface"])
def test_partial_landscapes_keep_their_masks_and_settings_through_a_file(tmp_path, kind):
    path = tmp_path / f"{kind}.h5"
    settings = {"seed": 3, "normalization": "layer"}
    if kind == "line":
        computed = np.array([True, False, True])
        LossLine(np.linspace(-1, 1, 3), {"train": [1.0, np.nan, 2.0]}, {}, settings=settings,
                 computed={"train": computed}).save(path)
        loaded = load_line(path)
    else:
        computed = np.array([[True, False], [True, True], [False, True]])
        LossSurface(np.linspace(-1, 1, 3), np.linspace(0, 1, 2), {"train": np.where(computed, 1.0, np.nan)}, {},
                    settings=settings, computed={"train": computed}).save(path)
        loaded = load_surface(path)
    np.testing.assert_array_equal(loaded.computed["train"], computed)
    assert not loaded.is_complete
    assert loaded.settings["seed"] == 3 and loaded.settings["normalization"] == "layer"


def test_a_file_without_a_metrics_group_loads_with_the_loss_alone(tmp_path):
    path = tmp_path / "surface.h5"
    _saved_surface(path)
    with edited(path, seal=False) as file:
        del file["metrics"]  # as in files of other tools, which keep the loss and accuracy at the top level
    surface = load_surface(path)
    assert surface.metrics == {"train": {}}
    np.testing.assert_array_equal(surface.losses["train"], np.ones((4, 3)))
