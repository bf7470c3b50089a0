"""Which compiled metric is the accuracy: the first named like one."""

import pytest

from losslandscape.metric_names import CURVATURE_METRICS, accuracy_metric_name


@pytest.mark.parametrize("names, expected", [
    (["loss", "acc"], "acc"),
    (["mae", "accuracy"], "accuracy"),
    (["loss", "sparse_categorical_accuracy", "accuracy"], "sparse_categorical_accuracy"),
    (["top_k_accuracy_rate", "binary_accuracy"], "binary_accuracy"),
    (["loss", "mae", "accuracy_like", "xacc"], None),
    ([], None),
])
def test_the_first_accuracy_like_name_is_picked(names, expected):
    assert accuracy_metric_name(names) == expected
    assert accuracy_metric_name(iter(names)) == expected


def test_curvature_maps_add_three_values():
    assert CURVATURE_METRICS == ("lambda_max", "lambda_min", "eigen_ratio")
