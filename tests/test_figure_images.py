"""The default figures, pixel for pixel, against images that were drawn and looked at when they were made.

The other figure tests assert what a figure means (levels, norms, ticks,
labels inside the axes); these catch what they leave to the eye: line
widths, marker sizes, where contour labels sit, the notes' boxes, the
colour bars' size and place. A figure that changes on purpose is drawn
again and looked at before its image replaces the old one:

    LOSSLANDSCAPE_NEW_FIGURE_IMAGES=1 python -m pytest tests/test_figure_images.py -n 0

Images drawn by another matplotlib, FreeType or contourpy differ in their
antialiasing, so the comparison is skipped there (the test extra pins the
versions the images were drawn with).
"""

import json
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import contourpy  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import ft2font  # noqa: E402

from losslandscape import (  # noqa: E402
    LandscapeSeries, LossLine, LossSurface, plot_interpolation, plot_series, plot_trajectory,
)
from losslandscape.trajectory import PCADirections  # noqa: E402

IMAGES = Path(__file__).parent / "figure_images"
VERSIONS = IMAGES / "versions.json"
DPI = 50
GRID = np.linspace(-1, 1, 21)
X, Y = np.meshgrid(GRID, GRID, indexing="ij")
BOWL = 0.1 + 3 * X**2 + 1.5 * (Y - 0.2) ** 2  # an elliptic basin whose minimum is off θ0
RADIUS = np.hypot(X, Y)
EXPLODING = 0.1 + RADIUS**2 * np.exp(8 * RADIUS)  # rises to 1.6e5 at the corners
FILTER = {"normalization": "filter"}


def _versions() -> dict:
    return {"matplotlib": matplotlib.__version__, "freetype": ft2font.__freetype_version__,
            "contourpy": contourpy.__version__}


def _surface(values, xcoords=GRID, ycoords=GRID, label="train", **settings):
    return LossSurface(xcoords, ycoords, {label: values}, {label: {}}, settings={**FILTER, **settings})


def _with_gaps(values, *indices):
    values = np.array(values, dtype=np.float64)
    for index in indices:
        values[index] = np.nan
    return values


def line_two_datasets():
    coords = np.linspace(-1, 1, 21)
    line = LossLine(coords, {"train": 0.2 + 3 * coords**2, "test": _with_gaps(0.5 + 2.5 * coords**2, 20)},
                    {"train": {}, "test": {}}, settings=FILTER)
    return line.plot().figure_


def line_of_a_metric():
    coords = np.linspace(-1, 1, 21)
    line = LossLine(coords, {"train": coords**2}, {"train": {"accuracy": 1 - coords**2 / 2}})
    return line.plot(metric="accuracy", labels=["train"]).figure_


def interpolation():
    t = np.linspace(-0.5, 1.5, 21)
    shifts = {"train": 0.1, "test": 0.3, "val": 0.5}
    losses = {label: shift + (t - 0.5) ** 2 for label, shift in shifts.items()}
    metrics = {label: {"accuracy": _with_gaps(1 - shift / 2 - (t - 0.5) ** 2 / 3, 3)} for label, shift in shifts.items()}
    line = LossLine(t, losses, metrics, settings={"kind": "interpolation"})
    return plot_interpolation(line).figure_


def contour():
    return _surface(BOWL).plot("contour").figure_


def contour_exploding():
    return _surface(EXPLODING).plot("levels").figure_


def contour_log_off_theta0():
    xcoords = np.linspace(0.2, 1.0, 17)
    values = 0.1 + 3 * (xcoords[:, None] - 0.6) ** 2 + GRID[None, :] ** 2
    return _surface(values, xcoords=xcoords, label="test", dataset_labels="given").plot("contour", log=True).figure_


def contour_one_level():
    return _surface(BOWL).plot("contour", levels=[1.0]).figure_


def contour_past_a_line_too_small_to_label():
    # The first level circles the minimum too tightly for a label; the 7 after it are labelled every other one.
    return _surface(BOWL).plot("contour", levels=[0.105, 0.3, 0.6, 1.0, 1.5, 2.0, 2.5, 3.0]).figure_


def contour_fine_grid():
    # Lines of thousands of vertices: the label candidates and the obstacles are thinned.
    fine = np.linspace(-1, 1, 161)
    values = 0.1 + 3 * fine[:, None] ** 2 + 1.5 * (fine[None, :] - 0.2) ** 2
    return _surface(values, xcoords=fine, ycoords=fine).plot("contour", levels=24).figure_


def contourf():
    return _surface(BOWL).plot("contourf").figure_


def contourf_narrow_range():
    return _surface(10 + BOWL).plot("contourf").figure_


def contourf_vmax():
    return _surface(BOWL).plot("contourf", vmax=1.0).figure_


def contourf_log():
    return _surface(EXPLODING).plot("contourf", log=True).figure_


def contourf_vmin_below_the_minimum():
    return _surface(BOWL).plot("contourf", vmin=0.0, vmax=2.0).figure_


def heatmap_log_with_gaps():
    return _surface(_with_gaps(EXPLODING, (0, 0), (20, 20))).plot("heatmap", log=True).figure_


def surface_3d():
    return _surface(BOWL).plot("3d").figure_


def surface_3d_exploding():
    return _surface(EXPLODING).plot("3d").figure_


def surface_3d_log_with_gaps():
    return _surface(_with_gaps(EXPLODING, (0, 0))).plot("3d", log=True).figure_


def trajectory():
    path = np.stack([np.linspace(-0.8, 0.0, 8), 0.5 * np.sin(np.linspace(0, 3, 8))], axis=1)
    pca = PCADirections(directions=[], explained_variance_ratio=np.array([0.8123, 0.1234]),
                        explained_variance=np.array([2.0, 0.3]), singular_values=np.array([4.0, 1.5]), coords=path)
    return plot_trajectory(_surface(BOWL), pca).figure_


def series_of_surfaces():
    surfaces = [_surface(scale * BOWL + shift) for scale, shift in ((3, 1.0), (2, 0.5), (1, 0.0))]
    return plot_series(LandscapeSeries(surfaces, [0, 1, 2], [0, 10, 20], [{}, {}, {}]), kind="contourf",
                       columns=2).figure_


def series_of_lines():
    coords = np.linspace(-1, 1, 11)
    lines = [LossLine(coords, {"train": (3 - epoch) * coords**2 + 0.1}, {"train": {}}) for epoch in range(3)]
    return plot_series(LandscapeSeries(lines, [0, 1, 2], [0, 10, 20], [{}, {}, {}])).figure_


FIGURES = [line_two_datasets, line_of_a_metric, interpolation, contour, contour_exploding, contour_log_off_theta0,
           contour_one_level, contour_past_a_line_too_small_to_label, contour_fine_grid, contourf,
           contourf_narrow_range, contourf_vmax, contourf_log, contourf_vmin_below_the_minimum,
           heatmap_log_with_gaps, surface_3d, surface_3d_exploding, surface_3d_log_with_gaps, trajectory,
           series_of_surfaces, series_of_lines]


@pytest.mark.parametrize("draw", FIGURES, ids=[draw.__name__ for draw in FIGURES])
def test_a_default_figure_draws_as_the_image_that_was_looked_at(draw, tmp_path):
    drawn = tmp_path / f"{draw.__name__}.png"
    with plt.style.context("default"):
        figure = draw()
        figure.savefig(drawn, dpi=DPI)
    plt.close(figure)
    expected = IMAGES / drawn.name
    if os.environ.get("LOSSLANDSCAPE_NEW_FIGURE_IMAGES"):
        IMAGES.mkdir(exist_ok=True)
        shutil.copyfile(drawn, expected)
        VERSIONS.write_text(json.dumps(_versions(), indent=2) + "\n")
        return
    recorded = json.loads(VERSIONS.read_text())
    if recorded != _versions():
        pytest.skip(f"the images were drawn with {recorded}, this is {_versions()}: "
                    "`pip install -e \".[test]\"` installs those versions")
    before, now = plt.imread(expected), plt.imread(drawn)
    assert before.shape == now.shape, f"{drawn} is {now.shape[1]}×{now.shape[0]} pixels, {expected} " \
                                      f"{before.shape[1]}×{before.shape[0]}"
    differing = int(np.any(before != now, axis=-1).sum())
    assert differing == 0, (
        f"{differing} pixels of {drawn} differ from {expected}. If the change is meant, look at the new image and "
        "draw the images again (see this module's docstring).")
