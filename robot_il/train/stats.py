"""Statistics for judging rollouts: success-rate intervals and a two-sample permutation test.

Success of a policy over ``n`` evaluation episodes is a binomial proportion. The Wilson score
interval keeps its stated coverage for small ``n`` and rates near 0 or 1, where the normal
(Wald) interval collapses to a point; the permutation test asks whether one policy's episodes
succeed more often than another's without assuming any distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_95 = 1.959963984540054
"""Two-sided 95% quantile of the standard normal."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for a success rate of ``successes / trials``."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return (max(0.0, centre - half), min(1.0, centre + half))


def success_line(successes: int, episodes: int) -> str:
    """``success k/n = p% (95% CI lo%-hi%)``: how every command reports a success rate."""
    low, high = wilson_interval(successes, episodes)
    rate = successes / episodes if episodes else 0.0
    return f"success {successes}/{episodes} = {rate:.0%} (95% CI {low:.0%}-{high:.0%})"


def permutation_test(
    treated: Sequence[float],
    baseline: Sequence[float],
    *,
    permutations: int = 10_000,
    seed: int = 0,
) -> float:
    """One-sided p-value that ``mean(treated) > mean(baseline)`` arose by chance.

    The labels of the pooled samples are shuffled ``permutations`` times; the p-value counts
    shuffles whose mean difference is at least the observed one (plus one, so p is never 0).
    """
    a = np.asarray(treated, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    pooled = np.concatenate([a, b])
    observed = a.mean() - b.mean()
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((permutations, pooled.size)), axis=1)
    shuffled = pooled[perms]
    diffs = shuffled[:, : a.size].mean(axis=1) - shuffled[:, a.size :].mean(axis=1)
    return float((np.sum(diffs >= observed - 1e-12) + 1) / (permutations + 1))
