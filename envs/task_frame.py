"""Task frames: a one-arm task's observations and end-effector actions in a frame the task
defines, so that a policy learns one motion instead of one per direction.

The ``push`` frame has its origin under the cube's centre (on the world's z = 0 plane) and
its x axis along the table toward the target: every push, whatever its direction in the
world, becomes "move the cube along +x by the target's x". A rotation about the world z axis
and a shift on the table change nothing the policy sees, so ten demonstrations cover the
directions a world-frame policy would need many more for (tuned BC from 10 demonstrations:
push 10% to 100%, pick_place 14% to 42%). Any one-arm task that observes an object and a
target can use it (pick_place does: its cube goes along +x, then up and down).

The ``fixed`` frame is the world's own origin and axes (``yaw`` 0): it changes only the form
of the observation (continuous attitudes, no joints), the control that tells what the push
frame's heading and shift add beyond that form (tuned BC on push from the same 10: 5%).

In a frame, with ``yaw`` the world angle of its x axis (push: the cube-to-target direction):

- ``eef_pose``, ``object_pose`` (9 each): position ``Rz(-yaw) (p - origin)`` (m), then the
  attitude ``Rz(-yaw) R`` as its first two columns (the continuous 6-number form of Zhou et
  al. 2019: a quaternion has two signs, and the world one of a top-down TCP, w near 0,
  changes sign 238 times in the 10 push demonstrations); ``target_pos`` the position map
  (``(d, 0, z)``); ``gripper`` unchanged;
- ``joint_pos`` and ``joint_vel`` are left out: the arm's joints do not turn with the task;
- the action (``eef_delta``: TCP translation, m, and axis-angle rotation, rad, then the
  gripper) has both 3-vectors turned by ``Rz(-yaw)``; ``TaskFrameEnv`` turns them back by the
  yaw of the observation the policy acted on, so the world box of the ``eef_delta`` mode
  still bounds each step.

The frame is a function of each observation alone, so a frame policy is an ordinary policy
of the state: recorded world datasets convert step by step (``frame_dataset``), the env
wrapper gives the same numbers in simulation, and ``WorldFramePolicy`` lets a deploy node,
which reads world observations from the robot's topics, run a frame checkpoint (a chunk of
actions turns by the heading of the observation it answers; in the env and the converted
data each action turns by its own step's, which moves little within a chunk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robot_il.errors import ConfigError

TASK_FRAMES = ("push", "fixed")
"""Frames a one-arm ``eef_delta`` env can be wrapped in (``make_env(frame=...)``)."""
MOVING_FRAMES = ("push",)
"""Frames whose origin and axes follow the scene: their positions are not world positions."""
FRAME_KEYS = {"eef_pose": (9,), "gripper": (1,), "object_pose": (9,), "target_pos": (3,)}
"""Observation keys (shapes) a frame env gives, each in the frame."""
WORLD_KEYS = {"eef_pose": (7,), "gripper": (1,), "object_pose": (7,), "target_pos": (3,)}
"""The world observation keys (shapes) the frame is computed from."""
FRAME_UNITS = {
    "eef_pose": "m (xyz) + rotation matrix columns 1-2, task frame (attrs frame)",
    "gripper": "1 = closed, 0 = open",
    "object_pose": "m (xyz) + rotation matrix columns 1-2, task frame (attrs frame)",
    "target_pos": "m (xyz), task frame (attrs frame)",
}
"""What each frame key holds, for a converted dataset's key specs."""


def frame_yaw(obs: dict[str, np.ndarray], frame: str) -> np.ndarray:
    """World angle (rad) of ``frame``'s x axis in the table plane, (...,) for observations
    with leading dimensions: push, the cube-to-target direction (0 where the cube sits on the
    target); fixed, 0."""
    if frame == "fixed":
        return np.zeros(np.shape(obs["target_pos"])[:-1])
    offset = (
        np.asarray(obs["target_pos"], np.float64)[..., :2]
        - np.asarray(obs["object_pose"], np.float64)[..., :2]
    )
    return np.arctan2(offset[..., 1], offset[..., 0])


def _turn(vectors: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """3-vectors (..., 3) turned by ``yaw`` (...,) rad about the z axis."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    turned = np.array(vectors, np.float64)
    turned[..., 0] = cos * vectors[..., 0] - sin * vectors[..., 1]
    turned[..., 1] = sin * vectors[..., 0] + cos * vectors[..., 1]
    return turned


def _first_columns(quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two columns (..., 3) each of the rotation matrices of unit quaternions
    ``wxyz`` (..., 4); the same for ``q`` and ``-q``."""
    w, x, y, z = np.moveaxis(np.asarray(quat, np.float64), -1, 0)
    first = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], -1)
    second = np.stack([2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)], -1)
    return first, second


def frame_observation(
    obs: dict[str, np.ndarray], frame: str, yaw: np.ndarray
) -> dict[str, np.ndarray]:
    """``obs``'s ``FRAME_KEYS`` in ``frame`` of heading ``yaw`` (``frame_yaw``; float32);
    leading dimensions are kept, so a whole recorded episode converts at once."""
    origin = np.array(obs["object_pose"], np.float64)[..., :3]
    if frame == "fixed":  # the world's own
        origin[...] = 0.0
    else:  # push: under the cube's centre, on the world's z = 0 plane
        origin[..., 2] = 0.0

    def pose(key: str) -> np.ndarray:
        world = np.asarray(obs[key], np.float64)
        columns = [_turn(column, -yaw) for column in _first_columns(world[..., 3:])]
        return np.concatenate([_turn(world[..., :3] - origin, -yaw), *columns], axis=-1)

    target = _turn(np.asarray(obs["target_pos"], np.float64) - origin, -yaw)
    seen = {"eef_pose": pose("eef_pose"), "gripper": np.asarray(obs["gripper"]),
            "object_pose": pose("object_pose"), "target_pos": target}  # fmt: skip
    return {key: np.asarray(value, np.float32) for key, value in seen.items()}


def action_in_frame(action: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World ``eef_delta`` actions (..., 7) expressed in the frame of heading ``yaw``."""
    return _turn_action(action, -np.asarray(yaw))


def action_in_world(action: np.ndarray, yaw: float | np.ndarray) -> np.ndarray:
    """Frame ``eef_delta`` actions (..., 7) expressed in the world (``action_in_frame``'s
    inverse)."""
    return _turn_action(action, np.asarray(yaw))


def _turn_action(action: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    array = np.asarray(action)
    turned = np.array(array, np.float64)
    turned[..., 0:3] = _turn(turned[..., 0:3], yaw)
    turned[..., 3:6] = _turn(turned[..., 3:6], yaw)
    return turned.astype(array.dtype if array.dtype.kind == "f" else np.float64)


def world_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """What a frame policy of ``spec`` takes from a world env or robot: the same spec with
    the world keys its frame keys come from, and no frame."""
    observation = {key: list(WORLD_KEYS[key]) for key in WORLD_KEYS}
    return {**spec, "frame": None, "observation": observation}


class WorldFramePolicy:
    """A frame policy (``spec["frame"]`` set) that answers histories of world observations
    (``world_spec``'s keys, each (n_obs_steps, ...)) with world actions, for deployment."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.spec = world_spec(policy.spec)

    @property
    def inpaints_committed(self) -> bool:
        return self.policy.inpaints_committed

    def predict_actions(
        self, history: dict[str, np.ndarray], committed: np.ndarray | None = None
    ) -> np.ndarray:
        """The policy's next actions (float32, env units, world frame) after ``history``
        (``committed``: world actions, see ``Policy.predict_actions``)."""
        frame = self.policy.spec["frame"]
        yaw = frame_yaw(history, frame)
        in_frame = None if committed is None else action_in_frame(committed, yaw[-1])
        actions = self.policy.predict_actions(frame_observation(history, frame, yaw), in_frame)
        world = action_in_world(actions, yaw[-1]).astype(np.float32)
        if committed is not None and self.policy.inpaints_committed:  # exactly, no round trip
            world[: len(committed)] = committed
        return world


def check_frame(frame: str, env: Any) -> None:
    """``ConfigError`` unless ``env`` (one arm, ``eef_delta``, a cube and a target) can be
    seen in ``frame``."""
    where = f"frame {frame!r} for task {env.unwrapped.task.name}"
    if frame not in TASK_FRAMES:
        raise ConfigError(f"unknown frame {frame!r}; frames: {', '.join(TASK_FRAMES)}")
    if env.unwrapped.action_mode != "eef_delta" or len(env.unwrapped.arms) != 1:
        raise ConfigError(f"{where}: needs one arm in eef_delta action mode")
    missing = sorted(set(WORLD_KEYS) - set(env.observation_space.spaces))
    if missing:
        raise ConfigError(f"{where}: the task observes no {', '.join(missing)}")


class TaskFrameEnv(gym.Wrapper):
    """A one-arm ``eef_delta`` env seen in a task frame: observations in the frame of the
    current state, actions in the frame of the observation they answer."""

    def __init__(self, env: gym.Env, frame: str) -> None:
        check_frame(frame, env)
        super().__init__(env)
        self.task_frame = frame
        self.observation_space = gym.spaces.Dict(
            {
                key: gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
                for key, shape in FRAME_KEYS.items()
            }  # fmt: skip
        )
        self._yaw = np.float64(0.0)
        """Heading (rad) of the last observation: the next action turns by it."""

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return self._in_frame(obs), info

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(
            action_in_world(np.asarray(action, np.float32), self._yaw)
        )
        return self._in_frame(obs), reward, terminated, truncated, info

    @property
    def heading(self) -> float:
        """Heading (rad) of the last observation's frame: the next action is turned by it."""
        return float(self._yaw)

    def _in_frame(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._yaw = frame_yaw(obs, self.task_frame)
        return frame_observation(obs, self.task_frame, self._yaw)


def frame_dataset(
    source: str | Path, destination: str | Path, frame: str, *, overwrite: bool = False
) -> Path:
    """A copy of the world-frame ``eef_delta`` dataset ``source`` with every step's
    ``FRAME_KEYS`` and action in ``frame`` (other keys, cameras too, left out), written to
    the local ``destination``; its attrs say ``frame``. Returns the path.

    The copy is built beside ``destination`` and put there only when complete, as the other
    dataset tools write, so an interrupted or failed conversion leaves no partial copy and
    an existing dataset there (replaced only with ``overwrite``) as it was; ``source``
    itself is never the destination: the world recording is the one the frame comes from."""
    from robot_il.dataset import Dataset
    from robot_il.dataset.durability import replace_atomically
    from robot_il.dataset.format import RESERVED_ATTRS, KeySpec
    from robot_il.dataset.store import local_path
    from robot_il.dataset.writer import DatasetWriter

    if frame not in TASK_FRAMES:
        raise ConfigError(f"unknown frame {frame!r}; frames: {', '.join(TASK_FRAMES)}")
    target, origin = local_path(destination), local_path(source)
    if target is None:
        raise ConfigError(f"{destination}: datasets are written to local paths only (a URL)")
    if origin is not None and origin.resolve() == target.resolve():
        raise ConfigError(f"{destination}: is the source dataset; write the frame copy to a "
                          "new path (the world recording stays)")  # fmt: skip
    dataset = Dataset.open(source)
    attrs = dict(dataset.attrs)
    if attrs.get("frame"):
        raise ConfigError(f"{source}: already in the {attrs['frame']!r} frame; convert the "
                          "world recording it came from")  # fmt: skip
    unfit = [key for key, shape in WORLD_KEYS.items()
             if key not in dataset.specs or dataset.specs[key].shape != shape]  # fmt: skip
    if attrs.get("action_mode") != "eef_delta":
        raise ConfigError(f"{source}: frame {frame!r} needs eef_delta actions, and this dataset "
                          f"holds {attrs.get('action_mode')!r} ones (record with --action-mode "
                          "eef_delta)")  # fmt: skip
    arms = (attrs.get("env_spec") or {}).get("arms") or []
    if len(arms) > 1:  # as check_frame says of an env
        raise ConfigError(f"{source}: frame {frame!r} needs one arm, and this dataset records "
                          f"{len(arms)} ({', '.join(arms)})")  # fmt: skip
    if unfit:
        lacks = ", ".join(f"{key} {WORLD_KEYS[key]}" for key in unfit)
        raise ConfigError(f"{source}: frame {frame!r} needs a dataset with world "
                          f"{', '.join(WORLD_KEYS)} (lacks {lacks})")  # fmt: skip
    env_spec = dict(attrs.get("env_spec") or {})
    env_spec["observation"] = {k: {"shape": list(s), "dtype": "float32"}
                               for k, s in FRAME_KEYS.items()}  # fmt: skip
    env_spec["frame"] = frame
    keys = {key: KeySpec(shape, "float32", FRAME_UNITS[key]) for key, shape in FRAME_KEYS.items()}
    keys["action"] = KeySpec(dataset.specs["action"].shape, "float32",
                             f"eef_delta in the task frame ({frame})")  # fmt: skip
    extra = {k: v for k, v in attrs.items() if k not in RESERVED_ATTRS}

    def build(tmp: Path) -> None:
        with DatasetWriter.create(
            tmp, robot=dataset.robot, control_hz=dataset.control_hz, keys=keys,
            attrs={**extra, "env_spec": env_spec, "frame": frame},
            fsync=False,  # replace_atomically flushes once at the end
        ) as writer:  # fmt: skip
            writer.add_episodes(  # committed in batches
                (converted_episode(episode), dataset.meta(episode))
                for episode in range(dataset.num_episodes)
            )

    def converted_episode(episode: int) -> dict[str, np.ndarray]:
        steps = dataset.episode(episode, [*WORLD_KEYS, "action"])
        yaw = frame_yaw(steps, frame)
        converted = frame_observation(steps, frame, yaw)
        converted["action"] = action_in_frame(steps["action"], yaw).astype(np.float32)
        return converted

    replace_atomically(target, build, force=overwrite)
    return target
