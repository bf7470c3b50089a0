import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from conftest import without_package
from losslandscape import LossSurface


def bowl(with_gap=False):
    x, y = np.linspace(-1, 1, 4), np.linspace(-2, 2, 3)
    values = x[:, None] ** 2 + y[None, :] ** 2 + 0.5
    if with_gap:
        values[1, 2] = np.nan
    return LossSurface(x, y, {"train": values}, {"train": {}})


def test_vts_file_holds_every_point_with_its_value(tmp_path):
    surface = bowl(with_gap=True)
    path = tmp_path / "surface.vts"
    surface.to_vtk(path)
    root = ElementTree.parse(path).getroot()
    assert root.get("type") == "StructuredGrid"
    piece = root.find("StructuredGrid/Piece")
    assert piece.get("Extent") == "0 3 0 2 0 0"
    points = np.array(piece.find("Points/DataArray").text.split(), dtype=float).reshape(-1, 3)
    values = np.array(piece.find("PointData/DataArray").text.split(), dtype=float)
    assert points.shape == (12, 3) and values.shape == (12,)
    for point, value in zip(points, values):
        i = int(np.argmin(np.abs(surface.xcoords - point[0])))
        j = int(np.argmin(np.abs(surface.ycoords - point[1])))
        expected = surface.losses["train"][i, j]
        np.testing.assert_equal(value, expected)
        np.testing.assert_equal(point[2], expected)
    # VTK orders points with x fastest.
    np.testing.assert_allclose(points[:4, 0], surface.xcoords)


def test_vts_log_and_clip(tmp_path):
    surface = bowl()
    surface.to_vtk(tmp_path / "log.vts", log=True, clip=2.0)
    root = ElementTree.parse(tmp_path / "log.vts").getroot()
    array = root.find("StructuredGrid/Piece/PointData/DataArray")
    assert array.get("Name") == "log10_loss"
    values = np.array(array.text.split(), dtype=float)
    expected = np.log10(np.minimum(surface.losses["train"].T.ravel(), 2.0))
    np.testing.assert_allclose(values, expected)


def test_html_export_with_and_without_plotly(tmp_path, monkeypatch):
    pytest.importorskip("plotly")
    surface = bowl()
    surface.to_html(tmp_path / "surface.html")
    text = (tmp_path / "surface.html").read_text()
    assert "plotly" in text.lower() and '"type":"surface"' in text.replace(" ", "")

    without_package(monkeypatch, "plotly")
    with pytest.raises(ImportError, match=r"losslandscape\[plotly\]"):
        surface.to_html(tmp_path / "other.html")


def two_labels():
    x, y = np.linspace(-1, 1, 4), np.linspace(-2, 2, 3)
    train = x[:, None] ** 2 + y[None, :] ** 2 + 0.5
    return LossSurface(x, y, {"train": train, "test": 3 * train}, {"train": {}, "test": {}})


def test_vts_writes_the_label_asked_for(tmp_path):
    surface = two_labels()
    surface.to_vtk(tmp_path / "test.vts", label="test")
    values = ElementTree.parse(tmp_path / "test.vts").getroot().find("StructuredGrid/Piece/PointData/DataArray")
    np.testing.assert_allclose(np.array(values.text.split(), dtype=float), surface.losses["test"].T.ravel())


def test_html_writes_the_label_scale_and_clip_asked_for(tmp_path, monkeypatch):
    go = pytest.importorskip("plotly.graph_objects")
    written = []
    monkeypatch.setattr(go.Figure, "write_html", lambda figure, path, **options: written.append(figure))
    surface = two_labels()
    surface.to_html(tmp_path / "test.html", label="test", log=True, clip=4.0)
    surface.to_html(tmp_path / "default.html")
    clipped, default = written
    assert clipped.layout.title.text == "test log10 loss" and default.layout.title.text == "train loss"
    np.testing.assert_allclose(clipped.data[0].z, np.log10(np.minimum(surface.losses["test"].T, 4.0)))
    np.testing.assert_allclose(default.data[0].z, surface.losses["train"].T)


def test_heights_default_to_the_first_labels_loss_in_float64_and_log_leaves_out_what_is_not_positive():
    from losslandscape.exports import surface_heights

    x = np.linspace(-1, 1, 3)
    loss = np.array([[0.0, -1.0, 10.0], [1.0, np.inf, 100.0], [0.5, 2.0, np.nan]], dtype=np.float32)
    surface = LossSurface(x, x, {"test": loss, "train": 2 * loss}, {"test": {"accuracy": 1 - loss},
                                                                     "train": {"accuracy": 1 - loss}})
    heights = surface_heights(surface)
    assert heights.dtype == np.float64
    np.testing.assert_array_equal(heights, np.where(np.isfinite(loss), loss, np.nan))
    logged = surface_heights(surface, log=True)
    expected = [[np.nan, np.nan, 1.0], [0.0, np.nan, 2.0], [np.log10(0.5), np.log10(2.0), np.nan]]
    np.testing.assert_allclose(logged, expected)


def test_vts_names_the_metric_and_writes_gaps_as_nan_in_utf8(tmp_path):
    x = np.linspace(-1, 1, 3)
    values = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0], [7.0, 8.0, 9.0]])
    surface = LossSurface(x, x, {"train": values}, {"train": {"précision": values / 10}})
    surface.to_vtk(tmp_path / "loss.vts")
    text = (tmp_path / "loss.vts").read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0"?>\n<VTKFile type="StructuredGrid"') and text.endswith("</VTKFile>\n")
    array = ElementTree.parse(tmp_path / "loss.vts").getroot().find("StructuredGrid/Piece/PointData")
    assert array.get("Scalars") == "loss" and array.find("DataArray").get("Name") == "loss"
    assert array.find("DataArray").text.split()[4] == "nan"
    surface.to_vtk(tmp_path / "metric.vts", metric="précision")
    array = ElementTree.parse(tmp_path / "metric.vts").getroot().find("StructuredGrid/Piece/PointData/DataArray")
    assert array.get("Name") == "précision"
    np.testing.assert_allclose(np.array(array.text.split(), dtype=float), (values / 10).T.ravel())


def test_html_is_one_self_contained_page_with_the_grid_and_the_axes_named(tmp_path, monkeypatch):
    go = pytest.importorskip("plotly.graph_objects")
    surface = two_labels()
    surface.to_html(tmp_path / "page.html")
    text = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>\n<html>") and text.rstrip().endswith("</html>")
    assert "<script src=" not in text and len(text) > 1_000_000  # plotly.js itself is inside the page
    written = []
    monkeypatch.setattr(go.Figure, "write_html", lambda figure, path, **options: written.append((figure, options)))
    surface.to_html(tmp_path / "page.html", metric="loss")
    (figure, options), = written
    assert options == {"include_plotlyjs": True, "full_html": True}
    drawn = figure.data[0]
    np.testing.assert_array_equal(drawn.x, surface.xcoords)
    np.testing.assert_array_equal(drawn.y, surface.ycoords)
    assert drawn.colorscale == go.Surface(colorscale="Viridis").colorscale
    scene = figure.layout.scene
    assert (scene.xaxis.title.text, scene.yaxis.title.text, scene.zaxis.title.text) == ("α", "β", "loss")
