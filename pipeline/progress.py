"""Report the progress of a long job: a log line at most every `every_s` seconds, a final line, a hook.

In: a total, a label, a cadence, a logger (and level), an optional `callback(done, total)` and a clock
(`time.monotonic`; tests inject a fake one). Out: log lines such as

    ingest 2026-01-31: 1200/5000 (24.0%), 40.0 url/s, ETA 00:01:35
    ingest 2026-01-31: done 5000/5000 (100.0%) in 00:02:05, 40.0 url/s

`Progress.advance(n)` counts items done, `Progress.update(done, total)` sets the count (it has the
`(done, total)` signature of the progress callbacks of `ingest_partition` and `build_pairs`, so a
reporter can be passed where they take one). The callback is called on every change (a CLI bar hooks in
there); the log line is throttled. The rate is the average since the start of this reporter (items done
before it, `initial`, do not count), so the ETA is remaining / rate. The final line comes from `finish()`
(or the `with` block's end, or the count reaching a positive total unless `finish_at_total=False`),
once. A lock guards the counters,
so worker threads may advance one reporter; asyncio tasks on one loop need nothing more.

`log_progress(label, logger)` is the callback form: a `(done, total)` function that logs through
`logger`, for a DAG task handing its own task logger to a library function.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

__all__ = ["Progress", "format_duration", "log_progress"]

ProgressCallback = Callable[[int, int], None]


def format_duration(seconds: float) -> str:
    """hh:mm:ss (hours may pass 99); negative or non-finite time is 00:00:00."""
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    whole = int(round(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _rate(per_s: float) -> str:
    return f"{per_s:.2f}" if per_s < 10 else f"{per_s:.1f}" if per_s < 100 else f"{per_s:.0f}"


class Progress:
    """Counts items and logs `label: done/total (pct), rate/s, ETA hh:mm:ss` at most every `every_s`."""

    def __init__(
        self,
        total: int,
        label: str,
        every_s: float = 30.0,
        logger: logging.Logger | None = None,
        callback: ProgressCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.INFO,
        unit: str = "",
        initial: int = 0,
        extra: Callable[[], str] | None = None,
        finish_at_total: bool = True,
    ) -> None:
        if every_s < 0:
            raise ValueError(f"every_s={every_s} must be >= 0")
        self.total = max(0, int(total))
        self.label = label
        self.every_s = float(every_s)
        self.logger = logger or logging.getLogger(__name__)
        self.callback = callback
        self.level = level
        self.unit = unit
        self.extra = extra  # more text for every line, e.g. the latest loss
        self.finish_at_total = finish_at_total  # False: only finish() writes the final line
        self._clock = clock
        self._lock = threading.Lock()
        self._initial = self._done = int(initial)
        self._started = self._last = clock()
        self._finished = False

    @property
    def done(self) -> int:
        return self._done

    @property
    def finished(self) -> bool:
        return self._finished

    def advance(self, n: int = 1) -> None:
        """`n` more items done."""
        with self._lock:
            self._done += n
        self._changed()

    def update(self, done: int, total: int | None = None) -> None:
        """Set the count (and the total, when it changed): the `(done, total)` callback form."""
        with self._lock:
            self._done = int(done)
            if total is not None:
                self.total = max(0, int(total))
        self._changed()

    def finish(self) -> None:
        """Log the final line (once); later calls do nothing."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            line = self._line(self._clock(), final=True)
        self.logger.log(self.level, "%s", line)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def _changed(self) -> None:
        line = None
        with self._lock:
            done, total = self._done, self.total
            if not self._finished:
                now = self._clock()
                if self.finish_at_total and total > 0 and done >= total:
                    self._finished = True
                    line = self._line(now, final=True)
                elif now - self._last >= self.every_s:
                    self._last = now
                    line = self._line(now, final=False)
        if line is not None:
            self.logger.log(self.level, "%s", line)
        if self.callback is not None:
            self.callback(done, total)

    def _line(self, now: float, final: bool) -> str:
        """The text of one line; the caller holds the lock."""
        elapsed = now - self._started
        done, total = self._done, self.total
        rate = (done - self._initial) / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * done / total if total else 100.0
        per_s = f"{_rate(rate)} {self.unit}/s" if self.unit else f"{_rate(rate)}/s"
        if final:
            state = "done" if done >= total else "stopped at"
            text = f"{self.label}: {state} {done}/{total} ({pct:.1f}%) in {format_duration(elapsed)}, {per_s}"
        else:
            eta = format_duration((total - done) / rate) if rate > 0 and total >= done else "--:--:--"
            text = f"{self.label}: {done}/{total} ({pct:.1f}%), {per_s}, ETA {eta}"
        if self.extra is not None:
            more = self.extra()
            if more:
                text = f"{text}, {more}"
        return text


def log_progress(
    label: str,
    logger: logging.Logger,
    every_s: float = 30.0,
    level: int = logging.INFO,
    unit: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> ProgressCallback:
    """A `(done, total)` callback that logs like `Progress` through `logger` (its clock starts now)."""
    reporter = Progress(0, label, every_s, logger, clock=clock, level=level, unit=unit)
    return reporter.update
