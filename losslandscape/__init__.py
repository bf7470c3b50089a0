"""losslandscape: loss landscapes of Keras models (Li et al., NeurIPS 2018).

Names are imported on first use, so that `losslandscape --help` and the
commands that only read files (`info`, `plot`) start without Keras and
TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from losslandscape.version import __version__  # noqa: F401

# Public name -> the module that defines it.
_EXPORTS = {
    "compute_line": "losslandscape.compute",
    "compute_surface": "losslandscape.compute",
    "curvature_map": "losslandscape.curvature",
    "DatasetLabelError": "losslandscape.datasets",
    "evaluate_grid": "losslandscape.engine",
    "filter_fan_in_axes": "losslandscape.directions",
    "hessian_directions": "losslandscape.hessian",
    "hessian_spectrum_summary": "losslandscape.hessian",
    "HessianDirections": "losslandscape.hessian",
    "interpolate": "losslandscape.interpolation",
    "LandscapeCallback": "losslandscape.series",
    "animate_series": "losslandscape.series_files",
    "LandscapeSeries": "losslandscape.series_files",
    "load_series": "losslandscape.series_files",
    "plot_series": "losslandscape.series_files",
    "load_directions": "losslandscape.direction_files",
    "load_line": "losslandscape.surface",
    "load_surface": "losslandscape.surface",
    "load_trajectory": "losslandscape.trajectory",
    "LossLine": "losslandscape.surface",
    "LossSurface": "losslandscape.surface",
    "normalize_direction": "losslandscape.directions",
    "NpzData": "losslandscape.datasets",
    "pca_directions": "losslandscape.trajectory",
    "PCADirections": "losslandscape.trajectory",
    "plot_interpolation": "losslandscape.plotting",
    "plot_line": "losslandscape.plotting",
    "plot_loss": "losslandscape.api",
    "plot_loss_3D": "losslandscape.api",
    "plot_surface": "losslandscape.plotting",
    "plot_trajectory": "losslandscape.plotting",
    "process_pool": "losslandscape.distributed",
    "random_directions": "losslandscape.directions",
    "save_directions": "losslandscape.direction_files",
    "sharpness": "losslandscape.sharpness_measures",
    "Trajectory": "losslandscape.trajectory",
    "TrajectoryRecorder": "losslandscape.trajectory",
    "WeightSnapshot": "losslandscape.engine",
}
# Modules that read and draw saved landscapes without Keras.
_WITHOUT_KERAS = {
    "losslandscape.direction_files",
    "losslandscape.plotting",
    "losslandscape.series_files",
    "losslandscape.sharpness_measures",
    "losslandscape.surface",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'losslandscape' has no attribute {name!r}")
    if module not in _WITHOUT_KERAS:
        from losslandscape.backends import import_keras

        import_keras()  # a missing backend becomes an error that says what to install
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for editors and type checkers, which do not run __getattr__
    from losslandscape.api import plot_loss, plot_loss_3D  # noqa: F401
    from losslandscape.compute import compute_line, compute_surface  # noqa: F401
    from losslandscape.curvature import curvature_map  # noqa: F401
    from losslandscape.datasets import DatasetLabelError, NpzData  # noqa: F401
    from losslandscape.direction_files import load_directions, save_directions  # noqa: F401
    from losslandscape.directions import filter_fan_in_axes, normalize_direction, random_directions  # noqa: F401
    from losslandscape.distributed import process_pool  # noqa: F401
    from losslandscape.engine import evaluate_grid, WeightSnapshot  # noqa: F401
    from losslandscape.hessian import hessian_directions, hessian_spectrum_summary, HessianDirections  # noqa: F401
    from losslandscape.interpolation import interpolate  # noqa: F401
    from losslandscape.series import LandscapeCallback  # noqa: F401
    from losslandscape.series_files import LandscapeSeries, animate_series, load_series, plot_series  # noqa: F401
    from losslandscape.sharpness_measures import sharpness  # noqa: F401
    from losslandscape.plotting import plot_interpolation, plot_line, plot_surface, plot_trajectory  # noqa: F401
    from losslandscape.surface import load_line, load_surface, LossLine, LossSurface  # noqa: F401
    from losslandscape.trajectory import load_trajectory, pca_directions, PCADirections, Trajectory, TrajectoryRecorder  # noqa: F401
