"""Progress a user can follow in a terminal and in a log file: counts, numbers, ETA, no
carriage returns when the output is not a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from fluxbridge.progress import Progress, configure_logging, format_seconds


class Clock:
    """A clock the test moves by hand [s]."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def info(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="fluxbridge")
    return caplog


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fluxbridge.progress"]


def test_lines_at_most_every_interval_and_at_the_end(info):
    clock = Clock()
    with Progress(10, "dual fold 1/3", unit="epoch", interval=5.0, clock=clock) as bar:
        for _ in range(10):
            clock.now += 2.0
            bar.update(1, {"site": 0.5, "regional": 1.25, "val": None})
    lines = _lines(info)
    # a line when 5 s have passed since the last one (after 6, 12, 18 s) and at the end
    assert [line.split(" | ")[0] for line in lines] == [
        f"dual fold 1/3: epoch {n}/10" for n in (3, 6, 9, 10)]
    assert "site 0.5  regional 1.25" in lines[0] and "val" not in lines[0]


def test_eta_is_the_mean_pace_times_what_is_left(info):
    clock = Clock()
    bar = Progress(6, "train", unit="epoch", interval=0.0, clock=clock)
    clock.now = 10.0
    bar.update(2)  # 5 s an epoch, 4 epochs left
    assert bar.eta() == pytest.approx(20.0)
    assert _lines(info)[-1].endswith(f"{format_seconds(10)}, ETA {format_seconds(20)}")


def test_a_resumed_loop_counts_its_pace_from_where_it_resumed(info):
    clock = Clock()
    bar = Progress(10, "train", initial=6, interval=0.0, clock=clock)
    clock.now = 3.0
    bar.update(1)
    assert bar.eta() == pytest.approx(9.0)  # 3 s for one epoch, 3 left


def test_a_loop_that_stops_early_says_so(info):
    clock = Clock()
    with Progress(30, "site_only", unit="epoch", interval=100.0, clock=clock) as bar:
        clock.now = 1.0
        bar.update(1)
    assert _lines(info) == ["site_only: epoch 1/30 | 1 s, ETA 29 s (stopped early)"]


def test_silent_when_disabled_or_quiet(caplog):
    caplog.set_level(logging.WARNING, logger="fluxbridge")
    with Progress(2, "quiet") as bar:
        bar.update(2)
    caplog.set_level(logging.INFO, logger="fluxbridge")
    with Progress(2, "off", enabled=False) as bar:
        bar.update(2)
    assert _lines(caplog) == []


def test_log_lines_to_a_file_have_a_time_and_no_carriage_return():
    stream = io.StringIO()  # not a terminal
    configure_logging(logging.INFO, stream)
    try:
        with Progress(3, "upscale dual", unit="chunk", interval=0.0) as bar:
            for _ in range(3):
                bar.update(1)
        logging.getLogger("fluxbridge.training").debug("estimate_var 0.1")
        logging.getLogger("fluxbridge.io").warning("odd file")
    finally:
        configure_logging(logging.WARNING)
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert [line[9:].split(" | ")[0] for line in lines[:3]] == [
        f"upscale dual: chunk {n}/3" for n in (1, 2, 3)]
    assert all(line[2] == ":" and line[5] == ":" for line in lines)  # HH:MM:SS first
    assert "estimate_var" not in text  # debug only
    assert lines[3].endswith("WARNING fluxbridge.io: odd file")


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4 s"), (65, "1 min 05 s"),
                                               (3720, "1 h 02 min")])
def test_durations_read_as_words(seconds, text):
    assert format_seconds(seconds) == text
