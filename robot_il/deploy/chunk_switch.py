"""A chunked policy rolled out in an env with the real-time deploy path's timing, measuring
how far each new chunk's action lies from the old chunk's at the switch.

The deploy node (:mod:`robot_il.ros.policy_node`) computes the next chunk while the current
one runs: :class:`ChunkPlanner` decides when to observe, the chunk arrives after the inference
latency, and the old chunk's actions are executed until then. ``robot-il eval`` steps the env in
lock-step instead (inference takes no env time, chunks never overlap), so it never shows a
switch between two chunks that both plan the same period. :func:`rollout_with_latency`
reproduces the node's timing offline: the env steps once per policy period, and an inference
started at step ``s`` arrives at step ``s + latency_steps`` (the planner's latency estimate is
that many periods, its margin 0), the old chunk executing steps ``s .. s + latency_steps - 1``.
At each arrival it records the gap between the new chunk's action and the old chunk's action
planned for the same step. Unlike the node, which observes only between inferences (a latency
over one period skips grid times), the history here holds every period's observation, as in
training. The first chunk of an episode is waited for (the node publishes nothing before it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_il.deploy.eef_delta import TcpDeltaConverter
from robot_il.deploy.timeline import ActionTimeline, ChunkPlanner


@dataclass
class SwitchRollout:
    """One episode with overlapping chunks and the gaps at its chunk switches."""

    success: bool
    steps: int
    action_gaps: list[np.ndarray] = field(default_factory=list)
    """Per switch, ``|new - old|`` per action value (env units: rad for joint targets, m and
    rad for an eef_delta action's translation and rotation, gripper 0..1)."""
    starved: int = 0
    """Switches at which the old chunk had run out (the new one arrived at or after its end:
    inference as slow as the chunk's actions last); its last action stood, as the deploy node
    holds it, and is what the new action is compared with."""
    joint_gaps: list[float] = field(default_factory=list)
    """Per switch, the largest difference (rad) over the arms' joints between the joint
    targets of the two actions, both converted at the measured joints of the switch (as the
    deploy node converts an eef_delta action when it becomes due; joint actions as they are)."""


def rollout_with_latency(
    policy: Any,
    env: Any,
    seed: int,
    latency_steps: int,
    inpaint: bool,
) -> SwitchRollout:
    """Roll ``policy`` (``predict_actions``, ``reset``, ``config``, ``spec``) out for one
    episode of ``env`` from ``seed``, inference taking ``latency_steps`` (>= 1) policy periods;
    with ``inpaint``, each chunk is conditioned on the old chunk's actions executed meanwhile
    (:meth:`ChunkPlanner.committed`). Seed torch around it for repeatable samples."""
    if latency_steps < 1:
        raise ValueError(f"latency_steps must be >= 1, got {latency_steps}")
    if policy.spec.get("frame"):  # its chunks' actions would turn with each observation
        raise ValueError("rollout_with_latency takes world-frame policies")
    period = 1.0 / float(policy.spec["control_hz"])
    planner = ChunkPlanner(period, margin=0.0, initial_latency=latency_steps * period)
    unwrapped = env.unwrapped
    joint_mode = unwrapped.action_mode == "joint"
    converter = None if joint_mode else TcpDeltaConverter(unwrapped.arms)
    steps_kept = policy.config.n_obs_steps
    obs, info = env.reset(seed=seed)
    policy.reset()
    history: dict[str, deque[np.ndarray]] = {}
    result = SwitchRollout(success=bool(info.get("is_success", False)), steps=0)
    timeline: ActionTimeline | None = None
    pending: tuple[int, ActionTimeline] | None = None
    step = 0
    while True:
        t = step * period
        for key in policy.obs_keys:
            value = np.asarray(obs[key])
            if key not in history:  # edge-padded at the start, as the training windows
                history[key] = deque([value] * steps_kept, maxlen=steps_kept)
            else:
                history[key].append(value)
        if pending is not None and pending[0] <= step:
            new = pending[1]
            result.starved += timeline.action_at(t) is None
            old_action = _due(timeline, t)
            new_action = _due(new, t)
            result.action_gaps.append(np.abs(new_action - old_action))
            result.joint_gaps.append(
                _joint_gap(old_action, new_action, _joints(obs, unwrapped), converter)
            )
            timeline, pending = new, None
        if pending is None and planner.needs_chunk(timeline, t):
            committed = None
            if inpaint:
                committed = planner.committed(timeline, t, policy.config.n_action_steps)
            stacked = {key: np.stack(values) for key, values in history.items()}
            actions = policy.predict_actions(stacked, committed)
            chunk = ActionTimeline(t, period, actions)
            if timeline is None:
                timeline = chunk  # the first chunk is waited for
            else:
                pending = (step + latency_steps, chunk)
        obs, _, terminated, truncated, info = env.step(_due(timeline, t))
        step += 1
        result.success = result.success or bool(info.get("is_success", False))
        if terminated or truncated:
            result.steps = step
            return result


def _due(timeline: ActionTimeline, t: float) -> np.ndarray:
    """The action of ``timeline`` due at ``t`` (s); its last once it has run out, as the
    deploy node holds it."""
    due = timeline.action_at(t)
    return timeline.actions[-1] if due is None else due[0]


def _joints(obs: dict[str, np.ndarray], env: Any) -> np.ndarray:
    """The measured joints (6 per arm, rad) of an observation."""
    prefixes = env.key_prefixes
    return np.concatenate([np.asarray(obs[p + "joint_pos"], np.float64) for p in prefixes])


def _joint_gap(
    old: np.ndarray,
    new: np.ndarray,
    joint_pos: np.ndarray,
    converter: TcpDeltaConverter | None,
) -> float:
    """Largest joint difference (rad) between the joint targets of actions ``old`` and
    ``new`` applied at ``joint_pos``."""
    if converter is not None:
        old = converter.to_joint_action(old, joint_pos, None)[0]
        new = converter.to_joint_action(new, joint_pos, None)[0]
    arms = len(joint_pos) // 6
    joints = np.concatenate([np.arange(7 * a, 7 * a + 6) for a in range(arms)])
    return float(np.max(np.abs(np.asarray(new)[joints] - np.asarray(old)[joints])))
