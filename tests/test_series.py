"""Landscapes over training: one per epoch from a callback, equal to model.evaluate, training untouched."""

import json
import os
import re
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

from conftest import all_state, edited, same_on_every_backend, without_package
from losslandscape import LandscapeCallback, LandscapeSeries, LossSurface, animate_series, load_series, plot_series
from losslandscape.output_lock import OutputInUseError


def _model_and_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    return model, rng.normal(size=(128, 6)).astype("float32"), rng.integers(0, 3, 128)


class _RecordWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [[w.copy() for w in self.model.get_weights()]]

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.model.get_weights()])


def test_a_three_epoch_fit_writes_four_landscapes_centred_on_each_epochs_weights(tmp_path):
    model, x, y = _model_and_data()
    record = _RecordWeights()
    callback = LandscapeCallback((x, y), tmp_path / "series.h5", points=5, seed=0)
    model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0, callbacks=[record, callback])
    series = load_series(tmp_path / "series.h5")
    assert series.epochs == [0, 1, 2, 3] and series.steps == [0, 4, 8, 12]
    assert set(series.logs[1]) >= {"loss", "accuracy"} and series.logs[0] == {}
    final = [w.copy() for w in model.get_weights()]
    for landscape, weights in zip(series.landscapes, record.weights):
        model.set_weights(weights)
        expected = model.evaluate(x, y, batch_size=128, verbose=0, return_dict=True)
        np.testing.assert_allclose(landscape.losses["train"][2, 2], expected["loss"], rtol=1e-5)
        np.testing.assert_allclose(landscape.metrics["train"]["accuracy"][2, 2], expected["accuracy"], rtol=1e-6)
    model.set_weights(final)
    # "fixed": one set of raw directions, filter-normalized to each epoch's weights.
    first, last = series.landscapes[0].directions[0][0], series.landscapes[3].directions[0][0]
    np.testing.assert_allclose(first / np.linalg.norm(first, axis=0), last / np.linalg.norm(last, axis=0), rtol=1e-6)
    assert len(callback.seconds) == 4 and all(s > 0 for s in callback.seconds)


def test_the_callback_leaves_training_bitwise_as_without_it(tmp_path):
    results = []
    for with_callback in (False, True):
        model, x, y = _model_and_data()
        callbacks = [LandscapeCallback((x, y), tmp_path / "series.h5", kind="line", points=5)] if with_callback else []
        model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0, callbacks=callbacks)
        results.append(all_state(model) + [v.numpy() for v in model.optimizer.variables])
    for before, after in zip(*results):
        np.testing.assert_array_equal(before, after)
    assert len(load_series(tmp_path / "series.h5").landscapes) == 3


@same_on_every_backend
def test_a_series_plots_on_one_scale_and_bad_arguments_fail_at_once(tmp_path):
    model, x, y = _model_and_data()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0,
              callbacks=[LandscapeCallback((x, y), tmp_path / "series.h5", points=5, directions="fresh")])
    series = load_series(tmp_path / "series.h5")
    assert plot_series(series, kind="contourf", columns=2) is series
    contour_sets = [landscape.artists_["contourf"] for landscape in series.landscapes]
    assert all(np.array_equal(c.levels, contour_sets[0].levels) for c in contour_sets)
    assert [ax.get_title() for ax in series.axes_.ravel()] == ["epoch 0", "epoch 1", "epoch 2", ""]
    assert series.axes_.shape == (2, 2) and not series.axes_[1, 1].get_visible()
    # One colour bar for the three panels: the figure holds their Axes, the hidden fourth, and the bar's.
    assert len(series.figure_.axes) == 5 and series.colorbar_.ax in series.figure_.axes
    for arguments, message in [(dict(kind="volume"), "`kind`"), (dict(directions="random"), "`directions`"),
                               (dict(every=0), "`every`"), (dict(points=1), "`points`"),
                               (dict(every_steps=0), "^Expected `every_steps` to be a positive integer"),
                               (dict(max_samples=0), "^Expected `max_samples` to be a positive integer"),
                               (dict(every=2, every_steps=3), re.escape(
                                   "Pass `every` (2) or `every_steps` (3), not both: landscapes come either every "
                                   "few epochs or every few optimizer steps.") + "$"),
                               (dict(path=tmp_path / "missing" / "s.h5"), "does not exist")]:
        with pytest.raises((ValueError, OSError), match=message):
            LandscapeCallback((x, y), **{"path": tmp_path / "s.h5", **arguments})
    with h5py.File(tmp_path / "single.h5", "w") as file:
        file.attrs["kind"] = "surface"
    with pytest.raises(ValueError, match="holds no series"):
        load_series(tmp_path / "single.h5")


@same_on_every_backend
def test_a_series_becomes_an_animation(tmp_path):
    pytest.importorskip("PIL")
    model, x, y = _model_and_data()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0,
              callbacks=[LandscapeCallback((x, y), tmp_path / "series.h5", points=5)])
    series = load_series(tmp_path / "series.h5")
    animate_series(series, tmp_path / "training.gif")
    from PIL import Image

    with Image.open(tmp_path / "training.gif") as gif:
        assert gif.n_frames == 3
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        animate_series(series, tmp_path / "training.avi")


@same_on_every_backend
def test_the_command_line_plots_and_describes_a_series(tmp_path, capsys):
    import sys

    from losslandscape.cli import main

    model, x, y = _model_and_data()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0,
              callbacks=[LandscapeCallback((x, y), tmp_path / "series.h5", points=5)])
    assert main(["plot", str(tmp_path / "series.h5"), "--kind", "heatmap", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 5000
    assert main(["info", str(tmp_path / "series.h5")]) == 0
    printed = capsys.readouterr().out
    assert "a series of 2 landscapes" in printed and "epoch 1 (step 4): LossSurface(grid=(5, 5)" in printed
    assert "tensorflow" in sys.modules or "jax" in sys.modules  # (the fit needed it; the commands did not)


def test_the_series_command_computes_landscapes_of_checkpoints(tmp_path, capsys):
    from losslandscape.cli import main

    model, x, y = _model_and_data()
    paths = []
    for epoch in (0, 1, 2):
        if epoch:
            model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        paths.append(str(tmp_path / f"model_epoch_{epoch}.keras"))
        model.save(paths[-1])
    np.savez(tmp_path / "data.npz", x=x, y=y)
    code = main(["series", *paths, "--data", str(tmp_path / "data.npz"), "--points", "5", "--out",
                 str(tmp_path / "series.h5")])
    assert code == 0
    series = load_series(tmp_path / "series.h5")
    assert series.epochs == [0, 1, 2] and series.steps == [0, 0, 0]  # checkpoints: no optimizer step is known
    expected = model.evaluate(x, y, batch_size=128, verbose=0, return_dict=True)  # the last checkpoint's weights
    np.testing.assert_allclose(series.landscapes[2].losses["train"][2, 2], expected["loss"], rtol=1e-5)
    assert main(["series", str(tmp_path / "missing.keras"), "--data", str(tmp_path / "data.npz")]) == 2
    assert "no model file at" in capsys.readouterr().err
    assert main(["series", paths[0], "--data", str(tmp_path / "data.npz"), "--samples", "0"]) == 2
    assert "--samples must be >= 1, received 0" in capsys.readouterr().err


def test_every_steps_gives_landscapes_within_epochs(tmp_path):
    model, x, y = _model_and_data()
    callback = LandscapeCallback((x, y), tmp_path / "series.h5", kind="line", points=5, every_steps=6)
    model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0, callbacks=[callback])
    series = load_series(tmp_path / "series.h5")
    assert series.steps == [0, 6, 12] and series.epochs == [0, 1, 2]
    with pytest.raises(ValueError, match="Pass `every` \\(2\\) or `every_steps` \\(6\\), not both"):
        LandscapeCallback((x, y), tmp_path / "other.h5", every=2, every_steps=6)
    with pytest.raises(ValueError, match="every_steps"):
        LandscapeCallback((x, y), tmp_path / "other.h5", every_steps=0)


def test_a_resumed_fit_appends_to_its_series_with_the_same_directions(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0,
              callbacks=[LandscapeCallback((x, y), path, kind="line", points=5)])
    model.fit(x, y, epochs=4, initial_epoch=2, batch_size=32, shuffle=False, verbose=0,
              callbacks=[LandscapeCallback((x, y), path, kind="line", points=5, resume=True)])
    series = load_series(path)
    assert series.epochs == [0, 1, 2, 3, 4]
    first, last = series.landscapes[0].direction[0], series.landscapes[4].direction[0]
    np.testing.assert_allclose(first / np.linalg.norm(first, axis=0), last / np.linalg.norm(last, axis=0), rtol=1e-6)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="holds a series of another run: `kind` \\('line' in the file, 'surface' here\\)"):
        model.fit(x, y, epochs=5, initial_epoch=4, verbose=0,
                  callbacks=[LandscapeCallback((x, y), path, kind="surface", points=5, resume=True)])
    assert path.read_bytes() == before


def test_landscapes_and_their_sharpness_are_logged_to_tensorboard(tmp_path):
    tf = pytest.importorskip("tensorflow")

    from losslandscape import LossLine, sharpness

    model, x, y = _model_and_data()
    # α and β from -0.5 to 1.5: θ0 is the second point of each axis, not the middle one.
    callback = LandscapeCallback((x, y), tmp_path / "series.h5", points=5, coordinate_range=(-0.5, 1.5),
                                 tensorboard_dir=tmp_path / "logs")
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0, callbacks=[callback])
    logged = {}
    (event_file,) = (tmp_path / "logs" / "landscape").iterdir()  # one file for the whole fit
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
        for value in event.summary.value:
            logged.setdefault(value.tag, []).append((event.step, value))
    assert [step for step, _ in logged["landscape"]] == [0, 4]
    surface = load_series(tmp_path / "series.h5").landscapes[1]
    assert surface.ycoords[1] == 0.0
    along_alpha = LossLine(surface.xcoords, {"train": surface.losses["train"][:, 1]}, {"train": {}})
    rise = tf.make_ndarray(logged["landscape/rise_at_0.5"][1][1].tensor)
    assert float(rise) == pytest.approx(sharpness(along_alpha)["rise_at_0.5"], rel=1e-6)
    origin = tf.make_ndarray(logged["landscape/loss_at_origin"][1][1].tensor)
    assert float(origin) == pytest.approx(surface.losses["train"][1, 1], rel=1e-6)
    width, height = (int(v) for v in logged["landscape"][0][1].tensor.string_val[:2])
    assert (width, height) == (6.4 * 80, 4.8 * 80)  # matplotlib's default figure at 80 dpi


def test_tensorboard_logs_without_tensorboard_installed_are_refused_with_the_install_line(monkeypatch):
    from losslandscape.series import TensorBoardLog

    without_package(monkeypatch, "tensorboard")
    message = ("`tensorboard_dir=` writes TensorBoard logs with TensorFlow's summary API: pip install tensorboard "
               "tensorflow-cpu (on any Keras backend), or leave `tensorboard_dir` out.")
    with pytest.raises(ImportError, match=f"^{re.escape(message)}$"):
        TensorBoardLog("logs")


def _fit(model, x, y, callback=None, **options):
    options = dict(dict(epochs=1, batch_size=32, shuffle=False, verbose=0), **options)
    model.fit(x, y, callbacks=[] if callback is None else [callback], **options)


def _unit_filters(direction):
    return direction / np.linalg.norm(direction, axis=0)


def test_the_file_records_the_seed_and_the_raw_directions_the_landscapes_are_normalized_from(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3, seed=7))
    with h5py.File(path, "r") as file:
        assert file.attrs["seed"] == 7 and file.attrs["directions"] == "fixed"
        raw = file["raw_directions/xdirection/0"][()]
    for landscape in load_series(path).landscapes:
        np.testing.assert_allclose(_unit_filters(landscape.direction[0]), _unit_filters(raw), rtol=1e-5)


@same_on_every_backend
@pytest.mark.parametrize(
    "change, named",
    [
        (dict(seed=1), "`seed` (0 in the file, 1 here)"),
        (dict(points=7), "`points` or `coordinate_range` (5 points from -1 to 1 in the file, 7 points from -1 to 1 here)"),
        (dict(coordinate_range=(-2.0, 2.0)), "`points` or `coordinate_range`"),
        (dict(max_samples=64), "data (128 samples"),
        (dict(include_regularization=True), "`include_regularization` (False in the file, True here)"),
        (dict(directions="fresh"), "`directions` ('fixed' in the file, 'fresh' here)"),
        (dict(data="other"), "data (128 samples with hash"),
    ],
)
def test_continuing_a_series_with_other_data_or_settings_is_refused_and_leaves_the_file_unchanged(
        tmp_path, change, named):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5))
    before, weights = path.read_bytes(), model.get_weights()
    data = (x + 1.0, y) if change.pop("data", None) else (x, y)
    with pytest.raises(ValueError, match="holds a series of another run: " + re.escape(named)):
        _fit(model, x, y, LandscapeCallback(data, path, **dict(dict(kind="line", points=5, resume=True), **change)),
             epochs=2, initial_epoch=1)
    assert path.read_bytes() == before
    for saved, now in zip(weights, model.get_weights()):  # refused before any training
        np.testing.assert_array_equal(saved, now)


def test_seed_none_continues_with_the_files_directions(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, seed=3))
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, seed=None, resume=True),
         epochs=2, initial_epoch=1)
    series = load_series(path)
    assert series.epochs == [0, 1, 2] and series.steps == [0, 4, 8]
    np.testing.assert_allclose(_unit_filters(series.landscapes[2].direction[0]),
                               _unit_filters(series.landscapes[0].direction[0]), rtol=1e-5)


def test_landscapes_are_labelled_with_the_fits_real_epoch_and_step(tmp_path):
    model, x, y = _model_and_data()
    _fit(model, x, y, epochs=2)  # 8 steps, no series yet
    path = tmp_path / "series.h5"
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5), epochs=3, initial_epoch=2)
    series = load_series(path)
    assert series.epochs == [2, 3] and series.steps == [8, 12]
    expected = model.evaluate(x, y, batch_size=128, verbose=0)[0]
    np.testing.assert_allclose(series.landscapes[1].losses["train"][2], expected, rtol=1e-5)


def test_a_landscape_lost_at_a_kill_is_computed_again_and_an_earlier_start_is_refused(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5), epochs=2)  # epochs 0, 1, 2
    checkpoint = model.get_weights()
    _fit(model, x, y, epochs=3, initial_epoch=2)  # epoch 3 trained; its landscape lost with the process
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, resume=True), epochs=4, initial_epoch=3)
    series = load_series(path)
    assert series.epochs == [0, 1, 2, 3, 4] and series.steps == [0, 4, 8, 12, 16]
    before = path.read_bytes()
    model.set_weights(checkpoint)
    model.optimizer.iterations.assign(8)  # back to the checkpoint of epoch 2
    with pytest.raises(ValueError, match=r"holds landscapes up to epoch 4 \(step 16\), after this fit's start at "
                                         r"epoch 2 \(step 8\)"):
        _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, resume=True), epochs=3,
             initial_epoch=2)
    assert path.read_bytes() == before


@same_on_every_backend
def test_landscapes_past_the_ten_thousandth_keep_their_order(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3), epochs=3)  # epochs 0 to 3
    with edited(path) as file:  # as 10,002 landscapes would be named: "9998" sorts after "10001" as a string
        for old, new in (("0003", "10001"), ("0002", "10000"), ("0001", "9999"), ("0000", "9998")):
            file.move(old, new)
    assert load_series(path).epochs == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"holds landscapes up to epoch 3 \(step 12\), after this fit's start at "
                                         r"epoch 2"):
        _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3, resume=True), epochs=3,
             initial_epoch=2)


@same_on_every_backend
def test_stale_temporaries_are_removed_and_other_files_are_never_replaced(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    stale = tmp_path / "series.h5.123456.tmp"
    stale.write_bytes(b"half a landscape")
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3))
    assert not stale.exists() and len(load_series(path).landscapes) == 2
    model.save(tmp_path / "model.keras")
    before = (tmp_path / "model.keras").read_bytes()
    with pytest.raises(ValueError, match="model.keras' exists and is not a series file, so it is not replaced; pass "
                                         "another path, or delete it first.$"):
        _fit(model, x, y, LandscapeCallback((x, y), tmp_path / "model.keras", kind="line", points=3))
    assert (tmp_path / "model.keras").read_bytes() == before


@same_on_every_backend
def test_a_second_process_writing_the_same_series_is_refused_in_one_line(tmp_path):
    path = tmp_path / "series.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from losslandscape.output_lock import exclusive_output\n"
         f"with exclusive_output({str(path)!r}):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        model, x, y = _model_and_data()
        with pytest.raises(OutputInUseError, match=rf"Another process \(pid {holder.pid}\) is computing into"):
            _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3))
        assert not path.exists()
    finally:
        holder.kill()
        holder.wait()


@same_on_every_backend
def test_in_one_process_a_new_writer_takes_over_and_the_old_one_stops(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"

    class Fails(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # a fit stopped by hand: on_train_end never runs

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[LandscapeCallback((x, y), path, kind="line", points=3), Fails()])
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3))  # the lock was taken over
    assert len(load_series(path).landscapes) == 2
    first, second = (LandscapeCallback((x, y), path, kind="line", points=3) for _ in range(2))
    with pytest.raises(RuntimeError, match="another writer of the same file took over in this process"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[first, second])


@same_on_every_backend
def test_the_series_command_never_replaces_an_input_or_a_file_that_is_not_a_series(tmp_path, capsys):
    from losslandscape.cli import main

    model, x, y = _model_and_data()
    model.save(tmp_path / "model_epoch_0.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    checkpoint, data = str(tmp_path / "model_epoch_0.keras"), str(tmp_path / "data.npz")
    before = (tmp_path / "model_epoch_0.keras").read_bytes()
    assert main(["series", checkpoint, "--data", data, "--points", "3", "--out", checkpoint]) == 2
    assert f"--out {checkpoint!r} is also an input ({checkpoint!r}); pass another --out" in capsys.readouterr().err
    (tmp_path / "link.h5").symlink_to(tmp_path / "model_epoch_0.keras")
    assert main(["series", checkpoint, "--data", data, "--points", "3", "--out", str(tmp_path / "link.h5")]) == 2
    assert "is also an input" in capsys.readouterr().err
    (tmp_path / "notes.h5").write_bytes(b"my notes")
    assert main(["series", checkpoint, "--data", data, "--points", "3", "--out", str(tmp_path / "notes.h5")]) == 2
    assert "notes.h5' exists and is not a series file, so it is not replaced" in capsys.readouterr().err
    assert (tmp_path / "notes.h5").read_bytes() == b"my notes"
    assert (tmp_path / "model_epoch_0.keras").read_bytes() == before
    (tmp_path / "target.h5").touch()
    (tmp_path / "target.h5").unlink()
    (tmp_path / "out.h5").symlink_to(tmp_path / "target.h5")
    assert main(["series", checkpoint, "--data", data, "--points", "3", "--out", str(tmp_path / "out.h5")]) == 0
    assert (tmp_path / "out.h5").is_symlink() and len(load_series(tmp_path / "target.h5").landscapes) == 1


def test_the_raw_directions_are_the_seeds_unnormalized_draw_one_per_axis(tmp_path):
    from losslandscape import random_directions
    from losslandscape.series_writer import SeriesWriter

    model, x, y = _model_and_data()
    for kind, count in (("line", 1), ("surface", 2)):
        writer = SeriesWriter(model, (x, y), tmp_path / f"{kind}.h5", kind, np.linspace(-1, 1, 3), seed=7)
        writer.close()
        expected = random_directions(model, count, seed=7, normalization=None)
        with h5py.File(tmp_path / f"{kind}.h5", "r") as file:
            assert sorted(file["raw_directions"]) == ["xdirection", "ydirection"][:count]
            for index, name in enumerate(["xdirection", "ydirection"][:count]):
                for position, part in enumerate(expected[index]):
                    np.testing.assert_array_equal(file[f"raw_directions/{name}/{position}"][()], part)
    fresh = SeriesWriter(model, (x, y), tmp_path / "fresh.h5", "line", np.linspace(-1, 1, 3), directions="fresh")
    fresh.close()
    with h5py.File(tmp_path / "fresh.h5", "r") as file:
        assert "raw_directions" not in file and json.loads(file.attrs["run"])["raw_directions"] is None


@same_on_every_backend
def test_a_writer_records_where_it_is_and_lets_go_of_its_file(tmp_path):
    from losslandscape import series_writer

    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    writer = series_writer.SeriesWriter(model, (x, y), path, "line", np.linspace(-1, 1, 3))
    assert (writer.count, writer.last) == (0, None)
    started = time.perf_counter()
    _, seconds = writer.add(model, epoch=3, step=12)
    assert 0 < seconds <= time.perf_counter() - started
    assert (writer.count, writer.last) == (1, (3, 12))
    writer.close()
    assert os.path.realpath(path) not in series_writer._OPEN_WRITERS and not os.path.exists(f"{path}.lock")
    with pytest.raises(RuntimeError, match=re.escape(
            f"This writer of {str(path)!r} was closed: another writer of the same file took over in this process "
            "(two LandscapeCallbacks on one path?). Give each callback its own path.")):
        writer.add(model, epoch=4)


def test_an_empty_series_left_by_a_kill_before_its_first_landscape_is_continued(tmp_path):
    from losslandscape.series_writer import SeriesWriter

    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    SeriesWriter(model, (x, y), path, "line", np.linspace(-1, 1, 5), seed=0).close()
    _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, resume=True), epochs=1)
    assert load_series(path).epochs == [0, 1]


def test_fresh_directions_resumed_with_seed_none_draw_from_the_files_seed(tmp_path):
    runs = {}
    for name in ("whole", "resumed"):
        model, x, y = _model_and_data()
        path = tmp_path / f"{name}.h5"
        if name == "whole":
            _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, seed=5, directions="fresh"),
                 epochs=2)
        else:
            _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, seed=5, directions="fresh"))
            _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=5, seed=None, directions="fresh",
                                                resume=True), epochs=2, initial_epoch=1)
        runs[name] = load_series(path)
    assert runs["whole"].epochs == runs["resumed"].epochs == [0, 1, 2]
    for whole, resumed in zip(runs["whole"].landscapes, runs["resumed"].landscapes):
        np.testing.assert_array_equal(whole.direction[0], resumed.direction[0])


@same_on_every_backend
def test_series_that_cannot_be_continued_are_refused_by_name(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "landscape.h5"
    from losslandscape import LossLine

    LossLine(np.linspace(-1, 1, 3), {"train": np.ones(3)}, {"train": {}}).save(path)
    with pytest.raises(ValueError, match=re.escape(
            f"{str(path)!r} is not a series file; pass another `path`, or `resume=False` to start a new one.")):
        _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3, resume=True))
    old = tmp_path / "old.h5"
    with h5py.File(old, "w") as file:
        file.attrs["kind"] = "series"  # as earlier versions wrote it, without the run's settings
    with pytest.raises(ValueError, match=re.escape(
            f"{str(old)!r} is a series file without its run's settings (written by an earlier version), so this run "
            "cannot be checked to continue it; pass `resume=False` or another `path`.")):
        _fit(model, x, y, LandscapeCallback((x, y), old, kind="line", points=3, resume=True))
    series = tmp_path / "series.h5"
    _fit(model, x, y, LandscapeCallback((x, y), series, kind="line", points=5))
    with pytest.raises(ValueError, match=re.escape(
            f"{str(series)!r} holds a series of another run: `points` or `coordinate_range` (5 points from -1 to 1 "
            "in the file, 3 points from -1 to 1 here), `seed` (0 in the file, 2 here). Pass the same to continue "
            "it, or `resume=False` (or another `path`) to start a new series.")):
        _fit(model, x, y, LandscapeCallback((x, y), series, kind="line", points=3, seed=2, resume=True))
    with pytest.raises(ValueError, match=r"data \(64 samples with hash [0-9a-f]{8} in the file, "):
        _fit(model, x, y, LandscapeCallback((x[:64], y[:64]), tmp_path / "small.h5", kind="line", points=3))
        _fit(model, x, y, LandscapeCallback((x, y), tmp_path / "small.h5", kind="line", points=3, resume=True))
    with edited(series) as file:
        file["raw_directions/xdirection/0"][0, 0] += 1.0  # sealed again: only the recorded hash can tell
    with pytest.raises(ValueError, match=re.escape(
            f"{str(series)!r} is damaged: its raw directions differ from those it recorded.")):
        _fit(model, x, y, LandscapeCallback((x, y), series, kind="line", points=5, resume=True))


@same_on_every_backend
def test_every_frame_of_an_animation_keeps_its_colour_bar_label_inside(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    import matplotlib.pyplot as plt

    grid = np.linspace(-1, 1, 9)
    radius = np.hypot(*np.meshgrid(grid, grid, indexing="ij"))
    surfaces = [LossSurface(grid, grid, {"train": 0.1 + scale * radius**2}, {"train": {}}) for scale in (1, 3)]
    series = LandscapeSeries(surfaces, [0, 1], [0, 10], [{}, {}])
    frames = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure=None: frames.append(figure) or close(figure))
    animate_series(series, tmp_path / "training.gif")
    (figure,) = frames
    figure.canvas.draw()
    label = figure.axes[1].yaxis.label  # the colour bar beside the plot
    assert label.get_text() == "loss"
    box, page = label.get_window_extent(), figure.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1


@same_on_every_backend
def test_a_series_of_heatmaps_shares_one_colour_scale():
    grid = np.linspace(-1, 1, 9)
    radius = np.hypot(*np.meshgrid(grid, grid, indexing="ij"))
    # The second landscape's minimum is far above the first's: on one scale its lowest cell is not the darkest.
    surfaces = [LossSurface(grid, grid, {"train": offset + radius**2}, {"train": {}}) for offset in (0.1, 1.0)]
    series = plot_series(LandscapeSeries(surfaces, [0, 1], [0, 10], [{}, {}]), kind="heatmap")
    first, second = (landscape.artists_["heatmap"] for landscape in surfaces)
    assert first.norm is second.norm and series.colorbar_.mappable is second
    assert first.norm(1.0) == second.norm(1.0) and second.norm(second.get_array().min()) > 0.3


def test_by_default_21_points_in_silence_and_every_third_epoch_gives_epochs_0_3_6(tmp_path, capsys):
    model, x, y = _model_and_data()
    callback = LandscapeCallback((x, y), tmp_path / "series.h5", kind="line", every=3)
    np.testing.assert_array_equal(callback.coords, np.linspace(-1, 1, 21))
    _fit(model, x, y, callback, epochs=6)
    series = load_series(tmp_path / "series.h5")
    assert series.epochs == [0, 3, 6] and series.logs[0] == {} and "loss" in series.logs[1]
    assert series.landscapes[0].coords.size == 21 and capsys.readouterr().out == ""
    # The fit's end lets go of the file: no lock is left, and another writer may take it.
    assert not os.path.exists(f"{tmp_path / 'series.h5'}.lock")


def test_steps_come_with_their_batch_logs_and_verbose_names_each_landscape(tmp_path, capsys):
    model, x, y = _model_and_data()
    callback = LandscapeCallback((x, y), tmp_path / "series.h5", kind="line", points=3, every_steps=2, verbose=1)
    _fit(model, x, y, callback, epochs=1)
    series = load_series(tmp_path / "series.h5")
    assert series.steps == [0, 2, 4] and series.logs[0] == {} and "loss" in series.logs[1]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("losslandscape: landscape")]
    assert [re.sub(r"added [0-9.]+ s", "added", line) for line in lines] == [
        f"losslandscape: landscape at epoch 0, step {step} added" for step in (0, 2, 4)]


def test_a_start_earlier_in_epochs_or_in_steps_is_refused_and_a_callback_serves_two_fits(tmp_path):
    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    callback = LandscapeCallback((x, y), path, kind="line", points=3)
    _fit(model, x, y, callback, epochs=2)  # epochs 0, 1, 2 at steps 0, 4, 8
    for epoch, step in ((3, 0), (1, 25)):  # later in epochs but earlier in steps, and the other way round
        model.optimizer.iterations.assign(step)
        message = (f"{str(path)!r} holds landscapes up to epoch 2 (step 8), after this fit's start at epoch {epoch} "
                   f"(step {step}): resume from the checkpoint of its last landscape or a later one, or pass "
                   "`resume=False` (or another `path`) to start a new series.")
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            _fit(model, x, y, LandscapeCallback((x, y), path, kind="line", points=3, resume=True),
                 epochs=epoch + 1, initial_epoch=epoch)
    model.optimizer.iterations.assign(8)
    _fit(model, x, y, callback, epochs=1)  # the same callback again: a new series replaces the old one
    assert load_series(path).steps == [8, 12]


@pytest.mark.parametrize("kind, regularized", [("line", True), ("surface", False)])
def test_the_sample_limit_and_regularization_reach_each_landscape_and_seed_none_is_recorded(tmp_path, kind,
                                                                                            regularized):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.1))])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    callback = LandscapeCallback((x, y), path, kind=kind, points=3, max_samples=40,
                                 include_regularization=regularized, directions="fresh", seed=None)
    _fit(model, x, y, callback, epochs=1)
    series = load_series(path)
    penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
    assert penalty > 1e-2
    expected = model.evaluate(x[:40], y[:40], batch_size=128, verbose=0) - (0.0 if regularized else penalty)
    centre = (1,) if kind == "line" else (1, 1)
    np.testing.assert_allclose(series.landscapes[1].losses["train"][centre], expected, rtol=1e-5)
    assert series.landscapes[1].settings["num_samples"] == {"train": 40}
    with h5py.File(path, "r") as file:
        assert file.attrs["seed"] == "none"
        run = json.loads(file.attrs["run"])
    assert (run["max_samples"], run["include_regularization"], run["kind"]) == (40, regularized, kind)


def test_a_writer_refuses_another_architecture_and_names_a_series_file_that_went_missing(tmp_path):
    from losslandscape.series_writer import SeriesWriter

    model, x, y = _model_and_data()
    path = tmp_path / "series.h5"
    writer = SeriesWriter(model, (x, y), path, "line", np.linspace(-1, 1, 3))
    with h5py.File(path, "r") as file:
        assert json.loads(file.attrs["run"])["seed"] == 0  # the writer's default seed
    wider = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
    wider.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=re.escape(
            "The model at epoch 2 has weights of shapes [(6, 5), (5,), (5, 3)]..., the first one "
            "[(6, 8), (8,), (8, 3)]...: a series needs one architecture throughout.")):
        writer.add(wider, epoch=2)
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=re.escape(f"No series file at {str(path)!r}.")):
        writer.add(model, epoch=3)
    writer.close()
    with pytest.raises(FileNotFoundError, match=re.escape(f"No series file at {str(path)!r}.")):
        SeriesWriter(model, (x, y), path, "line", np.linspace(-1, 1, 3), append=True)
