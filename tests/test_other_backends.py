"""Runs the engine's test modules again on the JAX and PyTorch backends.

Keras chooses its backend once per process, so they run in a second pytest
process with KERAS_BACKEND set. Tests of TensorFlow-only behaviour skip
themselves there (`conftest.tensorflow_only`).
"""

import os
import subprocess
import sys

import pytest

from conftest import tensorflow_only

ENGINE_MODULES = [
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
    "tests/test_curvature.py",
]
# On torch also what a user runs first (the command line and the demo); the Dask cluster test runs on the other two.
MODULES = {
    "jax": ENGINE_MODULES,
    "torch": ENGINE_MODULES + ["tests/test_torch_data.py", "tests/test_dataset_length.py", "tests/test_cli.py",
                               "tests/test_demo.py", "-k", "not dask_cluster"],
}


@tensorflow_only
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_engine_modules_pass_on_the_other_backends(backend):
    pytest.importorskip(backend)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODULES[backend]],
        cwd=root, env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1] and "failed" not in result.stdout.splitlines()[-1]
