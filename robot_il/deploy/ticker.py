"""A periodic loop's clock: absolute deadlines on a fixed grid, with bounded catch-up.

Why not ``sleep(period - elapsed)`` and start over from *now* after an overrun (how the deploy
loops once ticked): every tick that ends a little after its deadline then shifts all later
ticks, so a loaded machine loses a few per cent of a 500 Hz command stream for good (rate
0.971-0.989 of 500 Hz measured with ``benchmarks/deploy_latency.py``), although no single
pause lasted long. Here the deadlines stay on a fixed grid (``start + k * period``): a tick
that comes late is followed at once by the next one, until the loop is back on the grid; only
a stall longer than ``max_lag`` periods
skips the periods it lost (a robot wants the newest command, not a burst of stale ones).

Polling the clock for the last 0.2 ms before each deadline (so that the thread would hold
Python's interpreter lock when its tick is due) made no difference here (BC at 500 Hz, three
alternated runs each at load 18-21: longest gap 1.71-2.52 periods polling, 1.72-1.81 not;
jitter p99 0.72-0.85 ms both) and costs a real-time thread a tenth of a core, which counts
against the kernel's real-time budget: the wait only sleeps. Times are ``time.monotonic``
seconds.
"""

from __future__ import annotations

import math
import time

MAX_LAG = 5
"""Periods a loop may fall behind and still catch up by ticking at once; a longer stall
skips the periods it lost."""


class Ticker:
    """Deadlines every ``period`` s from the time it is made (or ``start``).

    ``skipped`` counts the periods dropped after stalls longer than ``max_lag`` periods and
    ``late`` the ticks that started after their deadline (caught up)."""

    def __init__(
        self,
        period: float,
        *,
        start: float | None = None,
        max_lag: int = MAX_LAG,
    ) -> None:
        if not period > 0:
            raise ValueError(f"ticker: period must be positive, got {period}")
        if max_lag < 1:
            raise ValueError(f"ticker: max_lag must be >= 1, got {max_lag}")
        self.period = period
        self.max_lag = max_lag
        self.deadline = time.monotonic() if start is None else start
        """The deadline of the tick in progress (s)."""
        self.skipped = 0
        self.late = 0

    def wait(self) -> float:
        """Block until the next tick's deadline (at once when it has passed) and return it."""
        self.deadline += self.period
        now = time.monotonic()
        behind = now - self.deadline
        if behind > self.max_lag * self.period:  # a long stall: drop the lost periods
            lost = math.floor(behind / self.period)
            self.skipped += lost
            self.deadline += lost * self.period
            # a loop that cannot keep up must not hog a core (real-time priority)
            time.sleep(0.1 * self.period)
        if now >= self.deadline:
            self.late += 1
            return self.deadline
        time.sleep(self.deadline - now)
        return self.deadline
