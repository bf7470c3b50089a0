"""The probe's parts against closed forms: relative differences, its limits, its timing and the values it keeps."""

import numpy as np
import pytest

import losslandscape.points_per_call_probe as probe
from conftest import same_on_every_backend

pytestmark = same_on_every_backend


@pytest.mark.parametrize(
    "values, reference, expected",
    [
        ([{"loss": 2.0}], [{"loss": 1.0}], (0.5, "loss", 2.0, 1.0)),
        ([{"loss": -1.0}], [{"loss": -2.0}], (0.5, "loss", -1.0, -2.0)),  # scaled by the larger magnitude
        ([{"loss": 0.0}], [{"loss": 0.0}], (0.0, "loss", 0.0, 0.0)),  # both zero: no difference
        ([{"loss": 0.0}], [{"loss": 3.0}], (1.0, "loss", 0.0, 3.0)),
        ([{"loss": np.nan}], [{"loss": np.nan}], (0.0, "loss", np.nan, np.nan)),  # both NaN agree
        ([{"loss": np.nan}], [{"loss": 1.0}], (1.0, "loss", np.nan, 1.0)),  # one NaN: as different as can be
        ([{"loss": 1.0}], [{"loss": np.nan}], (1.0, "loss", 1.0, np.nan)),
        # the largest over points and names, the first where two are equal
        ([{"loss": 1.0, "acc": 0.5}, {"loss": 4.0, "acc": 0.5}], [{"loss": 1.1, "acc": 0.5}, {"loss": 5.0, "acc": 0.4}],
         (0.2, "loss", 4.0, 5.0)),
        ([{"a": 1.0, "b": 1.0}], [{"a": 2.0, "b": 2.0}], (0.5, "a", 1.0, 2.0)),
    ],
)
def test_largest_relative_difference_in_closed_form(values, reference, expected):
    difference, name, value, found = probe.largest_relative_difference(values, reference)
    assert difference == pytest.approx(expected[0]) and name == expected[1]
    np.testing.assert_equal((value, found), expected[2:])


def test_k_is_probed_only_on_large_enough_grids_and_within_the_weights_limit():
    k = 16
    assert probe._why_k_cannot_be_probed(k, 8 * k, 100) is None
    assert probe._why_k_cannot_be_probed(k, 8 * k - 1, 100) == "the grid is too small to probe more points per call"
    limit = probe.PROBE_MAX_STACKED_VALUES // k
    assert probe._why_k_cannot_be_probed(k, 10**6, limit) is None
    assert probe._why_k_cannot_be_probed(k, 10**6, limit + 1) == "more points per call would stack too many weights"


def test_first_points_per_call_and_when_stacking_needs_no_timing():
    assert probe.first_points_per_call(8 * 256, 100) == 256
    assert probe.first_points_per_call(8 * 256 - 1, 100) == 64
    assert probe.first_points_per_call(8 * 64 - 1, 100) == 16
    assert probe.first_points_per_call(10**6, 100, convolutional=True) == 16
    assert probe.first_points_per_call(10**6, probe.PROBE_MAX_STACKED_VALUES // 64) == 64
    limit = probe.PROBE_STACKED_WITHOUT_TIMING_MAX_PARAMETERS
    assert probe.stacking_is_known_faster(limit, False) and not probe.stacking_is_known_faster(limit + 1, False)
    assert not probe.stacking_is_known_faster(10, True)


class _Counting:
    points_per_call = 4

    def __init__(self):
        self.calls = []

    def evaluate(self, rows):
        self.calls.append(np.array(rows))
        return [{"loss": float(row[0])} for row in rows]


def test_time_evaluator_times_the_second_call_and_keeps_both_calls_values(monkeypatch):
    clock = iter([10.0, 13.0, 13.0, 15.0])  # the first call takes 3 s, the second 2 s
    monkeypatch.setattr(probe.time, "perf_counter", lambda: next(clock))
    evaluator = _Counting()
    rows = np.arange(12, dtype=float)[:, None]
    values, seconds, setup = probe.time_evaluator(evaluator, rows, 4)
    assert [v["loss"] for v in values] == list(range(8))
    assert [len(call) for call in evaluator.calls] == [4, 4]
    assert seconds == pytest.approx(0.5) and setup == pytest.approx(1.0)  # 3 s - 4 × 0.5 s
    clock = iter([0.0, 1.0, 1.0, 3.0])  # a first call faster than the second: no setup
    monkeypatch.setattr(probe.time, "perf_counter", lambda: next(clock))
    assert probe.time_evaluator(_Counting(), rows, 4)[2] == 0.0


def test_known_values_are_answered_once_from_memory_and_forgotten_on_rebind():
    inner = _Counting()
    inner.rebound = []
    inner.rebind = lambda origin, directions: inner.rebound.append((origin, directions))
    known = probe.KnownValuesFirst(inner, np.array([[1.0], [2.0]]), [{"loss": 100.0}, {"loss": 200.0}], {"rule": 1})
    assert known.points_per_call == 4 and known.agreement == {"rule": 1}
    assert [v["loss"] for v in known.evaluate(np.array([[2.0], [5.0], [1.0]]))] == [200.0, 5.0, 100.0]
    assert len(inner.calls) == 1 and inner.calls[0].tolist() == [[5.0]]  # only the unknown point is computed
    assert [v["loss"] for v in known.evaluate(np.array([[1.0], [2.0]]))] == [1.0, 2.0]  # each known value once
    known = probe.KnownValuesFirst(inner, np.array([[1.0]]), [{"loss": 100.0}])
    known.rebind("origin", "directions")
    assert inner.rebound == [("origin", "directions")] and known.evaluate(np.array([[1.0]])) == [{"loss": 1.0}]
    assert probe.KnownValuesFirst(inner, np.empty((0, 1)), []).agreement is None


def test_the_agreement_is_described_with_what_the_chosen_k_erred():
    rule = probe.agreement_rule([{"loss": 1.0}], [{"loss": 1.001}], "TF32")
    assert probe.describe_agreement(rule) == (
        "TF32, so K points are checked against exact float32: one point per call errs 1.0e-03, K points may err 2.0e-03")
    rule["largest_difference"] = 1.5e-3
    assert probe.describe_agreement(rule).endswith("K points may err 2.0e-03 and erred 1.5e-03")
