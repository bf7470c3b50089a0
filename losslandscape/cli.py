"""The `losslandscape` command line: surface, line, plot, info and demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import sys
from typing import Optional, Sequence

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by Ctrl-C (128 + SIGINT)

# The subcommands' --help descriptions.
_DESCRIPTIONS = {
    "surface": (
        "Computes the loss on the plane of two random filter-normalized directions "
        "around the weights of MODEL and writes it to an HDF5 file. Re-running with the same "
        "--out resumes an interrupted run."
    ),
    "line": (
        "Computes the loss along one random filter-normalized direction around the "
        "weights of MODEL and writes it to an HDF5 file (resumable like `surface`)."
    ),
    "series": (
        "Computes a landscape around the weights of each CHECKPOINT (.keras files of one model, in "
        "training order) along the same random directions, filter-normalized to each, into one series file "
        "that `plot` draws as small multiples. The epoch of each is the last number in its file name."
    ),
    "demo": (
        "Trains a 64-64-10 MLP on scikit-learn's digits (offline) and writes "
        "loss_1d.png, loss_contour.png, loss_3d.png and surface.h5."
    ),
}


# The settings of a saved run that a resumed command must repeat, by the options that set them.
RESUMED_SETTING_OPTIONS = {
    "fingerprint": "version of losslandscape (the file has no run fingerprint)",
    "directions": "--seed", "normalization": "--normalization", "orthogonal": "--orthogonal",
    "data": "--data, --test-data or --samples", "coords": "--points or --range",
    "include_regularization": "--no-regularization", "dtype_policy": "--dtype-policy", "batch_size": "--batch-size",
}


class CommandError(Exception):
    """Bad input on the command line: printed as one line, exit code 2."""


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (argparse's default prints the usage first)."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of the `losslandscape` command and its subcommands."""
    parser = _OneLineParser(
        prog="losslandscape",
        description="Loss landscapes of Keras models along filter-normalized random directions.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    surface = commands.add_parser(
        "surface",
        help="compute a 2D loss surface of a saved model",
        description=_DESCRIPTIONS["surface"],
    )
    _add_compute_arguments(surface, default_out="surface.h5")
    surface.add_argument("--orthogonal", action="store_true",
                         help="make the second direction orthogonal to the first")

    line = commands.add_parser(
        "line",
        help="compute a 1D loss curve of a saved model",
        description=_DESCRIPTIONS["line"],
    )
    _add_compute_arguments(line, default_out="line.h5")

    series = commands.add_parser(
        "series",
        help="landscapes of checkpoints saved during training, into one series file",
        description=_DESCRIPTIONS["series"],
    )
    series.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                        help=".keras files, in training order")
    series.add_argument("--data", required=True,
                        help=".npz file with the evaluation data")
    series.add_argument("--x-key", default="x",
                        help="array name of the inputs in the .npz (default: %(default)s)")
    series.add_argument("--y-key", default="y",
                        help="array name of the targets in the .npz (default: %(default)s)")
    series.add_argument("--kind", choices=("surface", "line"), default="surface",
                        help="(default: %(default)s)")
    series.add_argument("--points", type=int, default=21,
                        help="points per axis (default: %(default)s)")
    series.add_argument("--samples", type=int,
                        help="evaluate only the first N samples")
    series.add_argument("--seed", type=int, default=0,
                        help="seed of the random directions (default: %(default)s)")
    series.add_argument("--out", default="series.h5",
                        help="series file to write (default: %(default)s)")

    plot = commands.add_parser("plot",
                               help="draw a saved surface, line or series to an image file")
    plot.add_argument("file",
                      help="HDF5 file written by `surface` or `line`, or a series of LandscapeCallback")
    plot.add_argument("--kind", choices=("contour", "contourf", "heatmap", "surface", "levels", "3d"),
                      default="contour",
                      help="plot kind for surfaces (default: %(default)s)")
    plot.add_argument("--out", required=True,
                      help="image file to write (png, pdf, svg, ...)")
    plot.add_argument("--log", action="store_true",
                      help="logarithmic colour scale")
    plot.add_argument("--label",
                      help="dataset label (default: the first)")
    plot.add_argument("--metric", default="loss",
                      help="'loss' or a compiled metric name (default: %(default)s)")

    info = commands.add_parser("info",
                               help="describe a saved surface or line")
    info.add_argument("file",
                      help="HDF5 file written by `surface` or `line`")

    demo = commands.add_parser(
        "demo",
        help="train a small MLP on scikit-learn's digits and write its landscape",
        description=_DESCRIPTIONS["demo"],
    )
    demo.add_argument("--out", default="losslandscape_demo",
                      help="output folder (default: %(default)s)")
    demo.add_argument("--points", type=int, default=51,
                      help="grid points per axis; finer than the library default of 21 for the README figures (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=30,
                      help="training epochs (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0,
                      help="random seed (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true",
                      help="no progress output")
    return parser


def _add_compute_arguments(parser, default_out):
    parser.add_argument("model",
                        help="a Keras model saved with model.save('MODEL.keras'), compiled with a loss")
    parser.add_argument("--data", required=True,
                        help=".npz file with the evaluation data")
    parser.add_argument("--test-data",
                        help="optional second .npz file, evaluated along the same directions")
    parser.add_argument("--x-key", default="x",
                        help="array name of the inputs in the .npz (default: %(default)s)")
    parser.add_argument("--y-key", default="y",
                        help="array name of the targets in the .npz (default: %(default)s)")
    parser.add_argument("--sample-weight-key",
                        help="array name of per-sample weights in the .npz")
    parser.add_argument("--points", type=int, default=21,
                        help="points per axis, as in the Python functions (default: %(default)s)")
    parser.add_argument("--range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("MIN", "MAX"),
                        help="coordinate range (default: -1 1)")
    parser.add_argument("--out", default=default_out,
                        help="HDF5 file to write or resume (default: %(default)s)")
    parser.add_argument("--samples", type=int,
                        help="evaluate only the first N samples")
    parser.add_argument("--batch-size", type=int,
                        help="batch size (default: 128)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random directions (default: %(default)s)")
    parser.add_argument("--normalization", choices=("filter", "layer", "model", "none"), default="filter",
                        help="direction normalization (default: %(default)s)")
    parser.add_argument("--no-regularization", action="store_true",
                        help="leave regularization losses out of the loss")
    parser.add_argument("--dtype-policy",
                        help='evaluate under a Keras dtype policy, e.g. "mixed_bfloat16" (GPU)')
    parser.add_argument("--workers", type=int,
                        help="spread the points over N local worker processes")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="spread the points over a Dask cluster (tcp://host:8786)")
    parser.add_argument("--chunk-size", type=int,
                        help="points per chunk saved or sent to a worker")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress output")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit code.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` by default.

    Returns:
        0 on success, 2 on bad input (with a one-line message on stderr).

    Examples:
        >>> main(["demo", "--points", "5", "--epochs", "1", "--out", "/tmp/demo", "--quiet"])
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # The command writes files; it never opens windows.
    commands = {"surface": _compute, "line": _compute, "series": _series, "plot": _plot, "info": _info, "demo": _demo}
    try:
        commands[args.command](args)
    except KeyboardInterrupt:
        print(f"losslandscape {args.command}: interrupted{_resume_hint(args, argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, ValueError, KeyError, TypeError, OSError) as error:
        message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
        first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        print(f"losslandscape {args.command}: error: {first_line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _compute(args):
    _check_compute_arguments(args)
    _import_keras_quietly()
    from losslandscape.compute import compute_line, compute_surface
    from losslandscape.datasets import NpzData

    model = _load_model(args.model)
    keys = dict(x_key=args.x_key, y_key=args.y_key, sample_weight_key=args.sample_weight_key)
    data = {"train": NpzData(args.data, **keys)}
    if args.test_data:
        data["test"] = NpzData(args.test_data, **keys)
    for spec in data.values():
        spec.load()  # fail early, in one line, on a wrong path or key
    import numpy as np

    coords = np.linspace(args.range[0], args.range[1], args.points)
    options = dict(
        seed=args.seed,
        normalization=None if args.normalization == "none" else args.normalization,
        batch_size=args.batch_size,
        max_samples=args.samples,
        include_regularization=not args.no_regularization,
        dtype_policy=args.dtype_policy,
        path=args.out,
        chunk_size=args.chunk_size,
        verbose=0 if args.quiet else 1,
    )
    from losslandscape.resume import ResumeError

    try:
        with _executor(args) as executor:
            if args.command == "surface":
                result = compute_surface(model, data, xcoords=coords, orthogonal=args.orthogonal, executor=executor,
                                         **options)
            else:
                result = compute_line(model, data, coords=coords, executor=executor, **options)
    except ResumeError as error:
        named = [RESUMED_SETTING_OPTIONS.get(key, key) for key in error.differences]
        raise CommandError(
            f"--out {args.out!r} holds a landscape computed with another {', '.join(named)} than this command, so "
            "its points cannot be reused: run the same command to resume, or pass another --out (or delete the "
            "file) to start over"
        ) from None
    if not args.quiet:
        print(f"wrote {args.out}: {result}")


def _check_compute_arguments(args) -> None:
    """One-line errors for bad numbers, before the model or the data is read (options a command lacks are skipped)."""
    if args.points < 2:
        raise CommandError(f"--points must be >= 2, received {args.points}")
    low, high = getattr(args, "range", (-1.0, 1.0))
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise CommandError(f"--range MIN MAX needs finite MIN < MAX, received {low:g} {high:g}")
    for option in ("samples", "batch_size", "chunk_size", "workers"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise CommandError(f"--{option.replace('_', '-')} must be >= 1, received {value}")
    from losslandscape.validation import check_writable

    check_writable(args.out, option="--out")  # before the seconds TensorFlow takes to import
    if getattr(args, "workers", None) is not None and getattr(args, "scheduler", None) is not None:
        raise CommandError("use either --workers or --scheduler, not both")


def _series(args):
    _check_compute_arguments(args)
    for path in args.checkpoints:
        if not os.path.isfile(path):
            raise CommandError(f"no model file at {path!r}")
    for path in [*args.checkpoints, args.data]:
        if os.path.exists(args.out) and os.path.exists(path) and os.path.samefile(path, args.out):
            raise CommandError(f"--out {args.out!r} is also an input ({path!r}); pass another --out")
    from losslandscape.series_files import check_replaceable_series

    check_replaceable_series(args.out)
    _import_keras_quietly()
    import numpy as np

    from losslandscape.datasets import NpzData
    from losslandscape.series import SeriesWriter

    data = NpzData(args.data, x_key=args.x_key, y_key=args.y_key)
    data.load()  # fail early, in one line, on a wrong path or key
    model = _load_model(args.checkpoints[0])
    writer = SeriesWriter(model, data, args.out, args.kind, np.linspace(-1.0, 1.0, args.points),
                          max_samples=args.samples, seed=args.seed)
    try:
        for index, path in enumerate(args.checkpoints):
            numbers = re.findall(r"\d+", os.path.basename(path))
            epoch = int(numbers[-1]) if numbers else index
            _, seconds = writer.add(model if index == 0 else _load_model(path), epoch)
            print(f"{path}: epoch {epoch}, {seconds:.1f} s")
    finally:
        writer.close()
    print(f"wrote {args.out}")


def _resume_hint(args, argv) -> str:
    """How many points the output file holds and the command that goes on, for an interrupted computation."""
    if args.command not in ("surface", "line") or not os.path.exists(args.out):
        return ""
    try:
        landscape = _load_any(args.out)
    except (CommandError, ValueError, KeyError, OSError):
        return ""
    done = sum(int(mask.sum()) for mask in landscape.computed.values())
    total = sum(mask.size for mask in landscape.computed.values())
    command = " ".join(["losslandscape", *map(shlex.quote, argv)])
    return f"; {done} of {total} points are saved in {args.out}; run `{command}` again to resume"


def _plot(args):
    landscape = _load_any(args.file)
    from losslandscape.plotting import surface_kind
    from losslandscape.series_files import LandscapeSeries, plot_series
    from losslandscape.surface import LossSurface

    kind = surface_kind(args.kind)
    if isinstance(landscape, LandscapeSeries):
        series_kind = "contour" if kind == "surface" else kind
        plot_series(landscape, kind=series_kind, metric=args.metric, label=args.label).figure_.savefig(
            args.out, bbox_inches="tight", dpi=150
        )
        print(f"wrote {args.out}")
        return
    if isinstance(landscape, LossSurface):
        landscape.plot(kind=kind, log=args.log, label=args.label, metric=args.metric)
    else:
        landscape.plot(metric=args.metric, labels=[args.label] if args.label else None)
        if args.log:
            landscape.ax_.set_yscale("log")
    landscape.figure_.savefig(args.out, bbox_inches="tight", dpi=150)
    print(f"wrote {args.out}")


def _info(args):
    import numpy as np

    landscape = _load_any(args.file)
    from losslandscape.series_files import LandscapeSeries

    if isinstance(landscape, LandscapeSeries):
        print(f"{args.file}: a series of {len(landscape.landscapes)} landscapes")
        for epoch, step, item in zip(landscape.epochs, landscape.steps, landscape.landscapes):
            centre = np.asarray(item.losses[item.labels[0]])[tuple(s // 2 for s in item.grid_shape)]
            print(f"  epoch {epoch} (step {step}): {item}, loss at the centre {centre:.6g}")
        return
    print(f"{args.file}: {landscape}")
    for label in landscape.labels:
        done = landscape.computed[label]
        losses = np.where(done, landscape.losses[label], np.nan)
        best = np.unravel_index(np.nanargmin(losses), losses.shape) if done.any() and np.isfinite(losses).any() else None
        where = "" if best is None else f", min loss {losses[best]:.6g} at index {tuple(int(i) for i in best)}"
        print(f"  {label}: {int(done.sum())}/{done.size} points computed{where}")
    settings = {key: value for key, value in landscape.settings.items() if key != "fingerprint"}
    print(f"  settings: {json.dumps(settings)}")


def _demo(args):
    if args.points < 2 or args.epochs < 1:
        raise CommandError("--points must be >= 2 and --epochs >= 1")
    _import_keras_quietly()
    from losslandscape.demo import run_demo

    run_demo(args.out, points=args.points, epochs=args.epochs, seed=args.seed, verbose=0 if args.quiet else 1)


def _import_keras_quietly() -> None:
    """Imports Keras and its backend, without TensorFlow's C++ start-up lines, unless the user asks for them.

    Only the commands that evaluate need Keras; `--help`, `info` and `plot`
    start without it. The lines are held back as in
    `backends.start_up_lines_held_back`, with TensorFlow's warnings left
    out too; a user's own `TF_CPP_MIN_LOG_LEVEL` is respected.
    """
    import importlib.util

    from losslandscape import backends

    with backends.start_up_lines_held_back(log_level="2"):
        keras = backends.import_keras()
        if keras.backend.backend() != "tensorflow" and importlib.util.find_spec("tensorflow") is not None:
            # Keras imports an installed TensorFlow on other backends too, when it serializes a model.
            importlib.import_module("tensorflow")


def _load_model(path):
    import keras

    if not str(path).endswith(".keras"):
        raise CommandError(f"expected a .keras model file (saved with model.save('model.keras')), received {path!r}")
    if not os.path.isfile(path):
        raise CommandError(f"no model file at {path!r}")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (ValueError, OSError, TypeError) as error:
        raise CommandError(f"could not load {path!r} as a Keras model: {error}") from None


def _load_any(path):
    from losslandscape.hdf5_files import opened_for_reading
    from losslandscape.reference_files import is_reference_file, reference_kind
    from losslandscape.surface import load_line, load_surface

    try:
        with opened_for_reading(path) as file:
            kind = reference_kind(file) if is_reference_file(file) else file.attrs.get("kind")
    except FileNotFoundError:
        raise CommandError(f"no file at {path!r}") from None
    if kind == "series":
        from losslandscape.series_files import load_series

        return load_series(path)
    return load_line(path) if kind == "line" else load_surface(path)


@contextlib.contextmanager
def _executor(args):
    if args.workers is not None:
        if args.workers < 1:
            raise CommandError(f"--workers must be >= 1, received {args.workers}")
        from losslandscape.distributed import process_pool

        with process_pool(args.workers) as pool:
            yield pool
    elif args.scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise CommandError("--scheduler needs Dask: pip install 'losslandscape[dask]'") from None
        with Client(args.scheduler, timeout="20s") as client:
            yield client
    else:
        yield None
