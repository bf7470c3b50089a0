"""Content hashes of arrays: how runs, workers and resumed files tell data and weights apart."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Iterable

import numpy as np


def content_hash(items: Iterable) -> str:
    """A short hash of the values, shapes and dtypes of a sequence of arrays, or of nests of arrays.

    A nest is hashed with its structure: lists and tuples as sequences,
    dicts by their keys (in sorted order, as Keras flattens them), so that
    data passed as `[x1, x2]` and as `{"a": x1, "b": x2}` differ, while two
    dicts with the same keys and values are the same data.

    Examples:
        >>> content_hash([np.zeros(2)]) == content_hash([np.zeros(2)]) != content_hash([np.zeros(3)])
        True
        >>> content_hash([[np.zeros(2), np.ones(2)]]) == content_hash([{"a": np.zeros(2), "b": np.ones(2)}])
        False
    """
    digest = hashlib.blake2b(digest_size=16)
    for item in items:
        _add_nest(digest, item)
    return digest.hexdigest()


def _add_nest(digest, nest) -> None:
    if isinstance(nest, Mapping):
        digest.update(b"{")
        for key in sorted(nest, key=repr):
            digest.update(f"{key!r}:".encode())
            _add_nest(digest, nest[key])
        digest.update(b"}")
    elif isinstance(nest, (list, tuple)):  # Keras reads a list and a tuple of inputs alike
        digest.update(b"[")
        for item in nest:
            _add_nest(digest, item)
        digest.update(b"]")
    elif nest is None:
        digest.update(b"None")
    else:
        array = np.ascontiguousarray(nest)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
