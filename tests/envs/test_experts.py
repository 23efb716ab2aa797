"""Scripted experts succeed on at least 9 of 10 seeds per task and backend (the 100-seed
figures are in ``benchmarks/expert_success.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs import make_env, make_expert
from robot_il.envs.backends import BACKENDS

SEEDS = range(10)
CASES = [
    *[(task, backend) for task in ("reach", "push", "pick_place") for backend in BACKENDS],
    ("bimanual_handover", "mujoco"),
    pytest.param("bimanual_handover", "pybullet", marks=pytest.mark.slow),  # about 25 s
    ("bimanual_cross", "mujoco"),
    ("bimanual_cross", "pybullet"),
]


def successes(task: str, backend: str, seeds=SEEDS, **options) -> int:
    env = make_env(task, backend, **options)
    expert = make_expert(env)
    count = 0
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        expert.reset(obs)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            done = terminated or truncated
        assert terminated == info["is_success"]  # terminate_on_success is the default
        count += info["is_success"]
    env.close()
    return count


@pytest.mark.parametrize(("task", "backend"), CASES)
def test_expert_succeeds(task, backend):
    assert successes(task, backend) >= 9


@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("push", {"action_mode": "eef_delta"}),
        ("pick_place", {"action_mode": "eef_delta"}),
        ("pick_place", {"control_hz": 50}),
    ],
    ids=str,
)
def test_expert_in_other_modes_and_rates(task, options):
    assert successes(task, "mujoco", seeds=range(3), **options) == 3


def test_expert_misuse_is_named():
    """``act`` before ``reset(obs)`` failed inside numpy ('need at least one array to
    concatenate'), and an expert on a task-frame env with a KeyError on 'joint_pos'."""
    from gymnasium.error import ResetNeeded

    from robot_il.errors import ConfigError

    env = make_env("push", "mujoco", action_mode="eef_delta")
    obs, _ = env.reset(seed=0)
    with pytest.raises(ResetNeeded, match="reset\\(obs\\) on the push expert"):
        make_expert(env).act(obs)
    env.close()
    framed = make_env("push", "mujoco", action_mode="eef_delta", frame="push")
    with pytest.raises(ConfigError, match="'push' task frame.*robot-il data frame"):
        make_expert(framed)
    framed.close()


def test_handover_expert_opens_as_it_arrives_above_the_bin():
    """The right gripper opens as the arm arrives at its drop pose. Its drop pose lay 2 cm below
    the lowest TCP height the arm reaches sideways (its wrist rests on the table at 0.147 m), so
    the expert held the cube still above the bin for its waypoint's 4 s timeout and then let go:
    a release that no observation announces, which BC trained on these demonstrations made at
    the rest pose or never, by its training seed (0, 16 and 20 of 20)."""
    env = make_env("bimanual_handover", "mujoco", action_mode="eef_delta")
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(obs)
    positions, closed = [], []
    for _ in range(400):
        action = expert.act(obs)
        positions.append(obs["right_eef_pose"][:3])
        closed.append(action[13] > 0.5)
        obs, *_ = env.step(action)
    env.close()
    release = max(step for step, grip in enumerate(closed) if grip) + 1
    moves = np.linalg.norm(np.diff(positions[: release + 1], axis=0), axis=1)
    still = next(i for i, move in enumerate(moves[::-1]) if move > 1e-3)  # steps, 20 Hz
    assert still <= 5, f"the arm held the cube still for {still / 20:.2f} s before opening"
