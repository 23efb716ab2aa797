"""No scripted expert changes a gripper after standing still: a release or grasp timed by a
clock that no observation shows cannot be learnt from its demonstrations (the handover expert
once opened above the bin after a 4 s timeout at rest, and BC let go there by its training
seed). The measure and its tolerances are ``benchmarks/expert_success.py``'s, which prints the
longest standstill per task and backend over 100 seeds."""

from __future__ import annotations

import pytest
from robot_il.envs import TASKS, make_env, make_expert
from robot_il.envs.backends import BACKENDS

SEEDS = range(3)
NO_GRIPPER_CHANGE = ("reach", "push", "bimanual_cross")
"""Tasks whose experts never switch a gripper; every other expert must, or the check is void."""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task", TASKS)
def test_no_expert_changes_its_gripper_after_a_standstill(task, backend, load_benchmark):
    expert_success = load_benchmark("expert_success")
    env = make_env(task, backend)
    expert = make_expert(env)
    found = [
        standstill
        for seed in SEEDS
        for standstill in expert_success.standstills(env, expert_success.rollout(env, expert, seed))
    ]
    env.close()
    clocks = [str(s) for s in found if s.seconds > expert_success.HIDDEN_CLOCK]
    assert not clocks, f"{task} on {backend}, a hidden clock: " + "; ".join(clocks)
    assert bool(found) != (task in NO_GRIPPER_CHANGE), f"{task}: {len(found)} gripper changes"
