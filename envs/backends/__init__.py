"""Physics engines behind one ``SimBackend`` contract (``base``): MuJoCo and PyBullet.

``make_backend`` imports an engine only when asked for it, so importing this package is cheap.
"""

from __future__ import annotations

from robot_il.envs.backends.base import SceneSpec, SimBackend

from robot_il.errors import ConfigError

BACKENDS: tuple[str, ...] = ("mujoco", "pybullet")
"""Names ``make_backend`` accepts."""


def make_backend(name: str, scene: SceneSpec, *, meshes: bool = True) -> SimBackend:
    """A backend running ``scene`` on engine ``name`` ("mujoco" or "pybullet").

    ``meshes=False`` draws the arms as their collision shapes even where the Menagerie meshes
    are installed (faster to build and to render; physics is the same).
    """
    if name == "mujoco":
        from robot_il.envs.backends.mujoco_backend import MujocoBackend

        return MujocoBackend(scene, meshes=meshes)
    if name == "pybullet":
        from robot_il.envs.backends.pybullet_backend import PybulletBackend

        return PybulletBackend(scene, meshes=meshes)
    raise ConfigError(f"unknown simulation backend {name!r}; backends: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "SceneSpec", "SimBackend", "make_backend"]
