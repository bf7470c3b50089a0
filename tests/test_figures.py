"""What the default figures show: the basin with several levels, θ0, readable colour bars, labels inside the axes."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from losslandscape import LossSurface, compute_surface, load_surface  # noqa: E402
from losslandscape.contour_levels import default_levels  # noqa: E402

GRID = np.linspace(-1, 1, 21)
RADIUS = np.hypot(*np.meshgrid(GRID, GRID, indexing="ij"))


def bowl(values):
    return LossSurface(GRID, GRID, {"train": values}, {"train": {}})


@pytest.mark.parametrize(
    "values",
    [0.1 + 5 * RADIUS**2, 0.1 + RADIUS**2 * np.exp(8 * RADIUS)],  # a bowl, and one that explodes to 1.6e5
    ids=["bowl", "exploding"],
)
def test_default_levels_circle_the_minimum_whatever_the_range(values):
    levels = default_levels(values)
    basin = values[RADIUS <= 0.35]  # the inner 0.35 of a plane from -1 to 1
    assert np.all(np.diff(levels) > 0) and len(levels) == 12
    assert values.min() < levels[0] < np.sort(values.ravel())[20]  # the innermost line encloses a few points only
    assert np.sum(levels < basin.max()) >= 4
    assert levels[-1] < values.max() and np.mean(values > levels[-1]) == pytest.approx(0.05, abs=0.02)


def test_matplotlibs_own_levels_would_leave_the_basin_empty():
    """The bug this replaces: linear levels put the innermost line far out, so the basin shows no line."""
    values = 0.1 + RADIUS**2 * np.exp(8 * RADIUS)
    linear = matplotlib.ticker.MaxNLocator(7).tick_values(values.min(), values.max())
    assert np.sum(linear < values[RADIUS <= 0.3].max()) <= 1 < np.sum(default_levels(values) < 1.1)


def test_given_bounds_give_the_same_levels_for_every_surface():
    first = default_levels(0.1 + 5 * RADIUS**2, vmin=0.0, vmax=10.0)
    second = default_levels(3 + RADIUS, vmin=0.0, vmax=10.0)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose([first[0], first[-1]], [0.1, 10.0])
    with pytest.raises(ValueError, match="vmin < vmax"):
        default_levels(RADIUS, vmin=2.0, vmax=1.0)


def test_an_accuracy_has_its_levels_dense_near_its_best_value():
    accuracy = 1.0 - 0.9 * RADIUS**2 / 2
    levels = default_levels(accuracy, metric="accuracy")
    assert levels[-1] < accuracy.max() and np.sum(levels > accuracy[RADIUS <= 0.3].min()) >= 4


def test_the_contour_plot_uses_the_levels_marks_theta0_and_keeps_labels_inside():
    values = 0.1 + RADIUS**2 * np.exp(8 * RADIUS)
    surface = bowl(values).plot("contour")
    np.testing.assert_allclose(surface.artists_["contour"].levels, default_levels(values))
    (origin,) = [line for line in surface.ax_.lines if line.get_label() == "θ0"]
    assert (origin.get_xdata()[0], origin.get_ydata()[0]) == (0.0, 0.0)
    surface.figure_.canvas.draw()
    labels = surface.artists_["contour"].labelTexts
    assert len(labels) >= 4
    axes_box = surface.ax_.get_window_extent()
    for text in labels:
        box = text.get_window_extent()
        assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 and axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
    plt.close("all")


@pytest.mark.parametrize("kind", ["contourf", "heatmap"])
def test_the_colour_bar_is_as_tall_as_the_plot_on_a_wide_grid(kind):
    x, y = np.linspace(-1, 1, 51), np.linspace(-0.5, 0.5, 26)
    surface = LossSurface(x, y, {"train": 0.1 + x[:, None] ** 2 + y**2}, {"train": {}}).plot(kind)
    surface.figure_.canvas.draw()
    (colorbar_axes,) = surface.ax_.child_axes
    plot_box, bar_box = surface.ax_.get_window_extent(), colorbar_axes.get_window_extent()
    assert plot_box.height == pytest.approx(plot_box.width / 2, rel=0.03)  # a plane twice as wide as high
    # The bar spans the plot's height; a filled plot's bar keeps room for the triangle of its clipped values.
    assert plot_box.y0 - 0.5 <= bar_box.y0 and bar_box.y1 <= plot_box.y1 + 0.5
    assert bar_box.height >= (0.9 if kind == "contourf" else 0.99) * plot_box.height
    plt.close("all")


def test_log_colour_bars_have_plain_numbers_on_their_ticks():
    x = np.linspace(-1, 1, 51)
    surface = LossSurface(x, x, {"train": 3.5 + x[:, None] ** 2 + x**2}, {"train": {}})  # less than one decade
    surface.plot("contourf", log=True)
    surface.figure_.canvas.draw()
    (colorbar_axes,) = surface.ax_.child_axes
    labels = [t.get_text() for t in colorbar_axes.get_yticklabels() if t.get_text()]
    assert len(labels) >= 3 and all("×" not in t and "10^" not in t and "$" not in t for t in labels), labels
    plt.close("all")


def test_the_3d_view_looks_into_the_basin_and_clips_far_values():
    values = 0.1 + RADIUS**2 * np.exp(8 * RADIUS)
    surface = bowl(values).plot("surface")
    levels = default_levels(values)
    assert surface.ax_.elev == 45 and surface.ax_.get_zlim() == pytest.approx((values.min(), levels[-1]))
    assert len(surface.figure_.axes) == 2  # the plot and its colour bar
    plt.close("all")


def test_a_dataset_passed_without_a_label_is_titled_by_the_metric_alone(small_mlp, regression_data, tmp_path):
    x, y = regression_data
    grid = np.linspace(-1, 1, 3)
    unnamed = compute_surface(small_mlp, (x, y), xcoords=grid, seed=0, path=tmp_path / "s.h5", verbose=0)
    assert unnamed.plot("contour").ax_.get_title() == "loss"
    assert load_surface(tmp_path / "s.h5").plot("heatmap").ax_.get_title() == "loss"
    assert "train" in load_surface(tmp_path / "s.h5").losses  # the file keeps the reference layout's name
    named = compute_surface(small_mlp, {"train": (x, y)}, xcoords=grid, seed=0, verbose=0)
    assert named.plot("contour").ax_.get_title() == "train loss"
    plt.close("all")


def test_levels_given_by_the_user_are_drawn_as_given():
    values = 0.1 + 5 * RADIUS**2
    surface = bowl(values)
    np.testing.assert_array_equal(surface.plot("contourf", levels=[0.5, 1.0, 2.0], extend="max").artists_["contourf"].levels,
                                  [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(surface.plot("contour", levels=[20.0]).artists_["contour"].levels, [20.0])  # above all
    assert len(surface.plot("contour", levels=5).artists_["contour"].levels) == 5
    plt.close("all")


def _facet_values(surface):
    """The colour value of each facet drawn in 3D (the mean height of its corners); cells left out have none."""
    return np.asarray(surface.artists_["surface"].get_array())


def test_a_3d_bowl_is_drawn_whole_without_plateaus():
    values = 0.1 + 5 * RADIUS**2
    surface = bowl(values).plot("surface")
    facets = _facet_values(surface)
    assert len(facets) == 20 * 20  # every cell of the 21 × 21 grid
    # The corners' cells are the highest, one per corner: nothing is flattened into a shelf.
    corner_cell = np.mean(values[-2:, -2:])
    assert facets.max() == pytest.approx(corner_cell) and np.sum(np.isclose(facets, facets.max())) == 4
    assert surface.ax_.get_zlim() == pytest.approx((values.min(), values.max()))
    colorbar = surface.artists_["surface"].colorbar
    assert colorbar.extend == "neither" and "clipped" not in surface.artists_
    plt.close("all")


def test_a_3d_surface_that_explodes_leaves_out_the_cells_above_the_top_level_and_says_so():
    values = 0.1 + RADIUS**2 * np.exp(8 * RADIUS)
    top = default_levels(values)[-1]
    surface = bowl(values).plot("surface")
    facets = _facet_values(surface)
    above = values > top
    # A cell is drawn with its corners at or below the top level only; one with all four above is left out.
    corners_above = above[:-1, :-1] & above[1:, :-1] & above[:-1, 1:] & above[1:, 1:]
    assert len(facets) == np.sum(~corners_above) < 400 and facets.max() <= top
    assert surface.artists_["surface"].colorbar.extend == "max"
    assert surface.artists_["clipped"].get_text() == f"{np.sum(above)} of 441 points above loss = {top:.3g} not drawn"
    plt.close("all")


def test_a_3d_surface_above_the_users_vmax_is_cut_there():
    values = 0.1 + 5 * RADIUS**2
    surface = bowl(values).plot("surface", vmax=3.0)
    assert _facet_values(surface).max() <= 3.0 and surface.ax_.get_zlim()[1] == pytest.approx(3.0)
    assert surface.artists_["clipped"].get_text().startswith(f"{np.sum(values > 3.0)} of 441 points above loss = 3")
    assert "clipped" not in bowl(values).plot("surface").artists_  # a later plot forgets the note
    plt.close("all")


def test_the_3d_colour_bar_is_about_as_tall_as_the_plot():
    surface = bowl(0.1 + 5 * RADIUS**2).plot("surface")
    surface.figure_.canvas.draw()
    bar = surface.artists_["surface"].colorbar.ax.get_position()
    assert bar.height >= 0.78 * surface.ax_.get_position().height
    plt.close("all")


def _tick_fractions(colorbar_axes):
    """Each major tick's value and its position along the bar, as a fraction of the bar's length."""
    ticks = [t for t in colorbar_axes.yaxis.get_majorticklocs() if colorbar_axes.get_ylim()[0] <= t <= colorbar_axes.get_ylim()[1]]
    to_fraction = colorbar_axes.transData + colorbar_axes.transAxes.inverted()
    return np.array(ticks), np.array([to_fraction.transform((0.5, t))[1] for t in ticks])


@pytest.mark.parametrize("kind", ["contourf", "heatmap"])
def test_colour_bar_ticks_lie_at_distances_proportional_to_their_values(kind):
    loss = bowl(0.1 + 5 * RADIUS**2).plot(kind)  # levels from 0.1 to 5: a log scale
    loss.figure_.canvas.draw()
    (colorbar_axes,) = loss.ax_.child_axes
    values, fractions = _tick_fractions(colorbar_axes)
    low, high = colorbar_axes.get_ylim()
    assert len(values) >= 3 and colorbar_axes.get_yscale() == "log"
    np.testing.assert_allclose(fractions, np.log(values / low) / np.log(high / low), atol=1e-6)
    # An accuracy from 0.4 to 0.95: less than a factor of 3, a linear scale.
    accuracy = bowl(0.95 - 0.55 * RADIUS**2 / 2).plot(kind)
    accuracy.figure_.canvas.draw()
    (colorbar_axes,) = accuracy.ax_.child_axes
    values, fractions = _tick_fractions(colorbar_axes)
    low, high = colorbar_axes.get_ylim()
    assert len(values) >= 3 and colorbar_axes.get_yscale() == "linear"
    np.testing.assert_allclose(fractions, (values - low) / (high - low), atol=1e-6)
    plt.close("all")


@pytest.mark.parametrize(
    "values",
    [0.1 + RADIUS**2 * np.exp(8 * RADIUS), 0.16 + 0.02 * np.meshgrid(GRID, GRID, indexing="ij")[0] ** 2 * 40
     + np.meshgrid(GRID, GRID, indexing="ij")[1] ** 2, 0.1 + 5 * RADIUS**2],
    ids=["exploding", "elongated", "bowl"],
)
def test_contour_labels_do_not_overlap(values):
    surface = bowl(values).plot("contour")
    surface.figure_.canvas.draw()
    boxes = [text.get_window_extent() for text in surface.artists_["contour"].labelTexts]
    assert len(boxes) >= 3
    for i, first in enumerate(boxes):
        for second in boxes[i + 1:]:
            assert not first.overlaps(second), (first, second)
    plt.close("all")


def test_a_3d_surface_whose_levels_lie_below_it_is_drawn_whole():
    values = 0.1 + 5 * RADIUS**2
    surface = bowl(values).plot("surface", levels=[0.01, 0.05])  # every value above the last level
    assert len(_facet_values(surface)) == 400 and "clipped" not in surface.artists_
    plt.close("all")


LINEAR = np.linspace(-1, 1, 11)


def _ramp(low, high):
    """Values rising linearly from `low` at one corner to `high` at the other, on an 11 × 11 grid."""
    ramp = np.add.outer(LINEAR, LINEAR) / 4 + 0.5  # 0 to 1
    return LossSurface(LINEAR, LINEAR, {"train": low + (high - low) * ramp}, {"train": {}})


@pytest.mark.parametrize(("top", "whole"), [(4.2, False), (4.4, True)])
def test_a_3d_surface_is_cut_only_where_it_rises_more_than_three_times_the_levels_range(top, whole):
    # From 1 to 11: a rise of 10 against 3 × (top − 1), 9.6 or 10.2.
    surface = _ramp(1.0, 11.0).plot("surface", levels=[2.0, top])
    assert ("clipped" not in surface.artists_) is whole
    assert surface.ax_.get_zlim() == pytest.approx((1.0, 11.0 if whole else top))
    plt.close("all")


def test_a_users_vmax_cuts_a_3d_surface_that_would_be_drawn_whole():
    values = 0.1 + 5 * RADIUS**2
    surface = bowl(values).plot("surface", vmax=8.0)  # a bowl, drawn whole without vmax
    assert _facet_values(surface).max() <= 8.0 and surface.ax_.get_zlim()[1] == pytest.approx(8.0)
    assert surface.artists_["clipped"].get_text() == f"{np.sum(values > 8.0)} of 441 points above loss = 8 not drawn"
    plt.close("all")


def test_a_log_3d_surface_is_cut_in_log10_and_says_where_in_the_metrics_units():
    ramp = np.add.outer(LINEAR, LINEAR) / 4 + 0.5
    values = 10 ** (6 * ramp)  # 1 to 1e6: a rise of 6 in log10, against 3 × log10(50) = 5.1
    surface = LossSurface(LINEAR, LINEAR, {"train": values}, {"train": {}}).plot("surface", log=True, levels=[10, 50])
    assert surface.artists_["clipped"].get_text() == f"{np.sum(values > 50)} of 121 points above loss = 50 not drawn"
    assert surface.ax_.get_zlim() == pytest.approx((0.0, np.log10(50)))
    plt.close("all")


def test_a_flat_3d_surface_gets_a_unit_height_and_its_colour_bar_plain_numbers():
    surface = LossSurface(GRID, GRID, {"train": np.full((21, 21), 2.5)}, {"train": {}}).plot("surface")
    assert surface.ax_.get_zlim() == pytest.approx((2.5, 3.5))
    surface = bowl(0.1 + 5 * RADIUS**2).plot("surface")
    surface.figure_.canvas.draw()
    colorbar = surface.artists_["surface"].colorbar
    labels = [(t.get_position()[1], t.get_text()) for t in colorbar.ax.get_yticklabels()]
    assert len(labels) >= 3 and all(text == f"{value:.3g}" for value, text in labels)
    assert colorbar.ax.get_ylabel() == "loss"
    bar, plot = colorbar.ax.get_position(), surface.ax_.get_position()
    assert 0.7 * plot.height <= bar.height <= 0.9 * plot.height
    plt.close("all")


@pytest.mark.parametrize("kind", ["contourf", "heatmap", "surface"])
def test_no_colour_bar_when_told(kind):
    surface = bowl(0.1 + 5 * RADIUS**2).plot(kind, colorbar=False)
    assert len(surface.figure_.axes) == 1 and not surface.ax_.child_axes
    plt.close("all")


def test_plot_surface_draws_labelled_contours_by_default():
    from losslandscape import plot_surface

    surface = plot_surface(bowl(0.1 + 5 * RADIUS**2))
    assert list(surface.artists_) == ["contour"]
    plt.close("all")


def test_contour_labels_name_their_own_lines_in_three_significant_digits():
    values = 0.1234567 + RADIUS**2 * np.exp(8 * RADIUS)
    surface = bowl(values).plot("contour")
    surface.figure_.canvas.draw()
    contour = surface.artists_["contour"]
    texts = contour.labelTexts
    assert 3 <= len(texts) <= 6
    to_data = surface.ax_.transData.inverted()
    levels = list(contour.levels)
    for text in texts:
        assert text.get_fontsize() == 8
        level = next(level for level in levels if f"{level:.3g}" == text.get_text())
        # The label sits on its line (as matplotlib draws that level alone, before a label cut a gap in it).
        box = text.get_window_extent()
        centre = to_data.transform(((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2))
        alone = plt.figure().add_subplot().contour(GRID, GRID, values.T, levels=[level])
        vertices = np.concatenate([path.vertices for path in alone.get_paths()])
        assert np.min(np.linalg.norm(vertices - centre, axis=1)) < 0.03
    assert len({text.get_text() for text in texts}) == len(texts)
    plt.close("all")


def test_a_3d_cut_depends_on_the_top_level_alone_and_its_note_sits_top_right():
    values = 0.1 + 5 * RADIUS**2  # from 0.1 to 10.1
    cut = bowl(values).plot("surface", levels=[0.01, 0.05, 3.0])  # top 3.0: 10 > 3 × 2.9, cut
    assert cut.ax_.get_zlim()[1] == pytest.approx(3.0)
    note = cut.artists_["clipped"]
    assert note.get_position() == (0.99, 0.98) and (note.get_ha(), note.get_va()) == ("right", "top")
    assert note.get_transform() is cut.ax_.transAxes
    whole = bowl(values).plot("surface", levels=[0.01, 0.1])  # the top level is the minimum: nothing to cut at
    assert "clipped" not in whole.artists_ and whole.ax_.get_zlim()[1] == pytest.approx(values.max())
    plt.close("all")


def test_a_log_colour_bar_stays_log_on_a_range_under_a_factor_of_three():
    x = np.linspace(-1, 1, 21)
    surface = LossSurface(x, x, {"train": 3.5 + x[:, None] ** 2 + x**2}, {"train": {}}).plot("contourf", log=True)
    (colorbar_axes,) = surface.ax_.child_axes
    assert colorbar_axes.get_yscale() == "log"
    plt.close("all")
