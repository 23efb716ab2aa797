"""IQ-Learn (Garg et al., NeurIPS 2021): inverse soft-Q learning, online, with a fixed
temperature."""

from robot_il.policies.iq_learn.learner import IQLearn
from robot_il.policies.iq_learn.policy import IQLearnConfig, IQLearnPolicy

__all__ = ["IQLearn", "IQLearnConfig", "IQLearnPolicy"]
