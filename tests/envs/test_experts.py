"""Scripted experts succeed on at least 9 of 10 seeds per task and backend (the 100-seed
figures are in ``benchmarks/expert_success.py``)."""

from __future__ import annotations

import pytest
from robot_il.envs import make_env, make_expert

SEEDS = range(10)
FAST = [(task, backend) for task in ("reach", "push") for backend in ("mujoco", "pybullet")]
SLOW = [
    (task, backend)
    for task in ("pick_place", "bimanual_handover")
    for backend in ("mujoco", "pybullet")
]


def successes(task: str, backend: str) -> int:
    env = make_env(task, backend)
    expert = make_expert(env)
    count = 0
    for seed in SEEDS:
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


@pytest.mark.parametrize(("task", "backend"), FAST + SLOW)
def test_expert_succeeds(task, backend):
    assert successes(task, backend) >= 9
