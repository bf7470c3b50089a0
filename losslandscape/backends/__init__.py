"""The one place that knows which Keras backend runs the model.

Everything backend-specific (converting data, compiling the per-point
evaluation) lives in a module of this package named after the backend,
which implements the contract of `losslandscape.backends.base.Backend`.
"""

import importlib

_INSTALL_HINT = (
    "losslandscape needs Keras 3 with an installed backend. Install one with "
    "`pip install 'losslandscape[tensorflow-cpu]'` (CPU only), "
    "`pip install 'losslandscape[tensorflow]'` or "
    "`pip install 'losslandscape[and-cuda]'` (NVIDIA GPUs), or JAX with "
    "`pip install 'losslandscape[jax]'` and KERAS_BACKEND=jax, or PyTorch with "
    "`pip install 'losslandscape[torch]'` and KERAS_BACKEND=torch."
)
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")


def import_keras():
    """Imports keras, turning a missing backend into an error that says what to install."""
    try:
        return importlib.import_module("keras")
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from error


def current_backend():
    """Returns the `Backend` of the active Keras backend (the `BACKEND` of its module here)."""
    keras = import_keras()
    name = keras.backend.backend()
    if name not in SUPPORTED_BACKENDS:
        raise NotImplementedError(
            f"losslandscape supports the Keras backends {SUPPORTED_BACKENDS}, "
            f"but Keras runs on {name!r}. Set the environment variable "
            "KERAS_BACKEND=tensorflow, jax or torch before importing keras."
        )
    try:
        return importlib.import_module(f"{__name__}.{name}").BACKEND
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from error
