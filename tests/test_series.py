"""Landscapes over training: one per epoch from a callback, equal to model.evaluate, training untouched."""

import h5py
import keras
import numpy as np
import pytest

from conftest import all_state
from losslandscape import LandscapeCallback, animate_series, load_series, plot_series


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


def test_a_series_plots_on_one_scale_and_bad_arguments_fail_at_once(tmp_path):
    model, x, y = _model_and_data()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0,
              callbacks=[LandscapeCallback((x, y), tmp_path / "series.h5", points=5, directions="fresh")])
    series = load_series(tmp_path / "series.h5")
    figure = plot_series(series, kind="contourf", columns=2)
    contour_sets = [landscape.artists_["contourf"] for landscape in series.landscapes]
    assert len(figure.axes) >= 3 and all(np.array_equal(c.levels[1:], contour_sets[0].levels[1:]) for c in contour_sets)
    assert [ax.get_title() for ax in figure.axes[:3]] == ["epoch 0", "epoch 1", "epoch 2"]
    for arguments, message in [(dict(kind="volume"), "`kind`"), (dict(directions="random"), "`directions`"),
                               (dict(every=0), "`every`"), (dict(points=1), "`points`"),
                               (dict(path=tmp_path / "missing" / "s.h5"), "does not exist")]:
        with pytest.raises((ValueError, OSError), match=message):
            LandscapeCallback((x, y), **{"path": tmp_path / "s.h5", **arguments})
    with h5py.File(tmp_path / "single.h5", "w") as file:
        file.attrs["kind"] = "surface"
    with pytest.raises(ValueError, match="holds no series"):
        load_series(tmp_path / "single.h5")


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
    assert series.epochs == [0, 1, 2]
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
    with pytest.raises(ValueError, match="holds line landscapes on 5 points per axis"):
        model.fit(x, y, epochs=5, initial_epoch=4, verbose=0,
                  callbacks=[LandscapeCallback((x, y), path, kind="surface", points=5, resume=True)])
    assert load_series(path).epochs == [0, 1, 2, 3, 4]


@pytest.mark.skipif(pytest.importorskip("importlib").util.find_spec("tensorflow") is None, reason="needs TensorFlow")
def test_landscapes_and_their_sharpness_are_logged_to_tensorboard(tmp_path):
    import tensorflow as tf

    from losslandscape import LossLine, sharpness

    model, x, y = _model_and_data()
    callback = LandscapeCallback((x, y), tmp_path / "series.h5", points=5, tensorboard_dir=tmp_path / "logs")
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0, callbacks=[callback])
    logged = {}
    (event_file,) = (tmp_path / "logs" / "landscape").iterdir()  # one file for the whole fit
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
        for value in event.summary.value:
            logged.setdefault(value.tag, []).append((event.step, value))
    assert [step for step, _ in logged["landscape"]] == [0, 4]
    surface = load_series(tmp_path / "series.h5").landscapes[1]
    along_alpha = LossLine(surface.xcoords, {"train": surface.losses["train"][:, 2]}, {"train": {}})
    rise = tf.make_ndarray(logged["landscape/rise_at_0.5"][1][1].tensor)
    assert float(rise) == pytest.approx(sharpness(along_alpha)["rise_at_0.5"], rel=1e-6)
    origin = tf.make_ndarray(logged["landscape/loss_at_origin"][1][1].tensor)
    assert float(origin) == pytest.approx(surface.losses["train"][2, 2], rel=1e-6)
