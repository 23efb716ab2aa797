"""Which library demonstration each arm replays: nearest neighbour against a learned chooser.

The library (``selection_library``) holds, per arm, ``LIBRARY_SIZE`` demonstrations of the
``bimanual_cross`` move recorded from the scripted expert on library scenes (seeds from
``LIBRARY_SEED``): the same start-to-goal task, passing the crossing at different heights
(``CROSSING_HEIGHTS``). Each becomes a ``library.Segment`` (position and orientation DMPs,
features: tool start and goal, m, world).

- Nearest neighbour (issue 11's retrieval, ``library.nearest``): each arm takes the segment
  whose start and goal are closest to its own. It cannot see how the two arms' choices
  interact.
- Learned (the paper's RL level, here a one-step Q-function over the pair of choices, a
  contextual bandit): ``Q(s, (i, j))`` is the expected reward of the left arm replaying segment
  i and the right arm segment j in a scene with features s (both tools' starts and goals,
  durations, start delays). The reward of an episode is ``success (1 - makespan / TIME_LIMIT)``.
  Q is fitted by ridge regression on quadratic features of s from episodes run for every pair
  on training scenes (the kinematic simulator gives the full feedback of each choice), and the
  chooser takes ``argmax_(i, j) Q``.

Both run under the same coordination (``coupled`` with the CMA-ES parameters in the
benchmark), so the rows differ only by which demonstrations are replayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.policies.dmp.bimanual import ArmPrimitives
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.cross_episodes import (
    DEMO_DT,
    EpisodeScores,
    run_episodes,
    tool_quat,
)
from robot_il.policies.dmp.library import Segment, nearest
from robot_il.policies.dmp.primitive import DMP, QuaternionDMP

LIBRARY_SEED = 200_000
LIBRARY_SIZE = 4
CROSSING_HEIGHTS = (-0.06, 0.0, 0.06, 0.12)
"""Height offsets (m) of the crossing point of library demonstration i (both arms)."""
RIDGE = 1e-2


def selection_library() -> list[Segment]:
    """``LIBRARY_SIZE`` segments per arm; see the module docstring."""
    segments = []
    for i, lift in enumerate(CROSSING_HEIGHTS[:LIBRARY_SIZE]):
        scene = cs.sample_scene(LIBRARY_SEED + i)
        duration = float(scene.duration[0].mean())
        times = np.arange(0.0, duration + DEMO_DT / 2, DEMO_DT)
        for k, arm in enumerate(cs.ARMS):
            start, goal = scene.start[0, k], scene.goal[0, k]
            crossing = scene.crossing[0, k] + np.array([0.0, 0.0, lift])
            positions = cs.expert_tool_path(start, crossing, goal, times / duration)
            yaw = cs.expert_tool_yaw(scene.start_yaw[0, k], scene.goal_yaw[0, k], times / duration)
            what = f"library demonstration {i} {arm}"
            segments.append(
                Segment(
                    arm,
                    i,
                    (0, len(times)),
                    DMP.fit(positions, times, what=what),
                    QuaternionDMP.fit(tool_quat(yaw), times, what=what),
                    0.0,
                    np.concatenate([start, goal]),
                )
            )
    return segments


def scene_features(scenes: cs.CrossScenes) -> np.ndarray:
    """(S, 16): both tools' starts and goals (m), durations and delays (s)."""
    return np.concatenate(
        [
            scenes.start.reshape(len(scenes), -1),
            scenes.goal.reshape(len(scenes), -1),
            scenes.duration,
            scenes.delay,
        ],
        axis=1,
    )


def nearest_choices(library: list[Segment], scenes: cs.CrossScenes) -> np.ndarray:
    """(S, 2) library episode index per scene and arm, by nearest start and goal."""
    features = np.concatenate([scenes.start, scenes.goal], axis=2)  # (S, 2, 6)
    return np.array(
        [
            [nearest(library, arm, features[s, k]).episode for k, arm in enumerate(cs.ARMS)]
            for s in range(len(scenes))
        ]
    )


def run_choices(
    library: list[Segment],
    scenes: cs.CrossScenes,
    choices: np.ndarray,
    method: str,
    params: CouplingParams | None,
    dt: float,
) -> EpisodeScores:
    """Scores per scene (in scene order) with each arm replaying its chosen segment; scenes
    with the same pair run as one batch."""
    by_key = {(s.arm, s.episode): s for s in library}
    parts: dict[str, np.ndarray] = {}
    for pair in {tuple(c) for c in choices.tolist()}:
        index = np.flatnonzero((choices == pair).all(axis=1))
        primitives = tuple(
            ArmPrimitives(by_key[arm, pair[k]].position, by_key[arm, pair[k]].orientation)
            for k, arm in enumerate(cs.ARMS)
        )
        scores = run_episodes(scenes.select(index), method, params, primitives, dt=dt)
        for field, values in scores.__dict__.items():
            parts.setdefault(field, np.zeros(len(scenes), dtype=values.dtype))[index] = values
    return EpisodeScores(**parts)


def episode_reward(scores: EpisodeScores) -> np.ndarray:
    """(S,): ``success (1 - makespan / TIME_LIMIT)``."""
    return scores.success * (1.0 - scores.makespan / cs.TIME_LIMIT)


def _quadratic(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    z = (features - mean) / scale
    upper = np.triu_indices(z.shape[1])
    return np.concatenate(
        [np.ones((len(z), 1)), z, (z[:, :, None] * z[:, None, :])[:, upper[0], upper[1]]], axis=1
    )


@dataclass(frozen=True)
class PairChooser:
    """``Q(s, pair) = phi(s) . weights[pair]`` over the ``pairs`` (P, 2); ``phi`` quadratic
    in standardised scene features (``mean``, ``scale``)."""

    pairs: np.ndarray
    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, pairs: np.ndarray, rewards: np.ndarray) -> PairChooser:
        """Ridge regression of ``rewards`` (S, P) of each pair on each training scene."""
        mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
        phi = _quadratic(features, mean, scale)
        gram = phi.T @ phi + RIDGE * len(phi) * np.eye(phi.shape[1])
        weights = np.linalg.solve(gram, phi.T @ rewards).T
        return cls(np.asarray(pairs), weights, mean, scale)

    def q_values(self, features: np.ndarray) -> np.ndarray:
        """(S, P)."""
        return _quadratic(features, self.mean, self.scale) @ self.weights.T

    def choose(self, scenes: cs.CrossScenes) -> np.ndarray:
        """(S, 2) the pair of highest Q per scene."""
        return self.pairs[np.argmax(self.q_values(scene_features(scenes)), axis=1)]


def all_pairs(library: list[Segment]) -> np.ndarray:
    """(P, 2) every (left, right) pair of library episodes."""
    left = sorted({s.episode for s in library if s.arm == "left"})
    right = sorted({s.episode for s in library if s.arm == "right"})
    return np.array([(i, j) for i in left for j in right])


def pair_rewards(
    library: list[Segment],
    scenes: cs.CrossScenes,
    method: str,
    params: CouplingParams | None,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (P, 2) and its episode reward on every scene (S, P)."""
    pairs = all_pairs(library)
    rewards = np.stack(
        [
            episode_reward(
                run_choices(library, scenes, np.tile(pair, (len(scenes), 1)), method, params, dt)
            )
            for pair in pairs
        ],
        axis=1,
    )
    return pairs, rewards
