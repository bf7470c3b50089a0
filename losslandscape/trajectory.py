"""Training trajectories: weight snapshots during fit, and their PCA plane (Li et al., Section 7)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Union

import h5py
import keras
import numpy as np

from losslandscape.direction_files import save_directions
from losslandscape.directions import variables_values


class TrajectoryRecorder(keras.callbacks.Callback):
    """Stores the trainable weights during `fit`, one row per snapshot, in one HDF5 file.

    The first snapshot is taken when training begins, then one per epoch or
    every `every` steps. The file is flushed after each snapshot, so a
    trajectory survives an interrupted training.

    Args:
        path: HDF5 file to write (replaced if it exists).
        every: "epoch", or a number of training steps (batches).

    Examples:
        >>> recorder = TrajectoryRecorder("trajectory.h5")
        >>> model.fit(x, y, epochs=20, callbacks=[recorder])  # doctest: +SKIP
        >>> pca = pca_directions(load_trajectory("trajectory.h5"))  # doctest: +SKIP
    """

    def __init__(self, path: Union[str, os.PathLike], every: Union[str, int] = "epoch"):
        super().__init__()
        if every != "epoch" and not (isinstance(every, int) and every >= 1):
            raise ValueError(f'Expected `every` to be "epoch" or a positive number of steps, received: {every!r}')
        self.path = os.fspath(path)
        self.every = every
        self._file = None
        self._epoch = 0
        self._step = 0

    def on_train_begin(self, logs=None):
        variables = self.model.trainable_weights
        size = sum(int(np.prod(v.shape)) for v in variables)
        self._file = h5py.File(self.path, "w")
        self._file.create_dataset("weights", shape=(0, size), maxshape=(None, size), dtype="float32", chunks=(1, size))
        self._file.create_dataset("steps", shape=(0,), maxshape=(None,), dtype="int64")
        self._file.create_dataset("epochs", shape=(0,), maxshape=(None,), dtype="int64")
        self._file.attrs["shapes"] = json.dumps([list(v.shape) for v in variables])
        self._file.attrs["paths"] = json.dumps([v.path for v in variables])
        self._snapshot()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.every != "epoch" and self._step % self.every == 0:
            self._snapshot()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        if self.every == "epoch":
            self._snapshot()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None

    def _snapshot(self):
        flat = np.concatenate([w.ravel() for w in variables_values(self.model.trainable_weights)])
        count = self._file["weights"].shape[0]
        for name, value in (("weights", flat), ("steps", self._step), ("epochs", self._epoch)):
            self._file[name].resize(count + 1, axis=0)
            self._file[name][count] = value
        self._file.flush()


@dataclass
class Trajectory:
    """Weight snapshots of one training run.

    Attributes:
        weights: `(num_snapshots, num_parameters)` flattened trainable weights.
        steps: Training step of each snapshot.
        epochs: Completed epochs at each snapshot.
        shapes: Shapes of the trainable weights, to unflatten a row.
    """

    weights: np.ndarray
    steps: np.ndarray
    epochs: np.ndarray
    shapes: list

    def unflatten(self, vector: np.ndarray) -> list[np.ndarray]:
        """Splits a flat parameter vector into arrays shaped like the trainable weights."""
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        pieces = np.split(np.asarray(vector), np.cumsum(sizes)[:-1])
        return [piece.reshape(shape) for piece, shape in zip(pieces, self.shapes)]


def load_trajectory(path: Union[str, os.PathLike]) -> Trajectory:
    """Reads a trajectory written by `TrajectoryRecorder`.

    Args:
        path: HDF5 file path.

    Returns:
        A `Trajectory`.
    """
    with h5py.File(path, "r") as file:
        if "weights" not in file or "shapes" not in file.attrs:
            raise ValueError(f"{os.fspath(path)!r} is not a trajectory written by TrajectoryRecorder.")
        return Trajectory(
            weights=file["weights"][()],
            steps=file["steps"][()],
            epochs=file["epochs"][()],
            shapes=[tuple(shape) for shape in json.loads(file.attrs["shapes"])],
        )


@dataclass
class PCADirections:
    """The top-2 principal directions of a trajectory and the path projected on them.

    Attributes:
        directions: `[first, second]`, each a list of arrays shaped like the
            trainable weights; unit vectors, orthogonal.
        explained_variance_ratio: Fraction of the variance of the
            trajectory each direction explains.
        explained_variance: Variance along each direction.
        singular_values: Singular values of the centred snapshot matrix.
        coords: `(num_snapshots, 2)`: each snapshot θ_i − θ_final projected
            on the two directions, for plotting the path.
    """

    directions: list
    explained_variance_ratio: np.ndarray
    explained_variance: np.ndarray
    singular_values: np.ndarray
    coords: np.ndarray

    def plane_coords(self, points: int = 21, margin: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        """Grid coordinates that cover the projected path with a margin.

        Args:
            points: Points per axis.
            margin: Extra room on each side, as a fraction of the path's extent.

        Returns:
            `(xcoords, ycoords)` for `compute_surface`.
        """
        low, high = self.coords.min(axis=0), self.coords.max(axis=0)
        room = margin * np.maximum(high - low, 1e-12)
        xcoords, ycoords = (np.linspace(low[k] - room[k], high[k] + room[k], points) for k in range(2))
        return xcoords, ycoords

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes a direction file in the reference's PCA layout (xdirection, ydirection, explained_variance_ratio_, ...)."""
        with h5py.File(path, "w") as file:
            save_directions(file, self.directions)
            file["explained_variance_ratio_"] = self.explained_variance_ratio
            file["explained_variance_"] = self.explained_variance
            file["singular_values_"] = self.singular_values
            file["coords"] = self.coords


def pca_directions(trajectory: Trajectory, final: Optional[Union[keras.Model, list]] = None) -> PCADirections:
    """Finds the plane that best holds a training path, as in Li et al., Section 7.

    The rows θ_i − θ_final are centred and decomposed (PCA); the two leading
    components span the plane, and each snapshot is projected on them.

    Args:
        trajectory: From `load_trajectory`.
        final: The end point θ_final: a model (its trainable weights), a list
            of arrays, or `None` for the last snapshot.

    Returns:
        A `PCADirections`; pass `.directions` to `compute_surface` with the
        model at θ_final, and the surface and this object to
        `plot_trajectory`.

    Examples:
        >>> pca = pca_directions(load_trajectory("trajectory.h5"), final=model)  # doctest: +SKIP
        >>> surface = compute_surface(model, (x, y), pca.directions)  # doctest: +SKIP
    """
    if final is None:
        final_vector = trajectory.weights[-1].astype(np.float64)
    else:
        arrays = variables_values(final.trainable_weights) if isinstance(final, keras.Model) else final
        final_vector = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
    if final_vector.shape[0] != trajectory.weights.shape[1]:
        raise ValueError(
            f"`final` has {final_vector.shape[0]} parameters, the trajectory {trajectory.weights.shape[1]}; "
            "pass the model that was trained while recording."
        )
    differences = trajectory.weights.astype(np.float64) - final_vector
    if len(differences) < 3:
        raise ValueError(f"PCA of a trajectory needs at least 3 snapshots, received {len(differences)}.")
    centred = differences - differences.mean(axis=0)
    _, singular_values, components = np.linalg.svd(centred, full_matrices=False)
    variance = singular_values**2 / (len(differences) - 1)
    top = components[:2]
    return PCADirections(
        directions=[trajectory.unflatten(component.astype(np.float32)) for component in top],
        explained_variance_ratio=variance[:2] / variance.sum(),
        explained_variance=variance[:2],
        singular_values=singular_values[:2],
        coords=differences @ top.T,
    )
