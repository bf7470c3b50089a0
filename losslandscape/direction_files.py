"""Directions in HDF5 files, in the layout of the paper's reference code; needs h5py and numpy only."""

from __future__ import annotations

from typing import Sequence

import h5py
import numpy as np

from losslandscape.hdf5_files import opened_for_reading, write_file_atomically

DIRECTION_GROUP_NAMES = ("xdirection", "ydirection")


def save_directions(path_or_group, directions: Sequence[Sequence[np.ndarray]], **attributes) -> None:
    """Writes directions in the reference implementation's HDF5 layout.

    The first two directions go to groups `xdirection` and `ydirection`,
    further ones to `direction2`, `direction3`, ...; each group holds one
    dataset per trainable variable, named "0", "1", ...

    Args:
        path_or_group: A file path or an open `h5py.Group`.
        directions: The directions, as returned by `random_directions`.
        **attributes: Settings stored as attributes of the file or group
            (e.g. `seed=0, normalization="filter"`); `None` is stored as
            the string "none".

    Examples:
        >>> directions = [[np.ones((4, 3)), np.zeros(3)], [np.zeros((4, 3)), np.ones(3)]]
        >>> save_directions("/tmp/directions.h5", directions, seed=0)
    """
    if isinstance(path_or_group, h5py.Group):
        _write_directions(path_or_group, directions, attributes)
    else:
        write_file_atomically(path_or_group, lambda root: _write_directions(root, directions, attributes))


def load_directions(path_or_group) -> list[list[np.ndarray]]:
    """Reads directions written by `save_directions` or the reference code.

    Args:
        path_or_group: A file path or an open `h5py.Group`.

    Returns:
        The list of directions, each a list of numpy arrays.

    Examples:
        >>> save_directions("/tmp/directions.h5", [[np.ones((4, 3)), np.zeros(3)]])
        >>> [d.shape for d in load_directions("/tmp/directions.h5")[0]]
        [(4, 3), (3,)]
    """
    if isinstance(path_or_group, h5py.Group):
        return _read_directions(path_or_group)
    with opened_for_reading(path_or_group, "directions") as file:
        return _read_directions(file)


def direction_group_name(index: int) -> str:
    """Returns the HDF5 group name of the direction at `index`."""
    if index < len(DIRECTION_GROUP_NAMES):
        return DIRECTION_GROUP_NAMES[index]
    return f"direction{index}"


def _write_directions(group, directions, attributes):
    for index, direction in enumerate(directions):
        direction_group = group.require_group(direction_group_name(index))
        for position, array in enumerate(direction):
            name = str(position)
            if name in direction_group:
                del direction_group[name]
            direction_group.create_dataset(name, data=np.asarray(array))
    for key, value in attributes.items():
        group.attrs[key] = "none" if value is None else value


def _read_directions(group):
    directions = []
    index = 0
    while direction_group_name(index) in group:
        direction_group = group[direction_group_name(index)]
        count = len(direction_group.keys())
        directions.append([direction_group[str(i)][()] for i in range(count)])
        index += 1
    if not directions:
        raise ValueError(
            f"No directions found in {group.file.filename!r}: expected a "
            "group named 'xdirection'."
        )
    return directions
