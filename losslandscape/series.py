"""Landscapes over training: a Keras callback that computes one per epoch into a series file.

A series file holds one group per landscape, "0000", "0001", ..., each in
the layout of a landscape file, with the attributes `epoch`, `step` and
`logs` (the training logs as JSON), and the run's settings and directions
at its root (`losslandscape.series_writer`). Every landscape is appended
atomically, so a killed fit loses at most the landscape in progress, which
a resumed fit computes again. Reading and drawing series:
`losslandscape.series_files`.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import keras
import numpy as np

from losslandscape.messages import report
from losslandscape.series_writer import SeriesWriter
from losslandscape.sharpness_measures import sharpness
from losslandscape.surface import LossLine
from losslandscape.validation import check_positive_int, check_writable, evenly_spaced_coords

KINDS = ("surface", "line")
DIRECTION_CHOICES = ("fixed", "fresh")


class LandscapeCallback(keras.callbacks.Callback):
    """Computes a landscape before training and every `every` epochs (or `every_steps` steps) of `model.fit`.

    Around the current weights each time, on the data given, into one
    series file. With
    `directions="fixed"` the random directions are drawn once and
    filter-normalized to the current weights each time, so that the
    landscapes compare; `"fresh"` draws new ones each time. The model's
    weights, optimizer state and metric states are left bitwise as they were.

    Landscapes are labelled with the fit's real epoch (counting
    `initial_epoch`) and optimizer step.

    Args:
        data: One dataset, as `compute_surface` takes it.
        path: The series file (HDF5). An existing series file is replaced
            when training begins (unless `resume`); any other existing
            file is refused. One writer at a time: a second fit writing to
            the same file is refused in one line.
        every: Epochs between landscapes.
        every_steps: Optimizer steps between landscapes, instead of epochs.
        kind: "surface" or "line".
        points: Points per axis.
        coordinate_range: `(min, max)` of α (and β).
        max_samples: Evaluate only the first `max_samples` samples.
        seed: Seed of the random directions; recorded in the file.
        directions: "fixed" or "fresh".
        include_regularization: Whether the loss includes the layers'
            regularization losses (the paper's code leaves them out).
        tensorboard_dir: A TensorBoard log folder (e.g. the `log_dir` of the
            fit's `keras.callbacks.TensorBoard`): each landscape is logged
            there as an image ("landscape"), with its sharpness numbers along
            α (`sharpness`) and the loss at θ0 as scalars, at the optimizer
            step. Needs TensorFlow and TensorBoard installed (`pip install
            "losslandscape[tensorboard]"`), on any Keras backend.
        resume: If the series file exists, continue it (e.g. when a fit
            goes on from a checkpoint with `initial_epoch=`) with its own
            directions, instead of replacing it. The data and every
            setting above must be those of the file (`seed=None` takes
            the file's); a mismatch is refused, naming the setting, with
            the file unchanged. The landscape at the fit's first weights
            is computed unless the file's last landscape is at the same
            epoch and step (e.g. one lost when a fit was killed while
            writing it); a fit that starts before the file's last
            landscape is refused rather than writing epochs twice.
        verbose: 1 prints the seconds each landscape added.

    Examples:
        >>> callback = LandscapeCallback((x, y), "series.h5", points=11)  # doctest: +SKIP
        >>> model.fit(x, y, epochs=3, callbacks=[callback])  # doctest: +SKIP
        >>> plot_series(load_series("series.h5"))  # doctest: +SKIP
    """

    def __init__(
        self,
        data,
        path: Union[str, os.PathLike],
        every: int = 1,
        kind: str = "surface",
        points: int = 21,
        coordinate_range: tuple[float, float] = (-1.0, 1.0),
        max_samples: Optional[int] = None,
        seed: Optional[int] = 0,
        directions: str = "fixed",
        include_regularization: bool = False,
        every_steps: Optional[int] = None,
        tensorboard_dir: Optional[Union[str, os.PathLike]] = None,
        resume: bool = False,
        verbose: int = 0,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"Expected `kind` to be one of {KINDS}, received: {kind!r}")
        if directions not in DIRECTION_CHOICES:
            raise ValueError(f"Expected `directions` to be one of {DIRECTION_CHOICES}, received: {directions!r}")
        check_positive_int("every", every)
        check_positive_int("every_steps", every_steps)
        if every_steps is not None and every != 1:
            raise ValueError(
                f"Pass `every` ({every}) or `every_steps` ({every_steps}), not both: landscapes come either "
                "every few epochs or every few optimizer steps."
            )
        check_positive_int("max_samples", max_samples)
        coords = evenly_spaced_coords("points", points, coordinate_range)
        check_writable(path)
        self.data, self.path, self.every, self.kind = data, os.fspath(path), every, kind
        self.coords = coords
        self.max_samples, self.seed, self.directions = max_samples, seed, directions
        self.include_regularization, self.verbose = include_regularization, verbose
        self.every_steps, self.resume = every_steps, resume
        self.tensorboard_dir = None if tensorboard_dir is None else os.fspath(tensorboard_dir)
        self.seconds: list[float] = []
        self._writer: Optional[SeriesWriter] = None
        self._tensorboard = None
        self._epoch = 0
        self._starting = False

    def on_train_begin(self, logs=None):
        if self._writer is not None:  # a fit of this callback that stopped with an error
            self._writer.close()
        self._writer = SeriesWriter(
            self.model, self.data, self.path, self.kind, self.coords, max_samples=self.max_samples, seed=self.seed,
            directions=self.directions, include_regularization=self.include_regularization,
            append=self.resume and os.path.exists(self.path),
        )
        if self.tensorboard_dir is not None:
            self._tensorboard = TensorBoardLog(self.tensorboard_dir)
        self._starting = True

    def on_train_end(self, logs=None):
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._starting:  # the fit's first epoch (`initial_epoch`): the landscape before its training
            self._starting = False
            here, last = (epoch, self._step()), self._writer.last
            if last is not None and (here[0] < last[0] or here[1] < last[1]):
                raise ValueError(
                    f"{self.path!r} holds landscapes up to epoch {last[0]} (step {last[1]}), after this fit's start "
                    f"at epoch {here[0]} (step {here[1]}): resume from the checkpoint of its last landscape or a "
                    "later one, or pass `resume=False` (or another `path`) to start a new series."
                )
            if here != last:  # a resumed file already holds the landscape at its last weights
                self._add(epoch=epoch, logs={})

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps is not None and self._step() % self.every_steps == 0:
            self._add(epoch=self._epoch, logs=logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.every_steps is None and (epoch + 1) % self.every == 0:
            self._add(epoch=epoch + 1, logs=logs or {})

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) if self.model.optimizer else 0

    def _add(self, epoch: int, logs: dict) -> None:
        step = self._step()
        assert self._writer is not None, "landscapes are added between on_train_begin and on_train_end"
        landscape, seconds = self._writer.add(self.model, epoch, step, logs)
        if self._tensorboard is not None:
            self._tensorboard.write(landscape, step)
        self.seconds.append(seconds)
        if self.verbose:
            report(f"losslandscape: landscape at epoch {epoch}, step {step} added {seconds:.1f} s")


class TensorBoardLog:
    """One TensorBoard event file of landscapes: each one's picture, loss at θ0 and sharpness along α."""

    def __init__(self, log_dir: str):
        try:
            import tensorboard  # noqa: F401  (tf.summary.image needs it)
            import tensorflow as tf
        except ImportError as error:
            raise ImportError(
                "`tensorboard_dir=` writes TensorBoard logs with TensorFlow's summary API: pip install "
                "tensorboard tensorflow-cpu (on any Keras backend), or leave `tensorboard_dir` out."
            ) from error
        self._tf = tf
        self._writer = tf.summary.create_file_writer(os.path.join(log_dir, "landscape"))

    def write(self, landscape, step: int) -> None:
        import io

        import matplotlib.pyplot as plt

        tf = self._tf
        line = _line_along_alpha(landscape)
        figure = landscape.plot().figure_  # a surface's default is its contour plot, a line's its curve
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        plt.close(figure)
        origin = float(line.losses[line.labels[0]][np.argmin(np.abs(line.coords))])
        with self._writer.as_default():
            tf.summary.image("landscape", tf.image.decode_png(buffer.getvalue(), channels=4)[None], step=step)
            tf.summary.scalar("landscape/loss_at_origin", origin, step=step)
            for name, value in sharpness(line).items():
                tf.summary.scalar(f"landscape/{name}", value, step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _line_along_alpha(landscape) -> LossLine:
    """The landscape itself if it is a line; a surface's values along α at the β nearest 0."""
    if isinstance(landscape, LossLine):
        return landscape
    middle = int(np.argmin(np.abs(landscape.ycoords)))
    losses = {label: values[:, middle] for label, values in landscape.losses.items()}
    return LossLine(landscape.xcoords, losses, {label: {} for label in losses})
