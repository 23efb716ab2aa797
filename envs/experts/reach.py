"""Reach expert: straight to the target, pointing down."""

from __future__ import annotations

import numpy as np
from robot_il.envs.experts.base import Expert, Waypoint, tcp_at


class ReachExpert(Expert):
    """Moves the TCP in a straight line to ``target_pos`` and holds it there."""

    def plan(self, obs: dict[str, np.ndarray]) -> list[Waypoint]:
        target = obs["target_pos"].astype(np.float64)
        return [Waypoint({"": tcp_at(target)}, {"": 0.0}, tolerance=0.005)]
