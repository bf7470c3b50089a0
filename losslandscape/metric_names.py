"""Names of metrics: which compiled metric is the accuracy (for the reference file layout and for plots),
and the metrics a curvature map adds."""

from __future__ import annotations

from typing import Iterable, Optional

# What `curvature_map` adds to each point's values, next to the loss and the compiled metrics.
CURVATURE_METRICS = ("lambda_max", "lambda_min", "eigen_ratio")


def accuracy_metric_name(metric_names: Iterable[str]) -> Optional[str]:
    """Picks the metric written as `{label}_acc`: the first one named like an accuracy.

    Examples:
        >>> accuracy_metric_name(["loss", "sparse_categorical_accuracy"])
        'sparse_categorical_accuracy'
    """
    for name in metric_names:
        if name == "acc" or name.endswith("accuracy"):
            return name
    return None
