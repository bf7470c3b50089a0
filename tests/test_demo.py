import inspect
import re
import subprocess
import sys
import warnings

import h5py
import keras
import numpy as np
import pytest

from conftest import without_package
from losslandscape import load_surface
from losslandscape.cli import main
from losslandscape.demo import run_demo


@pytest.mark.slow
def test_demo_writes_its_four_files(tmp_path):
    paths = run_demo(tmp_path, points=7, epochs=2, verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss_1d.png", "loss_3d.png", "loss_contour.png", "surface.h5"]
    for key in ("line", "contour", "surface"):
        assert paths[key].stat().st_size > 10_000
    surface = load_surface(paths["h5"])
    losses = surface.losses["train"]
    assert losses.shape == (7, 7) and np.all(np.isfinite(losses))
    # The trained weights sit at the centre of the grid and the loss grows away from them.
    assert losses[3, 3] < losses[0, 0] and losses[3, 3] < losses[-1, -1]
    with h5py.File(paths["h5"], "r") as file:
        np.testing.assert_allclose(file["train_acc"][3, 3], 100 * surface.metrics["train"]["accuracy"][3, 3])


def test_cli_demo_and_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--points", "3", "--epochs", "1", "--quiet"]) == 0
    assert (tmp_path / "surface.h5").exists() and capsys.readouterr().out == ""  # quiet: no progress either
    assert main(["demo", "--points", "1"]) == 2
    assert "--points must be >= 2" in capsys.readouterr().err


def test_module_entry_point_prints_help():
    result = subprocess.run([sys.executable, "-m", "losslandscape", "demo", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--points" in result.stdout


def test_the_demos_split_and_model_are_seeded_as_documented():
    from sklearn.datasets import load_digits

    from losslandscape.demo import digits_mlp, load_digits_split

    (x_train, y_train), (x_test, y_test) = load_digits_split(seed=3)
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(3).permutation(len(x))
    np.testing.assert_array_equal(x_train, (x[order[:1297]] / 16.0).astype("float32"))
    np.testing.assert_array_equal(x_test, (x[order[1297:]] / 16.0).astype("float32"))
    np.testing.assert_array_equal(y_train, y[order[:1297]])
    np.testing.assert_array_equal(y_test, y[order[1297:]])
    assert x_train.dtype == np.float32 and len(x_test) == 500
    model = digits_mlp(seed=1)
    assert [(layer.units, layer.activation.__name__) for layer in model.layers] == [(64, "relu"), (10, "softmax")]
    assert model.loss == "sparse_categorical_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert sorted(model.evaluate(x_test, y_test, verbose=0, return_dict=True)) == ["accuracy", "loss"]
    for a, b in zip(model.get_weights(), digits_mlp(seed=1).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.get_weights()[0], digits_mlp(seed=2).get_weights()[0])


def test_without_scikit_learn_the_demo_names_the_extra_to_install(monkeypatch):
    from losslandscape.demo import load_digits_split

    without_package(monkeypatch, "sklearn")
    with pytest.raises(ImportError, match=r"^The demo uses scikit-learn's digits data: `pip install "
                                          r"'losslandscape\[demo\]'`\.$"):
        load_digits_split()


def test_the_demos_documented_defaults():
    from losslandscape.demo import digits_mlp, load_digits_split

    defaults = {name: p.default for name, p in inspect.signature(run_demo).parameters.items()}
    assert defaults == {"output_dir": "losslandscape_demo", "points": 51, "epochs": 30, "seed": 0, "verbose": 1}
    assert inspect.signature(load_digits_split).parameters["seed"].default == 0
    assert inspect.signature(digits_mlp).parameters["seed"].default == 0


def test_the_demo_says_what_it_trained_and_wrote(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import losslandscape.demo as demo

    drawn, seeds = [], []

    def recorded(plot):
        def call(*args, **kwargs):
            drawn.append(plot(*args, **kwargs))
            return drawn[-1]

        return call

    for name in ("plot_loss", "plot_loss_3D"):
        monkeypatch.setattr(demo, name, recorded(getattr(demo, name)))
    split = demo.load_digits_split
    monkeypatch.setattr(demo, "load_digits_split", lambda seed: seeds.append(seed) or split(seed))
    folder = tmp_path / "nested" / "demo"  # created with its parents
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. matplotlib's, where a headless figure is shown
        paths = run_demo(folder, points=5, epochs=1)
    out = capsys.readouterr().out
    assert seeds == [0]
    line, surface = drawn
    assert line.labels == ["train", "test"] and line.coords.size == 5 and line.settings["seed"] == 0
    assert line.settings["num_samples"] == {"train": 1297, "test": 500}
    assert line.ax_.get_title() == "digits MLP: loss along one filter-normalized direction"
    names = {"line": "loss_1d.png", "contour": "loss_contour.png", "surface": "loss_3d.png", "h5": "surface.h5"}
    assert paths == {key: folder / name for key, name in names.items()}
    saved = load_surface(paths["h5"])
    assert saved.losses["train"].shape == (5, 5) and saved.labels == ["train"]
    assert saved.settings["seed"] == 0 and saved.settings["num_samples"] == {"train": 1297}
    assert out.startswith("Trained a 64-64-10 MLP on digits for 1 epochs: test accuracy 0.")  # Keras' own lines off
    assert "10/10 points in" in out and "25/25 points in" in out  # the line's and the surface's progress
    total = re.search(rf"Loss at θ0: {saved.losses['train'][2, 2]:.4f}; surface 5×5 in ([0-9.]+) s total", out)
    assert total and 0 < float(total.group(1)) < 600
    assert out.rstrip().endswith("\n".join(f"wrote {paths[key]}" for key in names))
    assert paths["contour"].read_bytes() != paths["surface"].read_bytes()
    for key, figure in (("line", line.figure_), ("contour", surface.figure_), ("surface", surface.figure_)):
        with Image.open(paths[key]) as image:
            assert image.info["dpi"] == pytest.approx((150, 150), abs=0.1)  # stored in dots per metre
            whole = tuple(round(150 * inches) for inches in figure.get_size_inches())
            assert image.size != whole  # cut to what is drawn (bbox_inches="tight")
