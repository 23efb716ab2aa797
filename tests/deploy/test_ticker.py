"""The deploy loop's clock (robot_il.deploy.ticker) on a simulated clock: deadlines stay on
their grid, a late tick is caught up instead of shifting every later one, and a long stall
skips whole periods."""

from __future__ import annotations

import pytest

from robot_il.deploy import ticker as ticker_module
from robot_il.deploy.ticker import Ticker

PERIOD = 0.002


class FakeClock:
    """``time.monotonic``/``time.sleep`` of the ticker module: sleeping advances the clock
    exactly."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(seconds, 0.0)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ticker_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(ticker_module.time, "sleep", fake.sleep)
    return fake


def test_on_time_ticks_sleep_to_their_deadlines(clock):
    ticker = Ticker(PERIOD, start=clock.t)
    start = ticker.deadline
    for k in range(1, 6):
        clock.t += 0.0003  # the tick's own work
        deadline = ticker.wait()
        assert deadline == pytest.approx(start + k * PERIOD)
        assert deadline <= clock.t < deadline + 1e-5  # woke at the deadline, not before
        assert clock.sleeps[-1] == pytest.approx(PERIOD - 0.0003, abs=1e-5)
    assert ticker.late == ticker.skipped == 0


def test_a_late_tick_is_caught_up_and_later_deadlines_keep_the_grid(clock):
    ticker = Ticker(PERIOD, start=clock.t)
    start = ticker.deadline
    ticker.wait()
    clock.t += 2.5 * PERIOD  # a stall: the tick of deadline 1 ends after deadline 3
    deadlines = [ticker.wait() for _ in range(4)]
    assert deadlines == pytest.approx([start + k * PERIOD for k in (2, 3, 4, 5)])
    assert ticker.late == 2  # deadlines 2 and 3 ran at once, 4 was waited for
    assert ticker.skipped == 0
    # over the stall the loop ticked as often as the grid: no period lost (the old loop
    # restarted from "now" after an overrun and lost the stall's periods for good)
    assert clock.t == pytest.approx(start + 5 * PERIOD, abs=1e-5)


def test_a_stall_longer_than_max_lag_skips_whole_periods_and_keeps_the_phase(clock):
    ticker = Ticker(PERIOD, start=clock.t, max_lag=5)
    start = ticker.deadline
    clock.t += 20.3 * PERIOD
    deadline = ticker.wait()
    lost = round((deadline - start) / PERIOD) - 1
    assert ticker.skipped == lost == 19
    assert (deadline - start) / PERIOD == pytest.approx(20)  # still on the grid
    assert deadline <= clock.t  # the newest deadline passed: ticks at once
    assert clock.sleeps == [pytest.approx(0.1 * PERIOD)]  # yields before catching up


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="period"):
        Ticker(0.0)
    with pytest.raises(ValueError, match="max_lag"):
        Ticker(PERIOD, max_lag=0)
