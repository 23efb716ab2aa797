"""Train/validation split by whole episodes, so no validation step shares an episode with a
training step (neighbouring steps are near-duplicates and would inflate validation scores)."""

from __future__ import annotations

import numpy as np

from robot_il.errors import DatasetError


def split_episodes(
    num_episodes: int, val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Sorted (train, validation) episode ids; the same arguments always give the same split.

    The validation set has ``round(num_episodes * val_fraction)`` episodes, at least one when
    ``val_fraction > 0`` and at most ``num_episodes - 1`` (training is never left empty).
    """
    if num_episodes < 1:
        raise DatasetError(f"split: need at least one episode, got {num_episodes}")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"split: val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(num_episodes * val_fraction)
    if val_fraction > 0:
        n_val = min(max(n_val, 1), num_episodes - 1)
    order = np.random.default_rng(seed).permutation(num_episodes)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())
