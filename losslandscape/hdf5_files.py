"""How the library's HDF5 files are written and read: atomically, sealed with a checksum, and refused in one line when damaged or hostile.

A file written here starts with a 512-byte user block (which HDF5 readers
skip) holding a BLAKE2b checksum of the rest of the file. Reading checks
the bytes against it before HDF5 parses them, so a changed byte anywhere,
in a value, an attribute or HDF5's own structures, is refused in one line
and never loaded or handed to a parser that could loop on it. Files
without a seal (the paper's reference code, earlier versions) are read as
they are. Needs h5py only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os

import h5py

SEAL_SIZE = 512  # HDF5 user blocks are powers of two from 512 bytes
SEAL_MAGIC = b"losslandscape sealed file\nblake2b-256 "
# What h5py and json raise on a file whose structure or settings are not what the library wrote.
_READ_ERRORS = (OSError, KeyError, RuntimeError, TypeError, IndexError, AttributeError, UnicodeDecodeError,
                json.JSONDecodeError)


def write_file_atomically(path, write) -> None:
    """Builds an HDF5 file in memory with `write(root)`, seals it, writes it next to `path`, then renames it over `path`.

    A reader, or a run killed mid-write (even by SIGKILL), only ever sees
    the old file or the new one, never a half-written one. A symbolic link
    at `path` stays a link: the file it points to is replaced. The file is
    built in memory and written with plain file I/O, so a failed write (a
    full disk) is one `OSError` and leaves HDF5 in a sound state.

    Examples:
        >>> write_file_atomically("/tmp/values.h5", lambda root: root.create_dataset("values", data=[1.0, 2.0]))
        >>> with opened_for_reading("/tmp/values.h5") as file:
        ...     file["values"][()]
        array([1., 2.])
    """
    path = os.fspath(path)
    image = io.BytesIO()
    with h5py.File(image, "w", userblock_size=SEAL_SIZE) as file:
        write(file)
    target = os.path.realpath(path)
    temporary = f"{target}.{os.getpid()}.tmp"
    try:
        body = image.getbuffer()[SEAL_SIZE:]  # a view: the file is not copied in memory to be sealed
        with open(temporary, "wb") as file:
            file.write(seal_of(body))
            file.write(body)
        os.replace(temporary, target)
    except OSError as error:
        raise OSError(f"Could not write {path!r} ({error.strerror or error}); the previous file is kept.") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def seal_of(body) -> bytes:
    """The `SEAL_SIZE` bytes that seal `body`, the rest of an HDF5 file made with a user block of that size.

    Examples:
        >>> seal_of(b"the rest of the file")[:26]
        b'losslandscape sealed file\\n'
    """
    return _seal(hashlib.blake2b(body, digest_size=32).hexdigest(), len(body))


def _seal(digest: str, size: int) -> bytes:
    return (SEAL_MAGIC + f"{digest} {size}\n".encode()).ljust(SEAL_SIZE, b"\0")


@contextlib.contextmanager
def opened_for_reading(path, what: str = "landscape"):
    """The HDF5 file at `path`, open for reading after its checks; any read error inside is one ValueError.

    Before HDF5 reads the file, a sealed file's bytes are checked against
    its seal. Then its links and datasets are checked to stay inside it
    (external links, external storage and virtual datasets are refused:
    they would read other files). An error of h5py or json while the file
    is read, here or in the caller's block, becomes one ValueError naming
    the file.

    Args:
        path: The file.
        what: What the file should hold, for the message when none is there.

    Raises:
        FileNotFoundError: If there is no file at `path`.
        ValueError: If it is not HDF5, is damaged, or reaches outside itself.

    Examples:
        >>> write_file_atomically("/tmp/values.h5", lambda root: root.attrs.update(kind="values"))
        >>> with opened_for_reading("/tmp/values.h5") as file:
        ...     file.attrs["kind"]
        'values'
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {what} file at {path!r}.")
    _check_seal(path)
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(
            f"{path!r} is not a readable HDF5 file (empty, truncated or of another format): {_first_line(error)}"
        ) from None
    with file:
        try:
            names: list[str] = []
            file.visit_links(names.append)  # every link, not followed (an error raised in the callback would be lost)
            for name in names:
                _check_inside(file, name, path)
            yield file
        except _READ_ERRORS as error:
            raise ValueError(f"{path!r} is damaged and cannot be read ({type(error).__name__}: "
                             f"{_first_line(error)}).") from None


def _check_seal(path: str) -> None:
    """Raises a ValueError if the file at `path` is sealed and its bytes differ from what the seal says."""
    with open(path, "rb") as file:
        block = file.read(SEAL_SIZE)
        if not block.startswith(SEAL_MAGIC):
            return  # not sealed: a file of another tool or an earlier version
        if len(block) < SEAL_SIZE:
            raise ValueError(f"{path!r} is truncated: it ends after {len(block)} bytes, inside its seal.")
        digest, size = hashlib.blake2b(digest_size=32), 0
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    saved_size = block[len(SEAL_MAGIC) :].split(b"\n")[0].split(b" ")[-1]
    if saved_size.isdigit() and int(saved_size) > size:
        raise ValueError(f"{path!r} is truncated: it holds {size} of the {int(saved_size)} bytes it was saved with.")
    if block != _seal(digest.hexdigest(), size):
        raise ValueError(f"{path!r} is damaged or was changed after it was saved: its bytes do not match its checksum.")


def _check_inside(file, name: str, path: str) -> None:
    """Raises a ValueError if the link `name` leads out of the file, or its dataset is stored elsewhere."""
    link = file.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        target = f"{link.filename!r}:{link.path}" if isinstance(link, h5py.ExternalLink) else link.path
        raise ValueError(
            f"{path!r} links /{name} to {target}: landscape files hold their data themselves, so it is refused."
        )
    item = file[name]
    if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
        raise ValueError(
            f"{path!r} stores /{name} in other files: landscape files hold their data themselves, so it is refused."
        )


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
