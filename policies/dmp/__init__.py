"""Dynamic Movement Primitives for one or two UR5e arms (numpy; see ``primitive``)."""

from robot_il.policies.dmp.primitive import DMP, DMPState, PoseDMP, QuaternionDMP

__all__ = ["DMP", "DMPState", "PoseDMP", "QuaternionDMP"]
