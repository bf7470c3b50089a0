"""losslandscape: loss landscapes of Keras models (Li et al., NeurIPS 2018)."""

from losslandscape.backends import import_keras as _import_keras

_import_keras()

from losslandscape.api import plot_loss, plot_loss_3D  # noqa: E402
from losslandscape.compute import compute_line, compute_surface  # noqa: E402
from losslandscape.datasets import DatasetLabelError, NpzData  # noqa: E402
from losslandscape.distributed import process_pool  # noqa: E402
from losslandscape.directions import (  # noqa: E402
    filter_fan_in_axes,
    load_directions,
    normalize_direction,
    random_directions,
    save_directions,
)
from losslandscape.engine import WeightSnapshot, evaluate_grid  # noqa: E402
from losslandscape.hessian import HessianDirections, hessian_directions, hessian_spectrum_summary  # noqa: E402
from losslandscape.interpolation import interpolate  # noqa: E402
from losslandscape.plotting import plot_interpolation, plot_line, plot_surface, plot_trajectory  # noqa: E402
from losslandscape.surface import LossLine, LossSurface, load_line, load_surface  # noqa: E402
from losslandscape.trajectory import (  # noqa: E402
    PCADirections,
    Trajectory,
    TrajectoryRecorder,
    load_trajectory,
    pca_directions,
)

from losslandscape.version import __version__  # noqa: E402, F401

__all__ = [
    "DatasetLabelError",
    "HessianDirections",
    "PCADirections",
    "Trajectory",
    "TrajectoryRecorder",
    "LossLine",
    "LossSurface",
    "NpzData",
    "WeightSnapshot",
    "compute_line",
    "compute_surface",
    "evaluate_grid",
    "filter_fan_in_axes",
    "hessian_directions",
    "hessian_spectrum_summary",
    "interpolate",
    "load_directions",
    "load_line",
    "load_surface",
    "load_trajectory",
    "normalize_direction",
    "pca_directions",
    "plot_interpolation",
    "plot_line",
    "plot_loss",
    "plot_loss_3D",
    "plot_surface",
    "plot_trajectory",
    "process_pool",
    "random_directions",
    "save_directions",
]
