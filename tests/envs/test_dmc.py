"""DeepMind Control Suite tasks behind robot_il's gymnasium API (``make_env("dmc:...")``)."""

from __future__ import annotations

import numpy as np
import pytest
from robot_il.envs import DMC_TASKS, make_env
from robot_il.policies.spec import spec_from_env

from robot_il.errors import ActionError, ConfigError


@pytest.mark.parametrize(
    ("task", "state", "actions", "hz"),
    [("dmc:walker_walk", 24, 6, 40.0), ("dmc:walker_stand", 24, 6, 40.0),
     ("dmc:cartpole_swingup", 5, 1, 100.0)],
)  # fmt: skip
def test_spaces_and_spec(task: str, state: int, actions: int, hz: float) -> None:
    env = make_env(task)
    assert task in DMC_TASKS
    spec = spec_from_env(env)
    assert spec["observation"] == {"state": [state]} and spec["action_dim"] == actions
    assert spec["control_hz"] == hz and spec["task"] == task
    assert env.metadata["render_fps"] == hz  # gymnasium's video wrappers film at this rate
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    obs, _ = env.reset(seed=0)
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (state,)


def test_seeded_resets_repeat_and_the_time_limit_truncates() -> None:
    env = make_env("dmc:cartpole_swingup")
    first, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    again, _ = env.reset(seed=7)
    np.testing.assert_array_equal(first["state"], again["state"])
    assert not np.array_equal(first["state"], other["state"])
    rewards, steps = [], 0
    while True:
        _, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        rewards.append(reward)
        steps += 1
        if terminated or truncated:
            break
    assert steps == 1000 and truncated and not terminated and "is_success" not in info
    assert all(0.0 <= r <= 1.0 for r in rewards)
    with pytest.raises(Exception, match="reset"):
        env.step(np.zeros(1, np.float32))


def test_bad_actions_and_unknown_tasks_are_refused() -> None:
    env = make_env("dmc:walker_walk")
    env.reset(seed=0)
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(5, np.float32))
    with pytest.raises(ActionError, match="NaN"):
        env.step(np.full(6, np.nan, np.float32))
    with pytest.raises(ConfigError, match="unknown task 'dmc:cheetah_run'"):
        make_env("dmc:cheetah_run")


def test_state_columns_locate_a_suite_observation() -> None:
    env = make_env("dmc:walker_walk")
    obs, _ = env.reset(seed=3)
    walker = env.unwrapped
    height = walker.state_columns("height")
    assert height.stop - height.start == 1
    assert obs["state"][height][0] == pytest.approx(walker._env.physics.torso_height(), abs=1e-6)
    assert walker.state_columns("velocity").stop == 24
    with pytest.raises(ConfigError, match="no observation 'speed'; it has orientations"):
        walker.state_columns("speed")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "pybullet"}, "backend 'pybullet': dmc:cartpole_swingup runs on dm_control"),
        ({"control_hz": 7}, "control_hz 7: dmc:cartpole_swingup runs at the suite's 100 Hz"),
        ({"action_mode": "joint"}, "action_mode 'joint'"),
        ({"cameras": ("front",)}, "no camera observations"),
        ({"max_episode_steps": 0}, "max_episode_steps 0: .* 1 to 1000 steps"),
        ({"max_episode_steps": 1001}, "max_episode_steps 1001"),
        ({"render_camera": "front"}, "option 'render_camera' is for UR5e tasks"),
    ],
)
def test_options_the_suite_cannot_honour_are_refused(options: dict, message: str) -> None:
    """An option a DeepMind Control task cannot honour is an error, not silently dropped."""
    with pytest.raises(ConfigError, match=message):
        make_env("dmc:cartpole_swingup", **options)


def test_options_a_checkpoint_spec_restates_are_accepted_and_max_steps_truncates() -> None:
    """What ``make_eval_env`` and the online loop pass for a DMC checkpoint (its spec's
    backend, rate and action mode; ``--max-steps``; a video) builds the env, and a step limit
    below the suite's ends the episode there."""
    from robot_il.envs import make_expert

    from robot_il.train.evaluate import make_eval_env

    spec = spec_from_env(make_env("dmc:cartpole_swingup"))
    env = make_eval_env(spec, max_episode_steps=10, render=True)
    assert env.unwrapped.max_episode_steps == 10
    env.reset(seed=0)
    ends = [env.step(np.zeros(1, np.float32))[3] for _ in range(10)]
    assert ends == [False] * 9 + [True]
    assert env.render().shape == (240, 320, 3)
    same = make_env(
        "dmc:cartpole_swingup", "mujoco", control_hz=100.0, action_mode="dmc",
        terminate_on_success=False,
    )  # fmt: skip
    assert same.max_episode_steps == 1000
    with pytest.raises(ConfigError, match="no scripted expert for dmc:cartpole_swingup"):
        make_expert(same)


def test_a_closed_env_says_so_as_a_ur5e_env_does() -> None:
    """``close`` did nothing: reset and step went on working."""
    from gymnasium.error import ClosedEnvironmentError

    env = make_env("dmc:cartpole_swingup", "dm_control", render_mode="rgb_array")
    env.reset(seed=0)
    env.close()
    env.close()
    action = np.zeros(env.action_space.shape, np.float32)
    for call in (lambda: env.step(action), lambda: env.reset(seed=0), env.render):
        with pytest.raises(ClosedEnvironmentError, match="dmc:cartpole_swingup is closed"):
            call()
