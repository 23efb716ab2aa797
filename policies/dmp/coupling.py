"""How two DMP-driven arms keep apart: a repulsive coupling term and a phase law.

Repulsion: the closest pair of link capsules of the two arms (``robot_il.envs.separation``)
pushes each arm's tool away from the other along the line between the two closest points,
with an acceleration (m/s^2) that grows quadratically from 0 at ``repulsion_range`` m of
separation to ``repulsion_gain`` at contact. Distances are metres, whatever a move's length.

Phase law: both arms' configurations are extrapolated ``lookahead`` s along their nominal
(unslowed) DMP velocities; when the predicted separation falls below ``slow_distance`` the arm
that is behind in its move yields: its phase rate falls linearly to 0 at ``stop_distance``. The
leader slows only if the current separation itself falls below ``leader_slow_distance``. Every
phase rate changes by at most ``phase_rate_limit`` per second, so the tool's speed changes
continuously and its acceleration stays bounded (a phase rate multiplies the velocity).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from robot_il.envs.separation import clamp_unit


@dataclass(frozen=True)
class CouplingParams:
    """Hand-set coupling and phase-law parameters (m, s, m/s^2); see the module docstring."""

    repulsion_gain: float = 6.0
    repulsion_range: float = 0.12
    lookahead: float = 0.35
    slow_distance: float = 0.16
    stop_distance: float = 0.06
    leader_slow_distance: float = 0.03
    phase_rate_limit: float = 4.0

    def to_vector(self) -> np.ndarray:
        """The parameters as a vector (the CMA-ES search space, in field order)."""
        return np.array(dataclasses.astuple(self), dtype=np.float64)

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> CouplingParams:
        """Parameters from a vector, clipped to their meaningful ranges."""
        low, high = PARAM_BOUNDS
        values = np.clip(np.asarray(vector, dtype=np.float64), low, high)
        params = cls(*(float(v) for v in values))
        # The yielding arm must start slowing before it stops.
        if params.slow_distance <= params.stop_distance + 0.01:
            params = dataclasses.replace(params, slow_distance=params.stop_distance + 0.01)
        return params


PARAM_BOUNDS = (
    np.array([0.0, 0.02, 0.0, 0.02, 0.0, 0.0, 0.5]),
    np.array([40.0, 0.4, 1.5, 0.6, 0.4, 0.2, 20.0]),
)
"""Lower and upper bounds of each ``CouplingParams`` field, in field order."""


@lru_cache(maxsize=64)
def phase_ramps(params: CouplingParams) -> tuple[np.ndarray, np.ndarray]:
    """The leader's and the yielder's phase-rate targets as ramps over the separation,
    (2, 1) lows and widths (m, read-only): ``clamp_unit((d - lows) / widths)`` for separations
    d (2, B) is 0 at or below the low, 1 at or above low + width, linear between; the leader's
    ramp runs from ``leader_slow_distance`` - 0.02 to ``leader_slow_distance``, the yielder's
    from ``stop_distance`` to ``slow_distance``. Kept per parameter set (a control tick asks
    every time)."""
    stops = (params.leader_slow_distance - 0.02, params.stop_distance)
    slows = (params.leader_slow_distance, params.slow_distance)
    widths = [max(slow - stop, 1e-9) for stop, slow in zip(stops, slows, strict=True)]
    ramps = np.array(stops)[:, None], np.array(widths)[:, None]
    for ramp in ramps:
        ramp.flags.writeable = False
    return ramps


def repulsion(
    separation: np.ndarray, direction: np.ndarray, gain: float, reach: float
) -> np.ndarray:
    """Repulsive acceleration (..., 3) m/s^2 along ``direction`` (..., 3, unit) for capsule
    separations (...,) m: ``gain (1 - d / reach)^2`` inside ``reach``, 0 beyond, ``gain`` at
    and below contact."""
    closeness = clamp_unit(1.0 - separation / max(reach, 1e-9))
    return (gain * closeness**2)[..., None] * direction


def rate_limited(current: np.ndarray, target: np.ndarray, limit: float, dt: float) -> np.ndarray:
    """``current`` moved towards ``target`` by at most ``limit * dt``."""
    return current + np.minimum(np.maximum(target - current, -limit * dt), limit * dt)
