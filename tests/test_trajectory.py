import json
import re

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from losslandscape import (  # noqa: E402
    Trajectory,
    TrajectoryRecorder,
    compute_surface,
    load_trajectory,
    pca_directions,
    plot_trajectory,
)


def test_recorder_stores_the_start_and_every_epoch(small_mlp, regression_data, tmp_path):
    x, y = regression_data
    start = np.concatenate([w.numpy().ravel() for w in small_mlp.trainable_weights])
    path = tmp_path / "trajectory.h5"
    recorder = TrajectoryRecorder(path)  # kept, as a user keeps it: the file must still be closed after the fit
    small_mlp.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[recorder])
    trajectory = load_trajectory(path)
    assert trajectory.weights.shape == (4, start.size)
    np.testing.assert_array_equal(trajectory.epochs, [0, 1, 2, 3])
    np.testing.assert_array_equal(trajectory.weights[0], start)
    final = np.concatenate([w.numpy().ravel() for w in small_mlp.trainable_weights])
    np.testing.assert_array_equal(trajectory.weights[-1], final)
    restored = trajectory.unflatten(trajectory.weights[-1])
    for array, variable in zip(restored, small_mlp.trainable_weights):
        np.testing.assert_array_equal(array, variable.numpy())
    small_mlp.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[TrajectoryRecorder(path)])  # the first one closed it
    np.testing.assert_array_equal(load_trajectory(path).epochs, [0, 1])


def test_recorder_every_n_steps(small_mlp, regression_data, tmp_path):
    x, y = regression_data  # 96 samples, batch 16: 6 steps per epoch
    path = tmp_path / "steps.h5"
    small_mlp.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(path, every=4)])
    np.testing.assert_array_equal(load_trajectory(path).steps, [0, 4, 8, 12])
    for bad in (0, 2.0, "step"):
        with pytest.raises(ValueError, match=re.escape(
                f'Expected `every` to be "epoch" or a positive number of steps, received: {bad!r}')):
            TrajectoryRecorder(path, every=bad)


def test_every_step_is_recorded_in_float32_with_the_variables_paths_and_a_file_without_shapes_is_refused(
        small_mlp, regression_data, tmp_path):
    x, y = regression_data
    path = tmp_path / "every.h5"
    small_mlp.fit(x[:32], y[:32], epochs=1, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(path, every=1)])
    with h5py.File(path, "r") as file:
        assert file["weights"].dtype == np.float32 and file["steps"].dtype == np.int64
        np.testing.assert_array_equal(file["steps"][()], [0, 1, 2])
        np.testing.assert_array_equal(file["epochs"][()], [0, 0, 0])
        assert json.loads(file.attrs["paths"]) == [v.path for v in small_mlp.trainable_weights]
    with h5py.File(tmp_path / "bare.h5", "w") as file:
        file["weights"] = np.zeros((3, 2))
    message = f"{str(tmp_path / 'bare.h5')!r} is not a trajectory written by TrajectoryRecorder."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_trajectory(tmp_path / "bare.h5")


def test_pca_recovers_the_plane_of_a_known_path_as_scikit_learn_does():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    size = 50
    first, second = np.linalg.qr(rng.normal(size=(size, 2)))[0].T
    t = np.linspace(0, 1, 30)
    path = np.outer(3 * np.cos(3 * t), first) + np.outer(np.sin(5 * t), second) + 1e-4 * rng.normal(size=(30, size))
    trajectory = Trajectory(path.astype(np.float32), np.arange(30), np.arange(30), [(10, 5)])
    pca = pca_directions(trajectory)
    found = np.stack([np.concatenate([a.ravel() for a in d]) for d in pca.directions]).astype(np.float64)
    # The plane is the one the path was drawn in.
    for vector in (first, second):
        assert np.linalg.norm(found @ vector) > 0.9999
    np.testing.assert_allclose(found @ found.T, np.eye(2), atol=1e-6)
    reference = PCA(n_components=2).fit(path - path[-1])
    np.testing.assert_allclose(pca.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(found * reference.components_, axis=1)), [1, 1], atol=1e-5)
    relative = path - path[-1]
    np.testing.assert_allclose(pca.coords, relative @ found.T, atol=1e-4)
    np.testing.assert_allclose(pca.explained_variance, reference.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(pca.singular_values, reference.singular_values_, rtol=1e-4)
    assert [a.dtype for a in pca.directions[0]] == [np.float32] and pca.directions[0][0].shape == (10, 5)


def test_the_final_point_the_snapshots_needed_the_plane_grid_and_the_file():
    from losslandscape.trajectory import PCADirections

    rng = np.random.default_rng(1)
    path = rng.normal(size=(4, 6)).astype(np.float32)
    trajectory = Trajectory(path, np.arange(4), np.arange(4), [(2, 3)])
    final = [np.full((2, 3), 0.5, np.float32)]
    pca = pca_directions(trajectory, final=final)
    found = np.stack([np.concatenate([a.ravel() for a in d]) for d in pca.directions]).astype(np.float64)
    np.testing.assert_allclose(pca.coords, (path - 0.5) @ found.T, atol=1e-5)
    message = "`final` has 5 parameters, the trajectory 6; pass the model that was trained while recording."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pca_directions(trajectory, final=[np.zeros(5)])
    with pytest.raises(ValueError, match=r"^PCA of a trajectory needs at least 3 snapshots, received 2\.$"):
        pca_directions(Trajectory(path[:2], np.arange(2), np.arange(2), [(2, 3)]))
    assert pca_directions(Trajectory(path[:3], np.arange(3), np.arange(3), [(2, 3)])).coords.shape == (3, 2)
    plane = PCADirections([], np.zeros(2), np.zeros(2), np.zeros(2), np.array([[0.0, -1.0], [2.0, 1.0], [1.0, 3.0]]))
    xcoords, ycoords = plane.plane_coords()
    np.testing.assert_allclose(xcoords, np.linspace(-0.6, 2.6, 21))  # 0.3 of the extent on each side
    np.testing.assert_allclose(ycoords, np.linspace(-2.2, 4.2, 21))
    xcoords, _ = plane.plane_coords(points=5, margin=0.0)
    np.testing.assert_allclose(xcoords, np.linspace(0, 2, 5))


def test_a_saved_pca_file_holds_the_directions_and_the_decomposition(tmp_path):
    from losslandscape import load_directions

    path = np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32)
    pca = pca_directions(Trajectory(path, np.arange(5), np.arange(5), [(6,)]))
    pca.save(tmp_path / "pca.h5")
    with h5py.File(tmp_path / "pca.h5", "r") as file:
        for name, value in (("explained_variance_ratio_", pca.explained_variance_ratio),
                            ("explained_variance_", pca.explained_variance), ("singular_values_", pca.singular_values),
                            ("coords", pca.coords)):
            np.testing.assert_array_equal(file[name][()], value)
    np.testing.assert_array_equal(load_directions(tmp_path / "pca.h5")[1][0], pca.directions[1][0])


def test_trajectory_on_its_pca_surface(small_mlp, regression_data, tmp_path):
    x, y = regression_data
    path = tmp_path / "trajectory.h5"
    small_mlp.fit(x, y, epochs=6, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(path)])
    pca = pca_directions(load_trajectory(path), final=small_mlp)
    np.testing.assert_allclose(pca.coords[-1], [0, 0], atol=1e-6)
    xcoords, ycoords = pca.plane_coords(points=7)
    assert xcoords.min() < pca.coords[:, 0].min() and ycoords.max() > pca.coords[:, 1].max()
    surface = compute_surface(small_mlp, (x, y), pca.directions, xcoords, ycoords, verbose=0)
    drawn = plot_trajectory(surface, pca).artists_
    np.testing.assert_allclose(drawn["path"].get_xdata(), pca.coords[:, 0])
    assert surface.ax_.get_xlabel().startswith("1st PC: ")
    pca.save(tmp_path / "pca.h5")
    with h5py.File(tmp_path / "pca.h5", "r") as file:
        assert {"xdirection", "ydirection", "explained_variance_ratio_"} <= set(file)
    plt.close("all")


def test_the_explained_variance_ratio_counts_every_direction_as_scikit_learn_does():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(3)
    path = rng.normal(size=(12, 8)) * [4.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.2, 0.1]  # spread in every direction
    trajectory = Trajectory(path.astype(np.float32), np.arange(12), np.arange(12), [(8,)])
    pca = pca_directions(trajectory)
    reference = PCA(n_components=2).fit(path.astype(np.float32).astype(np.float64) - path[-1].astype(np.float32))
    np.testing.assert_allclose(pca.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-5)
    assert pca.explained_variance_ratio.sum() < 0.99  # the other six directions hold the rest
