"""One writer per output file: the lock's refusal, its file, and what killed runs left behind."""

import fcntl
import os
import re

import pytest

from losslandscape.output_lock import OutputInUseError, _locked_descriptor, exclusive_output


def refusal(path, holder):
    return (f"Another process (pid {holder}) is computing into {os.path.realpath(path)!r}; wait for it to finish, "
            "or pass another path.")


def test_a_second_writer_is_refused_with_the_holders_pid_and_the_lock_goes_with_the_first(tmp_path):
    path = tmp_path / "surface.h5"
    lock = f"{path}.lock"
    with exclusive_output(path):
        assert open(lock).read() == str(os.getpid())
        assert os.stat(lock).st_mode & 0o777 == 0o644 & ~_umask()
        with pytest.raises(OutputInUseError, match=f"^{re.escape(refusal(path, os.getpid()))}$"):
            with exclusive_output(path):
                pass
        with open(lock, "wb") as file:
            file.write(b"\xff 12")  # not UTF-8
        with pytest.raises(OutputInUseError, match=re.escape(refusal(path, "\ufffd 12"))):
            with exclusive_output(path):
                pass
        open(lock, "wb").close()
        with pytest.raises(OutputInUseError, match=re.escape(refusal(path, "unknown"))):
            with exclusive_output(path):
                pass
    assert not os.path.exists(lock)
    with exclusive_output(path):  # free again
        pass


def test_a_lock_file_replaced_while_locking_is_locked_again(tmp_path):
    lock = str(tmp_path / "surface.h5.lock")
    replaced = []

    class Replacing:
        LOCK_EX, LOCK_NB = fcntl.LOCK_EX, fcntl.LOCK_NB

        @staticmethod
        def flock(descriptor, operation):
            if not replaced:  # the last holder removes the file and another run creates it between open and flock
                os.unlink(lock)
                open(lock, "w").close()
                replaced.append(True)
            fcntl.flock(descriptor, operation)

    descriptor = _locked_descriptor(lock, Replacing)
    try:
        assert os.fstat(descriptor).st_ino == os.stat(lock).st_ino
    finally:
        os.close(descriptor)


def test_only_the_temporaries_of_this_file_are_removed(tmp_path):
    path = tmp_path / "surface.h5"
    names = ["surface.h5.123.tmp", "surface.h5.9.tmp", "surface.h5.x.tmp", "surface.h5.12.tmp.keep",
             "other.h5.123.tmp", "surface.h5"]
    for name in names:
        (tmp_path / name).write_text("")
    with exclusive_output(path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
