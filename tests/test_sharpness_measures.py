"""Sharpness numbers of 1D landscapes against closed forms and hand-computed crossings."""

import numpy as np
import pytest

from losslandscape import LossLine, sharpness


def _of(coords, values, **kwargs):
    return sharpness(LossLine(np.asarray(coords, float), {"train": np.asarray(values, float)}, {"train": {}}), **kwargs)


def test_the_rise_averages_both_sides_of_an_asymmetric_curve():
    alpha = np.linspace(-1, 1, 201)
    numbers = _of(alpha, 1 + alpha + alpha**2)  # L(-0.5) = 0.75, L(0.5) = 1.75, L(0) = 1
    assert numbers["rise_at_0.5"] == pytest.approx(0.25, abs=1e-9)


def test_width_plus_1_is_where_the_loss_is_one_above_its_centre():
    alpha = np.linspace(-1, 1, 201)
    numbers = _of(alpha, 1 + 4 * alpha**2)  # 1 + 4α² = 2 at α = ±0.5
    assert numbers["width_plus_1"] == pytest.approx(1.0, abs=1e-9)
    assert numbers["doubling_width"] == pytest.approx(1.0, abs=1e-9)


def test_crossings_in_the_outermost_segments_are_interpolated():
    # 2·L(0) = 2 is crossed between α = ∓0.5 (1.5) and α = ∓1 (3): at ∓(0.5 + 0.5/3).
    numbers = _of([-1, -0.5, 0, 0.5, 1], [3, 1.5, 1, 1.5, 3])
    assert numbers["doubling_width"] == pytest.approx(2 * (0.5 + 0.5 / 3), abs=1e-12)


def test_the_first_point_that_reaches_the_threshold_ends_the_basin():
    # A plateau exactly at 2·L(0): the basin ends at its first point, α = ±0.5, not where the curve passes it.
    numbers = _of([-1.5, -1, -0.5, 0, 0.5, 1, 1.5], [3, 2, 2, 1, 2, 2, 3])
    assert numbers["doubling_width"] == pytest.approx(1.0, abs=1e-12)


def test_a_curve_below_the_threshold_to_both_ends_is_as_wide_as_its_range():
    numbers = _of([-1, 0, 1, 2], [1.5, 1, 1.2, 1.4])
    assert numbers["doubling_width"] == pytest.approx(3.0) and numbers["width_plus_1"] == pytest.approx(3.0)


@pytest.mark.parametrize("coords", [[0.0, 0.5, 1.0], [-1.0, -0.5, 0.0]])
def test_a_line_that_ends_at_zero_is_measured(coords):
    numbers = _of(coords, [1.0, 1.0, 1.0])
    assert numbers["doubling_width"] == pytest.approx(1.0)


def test_the_label_and_metric_asked_for_are_measured():
    alpha = np.linspace(-1, 1, 201)
    line = LossLine(alpha, {"train": 1 + alpha**2, "test": 1 + 4 * alpha**2},
                    {"train": {"accuracy": 1 - alpha**2}, "test": {"accuracy": 2 + 16 * alpha**2}})
    assert sharpness(line)["rise_at_0.5"] == pytest.approx(0.25)
    assert sharpness(line, "test")["rise_at_0.5"] == pytest.approx(1.0)
    assert sharpness(line, "test", "accuracy")["rise_at_0.5"] == pytest.approx(4.0)
    assert sharpness(line, metric="accuracy")["rise_at_0.5"] == pytest.approx(-0.25)
