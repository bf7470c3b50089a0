import io

import pytest

from losslandscape import progress as progress_module
from losslandscape.progress import Progress


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    return clock


def test_the_time_left_leaves_out_the_call_that_compiled(clock):
    progress = Progress(100, stream=io.StringIO())
    clock.now = 60.0  # the first call: a minute of compiling, for 10 points
    progress.add(10, first_call=True)
    assert progress.seconds_left() is None
    clock.now = 69.0  # then 1 s per 10 points
    progress.add(90)
    assert progress.seconds_left() == 0.0
    progress = Progress(100, stream=io.StringIO())
    clock.now = 129.0
    progress.add(10, first_call=True)
    clock.now = 130.0
    progress.add(10)
    assert progress.seconds_left() == pytest.approx(8.0)  # 80 points left at 10 points per second, not 1.1 min


def test_a_log_file_gets_plain_lines_at_every_tenth(clock):
    out = io.StringIO()
    progress = Progress(40, stream=out)
    for index in range(40):
        clock.now += 0.5
        progress.add(1, first_call=index == 0)
    progress.close()
    text = out.getvalue()
    assert "\r" not in text and "\b" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 11 and lines[0].startswith("4/40 points [") and lines[-1] == "40/40 points in 20.0 s"
    assert "about 18.0 s left" in lines[0]


def test_a_terminal_gets_one_line_rewritten_in_place(clock):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    progress = Progress(3, stream=out, unit="eigenvector")
    for _ in range(3):
        clock.now += 1
        progress.add(1)
    progress.close()
    assert out.getvalue().count("\r") == 4 and "\b" not in out.getvalue()
    assert out.getvalue().rstrip().endswith("3/3 eigenvectors in 3.0 s")


def test_verbose_0_writes_nothing():
    out = io.StringIO()
    progress = Progress(5, verbose=0, stream=out)
    progress.add(5)
    progress.close()
    assert out.getvalue() == ""
