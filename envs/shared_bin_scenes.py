"""Scenes of ``bimanual_shared_bin`` as numbers: two UR5e place objects into one bin.

The arms stand as in ``bimanual_cross`` (``cross_scenes.MOUNTS``). Each carries an object from
a pick point on its own side to a drop point over the one bin in front of the cell between
them, opens its gripper there and retreats to a goal on its own side; one move per arm, the
drop point passed at mid-move (``cross_scenes.expert_tool_path`` with the drop point as the
pass point). The two drop points lie ``DROP_GAP`` m apart, closer than the arms' grippers can
pass each other, so one arm must wait while the other is over the bin. A scene is a
``CrossScenes`` whose ``crossing`` holds the drop points.

Frames and units: world frame (z up, table top at z = 0), m, s, rad.
"""

from __future__ import annotations

import numpy as np
from robot_il.envs import cross_scenes as cs

BIN_CENTER = np.array([0.58, 0.0, 0.10])
"""The bin's centre (m, world)."""
DROP_HEIGHT = 0.30
"""Drop points' height (m)."""
DROP_GAP = 0.08
"""Distance (m) between the two arms' nominal drop points (across y)."""
NOMINAL_START = np.array([0.32, 0.30, 0.18])
NOMINAL_GOAL = np.array([0.40, 0.22, 0.30])
"""Left arm's pick point and retreat goal (m, world); the right arm's mirror them in y."""
JITTER = np.array([0.04, 0.04, 0.03])
DROP_JITTER = np.array([0.01, 0.01, 0.01])
"""Half-widths (m) of the uniform noise on pick/goal points and on drop points."""
PLACE_TOLERANCE = 0.05
"""A tool has placed its object when it passed within this distance (m) of its drop point
(the bin is 0.2 m wide: an object dropped there lands in it)."""
SEED_OFFSET = 7_000_000
"""Scene ``seed`` draws from ``default_rng(SEED_OFFSET + seed)``: other numbers than the
crossing scenes of the same seed."""


def nominal_path(arm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick point, drop point, goal (3,) m of ``arm``'s nominal move."""
    sign = 1.0 if arm == "left" else -1.0
    mirror = np.array([1.0, sign, 1.0])
    drop = BIN_CENTER + np.array([0.0, sign * DROP_GAP / 2, DROP_HEIGHT - BIN_CENTER[2]])
    return NOMINAL_START * mirror, drop, NOMINAL_GOAL * mirror


def sample_scene(seed: int) -> cs.CrossScenes:
    """The scene of ``seed`` (a batch of one): tool yaws stay put over a move."""
    rng = np.random.default_rng(SEED_OFFSET + seed)
    return cs.draw_moves(rng, seed, nominal_path, JITTER, DROP_JITTER, 0.0)


def sample_scenes(seeds: np.ndarray | range) -> cs.CrossScenes:
    """Scenes for every seed, stacked."""
    return cs.CrossScenes.stack([sample_scene(int(s)) for s in seeds])
