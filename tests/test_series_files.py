"""Series drawn as small multiples and as animations, from synthetic series: what each panel and frame shows."""

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.animation as animation  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.layout_engine import ConstrainedLayoutEngine  # noqa: E402

from losslandscape import LandscapeSeries, LossLine, LossSurface, animate_series, load_series, plot_series  # noqa: E402
from losslandscape.contour_levels import default_levels  # noqa: E402

X = np.linspace(-1, 1, 7)


def surfaces(count):
    """`count` bowls whose test accuracy differs from the train one, so a wrong label or metric shows."""
    landscapes = []
    for index in range(count):
        bowl = (1 + index) * (X[:, None] ** 2 + X[None, :] ** 2)
        metrics = {"train": {"accuracy": 1 - bowl / 20}, "test": {"accuracy": 0.8 - bowl / 5}}
        landscapes.append(LossSurface(X, X, {"train": bowl + 0.1, "test": 3 * bowl + 1}, metrics))
    return LandscapeSeries(landscapes, list(range(count)), [10 * e for e in range(count)], [{}] * count)


def test_panels_show_the_label_and_metric_asked_for_on_one_scale_with_one_colour_bar():
    series = surfaces(5)
    series.epochs = [3 * index for index in range(5)]  # titles name the epoch, not the panel's place
    drawn = plot_series(series, kind="contourf", columns=2, metric="accuracy", label="test")
    assert drawn is series and series.axes_.shape == (3, 2)
    assert tuple(series.figure_.get_size_inches()) == pytest.approx((3.6 * 2 + 0.6, 3.3 * 3))
    assert isinstance(series.figure_.get_layout_engine(), ConstrainedLayoutEngine)
    assert series.axes_[2][1].get_visible() is False and series.axes_[2][0].get_visible() is True
    values = np.concatenate([np.ravel(s.metrics["test"]["accuracy"]) for s in series.landscapes])
    expected_levels = default_levels(values, "accuracy")
    for index, landscape in enumerate(series.landscapes):
        ax = series.axes_[index // 2][index % 2]
        assert landscape.ax_ is ax and ax.get_title() == f"epoch {3 * index}"
        np.testing.assert_allclose(landscape.artists_["contourf"].levels, expected_levels)
    assert len(series.figure_.axes) == 3 * 2 + 1  # the panels and one colour bar, none per panel
    assert series.colorbar_.mappable is series.landscapes[-1].artists_["contourf"]
    assert series.colorbar_.ax.get_ylabel() == "accuracy"


def test_by_default_contour_lines_four_to_a_row_without_a_colour_bar():
    series = plot_series(surfaces(5))
    assert series.axes_.shape == (2, 4) and series.colorbar_ is None
    assert "contour" in series.landscapes[0].artists_ and "contourf" not in series.landscapes[0].artists_
    values = np.concatenate([np.ravel(s.losses["train"]) for s in series.landscapes])
    np.testing.assert_allclose(series.landscapes[2].artists_["contour"].levels, default_levels(values, "loss"))
    assert plot_series(surfaces(1)).axes_.shape == (1, 1)
    with pytest.raises(ValueError, match=r"^The series holds no landscapes\.$"):
        plot_series(LandscapeSeries([], [], [], []))


def test_a_bad_kind_or_label_is_refused_before_a_figure_is_opened():
    before = plt.get_fignums()
    with pytest.raises(ValueError, match="'volume'"):
        plot_series(surfaces(2), kind="volume")
    with pytest.raises(KeyError, match="'validation'"):
        plot_series(surfaces(2), label="validation")
    assert plt.get_fignums() == before


def test_line_panels_draw_one_label_or_all_on_the_range_of_every_panel():
    lines = [LossLine(X, {"train": (e + 1) * X**2, "test": (e + 1) * X**2 + 1},
                      {"train": {"accuracy": 1 - X**2}, "test": {"accuracy": 0.5 - X**2 / (e + 1)}}) for e in range(3)]
    series = plot_series(LandscapeSeries(lines, [0, 1, 2], [0, 1, 2], [{}] * 3), metric="accuracy", label="test")
    ax = series.axes_[0][0]
    (drawn,) = ax.get_lines()
    np.testing.assert_allclose(drawn.get_ydata(), 0.5 - X**2)
    every = np.concatenate([0.5 - X**2 / (e + 1) for e in range(3)])
    assert ax.get_ylim() == pytest.approx((every.min(), every.max()))
    series = plot_series(LandscapeSeries(lines, [0, 1, 2], [0, 1, 2], [{}] * 3))
    assert len(series.axes_[0][1].get_lines()) == 2 and series.axes_[0][1].get_ylim() == pytest.approx((0, 3))  # the first label's range


def _frames(monkeypatch):
    """Replaces saving with drawing each frame, recording each frame's title, levels and colour bar label."""
    frames = []

    def save(movie, path, writer=None):
        frames.append(("writer", writer))
        for index in range(movie._save_count):
            movie._func(index)
            ax, *others = movie._fig.axes
            artist = ax.collections[0]
            frames.append((ax.get_title(), np.asarray(artist.levels), [o.get_ylabel() for o in others]))

    monkeypatch.setattr(animation.Animation, "save", save)
    return frames


def test_each_frame_shows_its_epoch_on_the_series_scale(monkeypatch, tmp_path):
    frames = _frames(monkeypatch)
    series = surfaces(3)
    series.epochs = [0, 5, 10]
    animate_series(series, tmp_path / "movie.gif", metric="accuracy", label="test", fps=5)
    (_, writer), *drawn = frames
    assert isinstance(writer, animation.PillowWriter) and writer.fps == 5
    values = np.concatenate([np.ravel(s.metrics["test"]["accuracy"]) for s in series.landscapes])
    for index, (title, levels, colorbars) in enumerate(drawn):
        assert title == f"epoch {5 * index}" and colorbars == ["accuracy"]
        np.testing.assert_allclose(levels, default_levels(values, "accuracy"))
    frames.clear()
    animate_series(series, tmp_path / "lines.gif", kind="contour")
    assert [colorbars for _, _, colorbars in frames[1:]] == [[], [], []]


def test_a_gif_has_a_frame_per_landscape_at_the_asked_rate(tmp_path):
    from PIL import Image

    animate_series(surfaces(2), tmp_path / "movie.gif")
    with Image.open(tmp_path / "movie.gif") as image:
        assert image.n_frames == 2 and image.info["duration"] == 500  # 2 frames per second by default
        assert image.size == (500, 420)  # 5 × 4.2 inches at 100 dpi


def test_mp4_needs_ffmpeg_and_other_paths_and_series_are_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(animation.FFMpegWriter, "isAvailable", classmethod(lambda cls: False))
    with pytest.raises(ValueError, match=r"^Writing \.mp4 needs ffmpeg on the PATH; write a \.gif instead\.$"):
        animate_series(surfaces(2), tmp_path / "movie.mp4")
    monkeypatch.setattr(animation.FFMpegWriter, "isAvailable", classmethod(lambda cls: True))
    frames = _frames(monkeypatch)
    animate_series(surfaces(2), tmp_path / "movie.MP4")
    assert isinstance(frames[0][1], animation.FFMpegWriter) and frames[0][1].fps == 2
    with pytest.raises(ValueError, match=re.escape("Expected a .gif or .mp4 path for the animation, received: ")):
        animate_series(surfaces(2), tmp_path / "movie.png")
    lines = LandscapeSeries([LossLine(X, {"train": X**2}, {"train": {}})], [0], [0], [{}])
    for series in (lines, LandscapeSeries([], [], [], [])):
        with pytest.raises(ValueError, match=r"^animate_series draws surfaces; this series holds none\.$"):
            animate_series(series, tmp_path / "movie.gif")
    plt.close("all")


def test_a_missing_series_file_is_named(tmp_path):
    message = f"No series file at {str(tmp_path / 's.h5')!r}."
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_series(tmp_path / "s.h5")


def _sorted_values(artist):
    return np.sort(np.ravel(np.ma.filled(artist.get_array(), np.nan)))


def test_panels_and_frames_draw_the_values_of_the_label_and_metric_asked_for(monkeypatch, tmp_path):
    series = plot_series(surfaces(2), kind="heatmap", metric="accuracy", label="test")
    for landscape in series.landscapes:
        np.testing.assert_allclose(_sorted_values(landscape.artists_["heatmap"]),
                                   np.sort(np.ravel(landscape.metrics["test"]["accuracy"])))
    assert len(series.figure_.axes) == 2 + 1  # one colour bar for both panels
    assert all(landscape.ax_.child_axes == [] for landscape in series.landscapes)  # none of a panel's own
    drawn, norms = [], []

    def save(movie, path, writer=None):
        movie._draw_was_started = True  # drawn here, frame by frame
        for index in range(movie._save_count):
            movie._func(index)
            ax = movie._fig.axes[0]
            drawn.append((_sorted_values(ax.collections[0]), len(movie._fig.axes) + len(ax.child_axes)))
            norms.append((ax.collections[0].norm.vmin, ax.collections[0].norm.vmax))

    monkeypatch.setattr(animation.Animation, "save", save)
    animate_series(series, tmp_path / "movie.gif", kind="heatmap", metric="accuracy", label="test")
    for (values, axes), landscape in zip(drawn, series.landscapes):
        np.testing.assert_allclose(values, np.sort(np.ravel(landscape.metrics["test"]["accuracy"])))
        assert axes == 2  # the frame and its one colour bar, beside it
    assert norms[0] == norms[1]  # one colour scale for every frame


def test_levels_given_to_a_series_are_every_panels_levels():
    series = plot_series(surfaces(3), kind="contourf", levels=[0.1, 1.0, 2.0, 4.0, 8.0])
    for landscape in series.landscapes:
        np.testing.assert_allclose(landscape.artists_["contourf"].levels, [0.1, 1.0, 2.0, 4.0, 8.0])


def test_line_panels_of_flat_or_missing_values_keep_matplotlibs_range(recwarn):
    flat = [LossLine(X, {"train": np.full(X.size, 0.5)}, {"train": {}}) for _ in range(2)]
    series = plot_series(LandscapeSeries(flat, [0, 1], [0, 1], [{}] * 2))
    low, high = series.axes_[0][0].get_ylim()
    assert low < 0.5 < high and not [w for w in recwarn if "identical low and high ylims" in str(w.message)]
    missing = [LossLine(X, {"train": np.full(X.size, np.nan)}, {"train": {}})]
    assert plot_series(LandscapeSeries(missing, [0], [0], [{}])).axes_.shape == (1, 1)
