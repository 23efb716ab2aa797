"""Bandit rules on synthetic arms: UCB1's regret bound and logarithmic growth, and the
conservative UCB's performance constraint, checked over many runs at once."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_il.errors import SelectionError
from robot_il.select import (
    UCB1,
    CandidateProfile,
    ConservativeUCB,
    EpsilonGreedy,
    SimulatedPerson,
    Uniform,
    rule_from_config,
    simulate_feedback,
)

BERNOULLI_MEANS = np.array([0.9, 0.6, 0.5, 0.3])


def bernoulli_pseudo_regret(rule, horizon: int, runs: int, seed: int) -> np.ndarray:
    """Cumulative pseudo-regret (runs, horizon): sum of gaps of the arms played."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((runs, len(BERNOULLI_MEANS)))
    sums = np.zeros_like(counts)
    gaps = BERNOULLI_MEANS.max() - BERNOULLI_MEANS
    regret = np.zeros((runs, horizon))
    rows = np.arange(runs)
    for t in range(horizon):
        arms = rule.choose(counts, sums, rng)
        rewards = rng.random(runs) < BERNOULLI_MEANS[arms]
        counts[rows, arms] += 1
        sums[rows, arms] += rewards
        regret[:, t] = gaps[arms]
    return regret.cumsum(axis=1)


def ucb1_bound(n: int) -> float:
    """Auer et al. 2002, Theorem 1: expected regret after n plays."""
    gaps = BERNOULLI_MEANS.max() - BERNOULLI_MEANS
    positive = gaps[gaps > 0]
    return 8 * np.sum(math.log(n) / positive) + (1 + math.pi**2 / 3) * gaps.sum()


@pytest.fixture(scope="module")
def ucb1_regret() -> np.ndarray:
    return bernoulli_pseudo_regret(UCB1(), horizon=8000, runs=200, seed=1)


def test_ucb1_regret_stays_within_the_bound(ucb1_regret):
    mean_regret = ucb1_regret.mean(axis=0)
    for n in (10, 100, 500, 1000, 2000, 4000, 8000):
        assert mean_regret[n - 1] <= ucb1_bound(n), n
    # The bound is not vacuous here: ignoring feedback breaks it.
    uniform = bernoulli_pseudo_regret(Uniform(), horizon=4000, runs=50, seed=1).mean(axis=0)
    assert uniform[-1] > ucb1_bound(4000)


def test_ucb1_regret_grows_logarithmically(ucb1_regret):
    mean_regret = ucb1_regret.mean(axis=0)

    def at(n: int) -> float:
        return mean_regret[n - 1]

    # Quadrupling n adds far less than 4x the regret ...
    assert at(8000) / at(2000) < 1.7
    # ... and each doubling of n adds about the same regret (log n), not twice as much.
    assert at(8000) - at(4000) < 1.3 * (at(2000) - at(1000))
    # The same check fails for a linear-regret baseline.
    uniform = bernoulli_pseudo_regret(Uniform(), horizon=4000, runs=50, seed=2).mean(axis=0)
    assert uniform[3999] / uniform[999] > 3.5


# Default (known-safe) arm 0 with mean rating mu0; one better arm, one mediocre, two unsafe.
PROFILES = [
    CandidateProfile("safe_default", success=0.6),
    CandidateProfile("best", success=0.9, unsafe=0.02),
    CandidateProfile("mediocre", success=0.5, unsafe=0.05),
    CandidateProfile("reckless", success=0.3, unsafe=0.5),
    CandidateProfile("broken", success=0.0, unsafe=0.8),
]
PERSON = SimulatedPerson(noise_std=0.15)


def run_selection(rule, horizon: int, runs: int, seed: int) -> np.ndarray:
    """Arms played (runs, horizon) against the simulated person."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((runs, len(PROFILES)))
    sums = np.zeros_like(counts)
    rows = np.arange(runs)
    played = np.zeros((runs, horizon), dtype=int)
    for t in range(horizon):
        arms = rule.choose(counts, sums, rng)
        ratings, _ = simulate_feedback(PROFILES, arms, PERSON, rng)
        counts[rows, arms] += 1
        sums[rows, arms] += ratings
        played[:, t] = arms
    return played


def constraint_slack(played: np.ndarray, mu0: float, alpha: float) -> np.ndarray:
    """sum_{s<=t} mu_{I_s} - (1 - alpha) mu0 t per run and t (negative = violated)."""
    means = np.array([p.expected_rating(PERSON) for p in PROFILES])
    t = np.arange(1, played.shape[1] + 1)
    return means[played].cumsum(axis=1) - (1 - alpha) * mu0 * t


def test_conservative_ucb_never_violates_its_constraint():
    mu0 = PROFILES[0].expected_rating(PERSON)
    alpha = 0.1
    rule = ConservativeUCB(default_arm=0, default_mean=mu0, alpha=alpha, delta=0.05)
    played = run_selection(rule, horizon=1000, runs=1000, seed=3)
    slack = constraint_slack(played, mu0, alpha)
    assert (slack >= -1e-9).all(), f"{(slack.min(axis=1) < 0).sum()} runs violated"
    # It still learns: once its confidence has grown, the better candidate is deployed.
    assert (played[:, :100] == 0).mean() > 0.8
    assert (played[:, -100:] == 1).mean() > 0.9
    # The constraint binds: plain UCB1 breaks it in most runs while exploring.
    ucb_slack = constraint_slack(run_selection(UCB1(), 300, 200, seed=3), mu0, alpha)
    assert (ucb_slack.min(axis=1) < 0).mean() > 0.5


@pytest.mark.parametrize(
    "rule",
    [UCB1(), ConservativeUCB(0, 0.5, 0.2, 0.01), EpsilonGreedy(0.2), Uniform()],
    ids=lambda rule: rule.name,
)
def test_rule_config_round_trips_and_single_rows_work(rule):
    assert rule_from_config(rule.config()) == rule
    counts, sums = np.array([3.0, 1.0, 0.0]), np.array([1.5, 0.9, 0.0])
    arm = rule.choose(counts, sums, np.random.default_rng(0))
    assert arm.shape == () and 0 <= int(arm) < 3


def test_bad_rule_configs_are_refused():
    with pytest.raises(SelectionError, match="unknown selection rule 'thompson'"):
        rule_from_config({"rule": "thompson"})
    with pytest.raises(SelectionError, match="default_arm 4"):
        ConservativeUCB(default_arm=4, default_mean=0.5).validate(3)
    with pytest.raises(SelectionError, match="epsilon=1.5"):
        EpsilonGreedy(1.5).validate(3)
