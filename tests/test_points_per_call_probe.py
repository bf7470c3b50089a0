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
    calls = len(inner.calls)
    known = probe.KnownValuesFirst(inner, np.array([[3.0]]), [{"loss": 300.0}])
    assert known.evaluate(np.array([[3.0]])) == [{"loss": 300.0}] and len(inner.calls) == calls  # no empty call


def test_the_agreement_is_described_with_what_the_chosen_k_erred():
    rule = probe.agreement_rule([{"loss": 1.0}], [{"loss": 1.001}], "TF32")
    assert probe.describe_agreement(rule) == (
        "TF32, so K points are checked against exact float32: one point per call errs 1.0e-03, K points may err 2.0e-03")
    rule["largest_difference"] = 1.5e-3
    assert probe.describe_agreement(rule).endswith("K points may err 2.0e-03 and erred 1.5e-03")


class _Stub:
    """An evaluator of `points_per_call` whose loss at a row is (1 + its first coefficient), off by `error` relatively."""

    def __init__(self, points_per_call, error=0.0):
        self.points_per_call = points_per_call
        self.error = error
        self.uncompiled = 0

    def evaluate(self, rows):
        return [{"loss": (1.0 + float(row[0])) * (1.0 + self.error)} for row in rows]

    def evaluate_uncompiled(self, rows):
        self.uncompiled += 1
        return self.evaluate(rows)


def _probed(monkeypatch, seconds, errors=None, setups=None, parameters=1000, **options):
    """`fastest_evaluator` on a grid of 4096 points with stubs whose seconds per point, compile seconds beyond the
    timed call, and relative errors are given per points per call."""
    errors, setups = errors or {}, setups or {}
    monkeypatch.setattr(probe, "time_evaluator", lambda evaluator, rows, k: (
        evaluator.evaluate(rows[: 2 * k]), seconds[evaluator.points_per_call], setups.get(evaluator.points_per_call, 0.0)))
    per_point = _Stub(1, errors.get(1, 0.0))
    grid = np.linspace(0.0, 1.0, 4096)[:, None]
    chosen, _, agreement = probe.fastest_evaluator(per_point, lambda k: _Stub(k, errors.get(k, 0.0)), grid, parameters,
                                                   2, **options)
    return per_point, chosen, agreement


def test_k_grows_while_faster_in_agreement_and_worth_its_compile_time(monkeypatch, capsys):
    seconds = {1: 1.234e-3, 16: 1e-4, 64: 5e-5, 256: 5e-5}
    even = 0.5 * 4096 * 1e-4  # compiling 16 per call cost exactly half of what the grid still takes at that speed
    _, chosen, agreement = _probed(monkeypatch, seconds, {16: 2e-6, 64: 3e-6}, {16: even}, convolutional=True)
    assert chosen.points_per_call == 64 and agreement["largest_difference"] == pytest.approx(3e-6, rel=1e-4)
    assert capsys.readouterr().out.strip().endswith(
        "; using 64 points per call: 256 points per call are not faster")  # as fast is not faster
    _, chosen, _ = _probed(monkeypatch, seconds, setups={16: even * 1.001}, convolutional=True)
    assert chosen.points_per_call == 16
    assert "1 per call 1.23; 16 per call 0.1; K points must agree with one point per call to 1e-05; using 16 points per " \
           "call: compiling more points per call would cost more than it can save" in capsys.readouterr().out
    per_point, chosen, _ = _probed(monkeypatch, seconds, {16: 2e-5}, convolutional=True)
    assert chosen is per_point
    assert "with 16 points per call, `loss` was 1.000264 where one point per call gave 1.000244 (relative difference " \
           "2.0e-05, more than 1.0e-05)" in capsys.readouterr().out


def test_k_points_that_run_out_of_memory_leave_one_point_per_call(monkeypatch, capsys):
    def out_of_memory(k):
        raise MemoryError

    per_point = _Stub(1)
    monkeypatch.setattr(probe, "time_evaluator", lambda evaluator, rows, k: (evaluator.evaluate(rows[: 2 * k]), 1e-3, 0.0))
    chosen, _, _ = probe.fastest_evaluator(per_point, out_of_memory, np.zeros((4096, 1)), 1000, 2, convolutional=True)
    assert chosen is per_point
    assert capsys.readouterr().out.strip().endswith("using one point per call: 16 points per call run out of memory")


def test_a_small_dense_model_is_not_timed_one_point_per_call(monkeypatch, capsys):
    per_point, chosen, _ = _probed(monkeypatch, {16: 1e-4, 64: 5e-5, 256: 5e-5})
    assert per_point.uncompiled == 1 and chosen.points_per_call == 256
    assert "one per call not timed: no convolutions and 1,000 weights, which run faster stacked" in \
           capsys.readouterr().out


def test_reduced_arithmetic_is_checked_against_the_exact_values_of_the_first_points(monkeypatch, capsys):
    asked = []

    def exact(rows):
        asked.append(np.array(rows))
        return _Stub(1).evaluate(rows)

    seconds = {1: 1e-3, 16: 1e-4, 64: 5e-5}
    _, chosen, agreement = _probed(monkeypatch, seconds, {1: 1e-3, 16: 1.5e-3, 64: 2.5e-3}, convolutional=True,
                                   full_precision=exact, reduced="the model computes in bfloat16")
    np.testing.assert_array_equal(asked[0], np.linspace(0.0, 1.0, 4096)[:16, None])
    assert chosen.points_per_call == 16
    assert agreement["compared_with"] == "exact float32" and agreement["reduced_because"] == "the model computes in bfloat16"
    assert agreement["one_point_error"] == pytest.approx(1e-3, rel=1e-2)  # relative to the larger: 1e-3 / 1.001
    assert agreement["tolerance"] == pytest.approx(2e-3, rel=1e-2)
    assert agreement["largest_difference"] == pytest.approx(1.5e-3, rel=1e-2)
    assert "`loss` was 1.005438 where exact float32 gave 1.00293 (relative difference 2.5e-03, more than 2.0e-03)" in \
        capsys.readouterr().out
