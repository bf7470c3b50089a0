"""How many batches a dataset has, known before reading it: endless data is refused, data of unknown length is read within a budget."""

from __future__ import annotations

import math
import os
from typing import Optional

import keras

from losslandscape.backends.base import as_batch, is_tf_dataset

# Data of unknown length is held in memory up to this share of the machine's memory, then refused as endless.
MEMORY_SHARE_FOR_DATA = 0.5


def number_of_batches(data) -> Optional[float]:
    """The batches `data` yields: a number, `math.inf` for endless data, or None where it cannot be known unread.

    Examples:
        >>> number_of_batches([("x", "y")] * 3)  # a list of 3 batches
        3
    """
    if is_tf_dataset(data):
        count = int(data.cardinality())
        return math.inf if count == -1 else (None if count == -2 else count)  # tf.data's INFINITE, UNKNOWN
    if isinstance(data, keras.utils.PyDataset):
        try:
            count = data.num_batches
        except NotImplementedError:  # neither `__len__` nor `num_batches`: Keras cannot tell where it ends either
            return math.inf
        return math.inf if count is None else count
    try:
        return len(data)  # a torch DataLoader over a map-style dataset
    except TypeError:
        return None  # e.g. a DataLoader over an IterableDataset


def check_not_endless(data, max_samples: Optional[int], max_batches: Optional[int]) -> None:
    """Raises a ValueError, before anything is read, for endless data that neither cap limits.

    Examples:
        >>> class Endless(keras.utils.PyDataset):
        ...     num_batches = None
        >>> check_not_endless(Endless(), max_samples=None, max_batches=None)
        Traceback (most recent call last):
        ...
        ValueError: The Endless never ends (a PyDataset without a length); pass `max_batches=` or `max_samples=` to read its first batches.
    """
    if max_samples is not None or max_batches is not None or number_of_batches(data) != math.inf:
        return
    why = "a tf.data.Dataset of infinite cardinality, e.g. `.repeat()`" if is_tf_dataset(data) else (
        "a PyDataset without a length"
    )
    raise ValueError(
        f"The {type(data).__name__} never ends ({why}); pass `max_batches=` or `max_samples=` to read its first "
        "batches."
    )


def batches_within_memory(data) -> Optional[tuple[int, int]]:
    """For data of unknown length, the most batches that fit in the memory budget, and the first batch's samples.

    None if the length is known, or if the data yields nothing. Data that
    yields more samples than `limit * first_batch_samples` is too large to
    hold, or endless.
    """
    if number_of_batches(data) is not None:
        return None
    first = next(iter(data), None)
    if first is None:
        return None
    leaves = [keras.ops.convert_to_numpy(leaf) for leaf in keras.tree.flatten(as_batch(first))]
    size = sum(leaf.nbytes for leaf in leaves)
    return max(1, int(_memory_bytes() * MEMORY_SHARE_FOR_DATA) // max(size, 1)), len(leaves[0])


def refuse_unbounded(data, limit: int) -> None:
    """Raises the ValueError for data of unknown length that went on past `limit` batches."""
    raise ValueError(
        f"The {type(data).__name__} has no known length and went on past {limit} batches, "
        f"more than {MEMORY_SHARE_FOR_DATA:.0%} of this machine's memory holds: it may never end. Pass "
        "`max_batches=` or `max_samples=` to read its first batches, or `stream=True` for data larger than memory."
    )


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
