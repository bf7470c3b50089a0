"""plot_loss and plot_loss_3D pass every argument on: values against model.evaluate and numpy, what is drawn, files."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import LogNorm

from conftest import errors_at, evaluate_at, weights_at
from losslandscape import plot_loss, plot_loss_3D, random_directions


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    weights = rng.uniform(0.1, 2.0, size=64).astype("float32")
    return x, y, weights


def test_plot_loss_passes_every_argument_on(regularized_mlp, data):
    x, y, _ = data
    model = regularized_mlp
    origin = [v.numpy() for v in model.trainable_weights]
    line = plot_loss(model, (x, y), number_of_points=3, coordinate_range=(-0.5, 2.0), seed=3, normalization="layer",
                     metric="mae", batch_size=16, max_samples=40, include_regularization=False, verbose=0)
    np.testing.assert_allclose(line.coords, [-0.5, 0.75, 2.0])
    (direction,) = random_directions(model, 1, seed=3, normalization="layer")
    for drawn, expected in zip(line.direction, direction):
        np.testing.assert_allclose(drawn, expected, rtol=1e-6)
    assert {key: line.settings[key] for key in ("batch_size", "max_samples", "include_regularization", "seed",
                                                "normalization")} == {
        "batch_size": 16, "max_samples": 40, "include_regularization": False, "seed": 3, "normalization": "layer"}
    for index, alpha in enumerate(line.coords):
        error = errors_at(model, weights_at(model, origin, [direction], [alpha]), x[:40], y[:40])
        assert line.losses["train"][index] == pytest.approx(np.mean(error**2), rel=1e-5)  # without the penalty
        assert line.metrics["train"]["mae"][index] == pytest.approx(np.mean(np.abs(error)), rel=1e-5)
    (curve,) = line.artists_["line"]
    np.testing.assert_allclose(curve.get_ydata(), line.metrics["train"]["mae"])
    assert line.ax_.get_ylabel() == "mae"
    plt.close("all")


def test_plot_loss_keeps_the_penalty_by_default_as_evaluate_does(regularized_mlp, data):
    x, y, _ = data
    model = regularized_mlp
    origin = [v.numpy() for v in model.trainable_weights]
    line = plot_loss(model, (x, y), number_of_points=2, seed=0, verbose=0)
    (direction,) = random_directions(model, 1, seed=0)
    for index, alpha in enumerate(line.coords):
        expected = evaluate_at(model, weights_at(model, origin, [direction], [alpha]), x=x, y=y)
        assert line.losses["train"][index] == pytest.approx(expected["loss"], rel=1e-5)
    assert line.settings["include_regularization"] is True and line.settings["dtype_policy"] is None
    assert plot_loss(model, (x, y), number_of_points=2, dtype_policy="mixed_bfloat16",
                     verbose=0).settings["dtype_policy"] == "mixed_bfloat16"
    plt.close("all")


def test_plot_loss_3d_passes_every_argument_on(regularized_mlp, data):
    x, y, sample_weight = data
    model = regularized_mlp
    origin = [v.numpy() for v in model.trainable_weights]
    surface = plot_loss_3D(model, "levels", x, y, 3, sample_weight=sample_weight, coordinate_range=(-0.5, 1.5),
                           seed=4, normalization="layer", orthogonal=True, batch_size=16, max_samples=48,
                           include_regularization=False, dtype_policy="mixed_bfloat16", verbose=0)
    np.testing.assert_allclose(surface.xcoords, [-0.5, 0.5, 1.5])
    np.testing.assert_allclose(surface.ycoords, [-0.5, 0.5, 1.5])
    directions = random_directions(model, 2, seed=4, normalization="layer", orthogonal=True)
    for drawn, expected in zip(surface.directions, directions):
        for a, b in zip(drawn, expected):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert {key: surface.settings[key] for key in ("batch_size", "max_samples", "include_regularization",
                                                   "orthogonal", "dtype_policy")} == {
        "batch_size": 16, "max_samples": 48, "include_regularization": False, "orthogonal": True,
        "dtype_policy": "mixed_bfloat16"}
    # A float32 run of the same call, against numpy: weighted by the sample weights, the first 48 samples only.
    exact = plot_loss_3D(model, "levels", x, y, 3, sample_weight=sample_weight, coordinate_range=(-0.5, 1.5),
                         seed=4, normalization="layer", orthogonal=True, max_samples=48,
                         include_regularization=False, verbose=0)
    for i, alpha in enumerate(exact.xcoords):
        for j, beta in enumerate(exact.ycoords):
            error = errors_at(model, weights_at(model, origin, directions, [alpha, beta]), x[:48], y[:48])[:, 0]
            weighted = np.sum(sample_weight[:48] * error**2) / 48  # Keras' "sum over batch size" reduction
            assert exact.losses["train"][i, j] == pytest.approx(weighted, rel=1e-4)
            # bfloat16 rounds to about 3 significant digits.
            assert surface.losses["train"][i, j] == pytest.approx(weighted, rel=5e-2)
    plt.close("all")


def test_plot_loss_3d_draws_what_it_is_told(regularized_mlp, data, tmp_path):
    x, y, _ = data
    surface = plot_loss_3D(regularized_mlp, ("levels", "3d"), x, y, 5, seed=0, log=True, metric="mae", verbose=0)
    assert isinstance(surface.artists_["contour"].norm, LogNorm)
    assert surface.axes_["surface"].get_zlabel() == "log10 mae"
    assert surface.axes_["contour"].get_title() == "mae"
    values = surface.metrics["train"]["mae"]
    low, high = np.quantile(values, [0.2, 0.8])
    bounded = plot_loss_3D(regularized_mlp, "levels", x, y, 5, seed=0, vmin=low, vmax=high, verbose=0)
    levels = bounded.artists_["contour"].levels
    assert levels.min() >= low * (1 - 1e-9) and levels.max() == pytest.approx(high)
    given = plot_loss_3D(regularized_mlp, "levels", x, y, 5, seed=0, levels=[0.5, 1.0, 2.0], verbose=0)
    np.testing.assert_array_equal(given.artists_["contour"].levels, [0.5, 1.0, 2.0])
    plt.close("all")


def test_plot_loss_3d_saves_each_type_with_png_as_the_default_extension(regularized_mlp, data, tmp_path):
    x, y, _ = data
    plot_loss_3D(regularized_mlp, ("levels", "3d"), x, y, 3, save=tmp_path / "loss", verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss_3d.png", "loss_levels.png"]
    assert (tmp_path / "loss_3d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_loss(regularized_mlp, (x, y), number_of_points=3, save=tmp_path / "line.pdf", verbose=0)
    assert (tmp_path / "line.pdf").read_bytes()[:5] == b"%PDF-"
    plt.close("all")


def test_one_axes_per_plot_type_or_a_clear_error(regularized_mlp, data):
    x, y, _ = data
    figure = plt.figure()
    flat, three_d = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2, projection="3d")
    for axes in ([flat], [flat, three_d, flat]):
        with pytest.raises(ValueError, match=rf"^Received {len(axes)} Axes for 2 plot types \['levels', '3d'\]; "
                                             r"pass one Axes per plot type\.$"):
            plot_loss_3D(regularized_mlp, ("levels", "3d"), x, y, 3, ax=axes, verbose=0)
    surface = plot_loss_3D(regularized_mlp, ("levels", "3d"), x, y, 3, ax=(flat, three_d), verbose=0)
    assert surface.axes_["contour"] is flat and surface.axes_["surface"] is three_d
    with pytest.raises(ValueError, match="needs 3D axes"):
        plot_loss_3D(regularized_mlp, "3d", x, y, 3, ax=flat, verbose=0)
    plt.close("all")


def test_plot_loss_shows_only_on_an_interactive_backend_or_when_asked(regularized_mlp, data, monkeypatch):
    from losslandscape import api

    x, y, _ = data
    shown = []
    monkeypatch.setattr(api.plt, "show", lambda: shown.append(1))
    plot_loss(regularized_mlp, (x, y), number_of_points=2, verbose=0)
    assert shown == []
    plot_loss(regularized_mlp, (x, y), number_of_points=2, show=True, verbose=0)
    assert shown == [1]
    monkeypatch.setattr(api, "interactive_backend_active", lambda: True)
    plot_loss_3D(regularized_mlp, "levels", x, y, 2, verbose=0)
    plot_loss_3D(regularized_mlp, "levels", x, y, 2, show=False, verbose=0)
    assert shown == [1, 1]
    plt.close("all")


def test_what_the_calls_say_write_and_refuse(regularized_mlp, data, tmp_path, capsys):
    from PIL import Image

    x, y, weights = data
    plot_loss_3D(regularized_mlp, ("levels", "3d"), x, y, 3, save=tmp_path / "loss.png", verbose=0)
    assert capsys.readouterr().out == ""  # verbose=0: no progress, no list of files
    plot_loss_3D(regularized_mlp, ("levels", "3d"), x, y, 3, save=tmp_path / "loss.png")
    out = capsys.readouterr().out
    assert "9/9 points in" in out
    assert f"losslandscape: wrote {tmp_path / 'loss_levels.png'} and {tmp_path / 'loss_3d.png'}, one file per plot " \
           "type" in out
    plot_loss_3D(regularized_mlp, "levels", x, y, 3, save=tmp_path / "one.png")
    assert "one file per plot type" not in capsys.readouterr().out  # one file: the name given
    with Image.open(tmp_path / "one.png") as image:
        assert image.info["dpi"] == pytest.approx((150, 150), abs=0.1)
    fig, ax = plt.subplots()
    line = plot_loss(regularized_mlp, (x, y), number_of_points=3, ax=ax, verbose=0)
    assert line.ax_ is ax and capsys.readouterr().out == ""
    with pytest.raises(ValueError) as error:
        plot_loss_3D(regularized_mlp, "levels", x, sample_weight=weights)
    assert str(error.value) == ("`sample_weight` needs `y`: pass `plot_loss_3D(model, plot_type, x, y, "
                                "sample_weight=...)`, or a dataset that yields `(x, y, sample_weight)` as `x`.")
    with pytest.raises(ValueError, match=r"Pass one of them as `metric=`, or compile the model with it\.$"):
        plot_loss(regularized_mlp, (x, y), metric="accuracy")
    with pytest.raises(ValueError) as error:
        plot_loss_3D(regularized_mlp, ("levels", "volume"), x, y)
    assert str(error.value) == ("Unknown plot type ['volume']. Valid plot types: 'levels' and '3d' (or 'contour' "
                                "and 'surface'), or a sequence of them such as ('levels', '3d').")
    plt.close("all")


def test_what_plot_loss_says_and_what_both_calls_check_and_write(regularized_mlp, data, tmp_path, capsys):
    from PIL import Image

    x, y, _ = data
    plot_loss(regularized_mlp, (x, y), number_of_points=3)
    assert "3/3 points in" in capsys.readouterr().out  # verbose=1 by default
    for call in (plot_loss, lambda model, data, number_of_points, verbose: plot_loss_3D(
            model, "levels", *data, number_of_points=number_of_points, verbose=verbose)):
        with pytest.raises(ValueError) as error:
            call(regularized_mlp, (x, y), number_of_points=1, verbose=0)
        assert str(error.value) == "Expected `number_of_points` >= 2, received: 1"
    plot_loss_3D(regularized_mlp, ("levels", "3d"), x, y, 3, save=tmp_path / "fig.pdf", verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig_3d.pdf", "fig_levels.pdf"]
    with pytest.raises(ValueError) as error:
        plot_loss_3D(regularized_mlp, "levels", {"a": (x, y), "b": (x, y)}, verbose=0)
    assert str(error.value) == ("With `y` omitted, `x` must be one dataset (a batched tf.data.Dataset, a PyDataset, "
                                "an NpzData or `(x, y)`), received: dict. Pass the targets as `y`.")
    surface = plot_loss_3D(regularized_mlp, "levels", x, y, 3, save=tmp_path / "tight.png", verbose=0)
    figure = surface.figures_["contour"]
    with Image.open(tmp_path / "tight.png") as image:
        width, height = image.size
    # Cut to what is drawn (bbox_inches="tight"): not the whole figure's 150-dpi canvas, and none of it clipped.
    tight = figure.get_tightbbox(figure.canvas.get_renderer()).padded(0.1)
    assert (width, height) != tuple(round(s * 150) for s in figure.get_size_inches())
    assert width == pytest.approx(tight.width * 150, abs=2) and height == pytest.approx(tight.height * 150, abs=2)
    plt.close("all")
