"""Saved files are sealed: a changed byte or a cut file is refused in one line, never loaded as other values,
and files that reach outside themselves are refused."""

import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from losslandscape import LossSurface, load_series, load_surface
from losslandscape.cli import main
from losslandscape.hdf5_files import SEAL_SIZE, opened_for_reading, write_file_atomically


def _surface():
    x, y = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 4)
    losses = {"train": x[:, None] ** 2 + y[None, :] ** 2 + 0.1}
    metrics = {"train": {"accuracy": np.full((5, 4), 0.75)}}
    directions = [[np.arange(6.0).reshape(2, 3), np.ones(3)], [np.full((2, 3), -1.0), np.zeros(3)]]
    computed = {"train": np.arange(20).reshape(5, 4) % 3 > 0}
    return LossSurface(x, y, losses, metrics, directions=directions, settings={"seed": 3, "normalization": "filter"},
                       computed=computed)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "surface.h5"
    _surface().save(path)
    return path.read_bytes(), load_surface(path)


def _same(loaded, original):
    assert loaded.labels == original.labels and loaded.settings == original.settings
    for name in ("xcoords", "ycoords"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    np.testing.assert_array_equal(loaded.losses["train"], original.losses["train"])
    np.testing.assert_array_equal(loaded.metrics["train"]["accuracy"], original.metrics["train"]["accuracy"])
    np.testing.assert_array_equal(loaded.computed["train"], original.computed["train"])
    for got, expected in zip(loaded.directions, original.directions):
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def _load_damaged(path, content, original):
    path.write_bytes(content)
    try:
        loaded = load_surface(path)
    except ValueError as error:
        assert len(str(error).splitlines()) == 1 and repr(str(path)) in str(error), str(error)
        return "refused"
    _same(loaded, original)
    return "loaded unchanged"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_one_changed_byte_is_refused_in_one_line_or_changes_nothing(saved, tmp_path, position, flip):
    content, original = saved
    damaged = bytearray(content)
    damaged[position % len(content)] ^= flip
    _load_damaged(tmp_path / "damaged.h5", bytes(damaged), original)


def test_every_byte_of_the_values_is_covered(saved, tmp_path):
    """Each byte that holds a loss value, changed, is refused (not loaded as another loss)."""
    content, original = saved
    value = original.losses["train"].T.astype("<f8").tobytes()  # the file's (y, x) order
    start = content.find(value)
    assert start > 0
    outcomes = set()
    for position in range(start, start + len(value)):
        damaged = bytearray(content)
        damaged[position] ^= 0x10
        outcomes.add(_load_damaged(tmp_path / "damaged.h5", bytes(damaged), original))
    assert outcomes == {"refused"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(length=st.integers(min_value=0))
def test_a_cut_file_is_refused_in_one_line(saved, tmp_path, length):
    content, original = saved
    assert _load_damaged(tmp_path / "cut.h5", content[: length % len(content)], original) == "refused"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_the_command_line_reads_a_damaged_file_in_one_line_with_exit_code_2(saved, tmp_path, capsys, position, flip):
    content, _ = saved
    damaged = bytearray(content)
    damaged[position % len(content)] ^= flip
    (tmp_path / "damaged.h5").write_bytes(bytes(damaged))
    code = main(["info", str(tmp_path / "damaged.h5")])
    error = capsys.readouterr().err
    assert code in (0, 2)
    assert (code == 0) == (error == "") and len(error.splitlines()) <= 1


def test_external_links_external_storage_and_virtual_datasets_are_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4.0).tobytes())
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file["values"] = np.arange(4.0)
    _surface().save(tmp_path / "surface.h5")
    cases = {
        "link": lambda file: file.__setitem__("train_loss", h5py.ExternalLink(str(tmp_path / "other.h5"), "/values")),
        "storage": lambda file: file.create_dataset("train_loss", shape=(4,), dtype="<f8",
                                                     external=[(str(secret), 0, 32)]),
        "virtual": lambda file: file.create_virtual_dataset(
            "train_loss", _virtual_layout(tmp_path / "other.h5")),
        "soft": lambda file: file.__setitem__("train_loss", h5py.SoftLink("/xcoordinates")),
    }
    messages = {
        "link": f"links /train_loss to {str(tmp_path / 'other.h5')!r}:/values: landscape files hold their data "
                "themselves, so it is refused.",
        "storage": "stores /train_loss in other files: landscape files hold their data themselves, so it is refused.",
        "virtual": "stores /train_loss in other files",
        "soft": "links /train_loss to /xcoordinates: landscape files hold their data themselves",
    }
    for name, add in cases.items():
        path = tmp_path / f"{name}.h5"
        path.write_bytes((tmp_path / "surface.h5").read_bytes())
        with h5py.File(path, "r+") as file:
            del file["train_loss"]
            add(file)
        path.write_bytes(bytes(SEAL_SIZE) + path.read_bytes()[SEAL_SIZE:])  # a crafted file, without a seal
        with pytest.raises(ValueError, match="^" + repr(str(path)).replace("(", r"\(").replace(")", r"\)")) as error:
            load_surface(path)
        assert messages[name] in str(error.value)
        assert main(["info", str(path)]) == 2


def _virtual_layout(source):
    layout = h5py.VirtualLayout(shape=(4,), dtype="<f8")
    layout[:] = h5py.VirtualSource(str(source), "values", shape=(4,))
    return layout


def test_a_file_changed_after_it_was_saved_is_refused_and_one_without_a_seal_is_read(tmp_path):
    path = tmp_path / "surface.h5"
    _surface().save(path)
    assert path.read_bytes()[:26] == b"losslandscape sealed file\n"
    with h5py.File(path, "r+") as file:
        file.attrs["note"] = "added by hand"
    with pytest.raises(ValueError, match="was changed after it was saved: its bytes do not match its checksum"):
        load_surface(path)
    path.write_bytes(bytes(SEAL_SIZE) + path.read_bytes()[SEAL_SIZE:])  # as a file of another tool: no seal
    _same(load_surface(path), _surface())


def test_a_damaged_series_is_refused_in_one_line(tmp_path):
    path = tmp_path / "series.h5"
    write_file_atomically(path, lambda root: (root.attrs.__setitem__("kind", "series"),
                                              _surface().write_to(root.create_group("0000")),
                                              root["0000"].attrs.update(epoch=0, step=0, logs="{}")))
    assert len(load_series(path).landscapes) == 1
    content = bytearray(path.read_bytes())
    value = _surface().losses["train"].T.astype("<f8").tobytes()
    content[content.find(value) + 3] ^= 1
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="is damaged or was changed after it was saved"):
        load_series(path)
    assert os.path.exists(path)


def test_read_errors_are_one_line_with_the_errors_first_line(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_bytes(b"not hdf5 at all")
    try:
        h5py.File(path, "r")
    except OSError as error:
        first = str(error).splitlines()[0]
    with pytest.raises(ValueError) as refused:
        load_surface(path)
    assert str(refused.value) == (f"{str(path)!r} is not a readable HDF5 file (empty, truncated or of another "
                                  f"format): {first}")
    _surface().save(path)
    for error, said in [(OSError("first line\nsecond line"), "OSError: first line"), (OSError(), "OSError: OSError"),
                        (KeyError("name"), "KeyError: 'name'")]:
        with pytest.raises(ValueError) as refused:
            with opened_for_reading(path):
                raise error
        assert str(refused.value) == f"{str(path)!r} is damaged and cannot be read ({said})."


def test_a_file_over_a_megabyte_is_checked_whole_and_its_seal_is_padded_with_zeros(tmp_path):
    path = tmp_path / "large.h5"
    values = np.random.default_rng(0).normal(size=(400, 400))  # 1.28 MB: the seal is checked in several reads
    write_file_atomically(path, lambda root: root.create_dataset("values", data=values))
    content = path.read_bytes()
    block = content[:SEAL_SIZE]
    assert block.rstrip(b"\0").endswith(f" {len(content) - SEAL_SIZE}\n".encode())
    assert set(block[block.index(b"\n", 26) + 1 :]) == {0}
    with opened_for_reading(path) as file:
        np.testing.assert_array_equal(file["values"][()], values)
    path.write_bytes(content[:-1])
    with pytest.raises(ValueError, match=f"is truncated: it holds {len(content) - SEAL_SIZE - 1} of the "
                                         f"{len(content) - SEAL_SIZE} bytes it was saved with"):
        opened_for_reading(path).__enter__()
