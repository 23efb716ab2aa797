"""Training windows: fixed-length sequences cut from episodes, padded by repeating the edges.

A window starting at global step ``s`` covers ``[s, s + horizon)``; where that range leaves
its episode, the first or last step of the episode is repeated (never a neighbouring
episode's step). Observation keys keep only the first ``n_obs_steps`` steps of the window,
the ones a policy conditions on; the rest of the window is the action horizon.

All window bounds are computed once, vectorised, as a (N, 3) array of (start, episode start,
episode end), so fetching a window is a few slices and no Python loop over steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robot_il.dataset.reader import Dataset
from robot_il.errors import DatasetError


class SequenceSampler:
    """Indexable windows over some episodes of a dataset.

    ``pad_before`` (default ``n_obs_steps - 1``) and ``pad_after`` (default
    ``horizon - n_obs_steps``) bound how far a window may hang over an episode's start and
    end. With the defaults every step of every episode is the current (last observed) step of
    exactly one window, so ``len(sampler)`` equals the number of steps in ``episodes``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        keys: Sequence[str],
        obs_keys: Sequence[str],
        horizon: int,
        n_obs_steps: int,
        episodes: Sequence[int] | None = None,
        pad_before: int | None = None,
        pad_after: int | None = None,
    ) -> None:
        if horizon < 1 or not 1 <= n_obs_steps <= horizon:
            raise DatasetError(
                f"sampler: need horizon >= 1 and 1 <= n_obs_steps <= horizon, got "
                f"horizon={horizon}, n_obs_steps={n_obs_steps}"
            )
        pad_before = n_obs_steps - 1 if pad_before is None else pad_before
        pad_after = horizon - n_obs_steps if pad_after is None else pad_after
        if not 0 <= pad_before < horizon or not 0 <= pad_after < horizon:
            raise DatasetError(
                f"sampler: pad_before and pad_after must be in [0, horizon), got "
                f"{pad_before}, {pad_after}"
            )
        wanted = list(dict.fromkeys([*keys, *obs_keys]))
        missing = [key for key in wanted if key not in dataset.specs]
        if missing:
            raise DatasetError(f"{dataset.where}: sampler key {missing[0]!r} is not in the dataset")
        self.dataset = dataset
        self.horizon = horizon
        self.n_obs_steps = n_obs_steps
        self.episodes = (
            list(range(dataset.num_episodes)) if episodes is None else [int(e) for e in episodes]
        )
        obs = set(obs_keys)
        self._window_lengths = {key: (n_obs_steps if key in obs else horizon) for key in wanted}
        self._plan = [(key, n, dataset.arrays[key]) for key, n in self._window_lengths.items()]
        self._bounds = _window_bounds(dataset, self.episodes, horizon, pad_before, pad_after)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["_plan"]  # holds store readers; rebuilt from the (re-opened) dataset
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._plan = [(k, n, self.dataset.arrays[k]) for k, n in self._window_lengths.items()]

    def __len__(self) -> int:
        return int(self._bounds.shape[0])

    @property
    def bounds(self) -> np.ndarray:
        """(N, 3) int64: window start, episode start, episode end (global steps)."""
        return self._bounds

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """Window ``index``: key -> (n_obs_steps or horizon, *shape). Windows may be
        read-only views of a cache; copy before editing in place."""
        start, low, high = self._bounds[index].tolist()  # IndexError when out of range
        window = {}
        for key, length, rows in self._plan:
            stop = start + length
            if start >= low and stop <= high:
                window[key] = rows[start:stop]
            else:  # repeat the edge steps; read at least one row, since an observation
                # window may lie wholly before its episode (pad_before >= n_obs_steps)
                first = max(start, low)
                steps = rows[first : min(max(stop, first + 1), high)]
                window[key] = steps[np.clip(np.arange(start, stop), low, high - 1) - first]
        return window

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Windows ``indices`` stacked: key -> (B, length, *shape), in one fancy index per key
        when the dataset is in RAM (much cheaper than B separate windows)."""
        indices = np.asarray(indices, dtype=np.int64)
        if not all(isinstance(a, np.ndarray) for a in self.dataset.arrays.values()):
            items = [self[int(i)] for i in indices]
            return {key: np.stack([item[key] for item in items]) for key in self._window_lengths}
        bounds = self._bounds[indices]
        start, low, high = bounds[:, :1], bounds[:, 1:2], bounds[:, 2:] - 1
        batch = {}
        for key, length in self._window_lengths.items():
            steps = np.clip(start + np.arange(length), low, high)
            batch[key] = self.dataset.arrays[key][steps]
        return batch


def _window_bounds(
    dataset: Dataset, episodes: list[int], horizon: int, pad_before: int, pad_after: int
) -> np.ndarray:
    if not episodes:
        return np.zeros((0, 3), dtype=np.int64)
    ids = np.asarray(episodes, dtype=np.int64)
    if ids.min() < 0 or ids.max() >= dataset.num_episodes:
        raise DatasetError(
            f"{dataset.where}: sampler episodes must be in [0, {dataset.num_episodes}), "
            f"got {ids.min()}..{ids.max()}"
        )
    ends = dataset.episode_ends[ids].astype(np.int64)
    starts = np.where(ids > 0, dataset.episode_ends[np.maximum(ids - 1, 0)], 0).astype(np.int64)
    counts = np.maximum(ends - starts - horizon + pad_before + pad_after + 1, 0)
    total = int(counts.sum())
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    bounds = np.empty((total, 3), dtype=np.int64)
    bounds[:, 0] = np.repeat(starts - pad_before, counts) + offsets
    bounds[:, 1] = np.repeat(starts, counts)
    bounds[:, 2] = np.repeat(ends, counts)
    return bounds
