"""Replaying a recorded episode's actions in simulation: does the dataset still reproduce?

A recording in simulation stores, for every step, the observation and the action chosen from
it, and for every episode the env seed (and, for an expert's, the DART noise it executed).
Resetting the env to that seed and executing the recorded actions must then walk through the
recorded observations and end as the episode ended. Where it does not, the dataset no longer
matches this simulator (another MuJoCo or PyBullet version, another backend, edited task
code), a conversion changed the actions, or the episode was recorded in real time (teleop:
the operator's commands are sampled, not stepped in lock-step, so small drift is expected).
The replay measures by how much: the largest gap between recorded and replayed joints (or,
for a task-frame dataset without joints, its low-dimensional observations) and whether the
episode's outcome is the same, as robomimic's ``playback_dataset.py`` and LeRobot's
``replay`` let one check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_il.errors import DatasetError
from robot_il.record.demos import execution_noise


@dataclass(frozen=True)
class ReplayResult:
    """How one episode replayed: ``steps`` actions executed from env seed ``seed``;
    ``divergence`` is the largest absolute gap (rad for joints, else the key's units) between
    a recorded observation and the replayed one, in ``divergence_key`` at ``divergence_step``;
    ``recorded_success`` is None where the dataset kept no outcome."""

    episode: int
    seed: int
    steps: int
    recorded_success: bool | None
    replayed_success: bool
    divergence: float
    divergence_key: str
    divergence_step: int

    @property
    def reproduced(self) -> bool:
        """Whether the replay ended as the recording did (where the recording says)."""
        return self.recorded_success is None or self.recorded_success == self.replayed_success


def compared_keys(dataset: Any, obs: Mapping[str, Any]) -> list[str]:
    """The recorded observations a replay is held to: every arm's joints where the dataset
    has them (the state the actions drive), else the low-dimensional observations it shares
    with the env's ``obs`` (a task frame's positions and rotation columns)."""
    shared = [key for key in dataset.keys if key in obs and not dataset.specs[key].is_image]
    return [key for key in shared if key.endswith("joint_pos")] or shared


def episode_seed(dataset: Any, episode: int) -> int:
    """The env seed episode ``episode`` was recorded from; a :class:`DatasetError` naming the
    episode where the dataset kept none (a real cell's recording has no simulator seed)."""
    seed = dataset.meta(episode).get("seed") if "seed" in dataset.meta_names else None
    if seed is None:
        raise DatasetError(
            f"{dataset.where}: episode {episode} has no env seed (meta/seed): it was not "
            "recorded in simulation, and there is nothing to replay it in"
        )
    return int(seed)


def executed(
    env: Any, action: np.ndarray, perturb: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The action to step ``env`` with so that it executes recorded ``action`` as recorded:
    plus the episode's noise, drawn in the world (where the recording drew it), turned into
    the task frame for an env in one (``TaskFrameEnv.heading``)."""
    from robot_il.envs.task_frame import TaskFrameEnv, action_in_frame

    if not isinstance(env, TaskFrameEnv):
        return perturb(action)
    noise = perturb(np.zeros_like(action))
    return (action + action_in_frame(noise, env.heading)).astype(action.dtype)


def replay_episode(
    env: Any,
    dataset: Any,
    episode: int,
    *,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> ReplayResult:
    """Reset ``env`` to episode ``episode``'s seed and execute its recorded actions (with the
    DART noise it was recorded with: its meta's ``action_noise``, else the dataset's, as
    ``robot_il.train.demos`` records it); ``on_frame`` receives ``env.render()`` before every
    step and after the last. The env must not end the episode before the recorded actions
    run out (``terminate_on_success=False``, a time limit of at least the episode's length)."""
    seed = episode_seed(dataset, episode)
    meta = dataset.meta(episode)
    span = dataset.episode_slice(episode)
    actions = dataset.read("action", span.start, span.stop)
    obs, info = env.reset(seed=seed)
    keys = compared_keys(dataset, obs)
    if not keys:
        raise DatasetError(f"{dataset.where}: no recorded observation of the env's to compare")
    recorded = {key: dataset.read(key, span.start, span.stop) for key in keys}
    noise = meta.get("action_noise", dataset.attrs.get("action_noise"))  # per episode, or run
    perturb = execution_noise(seed, float(noise or 0.0), actions.shape[1:])
    success = bool(info.get("is_success", False))
    divergence, divergence_key, divergence_step = 0.0, keys[0], 0
    for step, action in enumerate(actions):
        for key in keys:
            gap = float(np.max(np.abs(np.asarray(obs[key], np.float64) - recorded[key][step])))
            if gap > divergence:
                divergence, divergence_key, divergence_step = gap, key, step
        if on_frame is not None:
            on_frame(env.render())
        obs, _reward, terminated, truncated, info = env.step(executed(env, action, perturb))
        success = success or bool(info.get("is_success", False))
        if (terminated or truncated) and step < len(actions) - 1:
            raise DatasetError(
                f"{dataset.where}: episode {episode}: the env ended the replay after "
                f"{step + 1} of {len(actions)} actions"
            )
    if on_frame is not None:
        on_frame(env.render())
    recorded_success = meta.get("success")
    return ReplayResult(
        episode=episode,
        seed=seed,
        steps=len(actions),
        recorded_success=None if recorded_success is None else bool(recorded_success),
        replayed_success=success,
        divergence=divergence,
        divergence_key=divergence_key,
        divergence_step=divergence_step,
    )
