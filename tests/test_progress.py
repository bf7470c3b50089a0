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


@pytest.mark.parametrize("seconds, shown", [
    (59.94, "59.9 s"), (60, "1 min 00 s"), (61, "1 min 01 s"), (119.6, "2 min 00 s"), (3599, "59 min 59 s"),
    (3600, "1 h 00 min"), (3660, "1 h 01 min"), (7322, "2 h 02 min"),
])
def test_durations_read_in_seconds_minutes_then_hours(seconds, shown):
    assert progress_module._duration(seconds) == shown


def test_each_line_shows_the_bar_the_time_since_the_start_and_the_time_left(clock):
    clock.now = 1000.0  # the clock does not start at 0
    out = io.StringIO()
    progress = Progress(10, stream=out)
    clock.now = 1002.0
    progress.add(1, first_call=True)
    clock.now = 1006.0
    progress.add(4)  # 4 points in 4 s after the call that compiled: 5 left, about 5 s
    assert out.getvalue().splitlines() == [
        "1/10 points [===...........................] 2.0 s",
        "5/10 points [===============...............] 6.0 s, about 5.0 s left",
    ]


def test_no_time_left_is_promised_before_a_call_that_did_not_compile_has_taken_time(clock):
    progress = Progress(10, stream=io.StringIO())
    clock.now = 5.0
    progress.add(2, first_call=True)
    assert progress.seconds_left() is None  # no counted points, though counted time has passed
    clock.now = 7.0
    assert progress.seconds_left() is None
    progress.add(1)
    assert progress.seconds_left() == pytest.approx(7 * 2.0)  # one counted point in 2 s
    assert progress.seconds_left(now=9.0) == pytest.approx(7 * 4.0)  # a given time, not the clock's
    progress = Progress(10, stream=io.StringIO())
    progress.add(3)  # at the very start: counted points, no counted time
    assert progress.seconds_left() is None


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_line_is_rewritten_exactly_and_closing_twice_writes_once(clock):
    clock.now = 1000.0
    out = _Terminal()
    progress = Progress(2, stream=out)
    clock.now = 1001.0
    progress.add(1, first_call=True)
    clock.now = 1002.0
    progress.add(1, first_call=True)  # two calls that compiled: both left out of the rate
    assert progress.seconds_left() is None
    progress.close()
    progress.close()
    assert out.getvalue() == ("\r1/2 points [===============...............] 1.0 s "
                              "\r2/2 points [==============================] 2.0 s "
                              "\r" + "2/2 points in 2.0 s".ljust(70) + "\n")


def test_what_counts_as_interactive_and_that_empty_work_shows_nothing(monkeypatch, clock):
    import sys

    class Plain:
        def __init__(self):
            self.text = ""

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    plain = Plain()  # no isatty at all: a log
    progress = Progress(1, stream=plain)
    progress.add(1)
    assert plain.text == "1/1 points [==============================] 0.0 s\n"
    assert not progress_module._is_interactive(io.StringIO())
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not progress_module._is_interactive(sys.stdout)
    monkeypatch.setitem(sys.modules, "ipykernel", object())  # in a notebook, its output streams rewrite lines
    assert progress_module._is_interactive(sys.stdout) and not progress_module._is_interactive(io.StringIO())
    out = io.StringIO()
    empty = Progress(0, stream=out)
    empty.close()
    assert out.getvalue() == ""


def test_every_call_that_compiled_is_left_out_of_the_rate(clock):
    progress = Progress(10, stream=io.StringIO())
    clock.now = 5.0
    progress.add(1, first_call=True)
    clock.now = 10.0
    progress.add(1, first_call=True)
    clock.now = 12.0
    progress.add(2)  # 2 points in the 2 s that count
    assert progress.seconds_left() == pytest.approx(6.0)


def test_a_log_line_at_each_tenth_where_the_total_is_not_a_multiple_of_ten(clock):
    out = io.StringIO()
    progress = Progress(15, stream=out)
    for _ in range(15):
        clock.now += 1.0
        progress.add(1)
    assert [int(line.split("/")[0]) for line in out.getvalue().splitlines()] == [2, 3, 5, 6, 8, 9, 11, 12, 14, 15]
