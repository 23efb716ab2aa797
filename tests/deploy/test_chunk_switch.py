"""The real-time path's timing reproduced in an env: chunks overlap by the inference latency,
each switch is measured, and none finds the old chunk run out while inference is faster than a
chunk lasts."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.policies import load_policy
from robot_il.policies.untrained import untrained_reach_checkpoint

from robot_il.deploy.chunk_switch import rollout_with_latency
from robot_il.train.evaluate import make_eval_env, torch_seeded


@pytest.mark.parametrize("inpaint", [False, True])
def test_each_switch_of_overlapping_chunks_is_measured(tmp_path, inpaint) -> None:
    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=8, n_action_steps=4,
                                      down_dims=(8, 16))  # fmt: skip
    policy = load_policy(path)
    calls = []
    predict = policy.predict_actions

    def counted(history, committed=None):
        calls.append(None if committed is None else len(committed))
        return predict(history, committed)

    policy.predict_actions = counted
    env = make_eval_env(policy.spec, max_episode_steps=30)
    try:
        with torch_seeded(10_000):
            episode = rollout_with_latency(policy, env, 10_000, 1, inpaint)
    finally:
        env.close()
    assert episode.steps == 30 and episode.starved == 0
    # a chunk of 4 with a period of latency: the first waited for, then one every 2 steps
    assert len(calls) == 1 + len(episode.joint_gaps) == 15
    assert calls == [None] + [1 if inpaint else None] * 14
    for gap, joint in zip(episode.action_gaps, episode.joint_gaps, strict=True):
        assert joint == pytest.approx(gap[:6].max())  # joint actions: the targets themselves
    assert np.max(episode.joint_gaps) > 0
