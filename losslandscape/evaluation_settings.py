"""How a run evaluates its grid points: one validated, picklable object from the call to the workers and the file."""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

from losslandscape.curvature_evaluator import CurvatureSettings
from losslandscape.engine import check_engine, check_points_per_call
from losslandscape.validation import check_positive_int

# What a saved file records of the settings (and what a resumed run must match, with the fingerprint).
RECORDED = ("batch_size", "max_samples", "max_batches", "include_regularization", "dtype_policy")


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """The settings of `compute_line`/`compute_surface` that decide how points are evaluated.

    Validated when built, so that a wrong value fails before any work,
    never inside a worker process. The fields are the keyword arguments of
    `compute_surface` of the same names.

    Examples:
        >>> EvaluationSettings(batch_size=64).batch_size
        64
        >>> EvaluationSettings(chunk_size=0)
        Traceback (most recent call last):
        ...
        ValueError: Expected `chunk_size` to be a positive integer or None, received: 0
    """

    batch_size: Optional[int] = None
    max_samples: Optional[int] = None
    max_batches: Optional[int] = None
    include_regularization: bool = True
    engine: str = "compiled"
    points_per_call: Union[int, str] = "auto"
    stream: bool = False
    dtype_policy: Optional[str] = None
    chunk_size: Optional[int] = None
    verbose: int = 1
    curvature: Optional[CurvatureSettings] = None  # set by `curvature_map`: eigenvalues at each point, not only the loss

    def __post_init__(self):
        for name in ("batch_size", "max_samples", "max_batches", "chunk_size"):
            check_positive_int(name, getattr(self, name))
        check_points_per_call(self.points_per_call)
        check_engine(self.engine, self.include_regularization)

    def recorded(self) -> dict:
        """The settings a landscape file records, `{name: value}`."""
        recorded = {name: getattr(self, name) for name in RECORDED}
        if self.curvature is not None:
            recorded.update({f"lanczos_{name}": value for name, value in dataclasses.asdict(self.curvature).items()})
        return recorded
