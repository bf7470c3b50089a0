"""What pytest collects when a framework is missing: a backend module whose framework is not installed is not imported.

With only one of TensorFlow, JAX and PyTorch installed (and KERAS_BACKEND naming it), importing the other backends'
modules for their docstring examples would fail; they are left out of the collection instead.
"""

import importlib.util


def _installed(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # sys.modules holds None for it: its import is blocked
        return False


collect_ignore = [f"losslandscape/backends/{name}.py" for name in ("tensorflow", "jax", "torch") if not _installed(name)]
