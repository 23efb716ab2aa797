"""The safety layer between every policy and every robot (pure Python, no ROS).

``SafetyFilter(limits, fk).filter(q_cmd, q_measured, t)`` turns a policy's joint target into a
command that respects joint position, velocity and acceleration limits and a workspace box,
and stops the arm on NaN/inf, stale observations or late inference (a controlled stop, at the
acceleration limit) and on a latched e-stop (at once). Every
intervention is a typed ``SafetyEvent``. In a two-arm cell, ``ClearanceGuard`` then keeps the
arms' links a clearance apart.
"""

from robot_il.safety.clearance import ClearanceGuard
from robot_il.safety.events import HOLD_INTERVENTIONS, Intervention, SafetyEvent
from robot_il.safety.filter import SafeCommand, SafetyFilter
from robot_il.safety.limits import SafetyLimits

__all__ = [
    "ClearanceGuard",
    "HOLD_INTERVENTIONS",
    "Intervention",
    "SafeCommand",
    "SafetyEvent",
    "SafetyFilter",
    "SafetyLimits",
]
