import os
import re
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import edited, trained_classifier, same_on_every_backend
from losslandscape import LossLine, LossSurface, compute_line, compute_surface, load_line, load_surface
from losslandscape.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model, x, y = trained_classifier(300, 6, 8)
    model.save(folder / "model.keras")
    np.savez(folder / "train.npz", inputs=x, targets=y)
    np.savez(folder / "test.npz", inputs=x[:100], targets=y[:100])
    np.savez(folder / "mismatch.npz", inputs=x, targets=y[:-1])
    np.savez(folder / "narrow.npz", inputs=x[:, :4], targets=y)
    np.savez(folder / "labels.npz", inputs=x, targets=np.where(np.arange(len(y)) == 5, 7, y))
    np.save(folder / "array.npy", x)
    (folder / "notes.txt").write_text("not data")
    (folder / "empty.h5").write_bytes(b"")
    compute_line(model, (x, y), coords=[0.0, 1.0], path=folder / "complete.h5", verbose=0)
    (folder / "truncated.h5").write_bytes((folder / "complete.h5").read_bytes()[:600])
    return folder, model, (x, y)


def run(*argv):
    return main([str(a) for a in argv])


def record_calls(monkeypatch, name):
    """Wraps `losslandscape.compute.<name>` (as the command imports it) so that it keeps each call's keyword arguments.

    Returns the list of those and the unwrapped function.
    """
    import losslandscape.compute

    calls, original = [], getattr(losslandscape.compute, name)
    monkeypatch.setattr(losslandscape.compute, name,
                        lambda *args, **options: calls.append(options) or original(*args, **options))
    return calls, original


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


@same_on_every_backend
@pytest.mark.parametrize(
    "argv, message",
    [
        (["surface", "missing.keras", "--data", "{folder}/train.npz"], "no model file"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz", "--workers", "2", "--scheduler",
          "tcp://localhost:8786"], "error: use either --workers or --scheduler, not both"),
        (["surface", "{folder}/train.npz", "--data", "{folder}/train.npz"],
         "error: expected a .keras model file (saved with model.save('model.keras')), received '{folder}/train.npz'"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/nothing.npz"], "No data file"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz"], "no array named 'x'"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/mismatch.npz", "--x-key", "inputs",
          "--y-key", "targets"], "same number of samples"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz", "--points", "1"], "--points must be >= 2"),
        (["line", "{folder}/model.keras", "--data", "{folder}/train.npz", "--x-key", "inputs", "--y-key", "targets",
          "--dtype-policy", "float12", "--out", "{folder}/never.h5"], "Unknown `dtype_policy`"),
        (["plot", "{folder}/nothing.h5", "--out", "x.png"], "no file at"),
        (["info", "{folder}/train.npz"], "is not a readable HDF5 file"),
        (["info", "{folder}/empty.h5"], "is not a readable HDF5 file"),
        (["info", "{folder}/truncated.h5"], "truncated.h5' is truncated: it holds 88 of the"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz", "--range", "1", "-1"],
         "--range MIN MAX needs finite MIN < MAX, received 1 -1"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz", "--range", "0", "0"],
         "--range MIN MAX needs finite MIN < MAX, received 0 0"),
        (["surface", "{folder}/model.keras", "--data", "{folder}/train.npz", "--chunk-size", "-1"],
         "--chunk-size must be >= 1, received -1"),
        (["line", "{folder}/model.keras", "--data", "{folder}/train.npz", "--samples", "0"], "--samples must be >= 1"),
        (["line", "{folder}/model.keras", "--data", "{folder}/train.npz", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["line", "{folder}/model.keras", "--data", "{folder}/train.npz", "--workers", "0"], "--workers must be >= 1"),
        (["line", "{folder}/model.keras", "--data", "{folder}/array.npy"], "holds one array, not a .npz archive"),
        (["line", "{folder}/model.keras", "--data", "{folder}/notes.txt"], "is not a .npz file"),
        (["line", "{folder}/model.keras", "--data", "{folder}/narrow.npz", "--x-key", "inputs", "--y-key", "targets",
          "--out", "{folder}/never.h5"], "'train' ('{folder}/narrow.npz') has samples of shape (4,), but the model expects (6,)"),
        (["line", "{folder}/model.keras", "--data", "{folder}/labels.npz", "--x-key", "inputs", "--y-key", "targets",
          "--out", "{folder}/never.h5"], "has the label 7, but the model's sparse loss takes labels 0 to 1"),
        (["line", "{folder}/model.keras", "--data", "{folder}/train.npz", "--x-key", "inputs", "--y-key", "targets",
          "--out", "{folder}/no/such/line.h5"], "the folder '{folder}/no/such' does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(saved, capsys, argv, message):
    folder, _, _ = saved
    assert main([a.format(folder=folder) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(folder=folder) in err and len(err.splitlines()) == 1
    assert not (folder / "never.h5").exists()


@same_on_every_backend
def test_unsafe_model_files_are_refused(saved, tmp_path, capsys):
    folder, _, _ = saved
    model = keras.Sequential([keras.Input((6,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(2)])
    model.compile(loss="mse")
    model.save(tmp_path / "lambda.keras")
    code = run("surface", tmp_path / "lambda.keras", "--data", folder / "train.npz", "--quiet")
    assert code == 2
    assert "safe_mode" in capsys.readouterr().err


@same_on_every_backend
@pytest.mark.parametrize("command", ["surface", "line", "plot", "info", "demo"])
def test_each_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: losslandscape " + command in capsys.readouterr().out


@pytest.mark.slow
def test_surface_on_two_local_workers_equals_the_serial_surface(saved, tmp_path, monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    folder, model, (x, y) = saved
    calls, original = record_calls(monkeypatch, "compute_surface")
    out = tmp_path / "workers.h5"
    assert run("surface", folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs",
               "--y-key", "targets", "--points", 3, "--workers", 2, "--orthogonal", "--out", out, "--quiet") == 0
    assert len(calls) == 1 and isinstance(calls[0]["executor"], ProcessPoolExecutor)
    surface = load_surface(out)
    first, second = (np.concatenate([np.ravel(d) for d in direction]) for direction in surface.directions)
    assert abs(first @ second) < 1e-5 * np.linalg.norm(first) * np.linalg.norm(second)
    serial = original(model, (x, y), xcoords=np.linspace(-1, 1, 3), seed=0, orthogonal=True, points_per_call=1,
                      verbose=0)
    np.testing.assert_allclose(surface.losses["train"], serial.losses["train"], rtol=1e-6)


def test_line_command_saves_its_range_and_the_values_of_compute_line(saved, tmp_path):
    folder, model, (x, y) = saved
    out = tmp_path / "line.h5"
    assert run("line", folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs",
               "--y-key", "targets", "--points", 7, "--range", -0.3, 0.9, "--seed", 4, "--out", out, "--quiet") == 0
    line = load_line(out)
    np.testing.assert_array_equal(line.coords, np.linspace(-0.3, 0.9, 7))
    expected = compute_line(model, (x, y), coords=np.linspace(-0.3, 0.9, 7), seed=4, verbose=0)
    np.testing.assert_allclose(line.losses["train"], expected.losses["train"], rtol=1e-6)
    np.testing.assert_allclose(line.metrics["train"]["accuracy"], expected.metrics["train"]["accuracy"])


@pytest.mark.slow
@same_on_every_backend
def test_ctrl_c_is_one_line_with_exit_130_and_the_command_that_resumes(saved, tmp_path):
    folder, _, _ = saved
    out = tmp_path / "surface.h5"
    argv = ["surface", str(folder / "model.keras"), "--data", str(folder / "train.npz"), "--x-key", "inputs",
            "--y-key", "targets", "--points", "60", "--chunk-size", "4", "--out", str(out), "--quiet"]
    # A shell starts background jobs with SIGINT ignored, and children inherit that: restore it for the command.
    process = subprocess.Popen([sys.executable, "-m", "losslandscape", *argv], stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not out.exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    # TensorFlow's and XLA's own C++ log lines (absl format) are theirs, not the command's.
    lines = [line for line in err.splitlines() if line.strip() and not re.match(r"([IWE]\d{4} |WARNING: All log)", line)]
    assert process.returncode == 130, err
    assert len(lines) == 1 and lines[0].startswith("losslandscape surface: interrupted; ")
    done = int(load_surface(out).computed["train"].sum())
    assert f"{done} of 3600 points are saved in {out}" in lines[0]
    assert "losslandscape surface " + " ".join(argv[1:]) in lines[0] and lines[0].endswith("again to resume")


@same_on_every_backend
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    option=st.sampled_from(["--points", "--chunk-size", "--samples", "--batch-size", "--workers", "--range"]),
    value=st.one_of(st.integers(-10**6, 0), st.sampled_from(["nan", "inf", "-inf", "1.5", "", "many"])),
)
def test_fuzzed_bad_numbers_are_one_line_exit_2_and_write_nothing(saved, tmp_path, capsys, option, value):
    folder, _, _ = saved
    out = tmp_path / "fuzzed.h5"
    values = [str(value), str(value)] if option == "--range" else [str(value)]  # a range MIN = MAX is empty
    argv = ["surface", str(folder / "model.keras"), "--data", str(folder / "train.npz"), "--x-key", "inputs",
            "--y-key", "targets", "--points", "3", option, *values, "--out", str(out), "--quiet"]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse refuses what is not a number
        code = exit_info.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert len(err) == 1 and err[0].startswith("losslandscape surface: error: ")


@pytest.mark.slow
@same_on_every_backend
def test_a_failed_write_is_one_line_and_keeps_the_previous_file(saved, tmp_path):
    import resource

    folder, _, _ = saved
    out = tmp_path / "surface.h5"
    argv = [sys.executable, "-m", "losslandscape", "surface", str(folder / "model.keras"), "--data",
            str(folder / "train.npz"), "--x-key", "inputs", "--y-key", "targets", "--points", "5", "--out", str(out), "--quiet"]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    assert main(argv[3:]) == 0  # the first run in this process; the full disk below needs its own
    with edited(out) as file:
        computed = file["computed/train"][()]
        computed[2:] = False
        file["computed/train"][...] = computed
    before = out.read_bytes()
    limit = len(before) - 1000  # the next save cannot fit, as on a full disk

    def small_file_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(argv, env=environment, capture_output=True, text=True, preexec_fn=small_file_limit)
    lines = [line for line in result.stderr.splitlines() if line.startswith("losslandscape") or "Error" in line
             or "Exception" in line]
    assert result.returncode == 2, result.stderr
    assert lines == [f"losslandscape surface: error: Could not write {str(out)!r} (File too large); the previous file is kept."]
    assert out.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def _in_a_fresh_process(code, **environment):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(env, **environment))


def _main_in_a_fresh_process(argv):
    """`main(argv)` in a new process, which prints its exit code and the frameworks it imported."""
    code = (
        "import sys\nfrom losslandscape.cli import main\n"
        f"try:\n    code = main({argv!r})\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print(code, sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    return _in_a_fresh_process(code)


@same_on_every_backend
@pytest.mark.parametrize("argv", [["--help"], ["info", "{file}"], ["plot", "{file}", "--out", "{folder}/line.png"]])
def test_help_info_and_plot_start_without_keras_or_tensorflow(saved, argv):
    folder, _, _ = saved
    argv = [a.format(file=folder / "complete.h5", folder=folder) for a in argv]
    result = _main_in_a_fresh_process(argv)
    assert result.stdout.splitlines()[-1] == "0 []", result.stderr
    assert result.stderr == ""


@same_on_every_backend
@pytest.mark.parametrize("command", ["surface", "line", "series"])
def test_an_unwritable_out_is_refused_before_keras_is_imported(saved, tmp_path, command):
    folder, _, _ = saved
    out = tmp_path / "no" / "such" / "out.h5"
    inputs = [str(folder / "model.keras"), "--data", str(folder / "train.npz")]
    result = _main_in_a_fresh_process([command, *inputs, "--out", str(out)])
    assert result.stdout.splitlines()[-1] == "2 []", result.stderr
    assert result.stderr == (f"losslandscape {command}: error: Cannot write {str(out)!r}: the folder "
                             f"{str(out.parent)!r} does not exist. Create it, or pass another --out.\n")


@pytest.mark.slow
def test_a_computing_command_prints_no_tensorflow_start_up_lines(saved, tmp_path):
    folder, _, _ = saved
    argv = ["line", str(folder / "model.keras"), "--data", str(folder / "train.npz"), "--x-key", "inputs",
            "--y-key", "targets", "--points", "3", "--out", str(tmp_path / "line.h5"), "--quiet"]
    result = _in_a_fresh_process(f"from losslandscape.cli import main\nraise SystemExit(main({argv!r}))")
    assert result.returncode == 0 and result.stderr == ""
    assert load_line(tmp_path / "line.h5").is_complete


@same_on_every_backend
def test_a_users_own_tensorflow_log_level_is_kept(monkeypatch):
    from losslandscape import cli

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    cli._import_keras_quietly()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


@same_on_every_backend
def test_start_up_lines_are_held_back_and_shown_only_if_the_import_fails(monkeypatch, capfd):
    from losslandscape import backends, cli

    def noisy_import(fails):
        def import_keras():
            os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\n")
            if fails:
                raise ImportError("no backend")
            return keras

        return import_keras

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.setattr(backends, "import_keras", noisy_import(fails=False))
    cli._import_keras_quietly()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    os.write(2, b"after\n")  # stderr is the terminal's again
    assert capfd.readouterr().err == "after\n"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.setattr(backends, "import_keras", noisy_import(fails=True))
    with pytest.raises(ImportError, match="no backend"):
        cli._import_keras_quietly()
    assert capfd.readouterr().err == "I0000 port.cc:153] oneDNN custom operations are on\n"


@same_on_every_backend
def test_info_reports_the_minimum_of_the_computed_points_only(tmp_path, capsys):
    losses = np.array([[3.0, 1.0], [2.0, 0.5]])
    computed = np.array([[True, True], [True, False]])  # 0.5 is not computed yet
    LossSurface([0.0, 1.0], [0.0, 1.0], {"train": losses}, {"train": {}}, computed={"train": computed}).save(
        tmp_path / "partial.h5")
    nothing = {"train": np.zeros((2, 2), bool)}
    LossSurface([0.0, 1.0], [0.0, 1.0], {"train": np.full((2, 2), np.nan)}, {"train": {}}, computed=nothing).save(
        tmp_path / "empty.h5")
    diverged = {"train": np.ones((2, 2), bool)}  # every point computed, every loss NaN
    LossSurface([0.0, 1.0], [0.0, 1.0], {"train": np.full((2, 2), np.nan)}, {"train": {}}, computed=diverged,
                settings={"seed": 3, "fingerprint": "abc"}).save(tmp_path / "diverged.h5")
    assert run("info", tmp_path / "partial.h5") == 0 and run("info", tmp_path / "empty.h5") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path / 'partial.h5'}: LossSurface(grid=(2, 2), labels=['train'], metrics=['loss'])"
    assert lines[1] == "  train: 3/4 points computed, min loss 1 at index (0, 1)"
    assert "  train: 0/4 points computed" in lines
    assert run("info", tmp_path / "diverged.h5") == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["  train: 4/4 points computed", '  settings: {"seed": 3}']


def test_ctrl_c_names_the_saved_points_in_process(saved, tmp_path, capsys, monkeypatch):
    import losslandscape.cli as cli

    folder, _, _ = saved
    out = tmp_path / "line.h5"
    argv = ["line", str(folder / "model.keras"), "--data", str(folder / "train.npz"), "--x-key", "inputs",
            "--y-key", "targets", "--points", "5", "--out", str(out), "--quiet"]
    assert run(*argv) == 0
    with edited(out) as file:
        file["computed/train"][3:] = False  # as if Ctrl-C came after three points

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_compute", interrupted)
    monkeypatch.setattr(cli, "_plot", interrupted)
    capsys.readouterr()
    assert run(*argv) == 130
    assert capsys.readouterr().err == (
        f"losslandscape line: interrupted; 3 of 5 points are saved in {out}; "
        f"run `losslandscape {' '.join(argv)}` again to resume\n"
    )
    # Without a file, or for a command that writes none, there is nothing to resume.
    assert run(*argv[:-3], "--out", tmp_path / "absent.h5") == 130
    assert capsys.readouterr().err == "losslandscape line: interrupted\n"
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert run(*argv[:-3], "--out", tmp_path / "junk.h5") == 130
    assert capsys.readouterr().err == "losslandscape line: interrupted\n"
    assert run("plot", out, "--out", tmp_path / "line.png") == 130
    assert capsys.readouterr().err == "losslandscape plot: interrupted\n"
    monkeypatch.setattr(cli, "_info", interrupted)
    assert run("info", out) == 130
    assert capsys.readouterr().err == "losslandscape info: interrupted\n"
    surface_argv = ["surface", *argv[1:-3], "--out", str(tmp_path / "surface.h5")]
    _two_label_surface().save(tmp_path / "surface.h5")
    assert run(*surface_argv) == 130
    assert capsys.readouterr().err.startswith("losslandscape surface: interrupted; 50 of 50 points are saved in ")


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures the command saves, with the options it saves them with."""
    import matplotlib.figure

    saved = []
    original = matplotlib.figure.Figure.savefig

    def record(figure, path, **options):
        saved.append((figure, options))
        return original(figure, path, **options)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return saved


def _two_label_surface(shift=0.0):
    grid = np.linspace(-1.0, 1.0, 5)
    bowl = np.add.outer(grid**2, grid**2)
    losses = {"train": bowl + 1.0 + shift, "test": bowl + 2.0 + shift}
    accuracy = {"train": 0.9 - bowl / 10 - shift, "test": 0.6 - bowl / 10 - shift}
    return LossSurface(grid, grid, losses, {label: {"accuracy": a} for label, a in accuracy.items()})


def _write_series(path, landscapes):
    """A series file as `LandscapeCallback` writes it: epochs 0, 1, ... at steps 0, 10, ..."""
    with h5py.File(path, "w") as file:
        file.attrs["kind"] = "series"
        for index, landscape in enumerate(landscapes):
            group = file.create_group(f"{index:04d}")
            landscape.write_to(group)
            group.attrs.update(epoch=index, step=10 * index, logs="{}")


def _meshes(ax):
    from matplotlib.collections import QuadMesh

    return [artist for artist in ax.collections if isinstance(artist, QuadMesh)]


@same_on_every_backend
def test_plot_draws_the_kind_label_metric_and_scale_asked_for(tmp_path, capsys, saved_figures):
    from matplotlib.colors import LogNorm

    surface = _two_label_surface()
    surface.save(tmp_path / "surface.h5")
    out = tmp_path / "surface.png"
    assert run("plot", tmp_path / "surface.h5", "--kind", "heatmap", "--label", "test", "--metric", "accuracy",
               "--log", "--out", out) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    figure, options = saved_figures[-1]
    assert options == {"bbox_inches": "tight", "dpi": 150}
    ax = figure.axes[0]
    (mesh,) = _meshes(ax)
    assert ax.get_title() == "test accuracy" and isinstance(mesh.norm, LogNorm)
    np.testing.assert_allclose(np.sort(mesh.get_array().ravel()), np.sort(surface.metrics["test"]["accuracy"].ravel()))

    from matplotlib.contour import ContourSet

    for kind in (None, "contour", "contourf", "surface", "levels", "3d"):  # levels, 3d: plot_loss_3D's names
        assert run("plot", tmp_path / "surface.h5", *(["--kind", kind] if kind else []), "--out", out) == 0
        ax = saved_figures[-1][0].axes[0]
        assert (ax.name == "3d") == (kind in ("surface", "3d"))
        if kind not in ("surface", "3d"):
            assert _meshes(ax) == [] and any(isinstance(artist, ContourSet) for artist in ax.collections)
    for argv in (["--kind", "bogus", "--out", out], []):
        with pytest.raises(SystemExit):
            main(["plot", str(tmp_path / "surface.h5"), *map(str, argv)])
    assert "argument --kind: invalid choice: 'bogus'" in capsys.readouterr().err

    coords = np.linspace(-1.0, 1.0, 5)
    LossLine(coords, {"train": coords**2 + 1, "test": coords**2 + 2},
             {"train": {"accuracy": 1 - coords**2 / 2}, "test": {"accuracy": 0.8 - coords**2 / 2}}).save(
        tmp_path / "line.h5")
    assert run("plot", tmp_path / "line.h5", "--label", "test", "--metric", "accuracy", "--log",
               "--out", tmp_path / "line.png") == 0
    figure, options = saved_figures[-1]
    assert options == {"bbox_inches": "tight", "dpi": 150}
    (drawn,) = figure.axes[0].get_lines()
    assert drawn.get_label() == "test" and figure.axes[0].get_yscale() == "log"
    np.testing.assert_allclose(drawn.get_ydata(), 0.8 - coords**2 / 2)
    assert run("plot", tmp_path / "line.h5", "--out", tmp_path / "both.png") == 0
    figure, _ = saved_figures[-1]
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["train", "test"]
    assert figure.axes[0].get_yscale() == "linear"


@same_on_every_backend
def test_plot_draws_a_series_with_the_kind_label_and_metric_asked_for(tmp_path, capsys, saved_figures):
    from matplotlib.contour import ContourSet

    landscapes = [_two_label_surface(), _two_label_surface(shift=0.2)]
    _write_series(tmp_path / "series.h5", landscapes)
    out = tmp_path / "series.png"
    assert run("plot", tmp_path / "series.h5", "--kind", "heatmap", "--label", "test", "--metric", "accuracy",
               "--out", out) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    figure, options = saved_figures[-1]
    assert options == {"bbox_inches": "tight", "dpi": 150}
    drawn = [ax for ax in figure.axes if ax.get_title().startswith("epoch")]
    assert [ax.get_title() for ax in drawn] == ["epoch 0", "epoch 1"]
    for ax, landscape in zip(drawn, landscapes):
        (mesh,) = _meshes(ax)
        np.testing.assert_allclose(np.sort(mesh.get_array().ravel()),
                                   np.sort(landscape.metrics["test"]["accuracy"].ravel()))
    # `--kind surface` (the default for single surfaces' 3D view) draws a series as contours.
    assert run("plot", tmp_path / "series.h5", "--kind", "surface", "--out", tmp_path / "contours.png") == 0
    figure, _ = saved_figures[-1]
    drawn = [ax for ax in figure.axes if ax.get_title().startswith("epoch")]
    assert all(_meshes(ax) == [] and any(isinstance(a, ContourSet) for a in ax.collections) for ax in drawn)


@same_on_every_backend
def test_info_describes_each_landscape_of_a_series(tmp_path, capsys):
    _write_series(tmp_path / "series.h5", [_two_label_surface(), _two_label_surface(shift=0.2)])
    assert run("info", tmp_path / "series.h5") == 0
    description = "LossSurface(grid=(5, 5), labels=['train', 'test'], metrics=['loss', 'accuracy'])"
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'series.h5'}: a series of 2 landscapes",
        f"  epoch 0 (step 0): {description}, loss at the centre 1",
        f"  epoch 1 (step 10): {description}, loss at the centre 1.2",
    ]


@same_on_every_backend
def test_every_compute_option_reaches_the_python_function(saved, tmp_path, monkeypatch, capsys):
    folder, model, (x, y) = saved
    weights = np.linspace(0.5, 2.0, len(y)).astype("float32")
    np.savez(tmp_path / "weighted.npz", inputs=x, targets=y, w=weights)
    calls, original = record_calls(monkeypatch, "compute_line")
    out = tmp_path / "line.h5"
    assert run("line", folder / "model.keras", "--data", tmp_path / "weighted.npz", "--x-key", "inputs",
               "--y-key", "targets", "--sample-weight-key", "w", "--points", 5, "--batch-size", 7, "--samples", 50,
               "--no-regularization", "--chunk-size", 3, "--normalization", "none", "--seed", 2, "--out", out,
               "--quiet") == 0
    assert capsys.readouterr().out == ""
    assert run("line", folder / "model.keras", "--data", tmp_path / "weighted.npz", "--x-key", "inputs",
               "--y-key", "targets", "--points", 5, "--out", tmp_path / "default.h5") == 0
    printed = capsys.readouterr().out.splitlines()
    assert "5/5 points in" in printed[-2]  # progress, which --quiet silences
    assert printed[-1] == f"wrote {tmp_path / 'default.h5'}: {load_line(tmp_path / 'default.h5')}"
    options, defaults = calls
    assert {key: options[key] for key in ("seed", "normalization", "batch_size", "max_samples",
                                          "include_regularization", "chunk_size", "verbose")} == dict(
        seed=2, normalization=None, batch_size=7, max_samples=50, include_regularization=False, chunk_size=3, verbose=0)
    assert {key: defaults[key] for key in ("seed", "normalization", "include_regularization", "verbose")} == dict(
        seed=0, normalization="filter", include_regularization=True, verbose=1)
    expected = original(model, (x, y, weights), coords=np.linspace(-1, 1, 5), seed=2, normalization=None,
                        batch_size=7, max_samples=50, include_regularization=False, verbose=0)
    np.testing.assert_allclose(load_line(out).losses["train"], expected.losses["train"], rtol=1e-6)
    unweighted = original(model, (x, y), coords=np.linspace(-1, 1, 5), seed=2, normalization=None,
                          batch_size=7, max_samples=50, verbose=0)
    assert not np.allclose(unweighted.losses["train"], expected.losses["train"], rtol=1e-3)  # the weights matter


def test_the_smallest_accepted_numbers_run(saved, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import losslandscape.distributed

    folder, model, (x, y) = saved
    pools = []
    # Threads stand in for the worker processes: the command must hand its pool to `compute_line`.
    monkeypatch.setattr(losslandscape.distributed, "process_pool",
                        lambda workers: pools.append(ThreadPoolExecutor(workers)) or pools[-1])
    calls, original = record_calls(monkeypatch, "compute_line")
    out = tmp_path / "line.h5"
    assert run("line", folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs", "--y-key",
               "targets", "--points", 2, "--samples", 1, "--batch-size", 1, "--chunk-size", 1, "--workers", 1,
               "--out", out, "--quiet") == 0
    assert [options["executor"] for options in calls] == pools and len(pools) == 1
    expected = original(model, (x[:1], y[:1]), coords=[-1.0, 1.0], seed=0, verbose=0)
    np.testing.assert_allclose(load_line(out).losses["train"], expected.losses["train"], rtol=1e-6)


@same_on_every_backend
def test_a_command_is_required_and_the_outputs_have_default_names(saved, tmp_path, monkeypatch, capsys):
    folder, model, (x, y) = saved
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "the following arguments are required: command" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    for command, points in (("surface", 2), ("line", 3)):
        assert run(command, folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs",
                   "--y-key", "targets", "--points", points, "--quiet") == 0
    assert load_surface(tmp_path / "surface.h5").losses["train"].shape == (2, 2)
    assert load_line(tmp_path / "line.h5").losses["train"].shape == (3,)
    with pytest.raises(SystemExit):
        main(["line", str(folder / "model.keras")])
    assert "the following arguments are required: --data" in capsys.readouterr().err

    # Arrays named x and y, 21 points over [-1, 1], filter normalization (the Python function's defaults), seed 0.
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    assert run("line", folder / "model.keras", "--data", tmp_path / "xy.npz", "--out", "defaults.h5", "--quiet") == 0
    expected = compute_line(model, (x, y), seed=0, verbose=0)
    np.testing.assert_array_equal(load_line(tmp_path / "defaults.h5").coords, np.linspace(-1, 1, 21))
    np.testing.assert_allclose(load_line(tmp_path / "defaults.h5").losses["train"], expected.losses["train"], rtol=1e-6)
    for normalization in ("filter", "layer", "model"):
        out = f"{normalization}.h5"
        assert run("line", folder / "model.keras", "--data", tmp_path / "xy.npz", "--points", 2,
                   "--normalization", normalization, "--out", out, "--quiet") == 0
        expected = compute_line(model, (x, y), coords=[-1.0, 1.0], seed=0, normalization=normalization, verbose=0)
        np.testing.assert_allclose(load_line(tmp_path / out).losses["train"], expected.losses["train"], rtol=1e-6)
    with pytest.raises(SystemExit):
        main(["line", str(folder / "model.keras"), "--data", str(tmp_path / "xy.npz"), "--normalization", "unit"])
    assert "argument --normalization: invalid choice: 'unit'" in capsys.readouterr().err


@same_on_every_backend
def test_the_series_command_with_its_defaults_and_options(saved, tmp_path, monkeypatch, capsys):
    import shutil

    from losslandscape import load_series, random_directions

    folder, model, (x, y) = saved
    np.savez(tmp_path / "data.npz", x=x, y=y)
    shutil.copy(folder / "model.keras", tmp_path / "start.keras")
    shutil.copy(folder / "model.keras", tmp_path / "model_epoch_3.keras")
    monkeypatch.chdir(tmp_path)
    assert run("series", "start.keras", "model_epoch_3.keras", "--data", "data.npz", "--kind", "line",
               "--points", 3, "--samples", 50, "--seed", 4) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in printed] == [
        "start.keras: epoch 0", "model_epoch_3.keras: epoch 3", "wrote series.h5"]
    series = load_series(tmp_path / "series.h5")
    assert series.epochs == [0, 3]
    (seeded,) = random_directions(model, 1, seed=4)
    for line in series.landscapes:
        for stored, drawn in zip(line.direction, seeded):
            np.testing.assert_allclose(stored, drawn, rtol=1e-6, atol=1e-7)
        expected = compute_line(model, (x[:50], y[:50]), line.direction, coords=np.linspace(-1, 1, 3),
                                include_regularization=False, verbose=0)
        np.testing.assert_allclose(line.losses["train"], expected.losses["train"], rtol=1e-6)
    assert run("series", "start.keras", "--data", "data.npz", "--kind", "line", "--out", "defaults.h5") == 0
    (line,) = load_series(tmp_path / "defaults.h5").landscapes
    np.testing.assert_array_equal(line.coords, np.linspace(-1, 1, 21))
    for stored, drawn in zip(line.direction, random_directions(model, 1, seed=0)[0]):
        np.testing.assert_allclose(stored, drawn, rtol=1e-6, atol=1e-7)
    assert run("series", "start.keras", "--data", "data.npz", "--points", 2, "--out", "surfaces.h5") == 0
    (surface,) = load_series(tmp_path / "surfaces.h5").landscapes
    assert isinstance(surface, LossSurface) and surface.losses["train"].shape == (2, 2)
    with pytest.raises(SystemExit):
        main(["series", "start.keras"])
    assert "the following arguments are required: --data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["series", "start.keras", "--data", "data.npz", "--kind", "contour"])
    assert "argument --kind: invalid choice: 'contour'" in capsys.readouterr().err
    assert run("series", "missing.keras", "--data", "data.npz") == 2
    assert capsys.readouterr().err == "losslandscape series: error: no model file at 'missing.keras'\n"
    np.savez(tmp_path / "named.npz", inputs=x, targets=y)
    assert run("series", "start.keras", "--data", "named.npz", "--x-key", "inputs", "--y-key", "targets",
               "--kind", "surface", "--points", 2, "--out", "named.h5") == 0
    np.testing.assert_allclose(load_series(tmp_path / "named.h5").landscapes[0].losses["train"],
                               surface.losses["train"], rtol=1e-6)


@same_on_every_backend
def test_the_demo_command_passes_its_options_and_defaults(monkeypatch, capsys):
    import losslandscape.demo

    calls = []
    monkeypatch.setattr(losslandscape.demo, "run_demo", lambda out, **options: calls.append(dict(options, out=out)))
    assert main(["demo"]) == 0
    assert main(["demo", "--out", "elsewhere", "--points", "2", "--epochs", "1", "--seed", "5", "--quiet"]) == 0
    assert calls == [dict(out="losslandscape_demo", points=51, epochs=30, seed=0, verbose=1),
                     dict(out="elsewhere", points=2, epochs=1, seed=5, verbose=0)]
    assert main(["demo", "--epochs", "0"]) == 2
    assert capsys.readouterr().err == "losslandscape demo: error: --points must be >= 2 and --epochs >= 1\n"
    assert len(calls) == 2


@same_on_every_backend
def test_main_reads_the_command_line_when_given_no_arguments(tmp_path, monkeypatch, capsys):
    _two_label_surface().save(tmp_path / "surface.h5")
    monkeypatch.setattr(sys, "argv", ["losslandscape", "info", str(tmp_path / "surface.h5")])
    assert main() == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'surface.h5'}: LossSurface(grid=(5, 5)")


@same_on_every_backend
@pytest.mark.parametrize(
    "error, printed",
    [
        (KeyError("no dataset 'test' in the file"), "no dataset 'test' in the file"),  # not repr's quotes
        (OSError(28, "No space left on device"), "[Errno 28] No space left on device"),
        (ValueError("first line\nsecond line"), "first line"),
        (ValueError(), "ValueError"),
    ],
)
def test_an_error_is_one_line_naming_what_went_wrong(tmp_path, monkeypatch, capsys, error, printed):
    import losslandscape.cli as cli

    def failing(args):
        raise error

    monkeypatch.setattr(cli, "_info", failing)
    assert main(["info", str(tmp_path / "any.h5")]) == 2
    assert capsys.readouterr().err == f"losslandscape info: error: {printed}\n"


def test_a_file_that_cannot_be_resumed_is_refused_by_the_options_to_change(saved, tmp_path, capsys):
    folder, _, _ = saved
    out = tmp_path / "line.h5"
    argv = ["line", folder / "model.keras", "--data", folder / "train.npz", "--x-key", "inputs", "--y-key", "targets",
            "--points", "3", "--out", out, "--quiet"]
    assert run(*argv, "--seed", "1") == 0
    before = out.read_bytes()
    assert run(*argv, "--seed", "2", "--range", "-2", "2") == 2
    assert capsys.readouterr().err == (
        f"losslandscape line: error: --out {str(out)!r} holds a landscape computed with another --seed, "
        "--points or --range than this command, so its points cannot be reused: run the same command to resume, "
        "or pass another --out (or delete the file) to start over\n"
    )
    assert out.read_bytes() == before
