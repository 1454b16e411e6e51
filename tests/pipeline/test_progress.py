"""Progress: throttled lines on a fake clock, the final line once, rate / ETA text, the callback."""

from __future__ import annotations

import logging
import threading

import pytest

from pipeline.progress import Progress, format_duration, log_progress

LOGGER = "tests.progress"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_lines_at_the_cadence_then_one_final_line(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock, calls = Clock(), []
    progress = Progress(
        100, "ingest 2026-01-31", every_s=30, logger=logging.getLogger(LOGGER),
        callback=lambda done, total: calls.append((done, total)), clock=clock, unit="url",
    )  # fmt: skip
    for _ in range(10):  # 10 items in 29 s: no line yet
        clock.now += 2.9
        progress.advance()
    assert _lines(caplog) == []
    clock.now += 1.0  # 30 s after the start: 11 done, 11/30 per second, 89 left
    progress.advance()
    assert _lines(caplog) == ["ingest 2026-01-31: 11/100 (11.0%), 0.37 url/s, ETA 00:04:03"]
    clock.now += 29.0  # under 30 s since the last line
    progress.advance(39)
    assert len(_lines(caplog)) == 1
    clock.now += 1.0  # 60 s: 51 done, 0.85/s, 49 left
    progress.advance()
    assert _lines(caplog)[-1] == "ingest 2026-01-31: 51/100 (51.0%), 0.85 url/s, ETA 00:00:58"
    clock.now += 60.0
    progress.advance(49)  # reaching the total logs the final line at once
    assert _lines(caplog)[-1] == "ingest 2026-01-31: done 100/100 (100.0%) in 00:02:00, 0.83 url/s"
    progress.finish()
    with progress:
        pass
    assert len(_lines(caplog)) == 3 and progress.finished
    assert calls[0] == (1, 100) and calls[-1] == (100, 100) and len(calls) == 14  # every change


def test_update_sets_the_count_and_a_short_run_still_ends_with_a_line(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    clock = Clock()
    log = logging.getLogger(LOGGER)
    with Progress(0, "pairs bicubic_x4", every_s=30, logger=log, clock=clock, level=logging.DEBUG) as p:
        clock.now += 4.0
        p.update(3, 10)  # the (done, total) callback form; the total arrives with it
        assert p.total == 10 and p.done == 3
    assert _lines(caplog) == ["pairs bicubic_x4: stopped at 3/10 (30.0%) in 00:00:04, 0.75/s"]
    assert caplog.records[-1].levelno == logging.DEBUG


def test_rate_counts_only_this_run_and_extra_text_is_appended(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock()
    progress = Progress(
        1000, "train", every_s=60, logger=logging.getLogger(LOGGER), clock=clock, unit="step",
        initial=400, extra=lambda: "loss 0.0123",
    )  # fmt: skip
    clock.now += 60.0
    progress.update(520)  # 120 steps in 60 s since the resume at 400
    assert _lines(caplog) == ["train: 520/1000 (52.0%), 2.00 step/s, ETA 00:04:00, loss 0.0123"]


def test_no_rate_yet_has_no_eta_and_zero_every_s_logs_every_change(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock()
    progress = Progress(5, "x", every_s=0, logger=logging.getLogger(LOGGER), clock=clock)
    progress.update(0)
    clock.now += 1.0
    progress.advance()
    assert _lines(caplog) == ["x: 0/5 (0.0%), 0.00/s, ETA --:--:--", "x: 1/5 (20.0%), 1.00/s, ETA 00:00:04"]
    with pytest.raises(ValueError, match="every_s=-1"):
        Progress(1, "x", every_s=-1)


def test_finish_at_total_false_leaves_the_final_line_to_finish(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock()
    progress = Progress(
        2, "t", every_s=60, logger=logging.getLogger(LOGGER), clock=clock, finish_at_total=False
    )
    clock.now += 10.0
    progress.update(2)
    assert _lines(caplog) == [] and not progress.finished
    clock.now += 10.0
    progress.finish()
    assert _lines(caplog) == ["t: done 2/2 (100.0%) in 00:00:20, 0.10/s"]


def test_log_progress_is_a_throttled_callback(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = Clock()
    callback = log_progress("dag ingest", logging.getLogger(LOGGER), every_s=10, clock=clock)
    for done in range(1, 21):
        clock.now += 1.0
        callback(done, 20)
    assert _lines(caplog) == [
        "dag ingest: 10/20 (50.0%), 1.00/s, ETA 00:00:10",
        "dag ingest: done 20/20 (100.0%) in 00:00:20, 1.00/s",
    ]


def test_threads_may_advance_one_reporter(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = Progress(8000, "threads", every_s=3600, logger=logging.getLogger(LOGGER))
    threads = [threading.Thread(target=lambda: [progress.advance() for _ in range(1000)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert progress.done == 8000 and progress.finished
    assert [m for m in _lines(caplog) if "done 8000/8000" in m] and len(_lines(caplog)) == 1


def test_format_duration():
    assert format_duration(0) == "00:00:00"
    assert format_duration(3725.4) == "01:02:05"
    assert format_duration(360000) == "100:00:00"
    assert format_duration(float("nan")) == format_duration(-5) == "00:00:00"
