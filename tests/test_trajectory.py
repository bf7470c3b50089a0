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
    small_mlp.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[TrajectoryRecorder(path)])
    trajectory = load_trajectory(path)
    assert trajectory.weights.shape == (4, start.size)
    np.testing.assert_array_equal(trajectory.epochs, [0, 1, 2, 3])
    np.testing.assert_array_equal(trajectory.weights[0], start)
    final = np.concatenate([w.numpy().ravel() for w in small_mlp.trainable_weights])
    np.testing.assert_array_equal(trajectory.weights[-1], final)
    restored = trajectory.unflatten(trajectory.weights[-1])
    for array, variable in zip(restored, small_mlp.trainable_weights):
        np.testing.assert_array_equal(array, variable.numpy())


def test_recorder_every_n_steps(small_mlp, regression_data, tmp_path):
    x, y = regression_data  # 96 samples, batch 16: 6 steps per epoch
    path = tmp_path / "steps.h5"
    small_mlp.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[TrajectoryRecorder(path, every=4)])
    np.testing.assert_array_equal(load_trajectory(path).steps, [0, 4, 8, 12])
    with pytest.raises(ValueError, match="every"):
        TrajectoryRecorder(path, every=0)


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
