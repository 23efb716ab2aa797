"""The task registry: task name -> ``Task`` class, the built-in tasks and a user's own.

A task of one's own is a ``Task`` subclass registered under its ``name`` with
``robot_il.envs.register_task`` (with its scripted expert, if it has one). A script that
imports its tasks module can use them through ``make_env`` at once. For every ``robot-il``
command (record, sim, train, eval, the ROS nodes: each runs in a process of its own, and a
dataset or checkpoint names its task only by name) the module must be imported there too:
an installed package declares it as an entry point of the group ``ENTRY_POINT_GROUP``, and
the registry imports every such module the first time it is read::

    # pyproject.toml of the package holding my_tasks.py
    [project.entry-points."robot_il.tasks"]
    my_tasks = "my_tasks"

The checks here run when a task is registered, so that a mistake in a task (a name given
twice, a typo'd attribute, an abstract method left out) is named before any env is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points

from robot_il.envs.tasks.base import ARM_KEYS, Task

from robot_il.errors import ConfigError

ENTRY_POINT_GROUP = "robot_il.tasks"
"""Entry-point group of modules that register tasks when imported."""


class TaskRegistry(Mapping[str, type[Task]]):
    """Task classes by name. Reading it (``name in``, ``[name]``, iterating) first imports
    the modules of the ``ENTRY_POINT_GROUP`` entry points, once; ``register`` adds a task."""

    def __init__(self) -> None:
        self._tasks: dict[str, type[Task]] = {}
        self._plugins_loaded = False

    def register(self, task: type[Task]) -> None:
        """Add ``task`` under its ``name``; a ``ConfigError`` naming what is wrong with it
        (see ``check_task``) or the class already registered under that name. Registering
        the same class again does nothing (its module imported by a script and by the entry
        point)."""
        check_task(task)
        known = self._tasks.get(task.name)
        if known is not None and known is not task:
            raise ConfigError(
                f"task {task.name!r} is registered twice: by {qualified(known)} and by "
                f"{qualified(task)}; give one of them another name"
            )
        self._tasks[task.name] = task

    def load_plugins(self) -> None:
        """Import the modules the installed packages declare in ``ENTRY_POINT_GROUP`` (once);
        a ``ConfigError`` naming the entry point and its package where one fails."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True  # a plugin reading the registry must not load itself
        for point in entry_points(group=ENTRY_POINT_GROUP):
            package = f"package {point.dist.name}" if point.dist is not None else "no package"
            try:
                point.load()
            except Exception as error:  # the plugin's bug, told in one line with its origin
                raise ConfigError(
                    f"task plugin {point.name!r} ({point.value}, {package}, entry point group "
                    f"{ENTRY_POINT_GROUP}) failed to load: {type(error).__name__}: {error}"
                ) from error

    def __getitem__(self, name: str) -> type[Task]:
        self.load_plugins()
        return self._tasks[name]

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(list(self._tasks))

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._tasks)

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._tasks


def check_task(task: object) -> None:
    """A ``ConfigError`` naming the first thing that keeps ``task`` from being a task the
    env can run: not a ``Task`` subclass, an abstract method left out, a ``name`` that is
    not a plain word (or is a DeepMind Control ``dmc:`` name), an ``episode_seconds`` that
    is not a positive number, ``task_keys`` that are not key -> shape of positive sizes, or
    a key the env already fills (an arm's, a camera's)."""
    if not (inspect.isclass(task) and issubclass(task, Task)):
        raise ConfigError(f"{task!r} is not a Task subclass (robot_il.envs.tasks.Task)")
    where = f"task class {qualified(task)}"
    missing = sorted(getattr(task, "__abstractmethods__", ()))
    if missing:
        raise ConfigError(f"{where} does not define {', '.join(missing)}")
    name = getattr(task, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"{where}: name must be a word of letters, digits and _, got {name!r}")
    seconds = getattr(task, "episode_seconds", None)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigError(f"{where}: episode_seconds must be a number > 0 (s), got {seconds!r}")
    keys = getattr(task, "task_keys", None)
    if not isinstance(keys, dict):
        raise ConfigError(f"{where}: task_keys must be a dict of key -> shape, got {keys!r}")
    prefixes = [f"{mount.name}_" if mount.name else "" for mount in task.mounts()]
    arm_keys = {prefix + key for prefix in prefixes for key in ARM_KEYS}
    for key, shape in keys.items():
        if not isinstance(key, str) or key.startswith("rgb_") or key in arm_keys:
            raise ConfigError(f"{where}: task key {key!r} is one the env fills itself (each "
                              f"arm's {', '.join(ARM_KEYS)}; rgb_<camera>)")  # fmt: skip
        if not (
            isinstance(shape, tuple) and all(isinstance(size, int) and size > 0 for size in shape)
        ):
            raise ConfigError(f"{where}: task_keys[{key!r}] must be a shape tuple of sizes "
                              f"> 0, e.g. (3,), got {shape!r}")  # fmt: skip


def qualified(task: type) -> str:
    """``module.Class`` of a class, to name where it comes from."""
    return f"{task.__module__}.{task.__qualname__}"
