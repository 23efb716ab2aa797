"""OPT-AIL's online loop on the UR5e push task in end-effector deltas, through
``robot-il train opt-ail``: the env comes from the dataset (task, backend, rate, action mode),
training episodes last as long as the demonstrations and end only by truncation, actions are
learned in [-1, 1], and the checkpoint evaluates on the task's own episodes with a success
rate and its 95% interval. A few env steps from one short demonstration: no learning claim
(the push benchmark, ``benchmarks/opt_ail.py --task ur5e:push``, makes that one)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROBOT_IL = str(Path(sys.executable).with_name("robot-il"))
DEMO_STEPS = 12
"""Length of the hand-recorded demonstration: far below push's own 200-step time limit."""
ENV_STEPS = 3 * DEMO_STEPS


@pytest.fixture(scope="module")
def push_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ``DEMO_STEPS`` steps of the scripted push expert in end-effector deltas,
    written with the attrs a recording carries (task, backend, action mode, env spec)."""
    from robot_il.envs import make_env, make_expert

    from robot_il.dataset import DatasetWriter
    from robot_il.record.demos import env_frame

    env = make_env("push", "mujoco", action_mode="eef_delta", max_episode_steps=DEMO_STEPS,
                   terminate_on_success=False)  # fmt: skip
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(obs)
    frames = []
    for _ in range(DEMO_STEPS):
        action = expert.act(obs)
        frames.append(env_frame(obs, action))
        obs, *_ = env.step(action)
    spec = env.unwrapped.spec_dict()
    env.close()
    path = tmp_path_factory.mktemp("push_demo") / "env.zarr"
    attrs = {"task": "push", "backend": "mujoco", "action_mode": "eef_delta", "env_spec": spec}
    with DatasetWriter.create(path, robot=spec["robot"], control_hz=spec["control_hz"],
                              attrs=attrs, fsync=False) as writer:  # fmt: skip
        writer.add_episode({key: np.stack([f[key] for f in frames]) for key in frames[0]})
    return path


@pytest.fixture(scope="module")
def push_run(push_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("push_run") / "run"
    subprocess.run(
        [ROBOT_IL, "train", "opt-ail", "--dataset", str(push_demo), "--out", str(out),
         "--env-steps", str(ENV_STEPS), "--no-progress", "--learning-starts", str(DEMO_STEPS),
         "--log-every", "6", "--eval.episodes", "2", "--eval.max-episode-steps", "5",
         "--policy.hidden-dims", "32", "32", "--policy.batch-size", "16",
         "--policy.optimism-states", "8"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return out


def test_training_episodes_are_the_demonstrations_length_and_only_truncated(
    push_run: Path,
) -> None:
    with open(push_run / "metrics.csv") as file:
        ends = [(int(r["step"]), int(r["episodes"])) for r in csv.DictReader(file)
                if r["episodes"]]  # fmt: skip
    # push's own time limit is 200 steps: an episode end every DEMO_STEPS is the dataset's
    assert ends == [(DEMO_STEPS * (i + 1), i + 1) for i in range(ENV_STEPS // DEMO_STEPS)]
    replay = np.load(push_run / "train_state" / "replay.npz")
    assert int(replay["size"]) == ENV_STEPS
    assert not replay["terminated"].any(), "a time limit is no terminal state"
    actions = replay["action"]
    assert np.abs(actions).max() <= 1.0 and actions.shape == (ENV_STEPS, 7)


def test_checkpoint_evaluates_on_the_tasks_own_episodes_with_a_success_interval(
    push_run: Path,
) -> None:
    from robot_il.policies import load_policy

    from robot_il.train.evaluate import evaluate, make_eval_env

    (evaluation,) = json.loads((push_run / "summary.json").read_text())["evaluations"]
    assert evaluation["step"] == ENV_STEPS and len(evaluation["returns"]) == 2
    assert 0.0 <= evaluation["eval_low"] <= evaluation["eval_success"] <= evaluation["eval_high"]
    assert evaluation["eval_high"] - evaluation["eval_low"] > 0.3  # two episodes: a wide interval

    policy = load_policy(push_run / "policy")
    assert (policy.spec["task"], policy.spec["action_mode"]) == ("push", "eef_delta")
    env = make_eval_env(policy.spec, max_episode_steps=4)
    try:
        assert env.unwrapped.terminate_on_success  # evaluation: the task's own episodes
        obs, _ = env.reset(seed=1)
        action = policy.act(obs)
        box = env.action_space
        assert np.all(action >= box.low) and np.all(action <= box.high)  # metres, radians
        assert np.abs(action[:3]).max() <= 0.05 + 1e-6
        result = evaluate(policy, env, episodes=1, seed=10_000)
    finally:
        env.close()
    assert result.lengths == [4] and result.successes == [False]
