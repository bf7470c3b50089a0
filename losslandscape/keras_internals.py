"""The only module that reads private Keras attributes, one function per need.

Keras offers no public API for these; each was checked on Keras 3.12.0 and
3.15.1 (see `TESTED_KERAS`). If a Keras release renames one, the accessor
raises a `RuntimeError` naming the attribute and the Keras version, and
`tests/test_keras_internals.py` fails the same way.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Iterator

import keras

TESTED_KERAS = ">=3.12,<3.16"


def compiled_loss(model: keras.Model):
    """The loss passed to `model.compile(loss=...)` as Keras calls it, `None` when none was.

    It returns the data loss alone, without the losses layers add, and
    updates the per-output loss metrics of a multi-output model.
    """
    return _read(model, "_compile_loss")


def tracks_loss_per_output(model: keras.Model) -> bool:
    """Whether the built compiled loss keeps one loss metric per output, as it does for several outputs."""
    loss = compiled_loss(model)
    return loss is not None and bool(_read(loss, "metrics"))


def loss_tracker(model: keras.Model) -> keras.metrics.Metric:
    """The `Mean` metric behind the "loss" that `model.evaluate` reports (a compiled model has one)."""
    return _read(model, "_loss_tracker")


def call_takes_training(model: keras.Model) -> bool:
    """Whether the model's `call` accepts a `training` argument (a subclass's may not)."""
    return _read(model, "_call_has_training_arg")


def build_for_batch(model: keras.Model, batch) -> None:
    """Builds the model, its compiled loss and its compiled metrics for `batch`, as `model.evaluate` does first."""
    _read(model, "_symbolic_build")(data_batch=batch)


def layers_outermost_first(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """The model itself and every layer nested in it, at any depth, outer layers before inner ones."""
    return _read(model, "_flatten_layers")(include_self=True, recursive=True)


def inbound_nodes(layer: keras.layers.Layer) -> list:
    """The nodes recording each call of `layer` on symbolic tensors of a functional graph."""
    return _read(layer, "_inbound_nodes")


@contextlib.contextmanager
def torch_convolutions_without_memory_format() -> Iterator[None]:
    """Keras' torch convolutions without their switch to channels-last memory, for `torch.func.vmap`.

    Keras asks a kernel whether it is channels-last contiguous, which vmap
    cannot answer for stacked kernels. The memory format changes speed
    only, never values.
    """
    module = importlib.import_module("keras.src.backend.torch.nn")
    name = "_maybe_convert_to_channels_last"
    original = _read(module, name)
    setattr(module, name, lambda tensor: tensor)
    try:
        yield
    finally:
        setattr(module, name, original)


def _read(owner, name: str):
    try:
        return getattr(owner, name)
    except AttributeError:
        raise RuntimeError(
            f"Keras {keras.__version__} has no `{type(owner).__name__}.{name}`, which losslandscape "
            f"reads (tested with Keras {TESTED_KERAS}). Install a tested version, e.g. "
            f"`pip install 'keras{TESTED_KERAS}'`."
        ) from None
