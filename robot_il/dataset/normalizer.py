"""Per-key affine normalisation fitted on a dataset: min/max to [-1, 1], or mean/std.

Every key is stored as ``y = x * scale + offset`` plus the raw statistics it came from, so a
checkpoint carries one flat ``dict[str, np.ndarray]`` (safetensors-ready) and applying it
needs no knowledge of the mode. Statistics are per feature for vector keys and per channel
(last axis) for images and other rank >= 2 keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from robot_il.dataset.reader import Dataset
from robot_il.errors import DatasetError

Mode = Literal["minmax", "gaussian"]
#: Ranges and standard deviations below this are treated as constant features: they are
#: centred but not scaled, instead of being blown up into noise.
MIN_SPREAD = 1e-4
_STATS = ("scale", "offset", "min", "max", "mean", "std")


class Normalizer:
    """Maps each key to a normalised range and back; works on numpy arrays and torch tensors."""

    def __init__(self, params: dict[str, dict[str, np.ndarray]]) -> None:
        self._params = params

    @classmethod
    def fit(
        cls,
        dataset: Dataset,
        keys: Sequence[str],
        mode: Mode | dict[str, Mode] = "minmax",
        episodes: Sequence[int] | None = None,
        spread_floor: float = 0.0,
    ) -> Normalizer:
        """Statistics of ``keys`` over ``episodes`` (all by default; pass the training split
        so validation data does not leak into the normaliser). ``mode`` may differ per key.
        ``spread_floor`` (in each feature's own units): a range or std above ``MIN_SPREAD``
        but below it is taken as ``spread_floor`` (the feature centred), so that a feature
        nearly constant in the data does not map a small departure from it (as a learner
        exploring makes) to a large value."""
        episodes = list(range(dataset.num_episodes)) if episodes is None else list(episodes)
        if not episodes:
            raise DatasetError(f"{dataset.where}: cannot fit a normalizer on zero episodes")
        params = {}
        for key in tqdm(keys, desc="normalizer statistics", unit="key", disable=None):
            if key not in dataset.specs:
                raise DatasetError(f"{dataset.where}: normalizer key {key!r} is not in the dataset")
            key_mode = mode[key] if isinstance(mode, dict) else mode
            chunks = (dataset.episode(e, [key])[key] for e in episodes)
            params[key] = _affine(_Stats.over(chunks), key_mode, key, spread_floor)
        return cls(params)

    @classmethod
    def fit_arrays(cls, arrays: dict[str, np.ndarray], mode: Mode = "minmax") -> Normalizer:
        """Statistics of time-major arrays held in memory (for data outside a dataset)."""
        return cls(
            {key: _affine(_Stats.over([np.asarray(a)]), mode, key) for key, a in arrays.items()}
        )

    @property
    def keys(self) -> list[str]:
        return list(self._params)

    def stats(self, key: str) -> dict[str, np.ndarray]:
        return dict(self._param(key))

    def normalize(self, key: str, x: Any) -> Any:
        params = self._param(key)
        return x * _like(params["scale"], x) + _like(params["offset"], x)

    def unnormalize(self, key: str, x: Any) -> Any:
        params = self._param(key)
        return (x - _like(params["offset"], x)) / _like(params["scale"], x)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``"<key>.<stat>" -> float32 array``, e.g. for ``safetensors.numpy.save_file``."""
        return {
            f"{key}.{name}": value for key, p in self._params.items() for name, value in p.items()
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Normalizer:
        params: dict[str, dict[str, np.ndarray]] = {}
        for name, value in state.items():
            key, _, stat = name.rpartition(".")
            if not key or stat not in _STATS:
                raise DatasetError(f"normalizer state: unexpected entry {name!r}")
            params.setdefault(key, {})[stat] = np.asarray(
                value.cpu().numpy() if hasattr(value, "cpu") else value, dtype=np.float32
            )
        for key, p in params.items():
            missing = [stat for stat in _STATS if stat not in p]
            if missing:
                raise DatasetError(f"normalizer state: key {key!r} lacks {missing}")
        return cls(params)

    def _param(self, key: str) -> dict[str, np.ndarray]:
        try:
            return self._params[key]
        except KeyError:
            raise DatasetError(
                f"normalizer: no statistics for key {key!r} (has {self.keys})"
            ) from None


class _Stats:
    """Running min, max, mean and std over the time axis (and image pixels), in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.total: np.ndarray | float = 0.0
        self.squares: np.ndarray | float = 0.0
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None

    @classmethod
    def over(cls, chunks: Iterable[np.ndarray]) -> _Stats:
        stats = cls()
        for chunk in chunks:
            stats.add(chunk)
        return stats

    def add(self, chunk: np.ndarray) -> None:
        features = chunk.shape[-1] if chunk.ndim > 1 else 1  # (T,) holds a scalar per step
        flat = chunk.reshape(-1, features).astype(np.float64)
        lo, hi = flat.min(axis=0), flat.max(axis=0)
        self.min = lo if self.min is None else np.minimum(self.min, lo)
        self.max = hi if self.max is None else np.maximum(self.max, hi)
        self.total = self.total + flat.sum(axis=0)
        self.squares = self.squares + np.square(flat).sum(axis=0)
        self.count += flat.shape[0]


def _affine(stats: _Stats, mode: str, key: str, floor: float = 0.0) -> dict[str, np.ndarray]:
    if stats.count == 0 or stats.min is None or stats.max is None:
        raise DatasetError(f"normalizer: key {key!r} has no data")
    mean = np.asarray(stats.total) / stats.count
    std = np.sqrt(np.maximum(np.asarray(stats.squares) / stats.count - mean**2, 0.0))
    raw = {"min": stats.min, "max": stats.max, "mean": mean, "std": std}
    for name, value in raw.items():  # an inf in the data gives scale 0 or NaN: refuse it
        bad = np.flatnonzero(~np.isfinite(value))
        if bad.size:
            raise DatasetError(
                f"normalizer: key {key!r} feature {int(bad[0])}: {name} is {value[bad[0]]} "
                "(NaN or inf in the data, or values too large to square)"
            )
    if mode == "minmax":
        spread = stats.max - stats.min
        scale = np.where(spread > MIN_SPREAD, 2.0 / np.maximum(spread, MIN_SPREAD), 1.0)
        offset = -1.0 - stats.min * scale
        if floor > 0:
            floored = (spread > MIN_SPREAD) & (spread < floor)
            scale = np.where(floored, 2.0 / floor, scale)
            offset = np.where(floored, -(stats.max + stats.min) / 2.0 * scale, offset)
        offset = np.where(spread > MIN_SPREAD, offset, -(stats.max + stats.min) / 2.0)
    elif mode == "gaussian":
        scale = np.where(std > MIN_SPREAD, 1.0 / np.maximum(std, max(MIN_SPREAD, floor)), 1.0)
        offset = -mean * scale
    else:
        raise DatasetError(
            f"normalizer: mode for {key!r} must be 'minmax' or 'gaussian', got {mode!r}"
        )
    values = {"scale": scale, "offset": offset, **raw}
    return {name: np.asarray(v, dtype=np.float32) for name, v in values.items()}


def _like(value: np.ndarray, x: Any) -> Any:
    """``value`` as the same kind of array as ``x`` (torch tensors keep device and dtype)."""
    if isinstance(x, np.ndarray):
        return value.astype(x.dtype) if x.dtype.kind == "f" else value
    if hasattr(x, "new_tensor"):
        return x.new_tensor(value)
    return value
