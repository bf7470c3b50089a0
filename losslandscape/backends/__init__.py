"""The one place that knows which Keras backend runs the model.

Everything backend-specific (converting data, compiling the per-point
evaluation) lives in a module of this package named after the backend,
which implements the contract of `losslandscape.backends.base.Backend`.
"""

import contextlib
import importlib
import os
import sys
import tempfile

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
    """Imports keras, turning a missing backend into an error that says what to install.

    The first import holds TensorFlow's C++ start-up lines back
    (`start_up_lines_held_back`), so that they do not reach a notebook's
    cells or a script's terminal.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    try:
        with start_up_lines_held_back():
            return importlib.import_module("keras")
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})") from error


@contextlib.contextmanager
def start_up_lines_held_back(log_level: str = "1"):
    """Holds back what the block writes to the stderr file descriptor, and writes it out only if the block fails.

    TensorFlow writes its oneDNN and CPU-feature lines straight to the
    file descriptor while it loads, before `TF_CPP_MIN_LOG_LEVEL` takes
    effect. The lines are shown when the block raises an error (they may
    say why), not when it is interrupted (Ctrl-C). `TF_CPP_MIN_LOG_LEVEL`
    is set to `log_level` for the rest of the process ("1" leaves out
    TensorFlow's information lines, not its warnings); a user who set it
    keeps their level, and the lines.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = log_level
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr to hold back (a GUI without a console)
        yield
        return
    with tempfile.TemporaryFile() as held_back:
        os.dup2(held_back.fileno(), 2)
        try:
            yield
        except Exception:
            os.dup2(saved, 2)
            held_back.seek(0)
            os.write(2, held_back.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


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
