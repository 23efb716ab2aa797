"""Simulated UR5e arms: tasks on MuJoCo or PyBullet behind the gymnasium API, with experts.

``make_env`` and ``make_expert`` import the engines only when called, so importing
``robot_il.envs`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robot_il.envs.dmc import DMCEnv
    from robot_il.envs.env import RobotEnv
    from robot_il.envs.experts import Expert
    from robot_il.envs.task_frame import TaskFrameEnv

TASKS: tuple[str, ...] = ("reach", "push", "pick_place", "bimanual_handover", "bimanual_cross")
"""UR5e task names ``make_env`` accepts (the registry is ``robot_il.envs.tasks.TASKS``)."""

DMC_TASKS: tuple[str, ...] = ("dmc:walker_walk", "dmc:walker_stand", "dmc:cartpole_swingup")
"""DeepMind Control Suite tasks ``make_env`` accepts (``robot_il.envs.dmc``)."""


def make_env(
    task: str,
    backend: str = "mujoco",
    *,
    control_hz: float = 20.0,
    action_mode: str = "joint",
    cameras: tuple[str, ...] = (),
    image_size: tuple[int, int] = (96, 96),
    max_episode_steps: int | None = None,
    frame: str | None = None,
    **env_kwargs: Any,
) -> RobotEnv | DMCEnv | TaskFrameEnv:
    """A ``RobotEnv`` for ``task`` on ``backend``; see ``robot_il.envs.env`` for the options
    (``terminate_on_success``, ``render_mode``, ``render_camera``, ``render_size``).

    A ``dmc:`` task gives a ``robot_il.envs.dmc.DMCEnv`` (the suite fixes its rate and
    action space: ``backend``, ``control_hz`` and ``action_mode`` are not used;
    ``render_mode`` and ``render_size`` are). ``frame`` (e.g. ``"push"``) wraps a one-arm
    ``eef_delta`` env in a ``robot_il.envs.task_frame.TaskFrameEnv``."""
    from robot_il.envs.dmc import DMCEnv, is_dmc_task
    from robot_il.envs.env import RobotEnv
    from robot_il.envs.task_frame import TaskFrameEnv
    from robot_il.envs.tasks import TASKS as REGISTRY

    from robot_il.errors import ConfigError

    if is_dmc_task(task):
        if frame:
            raise ConfigError(f"frame {frame!r}: DeepMind Control tasks have no task frame")
        render = {k: env_kwargs[k] for k in ("render_mode", "render_size") if k in env_kwargs}
        return DMCEnv(task, **render)
    if task not in REGISTRY:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(REGISTRY)}")
    env = RobotEnv(
        REGISTRY[task](),
        backend,
        control_hz=control_hz,
        action_mode=action_mode,
        cameras=tuple(cameras),
        image_size=image_size,
        max_episode_steps=max_episode_steps,
        **env_kwargs,
    )
    if not frame:
        return env
    try:
        return TaskFrameEnv(env, frame)
    except ConfigError:
        env.close()
        raise


def make_expert(env: Any) -> Expert:
    """The scripted expert for ``env``'s task, acting in ``env``'s action mode."""
    from robot_il.envs.experts import make_expert as make

    return make(env)


__all__ = ["DMC_TASKS", "TASKS", "make_env", "make_expert"]
