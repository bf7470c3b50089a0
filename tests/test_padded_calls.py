"""K grid points per call: short last chunks padded to K rows with copies of their last row, the padding dropped."""

import numpy as np
import pytest

from losslandscape.backends.padded_calls import evaluate_in_padded_calls


@pytest.mark.parametrize("count", [1, 4, 5, 6, 7, 8])
def test_every_call_gets_k_rows_and_every_point_its_own_value(count):
    points = np.arange(2 * count, dtype=np.float64).reshape(count, 2)
    calls = []

    def call(rows):
        calls.append(rows.copy())
        return {"sum": rows.sum(axis=1), "first": rows[:, 0]}

    values = evaluate_in_padded_calls(points, 4, call, np.float32)
    assert [len(rows) for rows in calls] == [4] * -(-count // 4)
    assert all(rows.dtype == np.float32 for rows in calls)
    last = calls[-1]
    np.testing.assert_array_equal(last[(count - 1) % 4:], np.repeat(points[-1:], 4 - (count - 1) % 4, axis=0))
    assert values == [{"sum": float(a + b), "first": float(a)} for a, b in points]
