"""Engine-neutral geometry of a scene: what both model generators place besides the arms.

The MJCF and URDF generators read the table, bin walls, cube, marker and camera placement from
here, so the two engines see the same world. Units: metres, world frame, z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from robot_il.envs.backends.base import CameraSpec, SceneSpec

TABLE_THICKNESS = 0.05
TABLE_MARGIN = 0.9
"""Table reaches this far (m) beyond every arm base, more than the UR5e's 0.85 m reach."""
FLOOR_DROP = 0.6
"""A visual-only floor lies this far (m) below the table's underside."""
BIN_WALL_THICKNESS = 0.01
MARKER_RADIUS = 0.025

TABLE_RGBA = (0.72, 0.6, 0.46, 1.0)
BIN_RGBA = (0.35, 0.45, 0.6, 1.0)
CUBE_RGBA = (0.85, 0.15, 0.12, 1.0)
MARKER_RGBA = (0.1, 0.8, 0.2, 0.8)
FLOOR_RGBA = (0.3, 0.3, 0.32, 1.0)

FRICTION_OBJECT = 1.0
"""Sliding friction coefficient of table, bin and cube surfaces."""


@dataclass(frozen=True)
class StaticBox:
    """A fixed box: name, centre (m, world), half extents (m), colour."""

    name: str
    center: tuple[float, float, float]
    half_extents: tuple[float, float, float]
    rgba: tuple[float, float, float, float]


def static_boxes(scene: SceneSpec) -> tuple[StaticBox, ...]:
    """The table (top at ``scene.table_height``) and the four bin walls standing on it."""
    bases = np.array([arm.base_pos[:2] for arm in scene.arms])
    center = (bases.min(axis=0) + bases.max(axis=0)) / 2.0
    half = (bases.max(axis=0) - bases.min(axis=0)) / 2.0 + TABLE_MARGIN
    top = scene.table_height
    boxes = [
        StaticBox(
            "table",
            (float(center[0]), float(center[1]), top - TABLE_THICKNESS / 2.0),
            (float(half[0]), float(half[1]), TABLE_THICKNESS / 2.0),
            TABLE_RGBA,
        )
    ]
    if scene.bin is not None:
        cx, cy = scene.bin.center_xy
        ix, iy = scene.bin.inner_half_extent
        t, h = BIN_WALL_THICKNESS / 2.0, scene.bin.wall_height / 2.0
        z = top + h
        boxes += [
            StaticBox("bin_wall_px", (cx + ix + t, cy, z), (t, iy + 2 * t, h), BIN_RGBA),
            StaticBox("bin_wall_nx", (cx - ix - t, cy, z), (t, iy + 2 * t, h), BIN_RGBA),
            StaticBox("bin_wall_py", (cx, cy + iy + t, z), (ix, t, h), BIN_RGBA),
            StaticBox("bin_wall_ny", (cx, cy - iy - t, z), (ix, t, h), BIN_RGBA),
        ]
    return tuple(boxes)


def camera_axes(camera: CameraSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right, up and forward unit vectors of a camera looking from pos at lookat, in the frame
    those are given in (the world's; a gripper camera's flange frame, see ``CameraSpec``).

    Up is that frame's z axis projected off the viewing direction (its y when looking straight
    along z), the rule both engines' view matrices use.
    """
    forward = np.asarray(camera.lookat, float) - np.asarray(camera.pos, float)
    forward /= np.linalg.norm(forward)
    up_hint = np.array([0.0, 0.0, 1.0])
    if abs(forward @ up_hint) > 0.999:
        up_hint = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up_hint)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return right, up, forward
