"""Diffusion Policy (Chi et al. 2023): denoise action chunks conditioned on observations."""

from robot_il.policies.diffusion.policy import DiffusionConfig, DiffusionPolicy

__all__ = ["DiffusionConfig", "DiffusionPolicy"]
