"""A library of DMPs cut from recorded two-arm demonstrations, with nearest-neighbour lookup.

Each episode of a robot_il zarr dataset is cut, per arm, into segments where the tool moves:
a pause (tool slower than ``PAUSE_SPEED`` for at least ``PAUSE_SECONDS``) or a gripper event
(the gripper crossing half closed) ends a segment. Every segment of at least ``MIN_SAMPLES``
samples becomes a position DMP and an orientation DMP of the tool (world frame, from the
``<arm>_eef_pose`` key), stored with retrieval features: start position, goal position (m)
and the scene features of its episode (the task's low-dimensional keys at the first step
that are not per-arm states). ``nearest`` returns the segment whose features are closest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from robot_il.policies.dmp.primitive import DMP, MIN_SAMPLES, QuaternionDMP

from robot_il.errors import DatasetError

PAUSE_SPEED = 0.01
"""A tool slower than this (m/s) is pausing."""
PAUSE_SECONDS = 0.3
"""A pause this long (s) ends a segment."""
ARMS: tuple[str, str] = ("left", "right")
PER_ARM_KEYS = ("joint_pos", "joint_vel", "gripper", "eef_pose")


@dataclass
class Segment:
    """One arm's movement between pauses or gripper events, learnt as DMPs."""

    arm: str
    episode: int
    span: tuple[int, int]
    position: DMP
    orientation: QuaternionDMP
    gripper: float
    features: np.ndarray


def _moving_spans(positions: np.ndarray, gripper: np.ndarray, dt: float) -> list[tuple[int, int]]:
    """[start, stop) sample spans of movement, split at gripper events."""
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=1) / dt
    moving = np.append(speed > PAUSE_SPEED, False)
    # Short pauses do not split a movement.
    min_pause = int(round(PAUSE_SECONDS / dt))
    spans, start, still = [], None, 0
    for i, flag in enumerate(moving):
        if flag:
            start = i if start is None else start
            still = 0
        elif start is not None:
            still += 1
            if still >= min_pause or i == len(moving) - 1:
                spans.append((start, i - still + 2))
                start, still = None, 0
    closed = gripper > 0.5
    events = set(np.flatnonzero(closed[1:] != closed[:-1]) + 1)
    cut = []
    for a, b in spans:
        edges = [a, *sorted(e for e in events if a < e < b), b]
        cut += [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return [(a, min(b, len(positions))) for a, b in cut]


TIMING_KEYS = ("move_durations",)
"""Scene keys that set the moves' durations (s): the policy reads them into its DMPs' tau
(where its spec observes them); they are no retrieval features (seconds beside metres would
change which demonstration is nearest)."""


def scene_keys(dataset: Any) -> list[str]:
    """The dataset's low-dimensional keys that describe a scene: constant through its first
    episode and not an arm's state, the action or a timing key (e.g. goals, start delays),
    sorted."""
    per_arm = {f"{arm}_{key}" for arm in ARMS for key in PER_ARM_KEYS}
    first = dataset.episode(0)
    return sorted(
        k
        for k in dataset.keys
        if k not in per_arm
        and k != "action"
        and k not in TIMING_KEYS
        and len(dataset.specs[k].shape) == 1
        and np.all(first[k] == first[k][:1])
    )


def check_two_arms(dataset: Any, where: str) -> None:
    """``DatasetError`` unless the dataset holds both arms' tool poses."""
    missing = [f"{arm}_eef_pose" for arm in ARMS if f"{arm}_eef_pose" not in dataset.keys]
    if missing:
        raise DatasetError(
            f"{where}: a two-arm DMP controller needs keys {', '.join(missing)}; this dataset "
            f"holds one arm (keys: {', '.join(sorted(dataset.keys))})"
        )


def build_library(dataset: Any, where: str, n_bases: int = 50) -> list[Segment]:
    """Every arm's segments of every episode of ``dataset`` (a ``robot_il.dataset.Dataset``).

    ``DatasetError`` for a one-arm dataset, a demonstration with NaN, or a dataset with no
    segment long enough to learn from."""
    check_two_arms(dataset, where)
    dt = 1.0 / float(dataset.attrs["control_hz"])
    scenes = scene_keys(dataset)
    segments: list[Segment] = []
    for episode in range(dataset.num_episodes):
        data = dataset.episode(episode)
        scene = np.concatenate([np.asarray(data[k][0], dtype=np.float64) for k in scenes] or [[]])
        for arm in ARMS:
            pose = np.asarray(data[f"{arm}_eef_pose"], dtype=np.float64)
            if not np.all(np.isfinite(pose)):
                step = int(np.argmax(~np.all(np.isfinite(pose), axis=1)))
                raise DatasetError(
                    f"{where}: episode {episode} {arm}_eef_pose has NaN/inf at step {step}"
                )
            gripper = np.asarray(data.get(f"{arm}_gripper", np.zeros((len(pose), 1))))[:, 0]
            for a, b in _moving_spans(pose[:, :3], gripper, dt):
                if b - a < MIN_SAMPLES:
                    continue
                times = np.arange(b - a) * dt
                what = f"{where}: episode {episode} {arm} steps {a}-{b}"
                position = DMP.fit(pose[a:b, :3], times, n_bases, what=what)
                orientation = QuaternionDMP.fit(pose[a:b, 3:7], times, n_bases, what=what)
                features = np.concatenate([pose[a, :3], pose[b - 1, :3], scene])
                segments.append(
                    Segment(
                        arm, episode, (a, b), position, orientation, float(gripper[b - 1]), features
                    )
                )
    for arm in ARMS:
        if not any(s.arm == arm for s in segments):
            raise DatasetError(
                f"{where}: no {arm} arm movement of >= {MIN_SAMPLES} samples to learn a DMP from"
            )
    return segments


def nearest(segments: list[Segment], arm: str, features: np.ndarray) -> Segment:
    """The ``arm`` segment whose features (start, goal, scene) are closest (Euclidean); a
    shorter ``features`` compares only that many leading features (e.g. start and goal)."""
    candidates = [s for s in segments if s.arm == arm]
    gaps = [np.linalg.norm(s.features[: len(features)] - features) for s in candidates]
    return candidates[int(np.argmin(gaps))]


def library_arrays(segments: list[Segment]) -> dict[str, np.ndarray]:
    """The library as named arrays (for a safetensors checkpoint)."""
    arrays: dict[str, np.ndarray] = {}
    for i, s in enumerate(segments):
        prefix = f"segment{i}/"
        arrays |= s.position.to_arrays(prefix + "position/")
        arrays |= s.orientation.to_arrays(prefix + "orientation/")
        arrays[prefix + "features"] = s.features
        arrays[prefix + "info"] = np.array(
            [ARMS.index(s.arm), s.episode, *s.span, s.gripper], dtype=np.float64
        )
    return arrays


def library_from_arrays(arrays: dict[str, np.ndarray]) -> list[Segment]:
    """Inverse of ``library_arrays``."""
    count = len({k.split("/")[0] for k in arrays if k.startswith("segment")})
    segments = []
    for i in range(count):
        prefix = f"segment{i}/"
        arm, episode, a, b, gripper = arrays[prefix + "info"]
        segments.append(
            Segment(
                ARMS[int(arm)],
                int(episode),
                (int(a), int(b)),
                DMP.from_arrays(arrays, prefix + "position/"),
                QuaternionDMP.from_arrays(arrays, prefix + "orientation/"),
                float(gripper),
                np.asarray(arrays[prefix + "features"], dtype=np.float64),
            )
        )
    return segments


def episode_arrays(dataset: Any) -> dict[str, np.ndarray]:
    """Per episode, what replaying it needs (``sequence.SequencePlayer``): the object's initial
    pose (``episode<i>/object_pose``, (7,)) and both arms' gripper commands per step
    (``episode<i>/gripper``, (T, 2), the action's columns 6 and 13 in joint mode)."""
    arrays = {}
    for episode in range(dataset.num_episodes):
        data = dataset.episode(episode, ["object_pose", "action"])
        arrays[f"episode{episode}/object_pose"] = np.asarray(data["object_pose"][0], np.float64)
        arrays[f"episode{episode}/gripper"] = np.asarray(data["action"][:, [6, 13]], np.float64)
    return arrays
