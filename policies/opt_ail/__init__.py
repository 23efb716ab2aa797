"""OPT-AIL (Xu et al., NeurIPS 2024): online adversarial imitation with an optimistic critic."""

from robot_il.policies.opt_ail.learner import OPTAIL
from robot_il.policies.opt_ail.policy import OPTAILConfig, OPTAILPolicy

__all__ = ["OPTAIL", "OPTAILConfig", "OPTAILPolicy"]
