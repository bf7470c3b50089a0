"""The `losslandscape` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of the `losslandscape` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="losslandscape",
        description="Loss landscapes of Keras models along filter-normalized random directions.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a small MLP on scikit-learn's digits and write its landscape",
        description="Trains a 64-64-10 MLP on scikit-learn's digits (offline) and writes "
        "loss_1d.png, loss_contour.png, loss_3d.png and surface.h5.",
    )
    demo.add_argument("--out", default="losslandscape_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--points", type=int, default=51, help="grid points per axis (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=30, help="training epochs (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit code.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` by default.

    Returns:
        0 on success, 2 on bad input.

    Example:

    >>> main(["demo", "--points", "5", "--epochs", "1", "--out", "/tmp/demo", "--quiet"])
    0
    """
    args = build_parser().parse_args(argv)
    if args.points < 2 or args.epochs < 1:
        print("losslandscape: error: --points must be >= 2 and --epochs >= 1", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")  # The command writes files; it never opens windows.
    from losslandscape.demo import run_demo

    run_demo(args.out, points=args.points, epochs=args.epochs, seed=args.seed, verbose=0 if args.quiet else 1)
    return 0
