"""Reading the HDF5 files of the paper's reference code (tomgoldstein/loss-landscape), which lack our attributes.

Its files hold `xcoordinates` (and `ycoordinates` for a surface),
`{label}_loss` and `{label}_acc` (accuracy in percent) at the root, 2D
arrays in `np.meshgrid(x, y)` order, and -1 at points not computed yet.
"""

from __future__ import annotations

import numpy as np

# The reference writes -1 where a point is not computed yet; a cross-entropy or an accuracy is never -1.
NOT_COMPUTED = -1.0


def is_reference_file(file) -> bool:
    """Whether an open HDF5 file is in the reference code's layout (coordinates, no `kind` attribute)."""
    return "kind" not in file.attrs and "xcoordinates" in file


def reference_kind(file) -> str:
    """"surface" when the file has `ycoordinates`, else "line"."""
    return "surface" if "ycoordinates" in file else "line"


def read_reference_values(file, path, from_file_order):
    """`(losses, metrics, settings, computed)` of a reference file, each in our in-memory order.

    Labels are the `{label}_loss` datasets at the root ("train" first,
    "test" next); `{label}_acc` becomes the metric "accuracy", in [0, 1];
    points holding -1 are NaN and not computed.
    """
    labels = sorted(
        (name[: -len("_loss")] for name in file if name.endswith("_loss") and name != "_loss"),
        key=lambda label: ({"train": 0, "test": 1}.get(label, 2), label),
    )
    if not labels:
        raise ValueError(
            f"{str(path)!r} was not written by losslandscape, and has no `train_loss` (or other `*_loss`) as the "
            "reference code writes: it holds no landscape."
        )
    shape = tuple(len(file[key]) for key in ("ycoordinates", "xcoordinates") if key in file)
    losses, metrics, computed = {}, {}, {}
    for label in labels:
        loss = _checked(file, path, f"{label}_loss", shape)
        done = loss != NOT_COMPUTED
        losses[label] = from_file_order(np.where(done, loss, np.nan))
        computed[label] = from_file_order(done)
        metrics[label] = {}
        if f"{label}_acc" in file:
            accuracy = _checked(file, path, f"{label}_acc", shape)
            metrics[label]["accuracy"] = from_file_order(np.where(done, accuracy / 100.0, np.nan))
    return losses, metrics, {"source": "reference layout"}, computed


def _checked(file, path, name, shape) -> np.ndarray:
    values = np.asarray(file[name][()], dtype=np.float64)
    if values.shape != shape:
        raise ValueError(
            f"{str(path)!r}: `{name}` has shape {values.shape}, but the coordinates make {shape}; the file is damaged."
        )
    return values
