"""Simulated UR5e arms: tasks on MuJoCo or PyBullet behind the gymnasium API, with experts.

``make_env`` and ``make_expert`` import the engines only when called, so importing
``robot_il.envs`` stays cheap.
"""

from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robot_il.envs.dmc import DMCEnv
    from robot_il.envs.env import RobotEnv
    from robot_il.envs.experts import Expert
    from robot_il.envs.task_frame import TaskFrameEnv
    from robot_il.envs.tasks import Task

    TASKS: tuple[str, ...]
    """UR5e task names ``make_env`` accepts: the built-in tasks and those registered
    (``register_task``; the registry is ``robot_il.envs.tasks.TASKS``). Read when asked for
    (``__getattr__``), so that importing ``robot_il.envs`` stays cheap and a task registered
    later is named too."""


def __getattr__(name: str) -> Any:
    if name == "TASKS":
        from robot_il.envs.tasks import TASKS as REGISTRY

        return tuple(REGISTRY)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DMC_TASKS: tuple[str, ...] = ("dmc:walker_walk", "dmc:walker_stand", "dmc:cartpole_swingup")
"""DeepMind Control Suite tasks ``make_env`` accepts (``robot_il.envs.dmc``)."""

DMC_BACKENDS: tuple[str, ...] = ("mujoco", "dm_control")
"""``backend`` names a DeepMind Control task accepts: the engine the suite runs on, and the
name its spec records (so an env made from a checkpoint's spec is accepted)."""

DMC_OPTIONS: tuple[str, ...] = ("render_mode", "render_size", "terminate_on_success")
"""Keyword options a DeepMind Control task accepts beyond ``make_env``'s own; the suite has no
success test, so ``terminate_on_success`` changes nothing there."""


def make_env(
    task: str,
    backend: str = "mujoco",
    *,
    control_hz: float | None = None,
    action_mode: str | None = None,
    cameras: tuple[str, ...] = (),
    image_size: tuple[int, int] = (96, 96),
    max_episode_steps: int | None = None,
    frame: str | None = None,
    **env_kwargs: Any,
) -> RobotEnv | DMCEnv | TaskFrameEnv:
    """A ``RobotEnv`` for ``task`` on ``backend``; see ``robot_il.envs.env`` for the options
    (``control_hz`` default 20 Hz, ``action_mode`` default ``"joint"``,
    ``terminate_on_success``, ``render_mode``, ``render_camera``, ``render_size``).
    ``frame`` (e.g. ``"push"``) wraps a one-arm ``eef_delta`` env in a
    ``robot_il.envs.task_frame.TaskFrameEnv``.

    A ``dmc:`` task gives a ``robot_il.envs.dmc.DMCEnv``. The suite fixes its engine, rate and
    actions, so ``backend`` may only be one of ``DMC_BACKENDS``, ``control_hz`` the suite's
    rate and ``action_mode`` ``"dmc"``; it takes ``max_episode_steps`` (up to the suite's
    limit) and ``DMC_OPTIONS``, and no cameras or task frame (``image_size`` sizes cameras
    only). Any other option is a ``ConfigError``, not silently dropped."""
    from robot_il.envs.dmc import DMCEnv, is_dmc_task
    from robot_il.envs.env import RobotEnv
    from robot_il.envs.task_frame import TaskFrameEnv
    from robot_il.envs.tasks import ENTRY_POINT_GROUP
    from robot_il.envs.tasks import TASKS as REGISTRY

    from robot_il.errors import ConfigError

    if is_dmc_task(task):
        if backend not in DMC_BACKENDS:
            raise ConfigError(
                f"backend {backend!r}: {task} runs on dm_control's MuJoCo; backends: "
                f"{', '.join(DMC_BACKENDS)}"
            )
        if action_mode not in (None, "dmc"):
            raise ConfigError(f"action_mode {action_mode!r}: {task} takes the suite's ('dmc')")
        if cameras:
            raise ConfigError(f"cameras {list(cameras)}: {task} has no camera observations")
        if frame:
            raise ConfigError(f"frame {frame!r}: DeepMind Control tasks have no task frame")
        unknown = [name for name in env_kwargs if name not in DMC_OPTIONS]
        if unknown:
            raise ConfigError(
                f"option {unknown[0]!r} is for UR5e tasks; {task} takes {', '.join(DMC_OPTIONS)}"
            )
        render = {k: env_kwargs[k] for k in ("render_mode", "render_size") if k in env_kwargs}
        return DMCEnv(task, control_hz=control_hz, max_episode_steps=max_episode_steps, **render)
    if task not in REGISTRY:
        tasks = [*REGISTRY, *DMC_TASKS]
        nearest = difflib.get_close_matches(task, tasks, n=1)  # a typo: 'reech', 'pick-place'
        guess = f" (did you mean {nearest[0]!r}?)" if nearest else ""
        raise ConfigError(
            f"unknown task {task!r}{guess}; tasks: {', '.join(tasks)}; a task of your own is "
            f"registered with robot_il.envs.register_task (for robot-il commands, in a module "
            f"named by a {ENTRY_POINT_GROUP!r} entry point)"
        )
    env = RobotEnv(
        REGISTRY[task](),
        backend,
        control_hz=20.0 if control_hz is None else control_hz,
        action_mode=action_mode or "joint",
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


def register_task(task: type[Task], expert: type[Expert] | None = None) -> None:
    """Make ``task`` (a ``robot_il.envs.tasks.Task`` subclass) available under its ``name``
    to ``make_env``, with ``expert`` (a ``robot_il.envs.experts.Expert`` subclass, or None:
    no scripted expert) to ``make_expert``. For the ``robot-il`` commands, register it from
    a module an installed package declares as a ``robot_il.tasks`` entry point (see
    ``robot_il.envs.tasks.registry``). A ``ConfigError`` names what is wrong before anything
    is registered: a class that is no task or no expert (``check_task``), or a name
    registered already by another class or with another expert."""
    from robot_il.envs.experts import EXPERTS, Expert
    from robot_il.envs.tasks import TASKS as REGISTRY
    from robot_il.envs.tasks.registry import check_task, qualified

    from robot_il.errors import ConfigError

    check_task(task)
    if expert is not None:
        if not (inspect.isclass(expert) and issubclass(expert, Expert)):
            raise ConfigError(
                f"expert {expert!r} of task {task.name!r} is not an Expert subclass "
                "(robot_il.envs.experts.Expert)"
            )
        if inspect.isabstract(expert):
            missing = ", ".join(sorted(expert.__abstractmethods__))
            raise ConfigError(f"expert class {qualified(expert)} does not define {missing}")
    REGISTRY.register(task)  # refuses another class of the same name
    if expert is None:
        return
    known = EXPERTS.get(task.name)
    if known is not None and known is not expert:  # the same task class, another expert
        raise ConfigError(
            f"task {task.name!r} has an expert already ({qualified(known)}); "
            f"{qualified(expert)} would replace it"
        )
    EXPERTS[task.name] = expert


def make_expert(env: Any) -> Expert:
    """The scripted expert for ``env``'s task, acting in ``env``'s action mode."""
    from robot_il.envs.experts import make_expert as make

    return make(env)


__all__ = [
    "DMC_BACKENDS",
    "DMC_OPTIONS",
    "DMC_TASKS",
    "TASKS",
    "make_env",
    "make_expert",
    "register_task",
]
