"""Action chunks on a timeline: past actions dropped, the next chunk computed ahead."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from robot_il.deploy import ActionBlend, ActionTimeline, ChunkPlanner

PERIOD = 0.05


def test_timeline_plays_each_action_in_its_own_period_and_drops_the_past() -> None:
    actions = np.arange(8, dtype=np.float32)[:, None]
    timeline = ActionTimeline(t_obs=10.0, period=PERIOD, actions=actions)
    assert timeline.end == pytest.approx(10.4)
    assert timeline.action_at(9.99) is None
    assert timeline.action_at(10.0)[0][0] == 0
    assert timeline.action_at(10.049)[0][0] == 0
    # Inference took 120 ms: actions 0 and 1 are in the past, action 2 is due.
    action, t_action = timeline.action_at(10.12)
    assert action[0] == 2 and t_action == pytest.approx(10.1)
    assert timeline.action_at(10.15)[0][0] == 3  # exactly on a boundary: the new period
    assert timeline.action_at(10.399)[0][0] == 7
    assert timeline.action_at(10.4) is None


def simulate(
    chunk: int,
    latency: float | Callable[[], float],
    seconds: float = 5.0,
    control_hz: float = 125.0,
):
    """Control ticks against a planner whose chunks arrive ``latency`` s after their grid
    time (or each after a draw of ``latency()``); returns the longest time any tick found the
    timeline ended, and how many chunks were computed."""
    draw = latency if callable(latency) else lambda: latency
    planner = ChunkPlanner(PERIOD, margin=0.005)
    timeline, pending, chunks, starved = None, None, 0, 0.0
    last_grid = None
    for tick in range(int(seconds * control_hz)):
        now = tick / control_hz
        if pending is not None and now >= pending[0]:
            timeline, pending = pending[1], None
        grid = planner.grid_time(now)
        if grid != last_grid:
            last_grid = grid
            if pending is None and planner.needs_chunk(timeline, grid):
                latency = draw()
                planner.record_latency(latency)
                actions = np.zeros((chunk, 7), np.float32)
                pending = (grid + latency, ActionTimeline(grid, PERIOD, actions))
                chunks += 1
        if timeline is not None and now >= timeline.end:
            starved = max(starved, now - timeline.end)
    return starved, chunks


def test_chunks_are_computed_ahead_so_the_stream_never_runs_dry() -> None:
    # Diffusion-like: chunks of 8 actions (400 ms), 120 ms inference.
    starved, chunks = simulate(chunk=8, latency=0.12)
    assert starved == 0.0
    # Ahead, but not wastefully: a chunk every 4 to 8 periods (not every period).
    assert 5.0 / (8 * PERIOD) <= chunks <= 5.0 / (4 * PERIOD)


def test_chunks_arriving_at_varying_times_are_asked_for_early_enough() -> None:
    """Arrivals as measured for Diffusion chunks beside a 500 Hz control loop on 2 cores
    (50-100 ms after their grid time: median 55 ms, p99 about 100): no chunk comes after the
    one before has run out, at a chunk every 5 to 7 periods. The worst recent arrival decaying
    by 5% per chunk asked two periods ahead once it had decayed below 95 ms, and the tail
    ran the timeline out in 2 of these 5 minutes, by 12 and 24 ms."""
    for seed in range(5):
        arrivals = iter(0.055 * np.random.default_rng(seed).lognormal(0.0, 0.25, 1000))
        starved, chunks = simulate(chunk=8, latency=arrivals.__next__, seconds=60.0)
        assert starved == 0.0, f"seed {seed}"
        assert 60.0 / (7 * PERIOD) <= chunks <= 60.0 / (5 * PERIOD)


def test_planner_cannot_hide_inference_slower_than_a_chunk() -> None:
    # A chunk of 2 actions (100 ms) with 150 ms inference must run dry: the test can fail.
    starved, _ = simulate(chunk=2, latency=0.15)
    assert starved > 0.0


def test_single_action_policies_infer_at_every_grid_time() -> None:
    _, chunks = simulate(chunk=1, latency=0.002, seconds=1.0)
    assert chunks == pytest.approx(1.0 / PERIOD, abs=1)


def test_lock_step_planner_executes_every_action_of_a_chunk() -> None:
    """Lock-step (the robot waits for inference, as robot-il eval's env does): a chunk of 4
    observed at t is replaced only once all 4 have run, at t + 4 periods, not a period early."""
    ahead, lock_step = ChunkPlanner(PERIOD), ChunkPlanner(PERIOD, lock_step=True)
    timeline = ActionTimeline(0.0, PERIOD, np.zeros((4, 7), np.float32))
    assert ahead.needs_chunk(timeline, 3 * PERIOD)  # ahead of time: replaces the 4th action
    assert not lock_step.needs_chunk(timeline, 3 * PERIOD)
    assert lock_step.needs_chunk(timeline, 4 * PERIOD)
    assert lock_step.needs_chunk(None, 0.0)


def test_blend_glides_joints_switches_grippers_and_turns_without_a_jump() -> None:
    """The first action is in force at once; the next one's joints are reached at the end
    of its period while its gripper switches at once; an action replacing it within the
    period (a new chunk) is glided to from where the target then is."""
    blend = ActionBlend()
    first = np.array([0.0] * 6 + [0.0])
    blend.set(first, now=0.0, until=PERIOD)
    np.testing.assert_array_equal(blend.at(0.01), first)
    second = np.array([1.0] * 6 + [1.0])
    blend.set(second, now=PERIOD, until=2 * PERIOD)
    np.testing.assert_allclose(blend.at(1.5 * PERIOD), [0.5] * 6 + [1.0])
    np.testing.assert_array_equal(blend.at(2 * PERIOD), second)
    replacement = np.array([2.0] * 6 + [0.0])  # halfway through the period
    blend.set(replacement, now=1.5 * PERIOD, until=2 * PERIOD)
    np.testing.assert_allclose(blend.at(1.5 * PERIOD)[:6], 0.5)  # where the glide had got
    np.testing.assert_allclose(blend.at(1.75 * PERIOD), [1.25] * 6 + [0.0])
    np.testing.assert_array_equal(blend.at(2 * PERIOD), replacement)


def test_committed_actions_are_those_the_old_chunk_executes_until_the_new_one_arrives() -> None:
    """Inference estimated at 120 ms (+5 ms margin) observed at t = 10.1 s: the new chunk
    arrives within the third period, so the old chunk's actions for 10.1, 10.15 and 10.2 s
    (whose period is under way then) are executed from it, as the new chunk's actions 0-2."""
    old = ActionTimeline(t_obs=10.0, period=PERIOD, actions=np.arange(8.0)[:, None])
    planner = ChunkPlanner(PERIOD, margin=0.005, initial_latency=0.12)
    np.testing.assert_array_equal(planner.committed(old, 10.1, limit=4)[:, 0], [2, 3, 4])
    assert len(planner.committed(old, 10.1, limit=2)) == 2  # at most the chunk's actions
    # Near the end of the old chunk: only the actions it still has.
    np.testing.assert_array_equal(planner.committed(old, 10.3, limit=4)[:, 0], [6, 7])
    assert planner.committed(None, 10.1, limit=4) is None  # the episode's first chunk
    lock_step = ChunkPlanner(PERIOD, initial_latency=0.12, lock_step=True)
    assert lock_step.committed(old, 10.1, limit=4) is None  # inference takes no robot time


def test_a_latency_of_whole_periods_starts_the_chunk_on_the_grid_time_it_is_due() -> None:
    """With a latency estimate of one period and no margin, a chunk of 4 observed at grid
    step s needs the next one at step s + 2 (it arrives at s + 3, before the end at s + 4),
    for every s: float rounding put some of those ends a hair past the grid time, and the
    next chunk started a period late and arrived after the old one had run out."""
    planner = ChunkPlanner(PERIOD, margin=0.0, initial_latency=PERIOD)
    for s in range(200):
        timeline = ActionTimeline(s * PERIOD, PERIOD, np.zeros((4, 1)))
        assert not planner.needs_chunk(timeline, (s + 1) * PERIOD)
        assert planner.needs_chunk(timeline, (s + 2) * PERIOD), f"step {s}"


@pytest.mark.parametrize("period", [0.05, 0.1, 0.01])
def test_grid_times_since_the_epoch_come_one_after_another(period: float) -> None:
    """A deployed node's times are seconds since the epoch (1.8e9 s, a float's step 2.4e-7 s
    there): every grid time is taken once, in order, and a timeline observed at one finds its
    action k at the k-th grid time after it. With a tolerance of 1e-9 periods one grid time in
    three came out as the one before, and real-time chunking committed a period-early action
    (an untrained Diffusion policy's chunks jumped 2 rad at those switches, over ROS 2)."""
    planner = ChunkPlanner(period)
    start = planner.grid_time(1796587920.0)
    grids = [planner.grid_time(start + k * period) for k in range(600)]
    steps = np.diff(grids) / period
    np.testing.assert_allclose(steps, 1.0, atol=1e-4)
    timeline = ActionTimeline(grids[7], period, np.arange(8, dtype=np.float64)[:, None])
    assert [timeline.index_at(t) for t in grids[7:15]] == list(range(8))
    planner.latency = 2.5 * period
    committed = planner.committed(timeline, grids[9], limit=8)
    assert committed[:, 0].tolist() == [2.0, 3.0, 4.0]


def test_a_clock_stepped_back_does_not_make_the_planner_ask_late() -> None:
    """A chunk's latency is the node's clock at its arrival less its grid time: a wall clock
    stepped back meanwhile (NTP) gives a negative sample, which must not bring the estimate
    below zero and have chunks asked for after the current one ran out."""
    planner = ChunkPlanner(PERIOD, margin=0.0)
    planner.record_latency(-0.4)
    assert planner.latency >= 0.0
    timeline = ActionTimeline(0.0, PERIOD, np.zeros((4, 1)))
    assert planner.needs_chunk(timeline, 3 * PERIOD)  # the last period: at the latest now
