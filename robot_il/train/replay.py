"""Transition buffers of the online loop: the agent's own experience and the expert's.

Both hold flat float32 vectors (observations concatenated in the policy encoder's order, see
``flatten_observation``) in arrays allocated once, and sample uniformly with the caller's
numpy ``Generator`` (one ``integers`` call, O(batch)), so a run's sampling is reproducible
from its saved generator state.

A transition is ``(obs, action, next_obs, terminated)``: ``terminated`` is gymnasium's, a
true terminal state after which the value is zero. A time limit (``truncated``) is *not*
stored as a terminal: the next observation is still bootstrapped from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from robot_il.errors import CheckpointError, ConfigError, DatasetError
from robot_il.policies.spec import ACTION_KEY

if TYPE_CHECKING:
    from robot_il.dataset import Normalizer

FIELDS = ("obs", "action", "next_obs", "terminated")


def flatten_observation(
    obs: Mapping[str, np.ndarray], keys: Sequence[str], normalizer: Normalizer | None = None
) -> np.ndarray:
    """``obs[k]`` for ``k`` in ``keys`` (pass them sorted, as ``ObservationEncoder`` takes
    them), each mapped by ``normalizer`` when given (as the policy's ``act`` maps them),
    flattened and concatenated into one float32 vector."""
    return np.concatenate([_normalized(obs[k], k, normalizer).reshape(-1) for k in keys])


def _normalized(value: np.ndarray, key: str, normalizer: Normalizer | None) -> np.ndarray:
    value = np.asarray(value, dtype=np.float32)
    return value if normalizer is None else normalizer.normalize(key, value)


@dataclass
class Batch:
    """A sampled batch of transitions (numpy, float32; ``terminated`` as 0.0 / 1.0)."""

    obs: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray


class ReplayBuffer:
    """A ring buffer of ``capacity`` transitions; the oldest is overwritten when full."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        if capacity < 1:
            raise ConfigError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros((capacity,), np.float32)
        self.size = 0
        self.cursor = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, terminated: bool
    ) -> None:
        i = self.cursor
        self.obs[i] = obs
        self.action[i] = action
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def extend(
        self, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray
    ) -> None:
        """Add the rows of these arrays in order, as ``add`` one at a time would."""
        index = (self.cursor + np.arange(len(obs))) % self.capacity
        self.obs[index], self.action[index], self.next_obs[index] = obs, action, next_obs
        self.terminated[index] = terminated
        self.cursor = int((self.cursor + len(obs)) % self.capacity)
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ConfigError("cannot sample from an empty buffer")
        index = rng.integers(0, self.size, batch_size)
        return Batch(self.obs[index], self.action[index], self.next_obs[index],
                     self.terminated[index])  # fmt: skip

    def save(self, path: Path | BinaryIO) -> None:
        """Write the filled part and the cursor to an ``.npz`` file (or binary stream)."""
        n = self.size
        np.savez(path, size=n, cursor=self.cursor, capacity=self.capacity,
                 **{f: getattr(self, f)[:n] for f in FIELDS})  # fmt: skip

    def load(self, path: Path | BinaryIO) -> None:
        """Restore what ``save`` wrote, into a buffer of the same row sizes. At the saved
        capacity every row keeps its place (sampling continues as it would have); at another
        capacity that holds the saved transitions (a run given a larger budget, whose buffer
        is sized by it) they are stored oldest first and the next one follows them, as a
        buffer of that capacity that never wrapped holds them."""
        with np.load(path) as saved:
            n, capacity, cursor = int(saved["size"]), int(saved["capacity"]), int(saved["cursor"])
            if saved["obs"].shape[1:] != self.obs.shape[1:] or (
                saved["action"].shape[1:] != self.action.shape[1:]
            ):
                raise CheckpointError(f"{path}: replay buffer shape differs from this config")
            if n > self.capacity:
                raise CheckpointError(
                    f"{path}: the saved replay buffer holds {n} transitions, more than this "
                    f"run's capacity {self.capacity} (buffer_size, or env_steps when it is 0)"
                )
            if capacity == self.capacity:
                order, self.cursor = slice(None), cursor
            else:  # a full ring's oldest row is at its cursor; a partial one's at 0
                order, self.cursor = (cursor + np.arange(n)) % n, n % self.capacity
            for f in FIELDS:
                getattr(self, f)[:n] = saved[f][order]
            self.size = n


def expert_buffer(
    dataset: object,
    obs_keys: Sequence[str],
    *,
    episodes: int,
    subsample: int,
    seed: int,
    normalizer: Normalizer | None = None,
) -> ReplayBuffer:
    """The expert transitions of a dataset's first ``episodes`` episodes, whole trajectories.

    A recorded step holds the observation the action was chosen from, so each episode of T
    steps gives T - 1 transitions ``(obs_t, action_t, obs_{t+1})`` (its last action has no
    recorded next observation). All are marked non-terminal (the expert's trajectories are
    cut by time limits). ``subsample`` k keeps every k-th transition from a random offset per
    episode (GAIL's subsampling). Observations are mapped by ``normalizer`` when given, as
    ``flatten_observation`` maps the agent's. NaN or inf anywhere raises ``DatasetError``
    naming the key and episode.
    """
    if subsample < 1:
        raise ConfigError(f"demo_subsample must be >= 1, got {subsample}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"obs": [], "action": [], "next_obs": []}
    longest = 0  # steps
    for episode in range(episodes):
        data = dataset.episode(episode, [*obs_keys, ACTION_KEY])  # type: ignore[attr-defined]
        for key, values in data.items():
            if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
                raise DatasetError(
                    f"{dataset.where}: key {key!r} of episode {episode} holds NaN or inf"  # type: ignore[attr-defined]
                )
        length = len(data[ACTION_KEY])
        longest = max(longest, length)
        if length < 2:
            continue
        flat = np.concatenate(
            [_normalized(data[k], k, normalizer).reshape(length, -1) for k in obs_keys], axis=1
        )
        keep = np.arange(int(rng.integers(0, subsample)) if subsample > 1 else 0, length - 1,
                         subsample)  # fmt: skip
        parts["obs"].append(flat[keep])
        parts["action"].append(np.asarray(data[ACTION_KEY], np.float32)[keep])
        parts["next_obs"].append(flat[keep + 1])
    total = sum(len(p) for p in parts["obs"])
    if total == 0 and longest > 1:  # every episode's offset fell past its last transition
        where = dataset.where  # type: ignore[attr-defined]
        most = longest - 1
        raise ConfigError(f"{where}: demo_subsample {subsample} keeps no transition: its "
                          f"longest episode has {most}; take at most {most}")  # fmt: skip
    if total == 0:
        raise DatasetError(f"{dataset.where}: no expert transitions in {episodes} episode(s)")  # type: ignore[attr-defined]
    buffer = ReplayBuffer(total, parts["obs"][0].shape[1], parts["action"][0].shape[1])
    buffer.obs[:] = np.concatenate(parts["obs"])
    buffer.action[:] = np.concatenate(parts["action"])
    buffer.next_obs[:] = np.concatenate(parts["next_obs"])
    buffer.size = total
    return buffer
