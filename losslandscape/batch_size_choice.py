"""The default batch size: 128 on a CPU; on an accelerator, the largest that fits a share of its memory."""

from __future__ import annotations

import math
import weakref

import keras

from losslandscape.backends import current_backend
from losslandscape.keras_internals import build_for_batch
from losslandscape.points_per_call_probe import PROBE_POINTS_PER_CALL

DEFAULT_BATCH_SIZE = 128
# One batch at one point per call may take this share of the accelerator's memory: the first K "auto" tries
# (16) then takes a quarter of it, and larger K, which take K times as much, are refused where memory runs out.
ACCELERATOR_MEMORY_SHARE = 1 / (4 * PROBE_POINTS_PER_CALL)
# Batch sizes are rounded up to a multiple of this, which GPU kernels tile evenly.
BATCH_MULTIPLE = 8
# Bytes a sample takes, per model and per inputs' shapes and dtypes: measuring compiles a pass (seconds for a
# ResNet on a GPU), which a second dataset of the same shapes, or a second call, need not repeat.
_MEASURED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def default_batch_size(model: keras.Model, arrays) -> int:
    """The batch size for `arrays` when the user gives none.

    On a CPU, DEFAULT_BATCH_SIZE. On an accelerator, the memory of one
    inference pass over DEFAULT_BATCH_SIZE samples is measured, and the
    batch is the size that splits the samples into the fewest equal
    batches that each fit ACCELERATOR_MEMORY_SHARE of the device's memory
    (`batch_size_within`), and never less than DEFAULT_BATCH_SIZE; or
    DEFAULT_BATCH_SIZE if the backend cannot measure the pass.

    Args:
        model: The model the batches are for.
        arrays: `(x, y[, sample_weight])`, the samples the landscape is computed on.

    Returns:
        A positive batch size.
    """
    backend = current_backend()
    memory = backend.accelerator_memory()
    samples = len(keras.tree.flatten(arrays)[0])
    if memory is None or samples <= DEFAULT_BATCH_SIZE:
        return DEFAULT_BATCH_SIZE
    first = keras.tree.map_structure(lambda a: a[:DEFAULT_BATCH_SIZE], arrays)
    per_sample = _bytes_per_sample(model, first)
    if per_sample is None:
        return DEFAULT_BATCH_SIZE
    return batch_size_within(memory * ACCELERATOR_MEMORY_SHARE, per_sample, samples)


def _bytes_per_sample(model, first):
    """`batch_memory` of the DEFAULT_BATCH_SIZE samples `first`, per sample; measured once per model and inputs."""
    x = keras.utils.unpack_x_y_sample_weight(first)[0]
    inputs = tuple((tuple(a.shape[1:]), str(a.dtype)) for a in keras.tree.flatten(x))
    known = _MEASURED.setdefault(model, {})
    if inputs not in known:
        build_for_batch(model, first)
        measured = current_backend().batch_memory(model, first)
        known[inputs] = None if measured is None else measured / DEFAULT_BATCH_SIZE
    return known[inputs]


def batch_size_within(budget: float, bytes_per_sample: float, samples: int) -> int:
    """The size of the fewest equal batches of `samples` whose memory stays within `budget` bytes each.

    Equal batches leave no short last batch to compile for or pad. The
    size is rounded up to a multiple of BATCH_MULTIPLE, capped at
    `samples`, and never below DEFAULT_BATCH_SIZE (or `samples`, if fewer).

    Args:
        budget: Bytes one batch may take.
        bytes_per_sample: Bytes one sample of a batch takes, measured.
        samples: The number of samples to split.

    Returns:
        The batch size.

    Example:

    >>> batch_size_within(budget=300_000, bytes_per_sample=1_000, samples=1_000)
    256
    """
    largest = max(DEFAULT_BATCH_SIZE, int(budget // max(bytes_per_sample, 1)))
    size = math.ceil(samples / math.ceil(samples / largest))
    return min(samples, BATCH_MULTIPLE * math.ceil(size / BATCH_MULTIPLE))
