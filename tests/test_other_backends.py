"""Runs the engine's test modules again on the JAX and PyTorch backends.

Keras chooses its backend once per process, so they run in a second pytest
process with KERAS_BACKEND set. Tests of TensorFlow-only behaviour, and those
no backend code touches, skip themselves there (`conftest.tensorflow_only`,
`conftest.same_on_every_backend`). Each backend's pass is a class of its own,
so that pytest-xdist (`--dist loadscope`) gives the two to different workers.
"""

import os
import subprocess
import sys

import pytest

from conftest import tensorflow_only

ENGINE_MODULES = [
    "tests/test_backends.py",
    "tests/test_batch_size_choice.py",
    "tests/test_engine.py",
    "tests/test_hessian.py",
    "tests/test_compute.py",
    "tests/test_precision.py",
    "tests/test_reference_precision.py",
    "tests/test_resume.py",
    "tests/test_distributed.py",
    "tests/test_conformance.py",
    "tests/test_evaluator_cache.py",
    "tests/test_series.py",
    "tests/test_curvature.py",
]
# On torch also what a user runs first (the command line and the demo). The Dask cluster test runs on TensorFlow only:
# what it adds to the process pool's test (a worker killed mid-run) is scheduling, not backend code.
MODULES = {
    "jax": ENGINE_MODULES,
    "torch": ENGINE_MODULES + ["tests/test_torch_data.py", "tests/test_dataset_length.py", "tests/test_cli.py",
                               "tests/test_demo.py"],
}


# JAX compiles the same computation again in each test that builds its model anew; a compilation cache shared by the
# pass (fresh each run) answers those from the first compile: 20 % off the pass's time on 2 cores.
JAX_CACHE = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _engine_modules_pass_on(backend, **environment):
    pytest.importorskip(backend)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ, KERAS_BACKEND=backend, **environment)
    # One process: this pass already runs beside the rest of the suite on another xdist worker.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-k", "not dask_cluster",
         *MODULES[backend]],
        cwd=root, env=environment, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1] and "failed" not in result.stdout.splitlines()[-1]


@pytest.mark.slow
@tensorflow_only
class TestOnTorch:
    def test_engine_modules_pass(self):
        _engine_modules_pass_on("torch")


@pytest.mark.slow
@tensorflow_only
class TestOnJax:
    def test_engine_modules_pass(self, tmp_path):
        _engine_modules_pass_on("jax", JAX_COMPILATION_CACHE_DIR=str(tmp_path), **JAX_CACHE)
