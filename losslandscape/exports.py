"""Surfaces to other viewers: ParaView (.vts, written directly) and interactive HTML (plotly)."""

from __future__ import annotations

import os
from typing import Optional, Union
from xml.sax.saxutils import quoteattr

import numpy as np

PathLike = Union[str, os.PathLike]


def surface_heights(surface, label: Optional[str] = None, metric: str = "loss",
                    log: bool = False, clip: Optional[float] = None) -> np.ndarray:
    """The values to draw as heights: optionally clipped from above, then log10.

    Args:
        surface: A `LossSurface`.
        label: Dataset label; the first by default.
        metric: "loss" or a compiled metric name.
        log: Take log10 (non-positive values become NaN).
        clip: Cap values at this maximum before the log, as the reference's
            `h52vtp.py --zmax` does.

    Returns:
        Array `(nx, ny)`, `[i, j]` at `(xcoords[i], ycoords[j])`; NaN where
        the value is NaN or infinite.
    """
    heights = np.array(surface.values(label, metric), dtype=np.float64)
    heights[~np.isfinite(heights)] = np.nan  # a gap, never the clip value or the top of the scale
    if clip is not None:
        heights = np.minimum(heights, clip)
    if log:
        heights = np.log10(heights, out=np.full_like(heights, np.nan), where=heights > 0)
    return heights


def write_vts(surface, path: PathLike, label: Optional[str], metric: str, log: bool, clip: Optional[float]) -> None:
    """Writes a VTK XML StructuredGrid (.vts) that ParaView opens directly.

    Points are (α, β, height) with α varying fastest; the height is also
    stored as point data named after the metric, for colouring. NaN heights
    are written as "nan", which ParaView reads. The file is UTF-8, so a
    metric may have any name.

    Args:
        surface: A `LossSurface`.
        path: Destination file (conventionally ending in .vts).
        label, metric, log, clip: As in `surface_heights`.

    Examples:
        >>> from losslandscape import LossSurface
        >>> x = np.linspace(-1, 1, 3)
        >>> s = LossSurface(x, x, {"train": x[:, None] ** 2 + x ** 2}, {"train": {}})
        >>> write_vts(s, "/tmp/surface.vts", None, "loss", False, None)
    """
    heights = surface_heights(surface, label, metric, log, clip)
    nx, ny = heights.shape
    grid_x, grid_y = np.meshgrid(surface.xcoords, surface.ycoords, indexing="ij")
    # VTK orders points with the first index fastest: transpose to (ny, nx) before flattening.
    points = np.stack([grid_x.T.ravel(), grid_y.T.ravel(), heights.T.ravel()], axis=1)
    name = f"log10_{metric}" if log else metric
    extent = f"0 {nx - 1} 0 {ny - 1} 0 0"
    lines = [
        '<?xml version="1.0"?>',
        '<VTKFile type="StructuredGrid" version="0.1" byte_order="LittleEndian">',
        f'  <StructuredGrid WholeExtent="{extent}">',
        f'    <Piece Extent="{extent}">',
        f"      <PointData Scalars={quoteattr(name)}>",
        f'        <DataArray type="Float64" Name={quoteattr(name)} format="ascii">',
        "          " + " ".join(repr(float(v)) for v in points[:, 2]),  # NaN as "nan"
        "        </DataArray>",
        "      </PointData>",
        "      <Points>",
        '        <DataArray type="Float64" NumberOfComponents="3" format="ascii">',
        "          " + " ".join(repr(float(v)) for v in points.ravel()),
        "        </DataArray>",
        "      </Points>",
        "    </Piece>",
        "  </StructuredGrid>",
        "</VTKFile>",
    ]
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


def write_html(surface, path: PathLike, label: Optional[str], metric: str, log: bool, clip: Optional[float]) -> None:
    """Writes an interactive 3D surface as a self-contained HTML page (needs plotly).

    Args:
        surface: A `LossSurface`.
        path: Destination .html file.
        label, metric, log, clip: As in `surface_heights`.
    """
    try:
        import plotly.graph_objects as go
    except ImportError as error:
        raise ImportError(
            "Interactive HTML export needs plotly: pip install 'losslandscape[plotly]'"
        ) from error
    heights = surface_heights(surface, label, metric, log, clip)
    figure = go.Figure(go.Surface(x=surface.xcoords, y=surface.ycoords, z=heights.T, colorscale="Viridis"))
    title = f"{label or surface.labels[0]} {'log10 ' if log else ''}{metric}"
    figure.update_layout(title=title, scene=dict(xaxis_title="α", yaxis_title="β", zaxis_title=metric))
    figure.write_html(os.fspath(path), include_plotlyjs=True, full_html=True)
