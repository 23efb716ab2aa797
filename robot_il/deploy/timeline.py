"""Action chunks executed on a timeline, when to compute the next one, and the glide between
actions.

A policy acting at ``policy_hz`` (the rate of its training data) returns a chunk of actions
for the observation taken at ``t_obs``: action ``i`` belongs to the time
``t_obs + i / policy_hz``. Inference takes time, so when a chunk arrives its first actions
already lie in the past; the timeline drops them and plays each later action during its own
period. The next chunk is computed *ahead*, early enough to arrive before the current one runs
out, so the command stream never pauses between chunks (the idea of real-time chunking in
deployed diffusion policies); the actions the current chunk still executes meanwhile
(:meth:`ChunkPlanner.committed`) can be given to a policy that conditions the next chunk on
them, so that it goes on from them. Between a policy's actions the robot's faster command stream
glides (:class:`ActionBlend`). All times are seconds on one clock (wall or ROS sim time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_GRID_TOLERANCE = 1e-3
"""Periods: a time counts as at a grid time (an action's start) this close before it. Real-time
times are seconds since the epoch (1.8e9 s, a float's step there 2.4e-7 s): a grid time
computed as ``k * period`` and read back was off by a few 1e-6 periods, and with a tolerance of
1e-9 one grid time in three came out as the one before (an observation taken twice, the next
skipped; a chunk's committed actions taken a period early)."""


@dataclass(frozen=True, eq=False)
class ActionTimeline:
    """Actions ``(k, A)`` for the times ``t_obs + i * period``, i = 0..k-1."""

    t_obs: float
    period: float
    actions: np.ndarray

    @property
    def end(self) -> float:
        """When the last action's period is over (s)."""
        return self.t_obs + len(self.actions) * self.period

    def index_at(self, t: float) -> int | None:
        """Index of the action due at ``t`` (s), or None before the first or after the last."""
        index = math.floor((t - self.t_obs) / self.period + _GRID_TOLERANCE)
        if index < 0 or index >= len(self.actions):
            return None
        return index

    def action_at(self, t: float) -> tuple[np.ndarray, float] | None:
        """The action due at ``t`` and the time it belongs to, or None outside the timeline."""
        index = self.index_at(t)
        if index is None:
            return None
        return self.actions[index], self.t_obs + index * self.period


class ChunkPlanner:
    """Decides when to observe and compute the next chunk.

    Observations are taken on the policy's grid (multiples of ``period``), as in training.
    At grid time ``t`` a new chunk is started when the current one would run out before the
    *next* grid time's chunk could arrive: ``end <= t + period + latency``, with ``latency``
    an estimate of how long after its grid time a chunk may arrive (s: inference, and what
    delays its start; :meth:`record_latency`) plus ``margin`` (s). A one-action
    policy (plain BC) thus infers at every grid time; a chunked one a few periods before its
    chunk ends.

    ``lock_step``: the robot is a simulator that waits for every command, so inference takes
    no robot time; the next chunk observes when the current one has run out, exactly as
    ``robot-il eval`` steps the env (a chunk of n actions executes all n).
    """

    def __init__(
        self,
        period: float,
        margin: float = 0.005,
        initial_latency: float = 0.0,
        lock_step: bool = False,
    ):
        if not period > 0:
            raise ValueError(f"policy period must be positive, got {period}")
        self.period = period
        self.margin = margin
        self.latency = initial_latency
        """How long after its grid time a chunk may arrive (s), what the plan allows for."""
        self.lock_step = lock_step
        self._mean_latency: float | None = None  # smoothed arrivals (s), None before the first
        self._latency_deviation = 0.0  # their smoothed mean deviation (s)

    def grid_time(self, t: float) -> float:
        """The latest grid time at or before ``t``."""
        return math.floor(t / self.period + _GRID_TOLERANCE) * self.period

    def needs_chunk(self, timeline: ActionTimeline | None, grid_t: float) -> bool:
        """Whether to start inference at grid time ``grid_t`` (s)."""
        if timeline is None:
            return True
        if self.lock_step:
            return timeline.end <= grid_t + _GRID_TOLERANCE * self.period
        # within rounding: grid times are multiples of a period, and a latency estimate of
        # whole periods lands on a chunk's end (0.25 == 0.05 * 5 is not in floats)
        return (
            timeline.end
            <= grid_t + self.period + self.latency + self.margin + _GRID_TOLERANCE * self.period
        )

    def committed(
        self, timeline: ActionTimeline | None, grid_t: float, limit: int
    ) -> np.ndarray | None:
        """The actions ``(c, A)`` of ``timeline`` that the robot executes from grid time
        ``grid_t`` (s) on while the chunk observed there is computed, as that chunk's actions
        0..c-1 would be: those due at ``grid_t + i * period`` for each period that begins
        before the chunk can arrive (``latency + margin`` after ``grid_t``; the period under
        way then too, whose action a new chunk would otherwise replace), at most ``limit``,
        and only while ``timeline`` lasts. None when there are none: no timeline, or
        ``lock_step`` (inference takes no robot time). What real-time chunking conditions the
        new chunk on (``Policy.predict_actions``'s ``committed``)."""
        if timeline is None or self.lock_step:
            return None
        count = min(limit, math.ceil((self.latency + self.margin) / self.period - _GRID_TOLERANCE))
        rows = []
        for i in range(count):
            index = timeline.index_at(grid_t + i * self.period)
            if index is None:
                break
            rows.append(timeline.actions[index])
        return np.stack(rows) if rows else None

    def record_latency(self, seconds: float) -> None:
        """Account for one chunk that arrived ``seconds`` after its grid time (its inference
        and whatever delayed its start). The estimate is the smoothed arrival time plus four
        smoothed deviations, as TCP's retransmission timeout (RFC 6298: gains 1/8 and 1/4, the
        first deviation half the first sample): it asks earlier when arrivals vary and no
        earlier when they are steady, and it is never below a sample just recorded above the
        mean. (The worst recent arrival decaying by 5% a chunk let the tail of Diffusion
        arrivals run the timeline out at 500 Hz: benchmarks/README.md, Deployment.) A clock
        stepped back (wall time under NTP, a restarted ``/clock``) gives a sample below zero,
        which says nothing of inference: it counts as zero."""
        seconds = max(seconds, 0.0)
        if self._mean_latency is None:
            self._mean_latency, self._latency_deviation = seconds, seconds / 2
        else:
            error = seconds - self._mean_latency
            self._latency_deviation += (abs(error) - self._latency_deviation) / 4
            self._mean_latency += error / 8
        self.latency = self._mean_latency + 4 * self._latency_deviation


class ActionBlend:
    """Joint targets gliding linearly to each new action, so that a policy acting at 20 Hz
    gives a smooth stream at the robot's rate (step targets would have the safety layer clip
    every step). Actions are 7 per arm: six joint positions (rad), which glide, and the
    gripper, which switches at once.

    Each glide starts from the target in force when the action comes (the previous action
    once its period is over) and reaches the action at the end of its period. A new chunk
    that arrives within a period replaces that period's action: the glide turns toward the
    new action from where the target is, with no jump (restarting from the old chunk's action
    for the period jumped by up to a period's worth of motion).
    """

    def __init__(self) -> None:
        self.action: np.ndarray | None = None
        """The action in force (its joints are reached at the end of its period)."""
        self._start: np.ndarray | None = None
        self._since = self._until = 0.0

    def set(self, action: np.ndarray, now: float, until: float) -> None:
        """Glide from the target at ``now`` (s) to ``action``, reached at ``until`` (s: the
        end of the action's period). The first action is in force at once."""
        self._start = None if self.action is None else self.at(now)
        self.action, self._since, self._until = action, now, until

    def at(self, now: float) -> np.ndarray:
        """The target at ``now`` (s); the action itself from ``until`` on."""
        if self._start is None or now >= self._until:
            return self.action
        fraction = max(now - self._since, 0.0) / (self._until - self._since)
        target = self._start + fraction * (self.action - self._start)
        target[6::7] = self.action[6::7]
        return target
