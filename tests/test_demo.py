import subprocess
import sys

import h5py
import numpy as np
import pytest

from losslandscape import load_surface
from losslandscape.cli import main
from losslandscape.demo import run_demo


@pytest.mark.slow
def test_demo_writes_its_four_files(tmp_path):
    paths = run_demo(tmp_path, points=7, epochs=2, verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss_1d.png", "loss_3d.png", "loss_contour.png", "surface.h5"]
    for key in ("line", "contour", "surface"):
        assert paths[key].stat().st_size > 10_000
    surface = load_surface(paths["h5"])
    losses = surface.losses["train"]
    assert losses.shape == (7, 7) and np.all(np.isfinite(losses))
    # The trained weights sit at the centre of the grid and the loss grows away from them.
    assert losses[3, 3] < losses[0, 0] and losses[3, 3] < losses[-1, -1]
    with h5py.File(paths["h5"], "r") as file:
        np.testing.assert_allclose(file["train_acc"][3, 3], 100 * surface.metrics["train"]["accuracy"][3, 3])


def test_cli_demo_and_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--points", "3", "--epochs", "1", "--quiet"]) == 0
    assert (tmp_path / "surface.h5").exists()
    assert main(["demo", "--points", "1"]) == 2
    assert "--points must be >= 2" in capsys.readouterr().err


def test_module_entry_point_prints_help():
    result = subprocess.run([sys.executable, "-m", "losslandscape", "demo", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--points" in result.stdout
