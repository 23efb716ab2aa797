"""DAC (Kostrikov et al., ICLR 2019): GAIL-style discriminator reward, off-policy actor-critic."""

from robot_il.policies.dac.learner import DAC
from robot_il.policies.dac.policy import DACConfig, DACPolicy

__all__ = ["DAC", "DACConfig", "DACPolicy"]
