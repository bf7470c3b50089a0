import keras
import numpy as np
import pytest

from conftest import trained_classifier
from losslandscape import compute_surface, load_line, load_surface
from losslandscape.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model, x, y = trained_classifier(300, 6, 8)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", inputs=x, targets=y)
    np.savez(folder / "test.npz", inputs=x[:100], targets=y[:100])
    np.savez(folder / "mismatch.npz", inputs=x, targets=y[:-1])
    return folder, model, (x, y)


def run(*argv):
    return main([str(a) for a in argv])


def test_surface_plot_and_info_from_the_shell(saved, tmp_path, capsys):
    folder, model, (x, y) = saved
    out = tmp_path / "surface.h5"
    code = run("surface", folder / "model.keras", "--data", folder / "train.npz", "--test-data", folder / "test.npz",
               "--x-key", "inputs", "--y-key", "targets", "--points", 4, "--range", -0.5, 0.5, "--seed", 7,
               "--out", out, "--quiet")
    assert code == 0
    surface = load_surface(out)
    assert surface.labels == ["train", "test"] and surface.losses["train"].shape == (4, 4)
    expected = compute_surface(model, {"train": (x, y), "test": (x[:100], y[:100])},
                               xcoords=np.linspace(-0.5, 0.5, 4), seed=7, verbose=0)
    np.testing.assert_allclose(surface.losses["test"], expected.losses["test"], rtol=1e-6)

    assert run("plot", out, "--kind", "contourf", "--out", tmp_path / "surface.png", "--log") == 0
    assert (tmp_path / "surface.png").stat().st_size > 5000
    assert run("info", out) == 0
    printed = capsys.readouterr().out
    assert "train: 16/16 points computed" in printed and '"seed": 7' in printed


def test_line_command_and_its_plot(saved, tmp_path):
    folder, _, _ = saved
    out = tmp_path / "line.h5"
    assert run("line", folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs",
               "--y-key", "targets", "--points", 7, "--out", out, "--quiet") == 0
    assert load_line(out).losses["train"].shape == (7,)
    assert run("plot", out, "--out", tmp_path / "line.png") == 0
    low = tmp_path / "line_bfloat16.h5"
    assert run("line", folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs",
               "--y-key", "targets", "--points", 7, "--out", low, "--dtype-policy", "mixed_bfloat16", "--quiet") == 0
    assert load_line(low).settings["dtype_policy"] == "mixed_bfloat16"
    np.testing.assert_allclose(load_line(low).losses["train"], load_line(out).losses["train"], rtol=3e-2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["surface", "missing.keras", "--data", "{folder}/train.npz"], "no model file"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/nothing.npz"], "No data file"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz"], "no array named 'x'"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/mismatch.npz", "--x-key", "inputs",
          "--y-key", "targets"], "same number of samples"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz", "--points", "1"], "--points must be >= 2"),
        (["line", "{folder}/model.keras", "--data", "{folder}/train.npz", "--x-key", "inputs", "--y-key", "targets",
          "--dtype-policy", "float12", "--out", "{folder}/never.h5"], "Unknown `dtype_policy`"),
        (["plot", "{folder}/nothing.h5", "--out", "x.png"], "no file at"),
        (["info", "{folder}/train.npz"], "not an HDF5 file"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(saved, capsys, argv, message):
    folder, _, _ = saved
    assert main([a.format(folder=folder) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_unsafe_model_files_are_refused(saved, tmp_path, capsys):
    folder, _, _ = saved
    model = keras.Sequential([keras.Input((6,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(2)])
    model.compile(loss="mse")
    model.save(tmp_path / "lambda.keras")
    code = run("surface", tmp_path / "lambda.keras", "--data", folder / "train.npz", "--quiet")
    assert code == 2
    assert "safe_mode" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["surface", "line", "plot", "info", "demo"])
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: losslandscape " + command in capsys.readouterr().out


def test_surface_on_two_local_workers_equals_the_serial_surface(saved, tmp_path):
    folder, model, (x, y) = saved
    out = tmp_path / "workers.h5"
    assert run("surface", folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs",
               "--y-key", "targets", "--points", 3, "--workers", 2, "--out", out, "--quiet") == 0
    serial = compute_surface(model, (x, y), xcoords=np.linspace(-1, 1, 3), seed=0, points_per_call=1, verbose=0)
    np.testing.assert_allclose(load_surface(out).losses["train"], serial.losses["train"], rtol=1e-6)
