"""Scenes of the ``bimanual_cross`` task as numbers: where two UR5e start, pass and stop.

Two arms stand side by side facing +x (``left`` at +y, ``right`` at -y). Each carries its tool
from a start on its own side, across the centre line to a crossing point on the other arm's
side, and back to a goal on its own side; the two tool paths cross twice in the shared middle.
Starting together the arms meet there; one after the other they never do (every start and
goal lies clear of the other arm's path). Each scene draws the starts, goals, crossing points,
heights, durations and start delays from a seed, so the physics task, the scripted expert and
the kinematic benchmark see the same scenes.

Frames and units: world frame (z up, table top at z = 0), m, s, rad. Tool attitudes: the TCP
points down (``TOP_DOWN``) turned by a yaw about world z.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from robot_il.envs.backends.base import ArmMount
from robot_il.envs.ur5e.transforms import homogeneous

ARMS: tuple[str, str] = ("left", "right")
ARM_OFFSET_Y = 0.45
"""The bases stand at y = +/- this (m), both facing +x."""
MOUNTS = (
    ArmMount("left", base_pos=(0.0, ARM_OFFSET_Y, 0.0)),
    ArmMount("right", base_pos=(0.0, -ARM_OFFSET_Y, 0.0)),
)

# Nominal tool path of the left arm (the right arm's mirrors it in y and x-direction).
NOMINAL_START = np.array([0.30, 0.24, 0.22])
NOMINAL_GOAL = np.array([0.62, 0.24, 0.22])
NOMINAL_CROSSING = np.array([0.46, -0.04, 0.26])
"""Left arm's tool: start, goal and the crossing point it passes at mid-move (m, world)."""
START_JITTER = np.array([0.04, 0.04, 0.04])
CROSSING_JITTER = np.array([0.04, 0.03, 0.03])
"""Half-widths (m) of the uniform noise on starts/goals and on crossing points."""
NOMINAL_YAW_CHANGE = 0.3
"""The tool turns by this much (rad) about z over a move (left +, right -)."""
DURATION_RANGE = (1.8, 2.4)
"""A move takes this long (s) at the expert's pace."""
MAX_START_DELAY = 1.6
"""Each arm starts after a delay drawn from [0, this] (s)."""
GOAL_TOLERANCE = 0.02
"""An arm has arrived when its tool is within this distance of its goal (m)."""
TIME_LIMIT = 8.0
"""Episode length (s): long enough for the slower arm to wait for a whole move of the other."""


@dataclass(frozen=True)
class CrossScenes:
    """A batch of scenes (leading axis S) for the arms ``ARMS`` (axis A = 2).

    ``start``, ``crossing``, ``goal`` (S, A, 3) m world; ``start_yaw``/``goal_yaw`` (S, A) rad
    tool yaw; ``duration`` (S, A) s; ``delay`` (S, A) s; ``seeds`` (S,).
    """

    seeds: np.ndarray
    start: np.ndarray
    crossing: np.ndarray
    goal: np.ndarray
    start_yaw: np.ndarray
    goal_yaw: np.ndarray
    duration: np.ndarray
    delay: np.ndarray

    def __len__(self) -> int:
        return len(self.seeds)

    def select(self, index: np.ndarray | slice) -> CrossScenes:
        return CrossScenes(*(np.asarray(a)[index] for a in self.__dict__.values()))

    @staticmethod
    def stack(scenes: Sequence[CrossScenes]) -> CrossScenes:
        """``scenes`` concatenated along the scene axis, in order."""
        return CrossScenes(
            *(
                np.concatenate(parts)
                for parts in zip(*(s.__dict__.values() for s in scenes), strict=True)
            )
        )


def _mirror(point: np.ndarray) -> np.ndarray:
    """The right arm's counterpart of a left-arm point: y mirrored, x run backwards."""
    span = NOMINAL_START[0] + NOMINAL_GOAL[0]
    return np.array([span - point[0], -point[1], point[2]])


def nominal_path(arm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start, crossing, goal (3,) m of ``arm``'s nominal tool path."""
    points = (NOMINAL_START, NOMINAL_CROSSING, NOMINAL_GOAL)
    return tuple(p.copy() if arm == "left" else _mirror(p) for p in points)


def sample_scene(seed: int) -> CrossScenes:
    """The scene of ``seed`` (a batch of one)."""
    return draw_scene(np.random.default_rng(seed), seed)


def draw_scene(rng: np.random.Generator, seed: int = -1) -> CrossScenes:
    """A scene drawn from ``rng`` (a batch of one), labelled ``seed``."""
    return draw_moves(rng, seed, nominal_path, START_JITTER, CROSSING_JITTER, NOMINAL_YAW_CHANGE)


def draw_moves(
    rng: np.random.Generator,
    seed: int,
    nominal: Callable[[str], tuple[np.ndarray, np.ndarray, np.ndarray]],
    end_jitter: np.ndarray,
    pass_jitter: np.ndarray,
    yaw_change: float,
) -> CrossScenes:
    """One move per arm drawn from ``rng`` (a batch of one), labelled ``seed``: around each
    arm's ``nominal`` start, pass point and goal (3,) m, uniform noise of half-widths
    ``end_jitter`` on start and goal and ``pass_jitter`` on the pass point (m); a start yaw
    within +/- 0.1 rad and a goal yaw ``yaw_change`` rad further (left +, right -); then both
    arms' durations and start delays. The draws come in this order, so a seed's scene stays
    the same."""
    start, passing, goal, start_yaw, goal_yaw = [], [], [], [], []
    for arm in ARMS:
        path = nominal(arm)
        start.append(path[0] + rng.uniform(-end_jitter, end_jitter))
        passing.append(path[1] + rng.uniform(-pass_jitter, pass_jitter))
        goal.append(path[2] + rng.uniform(-end_jitter, end_jitter))
        sign = 1.0 if arm == "left" else -1.0
        start_yaw.append(rng.uniform(-0.1, 0.1))
        goal_yaw.append(start_yaw[-1] + sign * yaw_change)
    duration = rng.uniform(*DURATION_RANGE, size=2)
    delay = rng.uniform(0.0, MAX_START_DELAY, size=2)
    return CrossScenes(
        np.array([seed]),
        np.array([start]),
        np.array([passing]),
        np.array([goal]),
        np.array([start_yaw]),
        np.array([goal_yaw]),
        duration[None],
        delay[None],
    )


def sample_scenes(seeds: np.ndarray | range) -> CrossScenes:
    """Scenes for every seed, stacked (each seed's scene is the same alone or in a batch)."""
    return CrossScenes.stack([sample_scene(int(s)) for s in seeds])


def world_from_base(arm: str) -> np.ndarray:
    """Base pose (4, 4) of ``arm`` in the world."""
    mount = MOUNTS[ARMS.index(arm)]
    return homogeneous(translation=mount.base_pos)


def min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk time scaling 10 s^3 - 15 s^4 + 6 s^5 of s in [0, 1] (clipped)."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s**2)


def expert_tool_path(
    start: np.ndarray, crossing: np.ndarray, goal: np.ndarray, progress: np.ndarray
) -> np.ndarray:
    """The expert's tool positions (..., 3) m at progress (...,) in [0, 1]: a quadratic Bezier
    curve from ``start`` through ``crossing`` (at progress 1/2 of the curve) to ``goal``,
    timed by minimum jerk so the tool starts and stops at rest."""
    s = min_jerk(progress)[..., None]
    control = 2.0 * crossing - 0.5 * (start + goal)
    return (1.0 - s) ** 2 * start + 2.0 * s * (1.0 - s) * control + s**2 * goal


def expert_tool_yaw(
    start_yaw: np.ndarray, goal_yaw: np.ndarray, progress: np.ndarray
) -> np.ndarray:
    """The expert's tool yaw (...,) rad at progress (...,): minimum-jerk from start to goal."""
    return start_yaw + (goal_yaw - start_yaw) * min_jerk(progress)
