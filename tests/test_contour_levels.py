"""Default contour levels against closed forms: quantiles of uniform values, even steps in log(L - vmin)."""

import re

import numpy as np
import pytest

from losslandscape.contour_levels import _round_significant, default_levels


def _three_digits(x):
    return float(f"{x:.3g}")


def test_levels_are_quantiles_at_geometric_fractions_rounded_to_three_digits():
    values = np.arange(0.0, 1001.0)  # the q-quantile of 0..1000 is 1000·q
    fractions = 0.02 * (0.95 / 0.02) ** (np.arange(12) / 11)
    expected = sorted({_three_digits(1000 * f) for f in fractions})
    np.testing.assert_array_equal(default_levels(values), expected)
    assert default_levels(values)[0] == 20.0 and default_levels(values)[-1] == 950.0


def test_an_accuracy_gets_its_levels_from_the_top_and_keeps_the_lowest():
    values = np.arange(0.0, 1001.0) / 1000
    levels = default_levels(values, metric="accuracy", count=5)
    fractions = 0.02 * (0.95 / 0.02) ** (np.arange(5) / 4)
    np.testing.assert_array_equal(levels, sorted({_three_digits(1 - f) for f in fractions}))
    assert default_levels(values, metric="val_sparse_categorical_accuracy", count=5).tolist() == levels.tolist()
    # A level at the minimum is kept for an accuracy (its basin is the top), dropped for a loss.
    two_values = np.array([0.0] * 98 + [1.0, 1.0])
    assert default_levels(two_values, metric="accuracy", count=3)[0] == 0.0
    np.testing.assert_array_equal(default_levels(two_values, count=3), np.linspace(0.0, 1.0, 3))


def test_the_count_nan_inf_and_log_are_honoured():
    values = np.concatenate([np.arange(0.0, 1001.0), [np.nan, np.inf, -np.inf]])
    assert len(default_levels(values, count=4)) == 4
    np.testing.assert_array_equal(default_levels(values, count=4), default_levels(values[:1001], count=4))
    with_negatives = np.concatenate([np.arange(1.0, 1001.0), [-5.0, 0.0]])
    np.testing.assert_array_equal(default_levels(with_negatives, log=True, count=4),
                                  default_levels(np.arange(1.0, 1001.0), count=4))


def test_given_bounds_space_the_levels_evenly_in_log_of_the_distance_to_vmin():
    values = np.linspace(0.0, 50.0, 11)
    levels = default_levels(values, vmin=1.0, vmax=11.0, count=3)  # 1 + 10·(0.01, 0.1, 1)
    np.testing.assert_allclose(levels, [1.1, 2.0, 11.0])
    top = default_levels(values, metric="accuracy", vmin=1.0, vmax=11.0, count=3)  # 11 - 10·(1, 0.1, 0.01)
    np.testing.assert_allclose(top, [1.0, 10.0, 10.9])
    np.testing.assert_allclose(default_levels(values, vmax=10.0, count=3), [0.1, 1.0, 10.0])  # vmin: the data's
    np.testing.assert_allclose(default_levels(values, vmin=40.0, count=3), [40.1, 41.0, 50.0])  # vmax: the data's
    np.testing.assert_allclose(default_levels(values, vmin=1.0, vmax=100.0, log=True, count=3), [1.0, 10.0, 100.0])
    assert default_levels(values, vmin=0.0, vmax=100.0, log=True, count=3)[0] == np.finfo(float).tiny


def test_curvature_metrics_get_even_levels_over_their_range():
    values = np.linspace(-2.0, 6.0, 9)
    np.testing.assert_allclose(default_levels(values, metric="eigen_ratio", count=5), [-2, 0, 2, 4, 6])
    np.testing.assert_allclose(default_levels(values, metric="lambda_max", vmin=0.0, vmax=1.0, count=3), [0, 0.5, 1])
    np.testing.assert_allclose(default_levels(np.full(4, 3.0), metric="lambda_min", count=3), [3.0, 3.5, 4.0])


def test_a_flat_landscape_gets_even_levels_over_one_unit():
    np.testing.assert_allclose(default_levels(np.full(10, 2.0), count=3), [2.0, 2.5, 3.0])
    np.testing.assert_allclose(default_levels(np.array([1.0] * 50 + [3.0]), count=3), [1.0, 2.0, 3.0])


def test_bad_bounds_and_empty_values_are_named():
    with pytest.raises(ValueError, match=r"^Expected vmin < vmax for the levels, received vmin=2.0, vmax=1.0.$"):
        default_levels(np.arange(5.0), vmin=2.0, vmax=1.0)
    with pytest.raises(ValueError, match=r"^No finite loss values to draw levels for.$"):
        default_levels(np.array([np.nan, np.inf]))
    with pytest.raises(ValueError, match=r"^No finite positive accuracy values to draw levels for.$"):
        default_levels(np.array([0.0, -1.0]), metric="accuracy", log=True)


def test_rounding_keeps_three_significant_digits_of_any_sign_and_size():
    np.testing.assert_array_equal(_round_significant(np.array([12345.0, -0.0012345, 0.0, 9.996, 1.0]), 3),
                                  [12300.0, -0.00123, 0.0, 10.0, 1.0])
    np.testing.assert_array_equal(_round_significant(np.array([12345.0]), 2), [12000.0])


def test_a_level_at_the_minimum_is_left_out_and_two_levels_are_kept_as_they_are():
    plateau = np.array([0.5] * 300 + list(np.linspace(0.6, 5, 700)))  # 30 % of the points at the minimum
    levels = default_levels(plateau)
    assert levels[0] > 0.5 and len(levels) >= 3
    steps = np.array([1.0] * 500 + [2.0] * 250 + [3.0] * 250)  # quantiles above the minimum: 2 and 3 only
    np.testing.assert_array_equal(default_levels(steps), [2.0, 3.0])


def test_equal_bounds_are_refused():
    with pytest.raises(ValueError, match=re.escape("Expected vmin < vmax for the levels, received vmin=1.0, vmax=1.0.")):
        default_levels(np.linspace(0, 2, 10), vmin=1.0, vmax=1.0)
