"""The robot/observation/action spec a policy is trained for, and the check that a deployment
matches it.

A spec is a JSON-able dict::

    {"robot": "ur5e", "task": "reach", "control_hz": 20.0, "action_mode": "joint",
     "observation": {"joint_pos": [6], "rgb_front": [96, 96, 3], ...}, "action_dim": 7}

It is written into every checkpoint's ``config.json``. ``task`` and ``backend`` (where the
demonstrations came from) are informational: a policy may be evaluated on a variant of its
task, and a MuJoCo-trained policy may run in PyBullet or on hardware. Everything else must
match, or the policy would read wrong inputs or command the wrong joints. The dataset's attrs
give ``task``, ``backend`` and ``action_mode`` directly or inside ``env_spec`` (the recording
env's ``spec_dict()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from robot_il.errors import CheckpointError, DatasetError

Spec = dict[str, Any]

ACTION_KEY = "action"
IMAGE_PREFIX = "rgb_"


def is_image_key(key: str) -> bool:
    """Camera images are the ``rgb_<camera>`` keys: (H, W, 3) uint8."""
    return key.startswith(IMAGE_PREFIX)


def spec_from_dataset(dataset: Any, obs_keys: Iterable[str], source: str) -> Spec:
    """Spec of a policy trained on ``obs_keys`` of ``dataset`` (a ``robot_il.dataset.Dataset``).

    Raises ``DatasetError`` naming ``source`` if the dataset lacks a key or attribute a policy
    needs, so a bad dataset is refused before any training starts.
    """
    attrs = dict(dataset.attrs)
    missing_attrs = [name for name in ("robot", "control_hz") if name not in attrs]
    if missing_attrs:
        raise DatasetError(f"{source}: dataset attrs lack {', '.join(missing_attrs)}")
    keys = set(dataset.keys)
    obs_keys = list(obs_keys)
    needed = [*obs_keys, ACTION_KEY]
    missing = [key for key in needed if key not in keys]
    if missing:
        raise DatasetError(
            f"{source}: dataset lacks key(s) {', '.join(missing)} needed by the policy config "
            f"(it has {', '.join(sorted(keys))})"
        )
    if dataset.num_episodes == 0:
        raise DatasetError(f"{source}: dataset has no episodes")
    shapes = {key: list(dataset.specs[key].shape) for key in needed}
    if len(shapes[ACTION_KEY]) != 1:
        raise DatasetError(f"{source}: key action has shape {shapes[ACTION_KEY]}, expected (A,)")
    env_spec = attrs.get("env_spec") or {}
    return {
        "robot": str(attrs["robot"]),
        "task": attrs.get("task") or env_spec.get("task") or _single_task(attrs),
        "backend": attrs.get("backend") or env_spec.get("backend"),
        "control_hz": float(attrs["control_hz"]),
        "action_mode": attrs.get("action_mode") or env_spec.get("action_mode"),
        "frame": attrs.get("frame"),
        "observation": {key: shapes[key] for key in obs_keys},
        "action_dim": int(shapes[ACTION_KEY][0]),
    }


def _single_task(attrs: Mapping[str, Any]) -> str | None:
    """The task name when the dataset's attrs list exactly one task."""
    tasks = attrs.get("tasks")
    if isinstance(tasks, list | tuple) and len(tasks) == 1:
        return str(tasks[0])
    return None


def spec_from_env(env: Any) -> Spec:
    """Spec a gymnasium env offers, from its spaces and ``env.unwrapped.spec_dict()``."""
    info = dict(env.unwrapped.spec_dict())
    return {
        "robot": info.get("robot"),
        "task": info.get("task"),
        "backend": info.get("backend"),
        "control_hz": float(info["control_hz"]) if "control_hz" in info else None,
        "action_mode": info.get("action_mode"),
        "frame": _task_frame(env),
        "observation": {
            key: list(space.shape) for key, space in env.observation_space.spaces.items()
        },
        "action_dim": int(env.action_space.shape[0]),
    }


def _task_frame(env: Any) -> str | None:
    """The task frame a ``robot_il.envs.task_frame.TaskFrameEnv`` among ``env``'s wrappers
    shows, or None (the world frame)."""
    try:
        return env.get_wrapper_attr("task_frame")
    except AttributeError:
        return None


def spec_mismatches(trained: Spec, offered: Spec) -> list[str]:
    """What in ``offered`` (an env, a robot) differs from what a policy was ``trained`` for."""
    problems = []
    for field in ("robot", "control_hz", "action_mode", "action_dim"):
        want, have = trained.get(field), offered.get(field)
        if want is not None and have is not None and want != have:
            problems.append(f"{field} {have!r} != trained {want!r}")
    if trained.get("frame") != offered.get("frame"):  # None: the world frame
        problems.append(f"frame {offered.get('frame') or 'world'!r} != trained "
                        f"{trained.get('frame') or 'world'!r}")  # fmt: skip
    offered_obs = offered.get("observation") or {}
    for key, shape in (trained.get("observation") or {}).items():
        if key not in offered_obs:
            problems.append(f"observation {key!r} missing")
        elif list(offered_obs[key]) != list(shape):
            problems.append(f"observation {key!r} shape {list(offered_obs[key])} != {shape}")
    return problems


def check_spec(trained: Spec, offered: Spec, where: str) -> None:
    """Raise ``CheckpointError`` naming ``where`` if ``offered`` cannot run this policy."""
    problems = spec_mismatches(trained, offered)
    if problems:
        raise CheckpointError(f"{where}: checkpoint does not fit: {'; '.join(problems)}")
