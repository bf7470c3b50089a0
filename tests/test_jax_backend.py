"""Runs the engine's test modules again on the JAX backend.

Keras chooses its backend once per process, so they run in a second pytest
process with KERAS_BACKEND=jax. Tests of TensorFlow-only behaviour skip
themselves there (`conftest.tensorflow_only`).
"""

import os
import subprocess
import sys

import pytest

from conftest import tensorflow_only

JAX_MODULES = [
    "tests/test_backends.py",
    "tests/test_engine.py",
    "tests/test_hessian.py",
    "tests/test_compute.py",
    "tests/test_precision.py",
    "tests/test_resume.py",
    "tests/test_distributed.py",
    "tests/test_conformance.py",
    "tests/test_evaluator_cache.py",
    "tests/test_series.py",
]


@tensorflow_only
def test_engine_modules_pass_on_the_jax_backend():
    pytest.importorskip("jax")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *JAX_MODULES],
        cwd=root, env=dict(os.environ, KERAS_BACKEND="jax"), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1] and "failed" not in result.stdout.splitlines()[-1]
