"""Resuming a run from its HDF5 file: what identifies a run, and the check that a file belongs to it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import TYPE_CHECKING, Optional

import keras
import numpy as np

from losslandscape.hashing import content_hash

if TYPE_CHECKING:
    from losslandscape.evaluation_settings import EvaluationSettings


def run_fingerprint(
    model: keras.Model,
    datasets: dict,
    directions,
    coords: dict,
    evaluation: EvaluationSettings,
    *,
    drawn: Optional[dict] = None,
) -> dict:
    """Everything that must match for a saved file to be resumed by this run.

    Args:
        model: The model at θ0 (all its weights are hashed, and its compiled
            loss, loss weights and metrics).
        datasets: `{label: batches}` from `prepare_data`.
        directions: The directions of the run.
        coords: `{"xcoords": ..., "ycoords": ...}` (or `coords` for a line).
        evaluation: The run's settings; whether the loss includes
            regularization, the dtype policy and the batch size asked for
            (it changes float rounding) must match.
        drawn: What the directions were drawn with (`normalization`,
            `ignore`, `orthogonal`), or `{"given": True}`.

    Returns:
        A JSON-serializable dict.
    """
    return {
        "model": model_fingerprint(model),
        "compiled loss and metrics": compile_fingerprint(model),
        "directions": content_hash(np.asarray(d) for direction in directions for d in direction),
        **(drawn or {}),
        "data": {label: {"num_samples": b.num_samples, "hash": b.fingerprint()} for label, b in datasets.items()},
        "coords": {name: [float(c) for c in values] for name, values in coords.items()},
        "include_regularization": evaluation.include_regularization,
        "dtype_policy": evaluation.dtype_policy,
        "batch_size": evaluation.batch_size,
        **({} if evaluation.curvature is None else {"curvature": dataclasses.asdict(evaluation.curvature)}),
    }


def model_fingerprint(model: keras.Model) -> str:
    """A short hash of the values of all the model's weights."""
    return content_hash(keras.ops.convert_to_numpy(v) for v in model.weights)


def compile_fingerprint(model: keras.Model) -> str:
    """A short hash of the model's compiled loss (with its config), loss weights and metrics."""
    config = model.get_compile_config() or {}
    compiled = {key: config.get(key) for key in ("loss", "loss_weights", "metrics", "weighted_metrics")}
    text = json.dumps(compiled, sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class ResumeError(ValueError):
    """A saved file that this run cannot resume; `differences` names the settings of `run_fingerprint` that differ."""

    def __init__(self, message: str, path: os.PathLike, differences: list):
        super().__init__(message)
        self.path = os.fspath(path)
        self.differences = differences


def check_resumable(path: os.PathLike, saved: Optional[dict], expected: dict) -> None:
    """Raises a `ResumeError` naming what differs between a saved run and this one."""
    if saved is None:
        raise ResumeError(
            f"{os.fspath(path)!r} holds a landscape without a run fingerprint, so it "
            "cannot be resumed. Pass another `path`, or delete the file to start over.",
            path, ["fingerprint"],
        )
    keys = list(expected) + [key for key in saved if key not in expected]
    differences = [key for key in keys if saved.get(key) != expected.get(key)]
    if differences:
        named = [f"`{key}`" for key in differences]
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        raise ResumeError(
            f"{os.fspath(path)!r} was computed with another {listed} than this run, so its points cannot be "
            "reused. Pass the same model, data, "
            "directions (or seed), coordinates and settings to resume, or another `path` (or delete "
            "the file) to start over.",
            path, differences,
        )
