import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import keras
import numpy as np
import pytest
from conftest import edited, trained_classifier, same_on_every_backend

from losslandscape import LossSurface, compute_line, compute_surface, load_surface
from losslandscape.progress import Progress
from losslandscape.resume import check_resumable

GRID = np.linspace(-1, 1, 21)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A trained model and its data on disk, so another process can run the same grid."""
    folder = tmp_path_factory.mktemp("run")
    model, x, y = trained_classifier(2000, 20, 64)
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", x=x, y=y)
    return folder


def load_saved(folder):
    data = np.load(folder / "data.npz")
    return keras.models.load_model(folder / "model.keras"), (data["x"], data["y"])


@pytest.mark.slow
@same_on_every_backend
def test_sigkill_mid_grid_then_resume_equals_an_uninterrupted_run(saved_run, tmp_path):
    path = tmp_path / "surface.h5"
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        from losslandscape import compute_surface
        data = np.load({str(saved_run / 'data.npz')!r})
        model = keras.models.load_model({str(saved_run / 'model.keras')!r})
        grid = np.linspace(-1, 1, 21)
        for _ in range(100):  # far more work than the test waits for
            compute_surface(model, (data["x"], data["y"]), xcoords=grid, seed=5, batch_size=25,
                            path={str(path)!r}, chunk_size=8, points_per_call=1, verbose=0)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    done = 0
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if path.exists():
                with h5py.File(path, "r") as file:
                    done = int(file["computed/train"][()].sum())
                if done >= 24:
                    break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert 24 <= done < GRID.size**2, f"the run was not caught mid-grid ({done} points done)"
    interrupted = load_surface(path)
    assert 24 <= interrupted.computed["train"].sum() < GRID.size**2
    assert np.isnan(interrupted.losses["train"][~interrupted.computed["train"]]).all()

    model, data = load_saved(saved_run)
    # One point per call everywhere: the vectorized evaluator agrees only to float32 rounding.
    resumed = compute_surface(model, data, xcoords=GRID, seed=5, batch_size=25, path=path, points_per_call=1, verbose=0)
    uninterrupted = compute_surface(model, data, xcoords=GRID, seed=5, batch_size=25, points_per_call=1, verbose=0)
    assert resumed.is_complete
    np.testing.assert_array_equal(resumed.losses["train"], uninterrupted.losses["train"])
    np.testing.assert_array_equal(resumed.metrics["train"]["accuracy"], uninterrupted.metrics["train"]["accuracy"])
    np.testing.assert_array_equal(load_surface(path).losses["train"], uninterrupted.losses["train"])


def test_resume_computes_only_the_missing_points(saved_run, tmp_path, monkeypatch):
    model, data = load_saved(saved_run)
    path = tmp_path / "line.h5"
    calls = []
    original = Progress.add

    def count_then_stop(self, n, *args, **kwargs):
        calls.append(n)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return original(self, n, *args, **kwargs)

    monkeypatch.setattr(Progress, "add", count_then_stop)
    with pytest.raises(KeyboardInterrupt):
        compute_line(model, data, coords=GRID, seed=1, path=path, chunk_size=4, verbose=0)
    monkeypatch.setattr(Progress, "add", original)
    # Two whole chunks of 4 were saved before the interruption at the 10th point.
    with h5py.File(path, "r") as file:
        assert file["computed/train"][()].sum() == 8
    evaluated = []
    monkeypatch.setattr(Progress, "add", lambda self, n, *a, **k: evaluated.append(n))
    resumed = compute_line(model, data, coords=GRID, path=path, verbose=0)
    assert sum(evaluated) == GRID.size - 8
    fresh = compute_line(model, data, coords=GRID, seed=1, verbose=0)
    np.testing.assert_array_equal(resumed.losses["train"], fresh.losses["train"])


@same_on_every_backend
@pytest.mark.parametrize(
    "change, difference",
    [
        ({"seed": 2}, "directions"),
        ({"xcoords": np.linspace(-1, 1, 5)}, "coords"),
        ({"max_samples": 1000}, "data"),
        ({"include_regularization": False}, "include_regularization"),
        ({"normalization": "layer"}, "normalization"),
        ({"orthogonal": True}, "orthogonal"),
        ({"ignore": None}, "ignore"),
        ({"batch_size": 64}, "batch_size"),
    ],
)
def test_resuming_with_other_settings_is_refused(saved_run, tmp_path, change, difference):
    model, data = load_saved(saved_run)
    path = tmp_path / "surface.h5"
    settings = dict(xcoords=np.linspace(-1, 1, 3), seed=1, verbose=0)
    compute_surface(model, data, path=path, **settings)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=f"another `{difference}`"):
        compute_surface(model, data, path=path, **dict(settings, **change))
    assert path.read_bytes() == before


def test_resuming_with_other_weights_is_refused(saved_run, tmp_path):
    model, data = load_saved(saved_run)
    path = tmp_path / "surface.h5"
    compute_surface(model, data, xcoords=np.linspace(-1, 1, 3), path=path, verbose=0)
    model.layers[0].kernel.assign(model.layers[0].kernel.numpy() * 1.01)
    with pytest.raises(ValueError, match="another `model`"):
        compute_surface(model, data, xcoords=np.linspace(-1, 1, 3), path=path, verbose=0)


def test_finished_points_with_a_real_nan_loss_are_not_recomputed(saved_run, tmp_path, monkeypatch):
    """The `computed` mask decides what is done: a finished point whose loss is NaN stays done."""
    model, data = load_saved(saved_run)
    path = tmp_path / "line.h5"
    compute_line(model, data, coords=GRID, seed=1, path=path, verbose=0)
    with edited(path) as file:
        losses = file["train_loss"][()]
        losses[[2, 5]] = np.nan  # finished points whose loss overflowed
        losses[[7, 8, 9]] = np.nan  # unfinished points
        file["train_loss"][...] = losses
        computed = file["computed/train"][()]
        computed[[7, 8, 9]] = False
        file["computed/train"][...] = computed
    evaluated = []
    monkeypatch.setattr(Progress, "add", lambda self, n, *a, **k: evaluated.append(n))
    resumed = compute_line(model, data, coords=GRID, path=path, verbose=0)
    assert sum(evaluated) == 3
    assert np.isnan(resumed.losses["train"][[2, 5]]).all()
    assert np.isfinite(np.delete(resumed.losses["train"], [2, 5])).all()
    assert resumed.computed["train"].all()


@same_on_every_backend
@pytest.mark.parametrize(
    "compiled",
    [
        dict(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=0), metrics=["accuracy"]),
        dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"], loss_weights=[0.5]),
        dict(loss="sparse_categorical_crossentropy", metrics=["sparse_top_k_categorical_accuracy"]),
        dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"]),
    ],
    ids=["loss_config", "loss_weights", "metrics", "weighted_metrics"],
)
def test_resuming_with_another_compiled_loss_is_refused(saved_run, tmp_path, compiled):
    model, data = load_saved(saved_run)
    path = tmp_path / "surface.h5"
    compute_surface(model, data, xcoords=np.linspace(-1, 1, 3), seed=1, path=path, verbose=0)
    before = path.read_bytes()
    model.compile(**compiled)
    with pytest.raises(ValueError, match="another `compiled loss and metrics`"):
        compute_surface(model, data, xcoords=np.linspace(-1, 1, 3), seed=1, path=path, verbose=0)
    assert path.read_bytes() == before


def test_a_resumed_run_uses_the_points_per_call_of_the_first_and_is_bitwise_equal(saved_run, tmp_path, monkeypatch):
    import losslandscape.engine as engine

    model, data = load_saved(saved_run)
    path = tmp_path / "surface.h5"
    grid = np.linspace(-1, 1, 12)  # 144 points: "auto" probes
    first = compute_surface(model, data, xcoords=grid, seed=2, path=path, verbose=0)
    chosen = first.settings["points_per_call_used"]["train"]
    with edited(path) as file:
        computed = file["computed/train"][()]
        computed[6:, :] = False  # as if killed half way; 60 points are left, too few to probe
        file["computed/train"][...] = computed
    probes = []
    monkeypatch.setattr(engine, "fastest_evaluator", lambda *args, **kwargs: probes.append(args))
    resumed = compute_surface(model, data, xcoords=grid, seed=2, path=path, verbose=0)
    assert not probes and resumed.settings["points_per_call_used"]["train"] == chosen
    np.testing.assert_array_equal(resumed.losses["train"], first.losses["train"])
    assert load_surface(path).settings["points_per_call_used"] == {"train": chosen}


@same_on_every_backend
def test_a_second_writer_of_the_same_file_is_refused(saved_run, tmp_path):
    model, data = load_saved(saved_run)
    path = tmp_path / "surface.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from losslandscape.output_lock import exclusive_output
            with exclusive_output({str(path)!r}):
                print("locked", flush=True)
                time.sleep(60)
            """)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OSError, match=f"Another process \\(pid {holder.pid}\\) is computing into"):
            compute_surface(model, data, xcoords=np.linspace(-1, 1, 3), path=path, verbose=0)
        assert not path.exists()
    finally:
        holder.kill()
        holder.wait()
    # The lock died with its process: the file can be written now.
    compute_surface(model, data, xcoords=np.linspace(-1, 1, 3), path=path, verbose=0)
    assert load_surface(path).is_complete and not (tmp_path / "surface.h5.lock").exists()


@same_on_every_backend
def test_temporaries_of_killed_saves_are_removed_when_the_file_is_next_opened(saved_run, tmp_path):
    model, data = load_saved(saved_run)
    path = tmp_path / "surface.h5"
    stale = tmp_path / "surface.h5.4194999.tmp"
    stale.write_bytes(b"half an HDF5 file")
    unrelated = tmp_path / "surface.h5.notes.tmp"
    unrelated.write_text("mine")
    compute_surface(model, data, xcoords=np.linspace(-1, 1, 3), path=path, verbose=0)
    assert not stale.exists() and unrelated.exists()


@same_on_every_backend
def test_the_message_names_every_setting_that_differs_also_ones_only_the_file_has():
    expected = {"model": "a", "seed": 1, "coords": [0.0, 1.0]}
    with pytest.raises(ValueError) as error:
        check_resumable("run.h5", dict(expected, seed=2, coords=[0.0], written_by="a later version"), expected)
    assert str(error.value) == (
        "'run.h5' was computed with another `seed`, `coords` and `written_by` than this run, so its points cannot "
        "be reused. Pass the same model, data, directions (or seed), coordinates and settings to resume, or another "
        "`path` (or delete the file) to start over."
    )
    check_resumable("run.h5", dict(expected), expected)
    with pytest.raises(ValueError, match=r"^'run.h5' was computed with another `model` than this run, so"):
        check_resumable("run.h5", dict(expected, model="b"), expected)


@same_on_every_backend
def test_a_file_without_a_run_fingerprint_is_not_resumed(saved_run, tmp_path):
    model, data = load_saved(saved_run)
    path = tmp_path / "surface.h5"
    grid = np.linspace(-1, 1, 3)
    LossSurface(grid, grid, {"train": np.zeros((3, 3))}, {"train": {}}).save(path)
    with pytest.raises(ValueError) as error:
        compute_surface(model, data, xcoords=grid, path=path, verbose=0)
    assert str(error.value) == (
        f"{str(path)!r} holds a landscape without a run fingerprint, so it cannot be resumed. Pass another "
        "`path`, or delete the file to start over."
    )
