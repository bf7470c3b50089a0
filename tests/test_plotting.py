import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # noqa: E402

from losslandscape import (  # noqa: E402
    LossLine,
    LossSurface,
    plot_interpolation,
    plot_line,
    plot_loss,
    plot_loss_3D,
    plot_surface,
)


def bowl_surface(with_gaps=False):
    x, y = np.linspace(-1, 1, 9), np.linspace(-2, 2, 7)
    values = x[:, None] ** 2 + 0.5 * y[None, :] ** 2 + 0.1
    if with_gaps:
        values[0, 0] = np.nan
        values[-1, -1] = np.inf
    return LossSurface(x, y, {"train": values}, {"train": {"accuracy": 1 - values / values.max()}})


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap", "surface"])
def test_each_kind_draws_the_data_and_tolerates_nan_and_inf(kind):
    surface = bowl_surface(with_gaps=True)
    artist = surface.plot(kind=kind).artists_[kind]
    assert surface.figure_ is surface.ax_.figure
    finite = surface.losses["train"][np.isfinite(surface.losses["train"])]
    if kind in ("contour", "contourf"):
        inside = artist.levels[(artist.levels > finite.min()) & (artist.levels < finite.max())]
        assert len(inside) >= 3
        assert sum(len(path.vertices) for path in artist.get_paths()) > 0
    elif kind == "heatmap":
        drawn = artist.get_array()
        assert np.ma.count_masked(drawn) == 2
        np.testing.assert_allclose(np.ma.compressed(drawn).max(), finite.max())
    else:
        assert isinstance(artist, Poly3DCollection)
        assert surface.ax_.name == "3d"
        surface.figure_.canvas.draw()
        # 8 x 6 facets; the two corner facets touching a missing point are not drawn.
        drawn = [path for path in artist.get_paths() if np.all(np.isfinite(path.vertices))]
        assert len(drawn) == 8 * 6 - 2
    plt.close("all")


def test_log_scale_and_metric_choice():
    surface = bowl_surface()
    artist = surface.plot("contourf", log=True).artists_["contourf"]
    assert isinstance(artist.norm, matplotlib.colors.LogNorm)
    surface.plot("heatmap", metric="accuracy")
    assert surface.ax_.get_title() == "train accuracy"
    with pytest.raises(ValueError, match="Expected `kind`"):
        surface.plot("wireframe")
    plt.close("all")


def test_plot_on_given_axes_and_require_3d_axes_for_surface():
    surface = bowl_surface()
    figure, (left, right) = plt.subplots(1, 2)
    surface.plot("contour", ax=left)
    assert surface.ax_ is left and left.collections
    with pytest.raises(ValueError, match="projection='3d'"):
        surface.plot("surface", ax=right)
    plt.close("all")


def test_line_plot_has_one_curve_per_dataset():
    coords = np.linspace(-1, 1, 11)
    line = LossLine(coords, {"train": coords**2, "test": coords**2 + 1}, {"train": {}, "test": {}})
    drawn = line.plot().artists_["line"]
    assert [d.get_label() for d in drawn] == ["train", "test"]
    np.testing.assert_allclose(drawn[1].get_ydata(), coords**2 + 1)
    plt.close("all")


def test_surface_plot_draws_contours_by_default_and_the_label_asked_for():
    from matplotlib.collections import QuadMesh
    from matplotlib.contour import ContourSet

    grid = np.linspace(-1, 1, 5)
    bowl = np.add.outer(grid**2, grid**2)
    surface = LossSurface(grid, grid, {"train": bowl, "test": bowl + 3}, {"train": {}, "test": {}})
    ax = surface.plot().ax_
    assert any(isinstance(artist, ContourSet) for artist in ax.collections)
    assert not any(isinstance(artist, QuadMesh) for artist in ax.collections)
    (mesh,) = [a for a in surface.plot("heatmap", label="test").ax_.collections if isinstance(a, QuadMesh)]
    np.testing.assert_allclose(np.sort(mesh.get_array().ravel()), np.sort((bowl + 3).ravel()))
    (styled,) = [a for a in surface.plot("heatmap", cmap="magma").ax_.collections if isinstance(a, QuadMesh)]
    assert styled.get_cmap().name == "magma"
    plt.close("all")


def test_line_plot_draws_the_metric_labels_and_style_asked_for():
    coords = np.linspace(-1, 1, 11)
    accuracy = {"train": 1 - coords**2, "test": 0.5 - coords**2}
    line = LossLine(coords, {"train": coords**2, "test": coords**2 + 1},
                    {label: {"accuracy": values} for label, values in accuracy.items()})
    (drawn,) = line.plot(metric="accuracy", labels=["test"], color="red", linestyle="--").artists_["line"]
    assert drawn.get_label() == "test" and drawn.get_color() == "red" and drawn.get_linestyle() == "--"
    np.testing.assert_allclose(drawn.get_ydata(), accuracy["test"])
    plt.close("all")


def test_plot_loss_3d_draws_both_types_and_saves_them(small_mlp, regression_data, tmp_path):
    x, y = regression_data
    surface = plot_loss_3D(small_mlp, ("levels", "3d"), x, y, number_of_points=6, save=tmp_path / "loss.png", verbose=0)
    assert surface.losses["train"].shape == (6, 6)
    assert set(surface.figures_) == {"contour", "surface"}
    assert surface.axes_["surface"].name == "3d"
    levels = surface.axes_["contour"].collections[0].levels
    values = surface.losses["train"]
    assert np.sum((levels > values.min()) & (levels < values.max())) >= 3
    assert (tmp_path / "loss_levels.png").stat().st_size > 1000
    assert (tmp_path / "loss_3d.png").stat().st_size > 1000
    assert not (tmp_path / "loss.png").exists()
    plt.close("all")


def test_saving_two_plot_types_says_which_two_files_it_wrote(small_mlp, regression_data, tmp_path, capsys):
    x, y = regression_data
    plot_loss_3D(small_mlp, ("levels", "3d"), x, y, number_of_points=3, save=tmp_path / "loss.svg", verbose=1)
    assert (f"losslandscape: wrote {tmp_path / 'loss_levels.svg'} and {tmp_path / 'loss_3d.svg'}, one file per plot "
            "type\n") in capsys.readouterr().out
    plot_loss_3D(small_mlp, "3d", x, y, number_of_points=3, save=tmp_path / "one.svg", verbose=1)
    assert (tmp_path / "one.svg").exists() and "one file per plot type" not in capsys.readouterr().out


def test_plot_loss_3d_rejects_unknown_types(small_mlp, regression_data):
    x, y = regression_data
    with pytest.raises(ValueError, match=r"^Unknown plot type \['contours'\]. Valid plot types: 'levels' and '3d' \(or 'contour' and 'surface'\), "
                       r"or a sequence of them such as \('levels', '3d'\).$"):
        plot_loss_3D(small_mlp, "contours", x, y, verbose=0)
    with pytest.raises(ValueError, match="Unknown plot type"):
        plot_loss_3D(small_mlp, ("levels", "surf"), x, y, verbose=0)


def test_plot_loss_draws_on_given_axes_without_showing(small_mlp, regression_data, tmp_path):
    x, y = regression_data
    figure, ax = plt.subplots()
    line = plot_loss(
        small_mlp, ((x, y), (x[:40], y[:40])), dataset_labels=("training set", "test set"),
        number_of_points=9, ax=ax, save=tmp_path / "line.png", verbose=0,
    )
    assert line.ax_ is ax
    assert [l.get_label() for l in ax.lines] == ["training set", "test set"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), line.losses["training set"])
    assert (tmp_path / "line.png").exists()
    plt.close("all")


def test_every_plot_returns_the_landscape_with_what_it_drew():
    """One convention, as scikit-learn's displays: the landscape comes back with ax_, figure_ and artists_ set."""
    coords = np.linspace(-1, 1, 5)
    line = LossLine(coords, {"train": coords**2}, {"train": {"accuracy": 1 - coords**2}})
    surface = bowl_surface()
    calls = {
        "line": lambda: line.plot(),
        "plot_line": lambda: plot_line(line),
        "plot_interpolation": lambda: plot_interpolation(line),
        "surface.plot": lambda: surface.plot("heatmap"),
        "plot_surface": lambda: plot_surface(surface, "contour"),
    }
    for name, call in calls.items():
        returned = call()
        assert returned is (line if "line" in name or "interpolation" in name else surface), name
        assert returned.figure_ is returned.ax_.figure and returned.artists_, name
    assert set(line.artists_) == {"line", "metric"} and set(surface.artists_) == {"heatmap", "contour"}
    assert surface.artists_["contour"] is not surface.artists_["heatmap"]
    plt.close("all")


def _infinite_surface():
    x, y = np.linspace(-1, 1, 9), np.linspace(-2, 2, 7)
    values = x[:, None] ** 2 + 0.5 * y[None, :] ** 2 + 0.1
    values[0, 0], values[-1, -1], values[-1, 0] = np.inf, np.nan, -np.inf
    return LossSurface(x, y, {"train": values}, {"train": {}})


def test_infinite_values_are_gaps_in_a_heatmap_not_its_top_colour():
    surface = _infinite_surface().plot("heatmap")
    mesh = surface.artists_["heatmap"]
    colours = mesh.to_rgba(mesh.get_array())  # rows along β
    for j, i in [(0, 0), (-1, -1), (0, -1)]:  # (β, α) of +inf, NaN, -inf
        assert np.ma.getmaskarray(mesh.get_array())[j, i]
        assert colours[j, i, 3] == 0.0  # transparent, not the colour of the largest value
    assert np.ma.getmaskarray(mesh.get_array()).sum() == 3
    finite_top = mesh.to_rgba(np.ma.masked_invalid(surface.losses["train"]).max())
    assert tuple(colours[0, 0]) != tuple(finite_top)
    plt.close("all")


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap", "surface"])
def test_every_surface_plot_says_how_many_points_are_not_finite(kind):
    surface = _infinite_surface().plot(kind)
    note = surface.artists_["not_finite"]
    assert note.get_text() == "3 of 63 points not finite (gaps)" and note.axes is surface.ax_
    assert "not_finite" not in bowl_surface().plot(kind).artists_
    plt.close("all")


def test_a_line_with_infinite_values_draws_gaps_and_says_how_many():
    coords = np.linspace(-1, 1, 11)
    line = LossLine(coords, {"train": np.where(coords > 0.75, np.inf, coords**2), "test": coords**2},
                    {"train": {}, "test": {}}).plot()
    drawn = line.artists_["line"][0].get_ydata()
    assert np.ma.getmaskarray(drawn).tolist() == [False] * 9 + [True] * 2
    assert line.artists_["not_finite"].get_text() == "2 of 22 points not finite (gaps)"
    assert np.isfinite(line.ax_.get_ylim()).all()
    plt.close("all")


def test_exported_heights_are_nan_where_values_are_not_finite_even_when_clipped():
    from losslandscape.exports import surface_heights

    surface = _infinite_surface()
    heights = surface_heights(surface, clip=2.0)
    assert np.isnan(heights[[0, -1, -1], [0, -1, 0]]).all()
    assert np.nanmax(heights) == 2.0 and np.isfinite(heights).sum() == 60
    logged = surface_heights(surface, log=True)
    assert np.isnan(logged[0, 0]) and logged[4, 3] == pytest.approx(np.log10(0.1))


def test_a_series_of_lines_with_infinite_values_shares_a_finite_scale():
    from losslandscape import LandscapeSeries, plot_series

    coords = np.linspace(-1, 1, 5)
    lines = [LossLine(coords, {"train": values}, {"train": {}})
             for values in (coords**2, np.array([np.inf, 0.5, 0.2, 0.5, 3.0]))]
    series = plot_series(LandscapeSeries(lines, [0, 1], [0, 4], [{}, {}]))
    assert [ax.get_ylim() for ax in series.axes_.ravel()] == [(0.0, 3.0), (0.0, 3.0)]
    assert series.figure_.axes == list(series.axes_.ravel()) and series.colorbar_ is None
    plt.close("all")
