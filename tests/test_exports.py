import builtins
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

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

    real_import = builtins.__import__

    def without_plotly(name, *args, **kwargs):
        if name.startswith("plotly"):
            raise ImportError("No module named 'plotly'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_plotly)
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
