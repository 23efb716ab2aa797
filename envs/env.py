"""``RobotEnv``: one task on one physics backend, behind the gymnasium API.

Physics and the joint servos run at ``PHYSICS_HZ`` (500 Hz, like the UR5e controllers); the
policy acts at ``control_hz`` and each action holds for ``PHYSICS_HZ / control_hz`` physics
steps. Both backends give the same spaces, observations and success test.

Actions (float32), per arm, arms concatenated in mount order (``left`` then ``right``):

- ``"joint"``: 6 absolute joint position targets (rad) + gripper in [0, 1] (1 = closed).
- ``"eef_delta"``: TCP translation (3, m, world frame) + rotation (3, axis-angle rad, world
  frame) relative to the TCP's *measured* pose, + gripper; turned into joint targets by IK.
  A pose out of reach keeps the arm's previous joint targets and sets ``info["ik_failed"]``.

An episode's end (``terminated`` or ``truncated``) does not stop the physics: a further
``step`` goes on from the state reached and reports ``truncated`` again (the ROS simulator,
``robot_il.ros.sim_robot``, runs one endless episode this way); ``reset`` starts the next
episode. After ``close`` the engine is gone on both backends: ``reset``, ``step`` and ``render``
raise gymnasium's ``ClosedEnvironmentError``, and ``close`` again does nothing.

Bad actions never reach the backend. An action of the wrong shape, a non-float dtype, or a
NaN / inf raises ``robot_il.errors.ActionError``. A finite action outside the action space's
box (joint limits, gripper range, eef_delta step bounds) is clipped to the box, documented
here and reported as ``info["clipped"] = True`` for that step.

``step`` runs at every control step of every rollout, and its own work must stay small next
to the physics it drives (``benchmarks/sim_speed.py``): it reads each arm with one backend
call, and an arm's four observation arrays are views of one float32 array.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ClosedEnvironmentError, ResetNeeded
from robot_il.envs.backends import BACKENDS, make_backend
from robot_il.envs.backends.base import (
    ARM_STATE_EEF_POSE,
    ARM_STATE_GRIPPER,
    ARM_STATE_JOINT_POS,
    ARM_STATE_JOINT_VEL,
    PHYSICS_HZ,
)
from robot_il.envs.tasks.base import ARM_KEYS, Task, scene_cameras
from robot_il.envs.tasks.registry import qualified
from robot_il.envs.ur5e.description import ROBOT_NAME

from robot_il.errors import ActionError, ConfigError

ACTION_MODES = ("joint", "eef_delta")

MAX_STEP_TRANSLATION = 0.05
"""Bound (m) of each eef_delta translation component per control step."""
MAX_STEP_ROTATION = 0.25
"""Bound (rad) of each eef_delta rotation component per control step."""

GRIPPER = ARM_STATE_GRIPPER.start
"""Index of the gripper closure in ``SimBackend.arm_state``."""

RENDER_CAMERA = "render"
"""Scene name of the extra camera ``render()`` films (a copy of a task camera at video size)."""


class RobotEnv(gym.Env):
    """A gymnasium env over a ``Task`` and a ``SimBackend`` (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: Task,
        backend: str = "mujoco",
        *,
        control_hz: float = 20.0,
        action_mode: str = "joint",
        cameras: tuple[str, ...] = (),
        image_size: tuple[int, int] = (96, 96),
        max_episode_steps: int | None = None,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
        render_camera: str = "front",
        render_size: tuple[int, int] = (240, 320),
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")
        if action_mode not in ACTION_MODES:
            raise ConfigError(
                f"unknown action_mode {action_mode!r}; modes: {', '.join(ACTION_MODES)}"
            )
        substeps = PHYSICS_HZ / control_hz if control_hz > 0 else 0.0
        if substeps < 1 or abs(substeps - round(substeps)) > 1e-9:
            raise ConfigError(
                f"control_hz {control_hz} must divide the physics rate {PHYSICS_HZ} Hz"
            )
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"unknown render_mode {render_mode!r}; only 'rgb_array'")
        if max_episode_steps is not None and (
            not isinstance(max_episode_steps, int | np.integer) or max_episode_steps < 1
        ):
            raise ConfigError(
                "max_episode_steps must be at least 1, a whole number of steps; got "
                f"{max_episode_steps!r}"
            )
        self.task = task
        self.backend_name = backend
        self.control_hz = float(control_hz)
        self.substeps = int(round(substeps))
        self.action_mode = action_mode
        self.cameras = tuple(cameras)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        """Frames come one per control step: gymnasium's video wrappers film at this rate."""
        self.max_episode_steps = (
            max_episode_steps
            if max_episode_steps is not None
            else int(round(task.episode_seconds * self.control_hz))
        )
        self.arms = task.arms
        self.key_prefixes = [f"{arm.name}_" if arm.name else "" for arm in self.arms]
        """Observation key prefix per arm: ``""`` for one arm, ``"left_"``/``"right_"``."""

        scene_cams = scene_cameras(task, self.cameras, self.image_size)
        # checked without a render_mode too, so that a misspelt camera is not ignored
        (film,) = scene_cameras(task, (render_camera,), render_size)
        if render_mode == "rgb_array":
            scene_cams = (*scene_cams, replace(film, name=RENDER_CAMERA))
        self.backend = make_backend(backend, task.scene(scene_cams))

        self.action_space = self._make_action_space()
        self.observation_space = self._make_observation_space()
        self._action_low = self.action_space.low.astype(np.float64)
        self._action_high = self.action_space.high.astype(np.float64)
        self._arm_slots = [  # per arm: name, where its 7 action numbers sit, observation keys
            (
                arm.name,
                slice(7 * index, 7 * index + 6),
                7 * index + 6,
                tuple(prefix + key for key in ARM_KEYS),
            )
            for index, (arm, prefix) in enumerate(zip(self.arms, self.key_prefixes, strict=True))
        ]
        self._targets: list[np.ndarray] | None = None
        self._steps = 0
        self._closed = False

    # -- spaces --------------------------------------------------------------------------

    def _make_action_space(self) -> gym.spaces.Box:
        if self.action_mode == "joint":
            low = [np.append(arm.joint_lower, 0.0) for arm in self.arms]
            high = [np.append(arm.joint_upper, 1.0) for arm in self.arms]
        else:
            bound = [MAX_STEP_TRANSLATION] * 3 + [MAX_STEP_ROTATION] * 3
            low = [np.array([-b for b in bound] + [0.0]) for _ in self.arms]
            high = [np.array([*bound, 1.0]) for _ in self.arms]
        return gym.spaces.Box(
            np.concatenate(low).astype(np.float32),
            np.concatenate(high).astype(np.float32),
            dtype=np.float32,
        )

    def _make_observation_space(self) -> gym.spaces.Dict:
        spaces: dict[str, gym.spaces.Space] = {}
        inf = np.inf
        for prefix in self.key_prefixes:
            # Measured joints may overshoot a target at a joint limit, so no bounds here.
            spaces[prefix + "joint_pos"] = gym.spaces.Box(-inf, inf, (6,), np.float32)
            spaces[prefix + "joint_vel"] = gym.spaces.Box(-inf, inf, (6,), np.float32)
            spaces[prefix + "gripper"] = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
            spaces[prefix + "eef_pose"] = gym.spaces.Box(-inf, inf, (7,), np.float32)
        for key, shape in self.task.task_keys.items():
            spaces[key] = gym.spaces.Box(-inf, inf, shape, np.float32)
        height, width = self.image_size
        for camera in self.cameras:
            spaces[f"rgb_{camera}"] = gym.spaces.Box(0, 255, (height, width, 3), np.uint8)
        return gym.spaces.Dict(spaces)

    # -- gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Draw an initial state from the env's RNG (re-seeded by ``seed``) and put it in."""
        self._check_open()
        super().reset(seed=seed)
        state = self.task.sample(self.np_random)
        self.backend.reset(state.joint_pos, state.gripper, state.object_poses)
        for name, position in self.task.markers().items():
            self.backend.set_marker(name, position)
        self._targets = [
            np.asarray(state.joint_pos[arm.name], dtype=np.float64) for arm in self.arms
        ]
        self._steps = 0
        obs = self._observe()
        self._check_task_observation(obs)
        _, success = self.task.evaluate(obs)
        return obs, {"is_success": success}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Validate ``action`` (see the module docstring), hold it for one control period."""
        if self._targets is None:
            self._check_open()
            raise ResetNeeded("call reset() before step()")
        bounded, clipped = self._validate(action)
        ik_failed = False
        targets, backend = self._targets, self.backend
        for index, (name, joints, gripper, _) in enumerate(self._arm_slots):
            if self.action_mode == "joint":
                targets[index] = bounded[joints]
            else:
                part = bounded[joints]
                solution = self._solve_delta(index, part[:3], part[3:6])
                if solution is None:
                    ik_failed = True
                else:
                    targets[index] = solution
            backend.set_joint_targets(name, targets[index], float(bounded[gripper]))
        backend.step(self.substeps)
        self._steps += 1
        obs = self._observe()
        reward, success = self.task.evaluate(obs)
        terminated = bool(success and self.terminate_on_success)
        truncated = self._steps >= self.max_episode_steps
        info = {"is_success": success, "clipped": clipped}
        if self.action_mode == "eef_delta":
            info["ik_failed"] = ik_failed
        return obs, float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """RGB frame (H, W, 3) uint8 of the render camera, when ``render_mode='rgb_array'``."""
        if self.render_mode != "rgb_array":
            return None
        self._check_open()
        return self.backend.render(RENDER_CAMERA)

    def close(self) -> None:
        """Free the engine; the env is unusable afterwards (see the module docstring)."""
        if not self._closed:
            self.backend.close()
            self._closed = True
            self._targets = None  # step() then asks _check_open, at no cost to open steps

    # -- helpers -------------------------------------------------------------------------

    def _check_open(self) -> None:
        """MuJoCo would go on stepping a closed env and PyBullet fail with its own error: both
        say the same here."""
        if self._closed:
            raise ClosedEnvironmentError(
                f"{self.task.name} on {self.backend_name} is closed; make a new env"
            )

    def _validate(self, action: Any) -> tuple[np.ndarray, bool]:
        """``action`` clipped to the action space as float64 (n,), and whether it was clipped;
        or an ``ActionError`` naming what is wrong.

        The common case (a finite action inside the box) costs four numpy calls: the clip
        copies, and an exact comparison with the input finds both a clip and a NaN / inf
        (neither equals its clipped value); only then is the action looked at closely."""
        array = np.asarray(action)
        expected = self.action_space.shape
        if array.dtype.kind != "f" or array.shape != expected:
            where = f"{self.task.name} ({self.action_mode} mode)"
            if array.dtype.kind != "f":
                raise ActionError(
                    f"action for {where} has dtype {array.dtype}; expected a float array of "
                    f"shape {expected}"
                )
            raise ActionError(f"action for {where} has shape {array.shape}; expected {expected}")
        bounded = np.maximum(array, self._action_low)  # float64, NaN stays NaN
        np.minimum(bounded, self._action_high, out=bounded)
        if np.equal(bounded, array).all():
            return bounded, False
        finite = np.isfinite(array)
        if not finite.all():
            bad = np.flatnonzero(~finite).tolist()
            where = f"{self.task.name} ({self.action_mode} mode)"
            raise ActionError(f"action for {where} has NaN or inf at indices {bad}")
        return bounded, True

    def _solve_delta(
        self, index: int, translation: np.ndarray, rotation: np.ndarray
    ) -> np.ndarray | None:
        """Joint targets putting arm ``index``'s TCP at its measured pose moved by the delta."""
        arm = self.arms[index]
        return arm.solve_tcp_delta(self.backend.joint_pos(arm.name), translation, rotation)

    def _observe(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        backend = self.backend
        for name, _, _, (joint_pos, joint_vel, gripper, eef_pose) in self._arm_slots:
            state = backend.arm_state(name)
            # fingers may press a little past their travel; plain floats: np.clip costs more
            # than the rest of this loop
            state[GRIPPER] = min(max(float(state[GRIPPER]), 0.0), 1.0)
            state = state.astype(np.float32)
            obs[joint_pos] = state[ARM_STATE_JOINT_POS]
            obs[joint_vel] = state[ARM_STATE_JOINT_VEL]
            obs[gripper] = state[ARM_STATE_GRIPPER]
            obs[eef_pose] = state[ARM_STATE_EEF_POSE]
        obs.update(self.task.observe(backend))
        for camera in self.cameras:
            obs[f"rgb_{camera}"] = backend.render(camera)
        return obs

    def _check_task_observation(self, obs: dict[str, np.ndarray]) -> None:
        """A ``ConfigError`` where the task's own observation (``Task.observe``) is not what
        its ``task_keys`` declare: each key a float32 array of the declared shape, no other
        key. The observation space, a dataset's key specs and a policy's inputs are made from
        the declaration, so a mismatch would be recorded and trained on unnoticed. Checked at
        each reset, not at each step (a task's observation keeps its shapes)."""
        where = f"task {self.task.name!r} ({qualified(type(self.task))})"
        extra = sorted(set(obs) - set(self.observation_space.spaces))
        if extra:
            raise ConfigError(f"{where}: observe() gives {extra[0]!r}, which its task_keys "
                              f"({', '.join(self.task.task_keys)}) do not declare")  # fmt: skip
        for key, shape in self.task.task_keys.items():
            value = obs.get(key)
            if value is None:
                raise ConfigError(f"{where}: observe() gives no {key!r}, which its task_keys "
                                  "declare")  # fmt: skip
            if (
                not isinstance(value, np.ndarray)
                or value.dtype != np.float32
                or value.shape != tuple(shape)
            ):
                got = (
                    f"{value.dtype} {value.shape}"
                    if isinstance(value, np.ndarray)
                    else type(value).__name__
                )
                raise ConfigError(f"{where}: observe() gives {key!r} as {got}; its task_keys "
                                  f"declare float32 {tuple(shape)}")  # fmt: skip

    def spec_dict(self) -> dict[str, Any]:
        """What a policy trained here expects: robot, task, rates, observation and action."""
        return {
            "robot": ROBOT_NAME,
            "task": self.task.name,
            "backend": self.backend_name,
            "arms": [arm.name for arm in self.arms],
            "control_hz": self.control_hz,
            "physics_hz": PHYSICS_HZ,
            "action_mode": self.action_mode,
            "action_dim": int(self.action_space.shape[0]),
            "observation": {
                key: {"shape": list(space.shape), "dtype": str(space.dtype)}
                for key, space in self.observation_space.spaces.items()
            },
            "cameras": list(self.cameras),
            "image_size": list(self.image_size),
            "max_episode_steps": self.max_episode_steps,
        }
