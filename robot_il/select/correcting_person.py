"""A simulated person who watches a deployed policy and takes over when it drifts.

Stands in for the supervising person of Li et al. (2023) in tests and benchmarks: while the
policy makes progress the person only watches; once it stops making progress (the task's
dense reward, a closeness to the goal in [0, 1], has not improved for ``patience`` steps) or
clearly moves away (the reward fell ``regress`` below its best), the person intervenes and
drives the robot with the scripted expert for the rest of the episode. Every step under the
person's control is recorded as a correction: the state the robot is in, which the policy
led it to, and the expert's action there (human-gated DAgger labels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_il.select.corrections import CorrectionsRecorder


@dataclass
class DriftMonitor:
    """Decides from the dense reward when a policy has drifted.

    ``patience``: control steps without an improvement of at least ``min_improvement`` in the
    best reward so far; ``regress``: a drop below the best reward that counts as moving away
    at once. Rewards are the task's closeness in [0, 1] (1 = at the goal).
    """

    patience: int = 10
    min_improvement: float = 0.01
    regress: float = 0.15

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.best = -np.inf
        self.stalled = 0

    def drifted(self, reward: float) -> bool:
        """Feed the reward after a policy step; true once the policy counts as drifting."""
        if reward >= self.best + self.min_improvement:
            self.best, self.stalled = reward, 0
            return False
        self.best = max(self.best, reward)
        self.stalled += 1
        return self.stalled >= self.patience or reward < self.best - self.regress


@dataclass
class CorrectedEpisode:
    """Outcome of one deployed episode under supervision.

    ``takeover_step`` is the control step at which the person took over (None: never);
    ``success`` is the episode's, whoever finished it; ``policy_success`` whether the policy
    succeeded on its own (before any takeover).
    """

    seed: int
    steps: int
    success: bool
    policy_success: bool
    takeover_step: int | None
    correction_steps: int


class SimulatedCorrectingPerson:
    """The scripted expert of ``env`` as a person who intervenes on drift (module docstring)."""

    def __init__(self, env: Any, monitor: DriftMonitor | None = None) -> None:
        from robot_il.envs import make_expert

        self.expert = make_expert(env)
        self.monitor = monitor or DriftMonitor()
        self.in_control = False

    def reset(self) -> None:
        """Start watching a new episode."""
        self.monitor.reset()
        self.in_control = False

    def watch(self, reward: float) -> bool:
        """After each policy step: whether the person takes over now."""
        if not self.in_control and self.monitor.drifted(reward):
            self.in_control = True
        return self.in_control

    def take_over(self, obs: Mapping[str, np.ndarray]) -> None:
        """Start steering from the current state (the expert plans from here)."""
        self.in_control = True
        self.expert.reset(dict(obs))

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The person's action (the env's action mode) at ``obs``."""
        return np.asarray(self.expert.act(dict(obs)), dtype=np.float32)


def run_supervised_episode(
    env: Any,
    policy: Any,
    person: SimulatedCorrectingPerson,
    recorder: CorrectionsRecorder | None,
    *,
    seed: int,
    meta: Mapping[str, Any] | None = None,
) -> CorrectedEpisode:
    """Deploy ``policy`` for one episode (env seed ``seed``) with ``person`` supervising.

    The policy acts until the person takes over; from then on the person acts and each
    (observation, action) is appended to a corrected segment of ``recorder`` (if given),
    committed when the episode ends with ``meta``, ``seed``, ``takeover_step`` and
    ``success``.
    """
    obs, info = env.reset(seed=seed)
    policy.reset()
    person.reset()
    steps, takeover, success = 0, None, bool(info.get("is_success", False))
    policy_success, reward = success, 0.0
    while True:
        if takeover is None and steps > 0 and person.watch(reward):
            takeover = steps
            person.take_over(obs)
            if recorder is not None:
                recorder.begin(**(meta or {}), seed=seed, takeover_step=takeover)
        if takeover is None:
            action = policy.act(obs)
        else:
            action = person.act(obs)
            if recorder is not None:
                recorder.append(obs, action)
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        success = success or bool(info.get("is_success", False))
        if takeover is None:
            policy_success = success
        if terminated or truncated:
            break
    correction_steps = 0 if takeover is None else steps - takeover
    if recorder is not None and recorder.in_segment:
        recorder.commit(success=success)
    return CorrectedEpisode(seed, steps, success, policy_success, takeover, correction_steps)


def record_expert_segments(
    env: Any, recorder: CorrectionsRecorder, seeds: list[int] | range
) -> int:
    """Record whole expert episodes (env seeds ``seeds``) as corrected segments; returns the
    steps recorded.

    The control of a fine-tuning experiment: the same update on data that holds no state the
    deployed policy led the robot into (re-recording the demonstration seeds gives exactly
    the demonstrations), so any gain over it is the corrections' doing, not the extra steps'.
    """
    from robot_il.envs import make_expert

    expert, total = make_expert(env), 0
    for seed in seeds:
        obs, _info = env.reset(seed=seed)
        expert.reset(obs)
        recorder.begin(seed=seed, takeover_step=0)
        while True:
            action = np.asarray(expert.act(obs), dtype=np.float32)
            recorder.append(obs, action)
            obs, _reward, terminated, truncated, info = env.step(action)
            total += 1
            if terminated or truncated:
                break
        recorder.commit(success=bool(info.get("is_success", False)))
    return total


def record_expert_corrections(
    path: Path, task: str, seeds: list[int] | range, *, fsync: bool = True, **env_kwargs: Any
) -> int:
    """Record ``record_expert_segments`` for ``seeds`` in a fresh ``task`` env (built with
    ``env_kwargs``) into the corrections dataset at ``path`` (created or appended to);
    returns the steps recorded."""
    from robot_il.envs import make_env
    from robot_il.policies.spec import spec_from_env

    env = make_env(task, **env_kwargs)
    try:
        with CorrectionsRecorder.open(path, spec_from_env(env), fsync=fsync) as recorder:
            return record_expert_segments(env, recorder, seeds)
    finally:
        env.close()
