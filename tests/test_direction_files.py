"""Directions in the reference code's HDF5 layout: written atomically, read back whole, settings as attributes."""

import re

import h5py
import numpy as np
import pytest

from losslandscape import load_directions, save_directions


def directions(count):
    rng = np.random.default_rng(0)
    return [[rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3)] for _ in range(count)]


def test_a_file_holds_every_direction_in_the_reference_groups_with_its_settings(tmp_path):
    path = tmp_path / "directions.h5"
    drawn = directions(3)
    save_directions(path, drawn, seed=3, normalization=None, ignore="biasbn")
    with h5py.File(path, "r") as file:
        assert sorted(file) == ["direction2", "xdirection", "ydirection"]
        assert dict(file.attrs) == {"seed": 3, "normalization": "none", "ignore": "biasbn"}
        np.testing.assert_array_equal(file["ydirection/1"][()], drawn[1][1])
    loaded = load_directions(path)
    assert len(loaded) == 3
    for read, written in zip(loaded, drawn):
        assert [a.dtype for a in read] == [np.float32, np.float64]
        for a, b in zip(read, written):
            np.testing.assert_array_equal(a, b)


def test_writing_into_an_open_group_replaces_what_it_held(tmp_path):
    with h5py.File(tmp_path / "surface.h5", "w") as file:
        save_directions(file, directions(2))
        save_directions(file, [[np.zeros((4, 3)), np.ones(3)]])
        loaded = load_directions(file)
    np.testing.assert_array_equal(loaded[0][1], np.ones(3))
    np.testing.assert_array_equal(loaded[1][1], directions(2)[1][1])  # the second is not touched


def test_a_file_without_directions_and_a_missing_file_are_named(tmp_path):
    with h5py.File(tmp_path / "empty.h5", "w") as file:
        file["xcoordinates"] = np.zeros(3)
    message = f"No directions found in {str(tmp_path / 'empty.h5')!r}: expected a group named 'xdirection'."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_directions(tmp_path / "empty.h5")
    message = f"No directions file at {str(tmp_path / 'missing.h5')!r}."
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_directions(tmp_path / "missing.h5")
