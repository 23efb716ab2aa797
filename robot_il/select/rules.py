"""Bandit rules that pick the next candidate from per-arm play counts and reward sums.

Each rule is a pure function of ``counts`` and ``sums`` (float arrays of shape ``(..., K)``,
one row per independent run) and a numpy ``Generator``, and returns the chosen arm index for
every row (shape ``(...)``). Rows let tests and benchmarks run thousands of simulated
deployments at once through exactly the code a deployed :class:`~robot_il.select.Selector`
uses with a single row. Rewards are the person's ratings, in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from robot_il.errors import SelectionError


class SelectionRule(Protocol):
    """How the next arm is chosen; ``config()`` is JSON-able and rebuilds the rule."""

    name: ClassVar[str]

    def choose(self, counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Arm index per row of ``counts``/``sums`` (shape ``(..., K)`` -> ``(...)``)."""
        ...

    def config(self) -> dict[str, Any]: ...

    def validate(self, num_arms: int) -> None:
        """Raise :class:`SelectionError` if the rule cannot run over ``num_arms`` arms."""
        ...


def argmax_random_tie(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of the largest score along the last axis, ties broken uniformly at random.

    Always draws one uniform number per score, so the generator advances the same way
    whether or not there was a tie (a resumed run stays in step with an uninterrupted one).
    """
    noise = rng.random(scores.shape)
    best = scores == scores.max(axis=-1, keepdims=True)
    return np.argmax(np.where(best, noise, -1.0), axis=-1)


def empirical_means(counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Mean rating per arm; 0 for arms never played (callers treat those separately)."""
    return np.divide(sums, counts, out=np.zeros_like(sums, dtype=float), where=counts > 0)


@dataclass(frozen=True)
class UCB1:
    """UCB1 (Auer, Cesa-Bianchi, Fischer 2002): play every arm once, then the largest
    ``mean_j + sqrt(2 ln n / n_j)``, n the total number of plays."""

    name: ClassVar[str] = "ucb1"

    def choose(self, counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        total = counts.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            bonus = np.sqrt(2.0 * np.log(np.maximum(total, 1.0)) / counts)
        scores = np.where(counts > 0, empirical_means(counts, sums) + bonus, np.inf)
        return argmax_random_tie(scores, rng)

    def config(self) -> dict[str, Any]:
        return {"rule": self.name}

    def validate(self, num_arms: int) -> None:
        _require_arms(num_arms, 1)


@dataclass(frozen=True)
class ConservativeUCB:
    """Conservative UCB (Wu, Shariff, Lattimore, Szepesvari 2016).

    ``default_arm`` is the known-safe policy with known mean rating ``default_mean`` (mu0).
    With probability at least ``1 - delta`` the expected cumulative rating stays at or above
    ``(1 - alpha) * mu0 * t`` after every episode t: the UCB arm J is deployed only if the
    lower confidence bounds of the non-default episodes so far, plus LCB(J), plus mu0 per
    default episode, meet that budget; otherwise the default is deployed.

    Confidence radius (Hoeffding, union bound over arms and play counts, rewards in [0, 1]):
    ``sqrt(ln(pi^2 K n_j^2 / (3 delta)) / (2 n_j))``.
    """

    default_arm: int
    default_mean: float
    alpha: float = 0.1
    delta: float = 0.05
    name: ClassVar[str] = "conservative_ucb"

    def radius(self, counts: np.ndarray) -> np.ndarray:
        """Confidence radius per arm (inf for arms never played)."""
        num_arms = counts.shape[-1]
        n = np.maximum(counts, 1.0)
        radius = np.sqrt(np.log(math.pi**2 * num_arms * n**2 / (3.0 * self.delta)) / (2.0 * n))
        return np.where(counts > 0, radius, np.inf)

    def choose(self, counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        means = empirical_means(counts, sums)
        radius = self.radius(counts)
        is_default = np.arange(counts.shape[-1]) == self.default_arm
        upper = np.where(is_default, self.default_mean, np.minimum(means + radius, 1.0))
        lower = np.where(is_default, self.default_mean, np.maximum(means - radius, 0.0))
        ucb_arm = argmax_random_tie(upper, rng)
        played_lower = np.where(is_default, 0.0, counts * lower).sum(axis=-1)
        default_played = counts[..., self.default_arm] * self.default_mean
        candidate_lower = np.take_along_axis(lower, ucb_arm[..., None], axis=-1)[..., 0]
        t = counts.sum(axis=-1) + 1.0
        budget_ok = played_lower + candidate_lower + default_played >= (
            (1.0 - self.alpha) * self.default_mean * t
        )
        return np.where(budget_ok, ucb_arm, self.default_arm)

    def config(self) -> dict[str, Any]:
        return {"rule": self.name, **asdict(self)}

    def validate(self, num_arms: int) -> None:
        _require_arms(num_arms, 1)
        if not 0 <= self.default_arm < num_arms:
            raise SelectionError(
                f"conservative_ucb: default_arm {self.default_arm} is not one of the "
                f"{num_arms} candidates"
            )
        for field, value, low, high in (
            ("default_mean", self.default_mean, 0.0, 1.0),
            ("alpha", self.alpha, 0.0, 1.0),
            ("delta", self.delta, 1e-12, 1.0),
        ):
            if not low <= value <= high:
                raise SelectionError(f"conservative_ucb: {field}={value} is not in [{low}, {high}]")


@dataclass(frozen=True)
class EpsilonGreedy:
    """Baseline: play every arm once, then with probability ``epsilon`` a uniformly random
    arm, otherwise the best empirical mean."""

    epsilon: float = 0.1
    name: ClassVar[str] = "epsilon_greedy"

    def choose(self, counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        batch = counts.shape[:-1]
        explore = rng.random(batch) < self.epsilon
        random_arm = rng.integers(counts.shape[-1], size=batch)
        scores = np.where(counts > 0, empirical_means(counts, sums), np.inf)
        greedy = argmax_random_tie(scores, rng)
        return np.where(explore, random_arm, greedy)

    def config(self) -> dict[str, Any]:
        return {"rule": self.name, **asdict(self)}

    def validate(self, num_arms: int) -> None:
        _require_arms(num_arms, 1)
        if not 0.0 <= self.epsilon <= 1.0:
            raise SelectionError(f"epsilon_greedy: epsilon={self.epsilon} is not in [0, 1]")


@dataclass(frozen=True)
class Uniform:
    """Baseline: every episode a uniformly random candidate, ignoring feedback."""

    name: ClassVar[str] = "uniform"

    def choose(self, counts: np.ndarray, sums: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(counts.shape[-1], size=counts.shape[:-1])

    def config(self) -> dict[str, Any]:
        return {"rule": self.name}

    def validate(self, num_arms: int) -> None:
        _require_arms(num_arms, 1)


RULES: dict[str, type] = {
    rule.name: rule for rule in (UCB1, ConservativeUCB, EpsilonGreedy, Uniform)
}


def rule_from_config(config: dict[str, Any]) -> SelectionRule:
    """Rebuild a rule from its ``config()`` (as stored in a selector's state file)."""
    params = dict(config)
    name = params.pop("rule", None)
    if name not in RULES:
        raise SelectionError(f"unknown selection rule {name!r}; known: {', '.join(RULES)}")
    try:
        return RULES[name](**params)
    except TypeError as error:
        raise SelectionError(f"selection rule {name!r}: bad parameters {params}: {error}") from None


def _require_arms(num_arms: int, minimum: int) -> None:
    if num_arms < minimum:
        raise SelectionError(f"need at least {minimum} candidate(s), got {num_arms}")
