"""DeepMind Control Suite tasks behind the gymnasium API, for online imitation benchmarks.

``make_env("dmc:walker_walk")`` gives a ``DMCEnv``: the suite's task with its observations
flattened into one float32 vector under the key ``state`` (the suite's observation dict in
its own key order, scalars as one number), so it fits robot_il's dict-observation policies
and datasets. Actions are the suite's, already in [-1, 1] for every task offered here; a
finite action outside that box is clipped by MuJoCo's actuator limits, with no
``info["clipped"]`` flag (a UR5e ``RobotEnv`` sets one), and a NaN or inf is an
``ActionError``.

Episode ends follow gymnasium: the suite's time limit (1000 steps), or a shorter
``max_episode_steps``, ends an episode with ``truncated`` (its discount stays 1: the value
after it is not zero); a discount of 0 (a true terminal state, none of the three tasks has
one) ends it with ``terminated``. There is no success test in the suite: ``info`` carries no
``is_success``.

``reset(seed=s)`` reloads the task's random state with ``s``, so an episode's initial state
is a function of its seed; without a seed the task's own stream continues.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from robot_il.errors import ActionError, ConfigError
from robot_il.stop_signals import stops_deferred

PREFIX = "dmc:"
"""Task names with this prefix are DeepMind Control Suite tasks: ``dmc:<domain>_<task>``."""

DMC_TASKS: dict[str, tuple[str, str]] = {
    "dmc:walker_walk": ("walker", "walk"),
    "dmc:walker_stand": ("walker", "stand"),
    "dmc:cartpole_swingup": ("cartpole", "swingup"),
}
"""The suite tasks offered: robot_il name -> (suite domain, suite task)."""

STATE_KEY = "state"
"""The observation key of the flattened state vector."""


def is_dmc_task(task: str) -> bool:
    """Whether ``task`` names a DeepMind Control Suite task (known or not)."""
    return task.startswith(PREFIX)


class DMCEnv(gym.Env):
    """One suite task as a gymnasium env with a ``{"state": (D,)}`` observation.

    ``control_hz`` may only restate the suite's rate (a caller that passes every env its
    dataset's rate gets an error, not another rate); ``max_episode_steps`` shortens episodes,
    up to the suite's limit."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str,
        *,
        control_hz: float | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),
    ) -> None:
        if task not in DMC_TASKS:
            known = ", ".join(DMC_TASKS)
            raise ConfigError(f"unknown task {task!r}; DeepMind Control tasks: {known}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"unknown render_mode {render_mode!r}; only 'rgb_array'")
        with stops_deferred():  # MuJoCo's import, under it, turned a Ctrl-C into an error
            from dm_control import suite

        self.task_name = task
        self.backend_name = "dm_control"
        self.domain, self.suite_task = DMC_TASKS[task]
        self.render_mode = render_mode
        self.render_size = render_size
        self._env = suite.load(self.domain, self.suite_task, task_kwargs={"random": 0})
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(
            spec.minimum.astype(np.float32), spec.maximum.astype(np.float32), dtype=np.float32
        )
        size = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Dict(
            {STATE_KEY: gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)}
        )
        self.control_hz = 1.0 / float(self._env.control_timestep())
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        """Frames come one per control step: gymnasium's video wrappers film at this rate."""
        if control_hz is not None and not math.isclose(control_hz, self.control_hz):
            raise ConfigError(
                f"control_hz {control_hz}: {task} runs at the suite's {self.control_hz:g} Hz"
            )
        limit = int(self._env._step_limit)
        if max_episode_steps is not None and not 1 <= max_episode_steps <= limit:
            raise ConfigError(
                f"max_episode_steps {max_episode_steps}: {task} episodes last 1 to {limit} steps"
            )
        self.max_episode_steps = limit if max_episode_steps is None else max_episode_steps
        self._steps = 0
        self._started = False
        self._closed = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._check_open()
        super().reset(seed=seed)
        if seed is not None:
            self._env.task._random = np.random.RandomState(seed)
        step = self._env.reset()
        self._steps = 0
        self._started = True
        return self._observe(step.observation), {}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self._check_open()
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        array = np.asarray(action)
        if array.dtype.kind != "f" or array.shape != self.action_space.shape:
            raise ActionError(
                f"action for {self.task_name} has dtype {array.dtype} and shape {array.shape}; "
                f"expected a float array of shape {self.action_space.shape}"
            )
        if not np.isfinite(array).all():
            raise ActionError(f"action for {self.task_name} has NaN or inf")
        step = self._env.step(array.astype(np.float64))
        self._steps += 1
        terminated = bool(step.last() and step.discount == 0.0)
        truncated = not terminated and (step.last() or self._steps >= self.max_episode_steps)
        if terminated or truncated:
            self._started = False
        return self._observe(step.observation), float(step.reward), terminated, truncated, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        self._check_open()
        height, width = self.render_size
        return self._env.physics.render(height=height, width=width, camera_id=0)

    def close(self) -> None:
        """The env is unusable afterwards, as a UR5e env is (``envs.env``); again: nothing."""
        self._closed = True
        self._started = False

    def _check_open(self) -> None:
        if self._closed:
            raise gym.error.ClosedEnvironmentError(f"{self.task_name} is closed; make a new env")

    def state_columns(self, name: str) -> slice:
        """Where the suite's observation ``name`` (e.g. walker's ``"height"``, the torso's
        height in m) lies in the flat ``state`` vector."""
        start = 0
        for key, spec in self._env.observation_spec().items():
            size = int(np.prod(spec.shape))
            if key == name:
                return slice(start, start + size)
            start += size
        known = ", ".join(self._env.observation_spec())
        raise ConfigError(f"{self.task_name} has no observation {name!r}; it has {known}")

    def _observe(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        parts = [np.asarray(v, dtype=np.float32).reshape(-1) for v in observation.values()]
        return {STATE_KEY: np.concatenate(parts)}

    def spec_dict(self) -> dict[str, Any]:
        """What a policy trained here expects (the same fields as ``RobotEnv.spec_dict``)."""
        return {
            "robot": f"dmc_{self.domain}",
            "task": self.task_name,
            "backend": "dm_control",
            "arms": [],
            "control_hz": self.control_hz,
            "action_mode": "dmc",
            "action_dim": int(self.action_space.shape[0]),
            "observation": {
                key: {"shape": list(space.shape), "dtype": str(space.dtype)}
                for key, space in self.observation_space.spaces.items()
            },
            "cameras": [],
            "image_size": [],
            "max_episode_steps": self.max_episode_steps,
        }
