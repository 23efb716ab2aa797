"""A simulated person who watches episodes and gives feedback, for tests and benchmarks.

The person rates an episode by its task success plus Gaussian noise, clipped to [0, 1], and
intervenes (rating 0, a failure) when the episode is unsafe. :class:`CandidateProfile`
stands for a trained policy by its success and unsafe probabilities, so selection can be
simulated without rolling out policies; with real rollouts the person is fed the env's
``info["is_success"]`` and whether the safety layer had to step in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Feedback:
    """What the person says about one episode: rating in [0, 1], and whether they stopped it."""

    rating: float
    intervened: bool


@dataclass(frozen=True)
class SimulatedPerson:
    """Rates ``success + N(0, noise_std^2)`` clipped to [0, 1]; intervenes when unsafe."""

    noise_std: float = 0.15

    def judge(
        self, success: np.ndarray, unsafe: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ratings and interventions for episodes (arrays or scalars of matching shape)."""
        success = np.asarray(success, dtype=float)
        unsafe = np.asarray(unsafe, dtype=bool)
        noisy = np.clip(success + self.noise_std * rng.standard_normal(success.shape), 0.0, 1.0)
        return np.where(unsafe, 0.0, noisy), unsafe

    def feedback(self, success: bool, unsafe: bool, rng: np.random.Generator) -> Feedback:
        """Feedback for one episode."""
        rating, intervened = self.judge(np.asarray(success), np.asarray(unsafe), rng)
        return Feedback(float(rating), bool(intervened))

    def expected_rating(self, success: float) -> float:
        """Mean rating of a safe episode that succeeds with probability ``success``:
        ``E[clip(x + noise)]`` is ``integral_0^1 Phi((x - y) / noise_std) dy`` for x in {0, 1}."""
        return success * self._clipped_mean(1.0) + (1.0 - success) * self._clipped_mean(0.0)

    def _clipped_mean(self, value: float) -> float:
        if self.noise_std == 0:
            return min(max(value, 0.0), 1.0)
        y = np.linspace(0.0, 1.0, 20001)
        z = (value - y) / (self.noise_std * math.sqrt(2.0))
        survival = 0.5 * (1.0 + np.array([math.erf(v) for v in z]))
        return float(np.trapezoid(survival, y))


@dataclass(frozen=True)
class CandidateProfile:
    """A synthetic candidate policy: each episode is unsafe with probability ``unsafe``,
    otherwise succeeds with probability ``success``."""

    name: str
    success: float
    unsafe: float = 0.0

    def expected_rating(self, person: SimulatedPerson) -> float:
        """The true mean reward of this arm under ``person`` (for regret)."""
        return (1.0 - self.unsafe) * person.expected_rating(self.success)


def simulate_feedback(
    profiles: list[CandidateProfile],
    arms: np.ndarray,
    person: SimulatedPerson,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Ratings and interventions when ``arms[r]`` is deployed in run r (one episode each)."""
    success_prob = np.array([p.success for p in profiles])[arms]
    unsafe_prob = np.array([p.unsafe for p in profiles])[arms]
    unsafe = rng.random(arms.shape) < unsafe_prob
    success = ~unsafe & (rng.random(arms.shape) < success_prob)
    return person.judge(success, unsafe, rng)
