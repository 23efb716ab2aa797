"""OPT-AIL (Xu et al., NeurIPS 2024): online adversarial imitation with an optimistic critic,
model-free or model-based (arXiv 2605.01778)."""

from robot_il.policies.opt_ail.learner import OPTAIL
from robot_il.policies.opt_ail.policy import OPTAILConfig, OPTAILPolicy


def opt_ail_learner(policy: OPTAILPolicy, task: str | None) -> OPTAIL:
    """The learner the policy's config asks for: model-based or model-free OPT-AIL."""
    if policy.config.model_based:
        from robot_il.policies.opt_ail.model_based import ModelBasedOPTAIL

        return ModelBasedOPTAIL(policy, task)
    return OPTAIL(policy, task)


__all__ = ["OPTAIL", "OPTAILConfig", "OPTAILPolicy", "opt_ail_learner"]
