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
    # Given bounds on a log scale: levels evenly spaced in log L, not in log(L - vmin) as on a linear one.
    bounded = surface.plot("contour", log=True, vmin=0.1, vmax=10.0).artists_["contour"]
    np.testing.assert_allclose(bounded.levels, np.geomspace(0.1, 10.0, 12))
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


def test_a_line_plot_names_its_axes_and_shows_a_legend_only_for_several_curves():
    coords = np.linspace(-1, 1, 5)
    one = LossLine(coords, {"train": coords**2}, {"train": {}})
    ax = plot_line(one).ax_
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_legend()) == ("α", "loss", None)
    one.settings["normalization"] = "filter"
    assert plot_line(one).ax_.get_xlabel() == "α (filter-normalized direction)"
    assert plot_line(one, labels=["train"]).ax_.get_legend() is not None  # datasets named: a legend says which
    two = LossLine(coords, {"train": coords**2, "test": coords**2 + 1}, {"train": {}, "test": {}})
    legend = plot_line(two).ax_.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["train", "test"]
    plt.close("all")


def test_an_interpolation_plot_draws_loss_and_accuracy_on_two_axes_by_dataset_style():
    t = np.linspace(-0.5, 1.5, 9)
    losses = {"train": (t - 0.5) ** 2, "test": (t - 0.5) ** 2 + 1}
    accuracies = {"train": 1 - t / 4, "test": 0.9 - t / 4}
    line = LossLine(t, losses, {label: {"accuracy": values} for label, values in accuracies.items()},
                    settings={"kind": "interpolation"})
    drawn = plot_interpolation(line)
    loss_lines, accuracy_lines = drawn.artists_["line"], drawn.artists_["metric"]
    assert [l.get_linestyle() for l in loss_lines] == ["-", "--"] == [l.get_linestyle() for l in accuracy_lines]
    assert {l.get_color() for l in loss_lines} == {"C0"} and {l.get_color() for l in accuracy_lines} == {"C3"}
    for label, loss, accuracy in zip(("train", "test"), loss_lines, accuracy_lines):
        np.testing.assert_allclose(loss.get_ydata(), losses[label])
        np.testing.assert_allclose(accuracy.get_ydata(), accuracies[label])
    assert drawn.ax_.get_xlabel() == "t (0: model a, 1: model b)" and drawn.ax_.get_ylabel() == "loss"
    assert drawn.axes_["metric"].get_ylabel() == "accuracy" and accuracy_lines[0].axes is drawn.axes_["metric"]
    legend = drawn.ax_.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["train loss", "test loss", "train accuracy", "test accuracy"]
    assert legend.get_texts()[0].get_fontsize() == 8
    plain = LossLine(t, {"train": losses["train"]}, {"train": {}})
    shown = plot_interpolation(plain)
    assert shown.ax_.get_xlabel() == "α" and "metric" not in shown.artists_ and len(shown.figure_.axes) == 1
    plt.close("all")


def test_a_log_surface_leaves_out_values_at_or_below_zero_and_refuses_when_none_are_left():
    x = np.linspace(-1, 1, 5)
    values = x[:, None] ** 2 + x**2  # zero at the centre
    surface = LossSurface(x, x, {"train": values}, {"train": {}})
    mesh = surface.plot("heatmap", log=True).artists_["heatmap"]
    assert np.ma.getmaskarray(mesh.get_array()).sum() == 1 and np.ma.getmaskarray(mesh.get_array())[2, 2]
    with pytest.raises(ValueError, match=r"^No finite positive loss values to plot\.$"):
        LossSurface(x, x, {"train": -values}, {"train": {}}).plot("contour", log=True)
    with pytest.raises(ValueError, match=r"^No finite loss values to plot\.$"):
        LossSurface(x, x, {"train": np.full((5, 5), np.nan)}, {"train": {}}).plot("contour")
    plt.close("all")


def test_a_log_3d_surface_draws_log10_heights_and_names_them():
    x = np.linspace(-1, 1, 5)
    values = 0.01 + x[:, None] ** 2 + x**2
    surface = LossSurface(x, x, {"train": values}, {"train": {}}).plot("surface", log=True)
    assert surface.ax_.get_zlabel() == "log10 loss"
    assert surface.ax_.get_zlim() == pytest.approx((np.log10(values.min()), np.log10(values.max())))
    assert surface.artists_["surface"].colorbar.ax.get_ylabel() == "log10 loss"
    plt.close("all")


def test_every_flat_plot_names_its_axes_and_a_given_3d_axes_keeps_its_view():
    surface = bowl_surface()
    for kind in ("contour", "contourf", "heatmap"):
        ax = surface.plot(kind).ax_
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("α", "β", "train loss")
    assert surface.plot("heatmap", label="train", metric="accuracy").ax_.get_title() == "train accuracy"
    given = plt.figure().add_subplot(projection="3d")
    given.view_init(elev=10, azim=20)
    assert surface.plot("3d", ax=given).ax_ is given and (given.elev, given.azim) == (10, 20)
    assert surface.ax_.get_xlabel() == "α" and surface.ax_.get_ylabel() == "β"
    plt.close("all")


def test_theta0_is_starred_only_where_it_lies_on_the_plane():
    x = np.linspace(0.5, 1.5, 5)
    away = LossSurface(x, x, {"train": x[:, None] + x}, {"train": {}}).plot("contour")
    assert not [line for line in away.ax_.lines if line.get_label() == "θ0"]
    (star,) = [line for line in bowl_surface().plot("heatmap").ax_.lines if line.get_label() == "θ0"]
    assert star.get_marker() == "*" and star.get_markerfacecolor() == "white"
    # θ0 at a corner of the plane is on it; a plane that stops short of 0 along either axis is not.
    for xcoords, ycoords, starred in [([0.0, 0.5], [-0.5, 0.0], True), ([-0.5, 0.0], [0.0, 0.5], True),
                                      ([0.1, 0.5], [-0.5, 0.5], False), ([-0.5, 0.5], [-0.5, -0.1], False),
                                      ([-0.5, -0.1], [-0.5, 0.5], False), ([-0.5, 0.5], [0.1, 0.5], False)]:
        corner = LossSurface(xcoords, ycoords, {"train": np.arange(4.0).reshape(2, 2) + 1}, {"train": {}})
        stars = [line for line in corner.plot("heatmap").ax_.lines if line.get_label() == "θ0"]
        assert len(stars) == starred, (xcoords, ycoords)
        if starred:
            np.testing.assert_array_equal(stars[0].get_xydata(), [[0.0, 0.0]])
    plt.close("all")


def test_the_3d_surface_and_filled_contours_take_the_users_colour_map_with_all_its_colours():
    surface = bowl_surface()
    assert surface.plot("surface", cmap="magma").artists_["surface"].get_cmap().name == "magma"
    filled = surface.plot("contourf", cmap="Blues").artists_["contourf"]
    assert filled.get_cmap().name == "Blues" and filled.norm.Ncmap == 256
    # A map of fewer colours than bands (10 for 12 levels and the arrow above them) takes 12 evenly spaced
    # samples of its 10: the first and the last twice.
    few = surface.plot("contourf", cmap="tab10", levels=12).artists_["contourf"]
    assert len(few.levels) == 12 and few.extend == "max" and few.get_cmap().N == few.norm.Ncmap == 12
    tab10 = plt.get_cmap("tab10").colors
    assert [tuple(colour[:3]) for colour in few.get_cmap()(np.arange(12))] == [
        tab10[i] for i in (0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9)]
    plt.close("all")


def test_a_trajectory_is_drawn_on_flat_plots_with_the_variance_each_axis_explains():
    from losslandscape import plot_trajectory
    from losslandscape.trajectory import PCADirections

    coords = np.array([[0.8, -1.5], [0.4, -0.5], [0.0, 0.0]])
    pca = PCADirections([[], []], np.array([0.81234, 0.12345]), np.ones(2), np.ones(2), coords)
    surface = plot_trajectory(bowl_surface(), pca, kind="heatmap")
    path = surface.artists_["path"]
    np.testing.assert_array_equal(path.get_xydata(), coords)
    (end,) = [line for line in surface.ax_.lines if line.get_marker() == "*" and line.get_color() == "C3"]
    assert (end.get_xdata()[0], end.get_ydata()[0]) == (0.0, 0.0)
    assert (surface.ax_.get_xlabel(), surface.ax_.get_ylabel()) == ("1st PC: 81.23 %", "2nd PC: 12.35 %")
    assert "heatmap" in surface.artists_
    with pytest.raises(ValueError, match=r"^plot_trajectory draws on flat plots: use kind 'contour', 'contourf' or "
                                         r"'heatmap'\.$"):
        plot_trajectory(bowl_surface(), pca, kind="surface")
    plt.close("all")


def test_kinds_are_read_with_their_aliases_and_axes_of_the_wrong_kind_are_refused():
    from losslandscape.plotting import check_axes_for_kind, surface_kind

    assert [surface_kind(k) for k in ("levels", "3d", "contourf", "heatmap")] == ["contour", "surface", "contourf",
                                                                                 "heatmap"]
    with pytest.raises(ValueError, match=r"^Expected `kind` to be one of \('contour', 'contourf', 'heatmap', "
                                         r"'surface'\) \(or \('levels', '3d'\)\), received: 'lines'$"):
        surface_kind("lines")
    three_d = plt.figure().add_subplot(projection="3d")
    with pytest.raises(ValueError, match=r"^A heatmap plot needs 2D axes, received 3D axes: create them with "
                                         r"`fig.add_subplot\(\)`\.$"):
        check_axes_for_kind(three_d, "heatmap")
    with pytest.raises(ValueError, match=r"^A 3D surface needs 3D axes, received 2D axes \(Axes\): create them with "
                                         r"`fig.add_subplot\(projection='3d'\)`\.$"):
        check_axes_for_kind(plt.figure().add_subplot(), "surface")
    check_axes_for_kind(three_d, "surface")
    check_axes_for_kind(None, "surface")
    plt.close("all")


def test_the_basin_scale_spends_colours_evenly_on_the_levels():
    from losslandscape.plotting import _basin_norm

    z = np.ma.masked_invalid(np.array([0.05, 0.3, 5.0, np.inf]))
    norm = _basin_norm(z, np.array([0.1, 0.2, 1.0, 4.0]))
    # Knots 0.05 (the minimum), 0.1, 0.2, 1.0, 4.0 at 0, 1/4, ..., 1; linear between them.
    np.testing.assert_allclose(norm(np.array([0.05, 0.1, 0.15, 1.0, 4.0])), [0.0, 0.25, 0.375, 0.75, 1.0])
    np.testing.assert_allclose(norm.inverse(np.array([0.0, 0.625, 1.0])), [0.05, 0.6, 4.0])
    assert norm(z)[3] is np.ma.masked
    assert (norm.vmin, norm.vmax) == (0.05, 4.0)
    flat = _basin_norm(np.ma.masked_invalid(np.array([2.0, 2.0])), np.array([2.0]))
    assert (flat.vmin, flat.vmax) == (2.0, 3.0)


@pytest.mark.parametrize(("values", "extend"), [([0.5, 0.6], "neither"), ([0.1, 0.6], "min"), ([0.5, 2.0], "max"),
                                                ([0.1, 2.0], "both")])
def test_a_shared_filled_scale_has_an_arrow_on_each_side_values_lie_beyond(values, extend):
    from losslandscape.plotting import shared_scale

    levels = [0.2, 0.4, 0.8]
    assert shared_scale("contourf", np.array(values + [np.nan]), levels) == {"extend": extend}
    norm = shared_scale("heatmap", np.array(values + [np.inf]), levels)["norm"]
    assert norm.vmin == min(values[0], 0.2) and norm.vmax == 0.8


@pytest.mark.parametrize(("low", "high", "ticks"), [
    (1.0, 1000.0, [1, 10, 100, 1000]),
    (0.1, 5.0, [0.1, 0.2, 0.5, 1, 2, 5]),
    (3.5, 8.5, [4, 5, 6, 7, 8]),
    (1.01, 1.02, list(np.geomspace(1.01, 1.02, 4))),
])
def test_log_colour_bar_ticks_step_1_2_5_and_finer_on_short_ranges(low, high, ticks):
    from losslandscape.plotting import _log_ticks

    np.testing.assert_allclose(_log_ticks(low, high), ticks)


def test_a_colour_bar_shared_by_several_axes_spans_them_on_the_levels_scale():
    from losslandscape.plotting import colorbar_beside

    figure, axes = plt.subplots(1, 2)
    mesh = axes[0].pcolormesh(np.array([[0.1, 5.0]]))
    colorbar = colorbar_beside(list(axes), mesh, "loss", np.array([0.1, 0.5, 5.0]))
    assert colorbar.ax.get_ylabel() == "loss" and colorbar.ax.get_yscale() == "log"
    assert colorbar.ax.get_ylim() == pytest.approx((0.1, 5.0))
    assert colorbar.ax not in [ax for ax in axes[0].child_axes]
    accuracy = axes[1].pcolormesh(np.array([[0.4, 0.9]]))
    linear = colorbar_beside(axes[1], accuracy, "accuracy", np.array([0.4, 0.9]), log=False)
    assert linear.ax.get_yscale() == "linear" and linear.ax in axes[1].child_axes
    np.testing.assert_allclose(linear.get_ticks(), [0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert colorbar_beside(axes[1], accuracy, "loss", np.array([0.4, 0.9]), log=True).ax.get_yscale() == "log"
    plt.close("all")


def test_a_3d_plot_says_on_top_how_many_points_are_gaps():
    surface = _infinite_surface().plot("surface")
    note = surface.artists_["not_finite"]
    assert note.get_position() == (0.01, 0.98) and note.get_va() == "top"
    flat_surface = _infinite_surface().plot("heatmap")
    flat = flat_surface.artists_["not_finite"]
    assert flat.get_position() == (0.01, 0.01) and flat.get_va() == "bottom"
    assert note.get_transform() is surface.ax_.transAxes and flat.get_transform() is flat_surface.ax_.transAxes
    plt.close("all")


def test_filled_contours_start_at_the_minimum_so_only_values_above_the_top_get_an_arrow():
    surface = bowl_surface()
    artist = surface.plot("contourf").artists_["contourf"]
    values = surface.losses["train"]
    assert artist.levels[0] == pytest.approx(values.min()) and artist.extend in ("max", "neither")
    assert artist.extend == ("max" if values.max() > artist.levels[-1] else "neither")
    plt.close("all")


def test_showing_makes_sense_only_on_interactive_backends(monkeypatch):
    from losslandscape import plotting

    assert not plotting.interactive_backend_active()  # Agg, as these tests use
    for backend, interactive in (("module://matplotlib_inline.backend_inline", True), ("TkAgg", True),
                                 ("module://ipympl.backend_nbagg", True), ("pdf", False)):
        monkeypatch.setattr(plotting.matplotlib, "get_backend", lambda backend=backend: backend)
        assert plotting.interactive_backend_active() is interactive, backend


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap"])
def test_flat_plots_cover_the_grid_with_equal_axes_and_their_scales(kind):
    from matplotlib.colors import BoundaryNorm, FuncNorm, LogNorm

    surface = bowl_surface()  # α from -1 to 1 (9 points), β from -2 to 2 (7 points); minimum 0.1 at θ0
    ax = surface.plot(kind).ax_
    artist = surface.artists_[kind]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    cell = 0.25, 2 / 3
    assert -1 - cell[0] / 2 - 1e-9 <= x0 <= -1 and 1 <= x1 <= 1 + cell[0] / 2 + 1e-9
    assert -2 - cell[1] / 2 - 1e-9 <= y0 <= -2 and 2 <= y1 <= 2 + cell[1] / 2 + 1e-9
    assert ax.get_aspect() == 1.0 and ax.get_adjustable() == "box"
    if kind != "heatmap":  # the lowest region drawn holds θ0, the minimum
        assert artist.get_paths()[0].contains_point((0.0, 0.0))
    expected_cmap = "viridis_lines" if kind == "contour" else "viridis"
    assert artist.get_cmap().name == expected_cmap
    assert isinstance(artist.norm, BoundaryNorm if kind == "contourf" else FuncNorm)
    if kind == "contourf":
        np.testing.assert_allclose(artist.norm.boundaries, artist.levels)
        assert artist.norm.extend == artist.extend
    logged = surface.plot(kind, log=True, metric="accuracy").artists_[kind]
    levels = np.asarray(logged.levels) if kind != "heatmap" else None
    assert isinstance(logged.norm, LogNorm)
    if levels is not None:
        assert (logged.norm.vmin, logged.norm.vmax) == pytest.approx((levels[0], levels[-1]))
    else:  # the levels' bounds, not the data's
        from losslandscape.contour_levels import default_levels

        chosen = default_levels(np.ravel(surface.metrics["train"]["accuracy"]), "accuracy", log=True)
        assert logged.norm.clip and (logged.norm.vmin, logged.norm.vmax) == pytest.approx((chosen[0], chosen[-1]))
    if kind != "contour":
        colorbar = logged.colorbar
        assert colorbar.ax.get_ylabel() == "accuracy" and colorbar.ax.get_yscale() == "log"
    assert surface.plot(kind, cmap="magma").artists_[kind].get_cmap().name == "magma"
    plt.close("all")


def test_lines_are_drawn_over_their_coordinates_and_note_gaps_in_the_metric_drawn():
    coords = np.array([-0.5, 0.0, 1.0, 2.0])
    line = LossLine(coords, {"train": coords**2}, {"train": {"accuracy": np.array([0.5, np.inf, 0.7, 0.6])}},
                    settings={"kind": "interpolation"})
    (curve,) = plot_line(line, metric="accuracy").artists_["line"]
    np.testing.assert_array_equal(curve.get_xdata(), coords)
    assert line.artists_["not_finite"].get_text() == "1 of 4 points not finite (gaps)"
    assert "not_finite" not in plot_line(line).artists_  # the loss has no gap: a later plot forgets the note
    drawn = plot_interpolation(line)
    for artist in drawn.artists_["line"] + drawn.artists_["metric"]:
        np.testing.assert_array_equal(artist.get_xdata(), coords)
    gap = LossLine(coords, {"train": np.array([0.1, np.nan, 0.2, 0.3])}, {"train": {"accuracy": np.ones(4)}})
    note = plot_interpolation(gap).artists_["not_finite"]
    assert note.axes is gap.ax_ and note.get_text() == "1 of 4 points not finite (gaps)"
    assert drawn.artists_["not_finite"].get_text() == "1 of 4 points not finite (gaps)"  # the metric's gap
    both = LossLine(coords, {"train": np.array([0.1, np.nan, 0.2, 0.3])},
                    {"train": {"accuracy": np.array([1.0, np.nan, np.nan, 1.0])}})
    assert plot_interpolation(both).artists_["not_finite"].get_text() == "2 of 4 points not finite (gaps)"
    assert drawn.ax_.yaxis.label.get_color() == "C0" and drawn.axes_["metric"].yaxis.label.get_color() == "C3"
    plt.close("all")


def test_an_interpolation_of_four_datasets_on_given_axes_counts_each_datasets_gaps():
    coords = np.array([0.0, 0.5, 1.0])
    labels = ["a", "b", "c", "d"]
    losses = {label: np.array([1.0, 2.0, 3.0]) for label in labels}
    metrics = {label: {"accuracy": np.array([0.5, 0.6, 0.7])} for label in labels}
    losses["c"] = np.array([1.0, np.nan, 3.0])  # a gap in one dataset's loss
    metrics["d"]["accuracy"] = np.array([np.nan, 0.6, 0.7])  # and another in another's metric
    fig, ax = plt.subplots()
    line = plot_interpolation(LossLine(coords, losses, metrics), ax=ax)
    assert line.ax_ is ax
    assert [artist.get_linestyle() for artist in line.artists_["line"]] == ["-", "--", ":", "-."]
    assert [artist.get_linestyle() for artist in line.artists_["metric"]] == ["-", "--", ":", "-."]
    assert line.artists_["not_finite"].get_text() == "2 of 12 points not finite (gaps)"
    without_metric = LossLine(coords, {"a": np.ones(3), "b": np.array([1.0, np.inf, 1.0])}, {"a": {}, "b": {}})
    assert plot_interpolation(without_metric).artists_["not_finite"].get_text() == "1 of 6 points not finite (gaps)"
    plt.close("all")


def test_a_surface_plot_is_linear_by_default_and_forgets_notes_of_an_earlier_plot():
    from matplotlib.colors import LogNorm

    surface = _infinite_surface()
    surface.metrics["train"]["accuracy"] = np.ones((9, 7))
    assert not isinstance(plot_surface(surface, "heatmap").artists_["heatmap"].norm, LogNorm)
    assert "not_finite" in surface.artists_
    plot_surface(surface, "heatmap", metric="accuracy")
    assert "not_finite" not in surface.artists_
    bowl = bowl_surface()
    bowl.plot("surface", vmax=0.5)
    assert "clipped" in bowl.artists_
    bowl.plot("surface")
    assert "clipped" not in bowl.artists_
    assert (bowl.ax_.elev, bowl.ax_.azim) == (45, -60)
    two = LossSurface(bowl.xcoords, bowl.ycoords, {"train": bowl.losses["train"], "test": bowl.losses["train"] + 1},
                      {"train": {}, "test": {}})
    assert plot_surface(two, "contour", label="test").ax_.get_title() == "test loss"
    plt.close("all")


def test_a_trajectory_passes_its_axes_label_metric_and_style_on_and_stars_its_end():
    from losslandscape import plot_trajectory
    from losslandscape.trajectory import PCADirections

    coords = np.array([[0.8, -1.5], [0.4, -0.5], [0.2, 0.3]])
    pca = PCADirections([[], []], np.array([0.6, 0.3]), np.ones(2), np.ones(2), coords)
    x, y = np.linspace(-1, 1, 9), np.linspace(-2, 2, 7)
    values = x[:, None] ** 2 + 0.5 * y[None, :] ** 2 + 0.1
    surface = LossSurface(x, y, {"train": values, "test": values + 1}, {"train": {}, "test": {"accuracy": -values}})
    ax = plt.figure().add_subplot()
    drawn = plot_trajectory(surface, pca, ax=ax, kind="heatmap", label="test", metric="accuracy", cmap="magma")
    assert drawn.ax_ is ax and ax.get_title() == "test accuracy"
    assert drawn.artists_["heatmap"].get_cmap().name == "magma"
    np.testing.assert_allclose(np.sort(drawn.artists_["heatmap"].get_array().ravel()), np.sort(-values.ravel()))
    path = drawn.artists_["path"]
    assert (path.get_color(), path.get_marker(), path.get_label()) == ("C3", "o", "training path")
    (end,) = [line for line in ax.lines if line.get_marker() == "*" and line.get_color() == "C3"]
    assert (end.get_xdata()[0], end.get_ydata()[0]) == (0.2, 0.3)
    plt.close("all")


def test_the_basin_scale_clips_above_its_top_and_filled_levels_never_repeat_the_minimum():
    from losslandscape.plotting import _basin_norm, _extend

    norm = _basin_norm(np.ma.masked_invalid(np.array([0.05, 0.3])), np.array([0.1, 0.2, 1.0]))
    assert norm(np.array([10.0]))[0] == 1.0
    assert _extend(np.ma.masked_invalid(np.array([0.1, 0.8])), np.array([0.1, 0.8])) == "neither"
    surface = bowl_surface()  # minimum 0.1, which the levels below start at
    levels = surface.plot("contourf", vmin=0.0, vmax=2.0).artists_["contourf"].levels
    assert np.all(np.diff(levels) > 0) and levels[0] <= 0.1
    assert isinstance(surface.plot("contourf", levels=[0.5, 2.0]).artists_["contourf"].norm,
                      matplotlib.colors.BoundaryNorm)
    plt.close("all")


@pytest.mark.parametrize(("low", "high", "ticks"), [(1.0, 100.0, [1, 10, 100]), (0.8, 1.5, [0.8, 0.9, 1.0])])
def test_log_ticks_take_the_coarsest_steps_that_give_three(low, high, ticks):
    from losslandscape.plotting import _log_ticks

    np.testing.assert_allclose(_log_ticks(low, high), ticks)


def test_colour_bars_choose_log_ticks_on_log_scales_and_round_steps_on_linear_ones():
    from losslandscape.plotting import colorbar_beside

    figure, ax = plt.subplots()
    mesh = ax.pcolormesh(np.array([[0.1, 5.0]]))
    bar = colorbar_beside(ax, mesh, "loss", np.array([0.1, 5.0]))
    np.testing.assert_allclose(bar.get_ticks(), [0.1, 0.2, 0.5, 1, 2, 5])
    assert colorbar_beside(ax, mesh, "loss", np.array([1.0, 3.0])).ax.get_yscale() == "log"  # a ratio of 3
    linear = colorbar_beside(ax, mesh, "loss", np.array([10.0, 25.0]))
    assert linear.ax.get_yscale() == "linear"
    ticks = [t for t in linear.get_ticks() if 10 <= t <= 25]
    np.testing.assert_allclose(ticks, [10, 12.5, 15, 17.5, 20, 22.5, 25])
    assert colorbar_beside(ax, mesh, "accuracy", np.array([0.0, 1.0])).ax.get_yscale() == "linear"
    figure.canvas.draw()
    plot, beside = ax.get_window_extent(), bar.ax.get_window_extent()
    assert plot.x1 < beside.x0 < plot.x1 + 0.1 * plot.width and beside.width == pytest.approx(0.045 * plot.width,
                                                                                                rel=0.05)
    plt.close("all")


def test_a_colour_bar_beside_several_axes_spans_all_of_them():
    from losslandscape.plotting import colorbar_beside

    figure, (top, bottom) = plt.subplots(2, 1)
    mesh = bottom.pcolormesh(np.array([[0.1, 5.0]]))
    bar = colorbar_beside([top, bottom], mesh, "loss", np.array([0.1, 5.0]))
    figure.canvas.draw()
    upper, lower, beside = top.get_position(), bottom.get_position(), bar.ax.get_position()
    assert beside.y0 == pytest.approx(lower.y0, abs=0.02) and beside.y1 == pytest.approx(upper.y1, abs=0.02)
    plt.close("all")
