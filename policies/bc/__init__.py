"""Behavior cloning: regress expert actions from observations (``BCPolicy``, ``BCConfig``)."""

from robot_il.policies.bc.policy import BCConfig, BCPolicy

__all__ = ["BCConfig", "BCPolicy"]
