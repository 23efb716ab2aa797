"""A periodic loop's clock: absolute deadlines, a short spin before each, bounded catch-up.

Why not ``sleep(period - elapsed)`` and start over from *now* after an overrun (how the deploy
loops once ticked): every tick that ends a little after its deadline then shifts all later
ticks, so a loaded machine loses a few per cent of a 500 Hz command stream for good (rate
0.971-0.989 of 500 Hz measured with ``benchmarks/deploy_latency.py``), although no single
pause lasted long. Here the deadlines stay on a fixed grid (``start + k * period``): a tick
that comes late is followed at once by the next one, until the loop is back on the grid, as
ros2_control's and the UR driver's loops do; only a stall longer than ``max_lag`` periods
skips the periods it lost (a robot wants the newest command, not a burst of stale ones).

The wait sleeps until ``spin`` s before the deadline and polls the clock for the rest: a
thread that wakes from a sleep must first win back Python's interpreter lock (up to the switch
interval, 0.2 ms in a deploy node, when another thread holds it), while a polling thread holds
it at the deadline. Times are ``time.monotonic`` seconds.
"""

from __future__ import annotations

import math
import time

SPIN = 0.0002
"""s before each deadline that the wait polls the clock instead of sleeping."""
MAX_LAG = 5
"""Periods a loop may fall behind and still catch up by ticking at once; a longer stall
skips the periods it lost."""


class Ticker:
    """Deadlines every ``period`` s from the first :meth:`wait` call's time (or ``start``).

    ``skipped`` counts the periods dropped after stalls longer than ``max_lag`` periods and
    ``late`` the ticks that started after their deadline (caught up)."""

    def __init__(
        self,
        period: float,
        *,
        start: float | None = None,
        spin: float = SPIN,
        max_lag: int = MAX_LAG,
    ) -> None:
        if not period > 0:
            raise ValueError(f"ticker: period must be positive, got {period}")
        if max_lag < 1 or spin < 0:
            raise ValueError(f"ticker: max_lag must be >= 1 and spin >= 0, got {max_lag}, {spin}")
        self.period = period
        self.spin = spin
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
        coarse = self.deadline - self.spin - now
        if coarse > 0:
            time.sleep(coarse)
        while time.monotonic() < self.deadline:
            pass
        return self.deadline
