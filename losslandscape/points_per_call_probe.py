"""Choosing points per call for "auto": time one point per call against K stacked points, keep the fastest that agrees."""

from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from losslandscape.backends import current_backend
from losslandscape.backends.base import PointEvaluator
from losslandscape.messages import report

PROBE_POINTS_PER_CALL = 16
PROBE_GROWTH = 4
# The largest first K for a model without convolutions; the probe starts at the largest of
# PROBE_POINTS_PER_CALL × PROBE_GROWTH^i up to it that the grid and the memory allow. On the digits MLP
# K = 256 was 3 times faster per point than K = 16 (0.21 against 0.68 ms), and each K skipped saves
# tracing one evaluator (0.3 s). Convolutional models start at PROBE_POINTS_PER_CALL: K batches of
# their activations are large, and on a CPU larger K seldom pay.
PROBE_FIRST_POINTS_PER_CALL = 256
# One point per call is timed, and the K points' values checked, on this many points.
PROBE_REFERENCE_POINTS = 8
# K × trainable parameters the probe may stack: 2**26 float32 values are 256 MiB of weights.
PROBE_MAX_STACKED_VALUES = 2**26
# A model without convolutions of at most this many trainable values is stacked without timing one point
# per call. On 2 CPU cores stacking was faster for every such model measured: 10× on the digits MLP
# (9,610 values), 5× with 512 hidden units, 12× on a 784-256-10 MLP over 10,000 samples, and still 1.4×
# with two hidden layers of 1,024 (1.1 million values, 16 points per call).
PROBE_STACKED_WITHOUT_TIMING_MAX_PARAMETERS = 2**20
# Where one point per call is not timed, its values, the check on the stacked ones, are computed
# uncompiled at this many points: tracing and compiling it cost 0.3 s on the digits MLP.
PROBE_UNCOMPILED_REFERENCE_POINTS = 2
# The vectorized evaluator runs other kernels than `model.evaluate`; "auto" keeps it only where the
# values agree this closely (they do in float32; TF32 convolutions on GPUs differ by about 1e-3).
PROBE_AGREEMENT = 1e-5
# Where the arithmetic rounds float32 (a bfloat16 or float16 policy, TF32 on GPUs), `model.evaluate` itself
# errs by about 1e-3 against exact float32; K stacked points are kept when they err at most this many times
# as much as one point per call, both against exact float32 at the probe's points. On an H200 (ResNet-56,
# TF32) one point per call erred 9.2e-4 and K = 8 1.2e-3 (1.3 times); a dropped sample weight errs far more.
PROBE_REDUCED_PRECISION_FACTOR = 2.0


def fastest_evaluator(per_point, build_vectorized, points, parameters, verbose, convolutional=False,
                      full_precision=None, reduced=None):
    """The fastest evaluator on the first of `points`: one point per call, or K = 16, 64, 256... per call.

    Returns `(evaluator, values, agreement)`: `values` are the chosen
    evaluator's values at the first points, which the probe computed and
    the grid keeps (see `KnownValuesFirst`); `agreement` is the check K
    points had to pass (see `agreement_rule`). With `verbose=1` it says in
    one line how many points it chose, with `verbose=2` also what it
    measured, the check, and why it stopped there.

    Where the arithmetic rounds float32 (`reduced` says why),
    `full_precision(points)` gives exact float32 values, and K points must
    err against them at most PROBE_REDUCED_PRECISION_FACTOR times as much
    as one point per call does (and may always err PROBE_AGREEMENT).
    Otherwise they must agree with one point per call to PROBE_AGREEMENT.

    One point per call is timed on 2·PROBE_REFERENCE_POINTS points, unless
    the model is known to run faster stacked (not `convolutional`, at most
    PROBE_STACKED_WITHOUT_TIMING_MAX_PARAMETERS `parameters`): then it is
    only evaluated, uncompiled, at PROBE_UNCOMPILED_REFERENCE_POINTS
    points. The first K is the largest of 16, 64, 256 (PROBE_FIRST_POINTS_PER_CALL)
    for which the grid has at least 8·K points and K × `parameters` stays
    under PROBE_MAX_STACKED_VALUES; 16 if none does or the model is
    `convolutional`. K grows while each step was faster than the
    last, the values agree with one point per call's to PROBE_AGREEMENT,
    the grid has at least 8·K points, and the compile time of the last K
    is small next to what the rest of the grid still costs.
    """
    k = first_points_per_call(len(points), parameters, convolutional)
    if stacking_is_known_faster(parameters, convolutional):
        reference = per_point.evaluate_uncompiled(points[:PROBE_UNCOMPILED_REFERENCE_POINTS])
        best_seconds, timings = math.inf, {}
    else:
        reference, best_seconds, _ = time_evaluator(per_point, points, PROBE_REFERENCE_POINTS)
        timings = {1: best_seconds}
    exact = None if full_precision is None else full_precision(points[: len(reference)])
    agreement = agreement_rule(reference, exact, reduced)
    compared_with = reference if exact is None else exact
    best, best_values, reason = per_point, reference, None
    while reason is None:
        try:
            candidate = build_vectorized(k)
            values, seconds, setup = time_evaluator(candidate, points, k)
        except (MemoryError, *current_backend().out_of_memory_errors):
            reason = f"{k} points per call run out of memory"
            break
        timings[k] = seconds
        difference, name, value, expected = largest_relative_difference(values[: len(reference)], compared_with)
        if difference > agreement["tolerance"]:
            reason = (f"with {k} points per call, `{name}` was {value:.7g} where {agreement['compared_with']} "
                      f"gave {expected:.7g} (relative difference {difference:.1e}, more than "
                      f"{agreement['tolerance']:.1e})")
        elif seconds >= best_seconds:
            reason = f"{k} points per call are not faster"
        else:
            best, best_seconds, best_values = candidate, seconds, values
            agreement["largest_difference"] = difference
            k *= PROBE_GROWTH
            reason = _why_k_cannot_be_probed(k, len(points), parameters)
            if reason is None and setup > 0.5 * len(points) * best_seconds:
                reason = "compiling more points per call would cost more than it can save"
    parts = [f"{count} per call {1e3 * seconds:.3g}" for count, seconds in timings.items()]
    if 1 not in timings:
        parts.append(f"one per call not timed: no convolutions and {parameters:,} weights, which run faster stacked")
    parts.append(describe_agreement(agreement))
    report_points_per_call(best.points_per_call, reason, verbose, "; ".join(parts))
    return best, best_values, agreement


def agreement_rule(one_point, exact=None, reduced=None) -> dict:
    """The check K stacked points must pass, given one point per call's values and, if reduced, exact ones.

    Args:
        one_point: `{name: value}` per probe point, one point per call.
        exact: The same in exact float32, where the arithmetic is reduced;
            None where it is exact.
        reduced: Why the arithmetic is reduced, recorded with the rule.

    Returns:
        A dict for the landscape's settings: `compared_with` ("one point
        per call" or "exact float32"), `tolerance` (the largest relative
        difference K points may have), and with `exact` also
        `one_point_error` and `reduced_because`.

    Examples:
        >>> rule = agreement_rule([{"loss": 1.0}], [{"loss": 1.001}], "the model computes in bfloat16")
        >>> round(rule["tolerance"], 6)
        0.001998
    """
    if exact is None:
        return {"compared_with": "one point per call", "tolerance": PROBE_AGREEMENT}
    one_point_error = largest_relative_difference(one_point, exact)[0]
    return {
        "compared_with": "exact float32",
        "tolerance": max(PROBE_AGREEMENT, PROBE_REDUCED_PRECISION_FACTOR * one_point_error),
        "one_point_error": one_point_error,
        "reduced_because": reduced,
    }


def describe_agreement(agreement: dict) -> str:
    """The check of `agreement_rule` in words, for `verbose=2`."""
    if agreement["compared_with"] == "one point per call":
        return f"K points must agree with one point per call to {agreement['tolerance']:.0e}"
    described = (f"{agreement['reduced_because']}, so K points are checked against exact float32: one point per "
                 f"call errs {agreement['one_point_error']:.1e}, K points may err {agreement['tolerance']:.1e}")
    if "largest_difference" in agreement:
        described += f" and erred {agreement['largest_difference']:.1e}"
    return described


def stacking_is_known_faster(parameters: int, convolutional: bool) -> bool:
    """Whether a model of `parameters` trainable values runs faster K points per call than one, without timing."""
    return not convolutional and parameters <= PROBE_STACKED_WITHOUT_TIMING_MAX_PARAMETERS


def report_points_per_call(points_per_call: int, reason: str, verbose: int, measured: Optional[str] = None) -> None:
    """Says which points per call "auto" chose: in one line with `verbose=1`; with 2 also why, and what the probe
    measured (`measured`, ms per point), or that it did not probe."""
    using = "one point" if points_per_call == 1 else f"{points_per_call} points"
    if verbose >= 2:
        if measured is None:
            report(f"losslandscape: using {using} per call without probing: {reason}")
        else:
            report(f"losslandscape: ms per point with {measured}; using {using} per call: {reason}")
    elif verbose:
        report(f"losslandscape: evaluating {using} at a time")


def first_points_per_call(num_points: int, parameters: int, convolutional: bool = False) -> int:
    """The K the probe tries first on a grid of `num_points` for a model of `parameters` trainable values."""
    k = PROBE_POINTS_PER_CALL
    while not convolutional and k * PROBE_GROWTH <= PROBE_FIRST_POINTS_PER_CALL:
        if _why_k_cannot_be_probed(k * PROBE_GROWTH, num_points, parameters) is not None:
            break
        k *= PROBE_GROWTH
    return k


def _why_k_cannot_be_probed(k: int, num_points: int, parameters: int):
    """Why K points per call are not tried on a grid of `num_points` for `parameters` trainable values, or None."""
    if num_points < 8 * k:
        return "the grid is too small to probe more points per call"
    if k * parameters > PROBE_MAX_STACKED_VALUES:
        return "more points per call would stack too many weights"
    return None


def time_evaluator(evaluator, points, k):
    """`(values at points[:2k], seconds per point at points[k:2k], seconds of the first call beyond that)`.

    The first call compiles, so the second one is timed.
    """
    started = time.perf_counter()
    values = evaluator.evaluate(points[:k])
    first_call = time.perf_counter() - started
    started = time.perf_counter()
    values = values + evaluator.evaluate(points[k : 2 * k])
    seconds = (time.perf_counter() - started) / k
    return values, seconds, max(first_call - seconds * k, 0.0)


class KnownValuesFirst(PointEvaluator):
    """The evaluator "auto" chose: it answers the points the probe computed from memory, the rest as `evaluator`.

    A point is known when its coefficients equal, exactly, those of one of
    the probe's points; each known value is given once, and `rebind`
    forgets them. `agreement` is the check the chosen values passed.
    """

    def __init__(self, evaluator: PointEvaluator, points: np.ndarray, values: list, agreement: Optional[dict] = None):
        self._evaluator = evaluator
        self.points_per_call = evaluator.points_per_call
        self.agreement = agreement
        self._known = {tuple(np.asarray(point, np.float64)): value for point, value in zip(points, values)}

    def evaluate(self, points: np.ndarray) -> list:
        keys = [tuple(np.asarray(point, np.float64)) for point in points]
        unknown = [position for position, key in enumerate(keys) if key not in self._known]
        computed = iter(self._evaluator.evaluate(np.asarray(points)[unknown]) if unknown else [])
        return [self._known.pop(key) if key in self._known else next(computed) for key in keys]

    def rebind(self, origin, directions) -> None:
        self._known.clear()
        self._evaluator.rebind(origin, directions)


def largest_relative_difference(values, reference) -> tuple:
    """`(difference, name, value, expected)` for the largest |a - b| / max(|a|, |b|) over every named value.

    The difference is 0 where both values are 0, and 1 where one of them is NaN.
    """
    largest = (-1.0, None, None, None)
    for point, expected in zip(values, reference):
        for name, value in point.items():
            scale = max(abs(value), abs(expected[name]))
            if np.isnan(value) or np.isnan(expected[name]):  # max() above drops a NaN that comes second
                difference = 0.0 if np.isnan(value) and np.isnan(expected[name]) else 1.0
            else:
                difference = abs(value - expected[name]) / scale if scale > 0 else 0.0
            if difference > largest[0]:
                largest = (difference, name, value, expected[name])
    return largest
