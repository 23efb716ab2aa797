"""IQ-Learn's settings and its deployable actor (the soft actor every online learner here
shares)."""

from __future__ import annotations

import dataclasses

from robot_il.policies.opt_ail.policy import SoftActorConfig, SoftActorPolicy


@dataclasses.dataclass
class IQLearnConfig(SoftActorConfig):
    """IQ-Learn hyperparameters: the shared actor-critic settings (OPT-AIL's values: one
    Q-network, fixed temperature 0.01, which users report IQ-Learn needs) and the weight of
    the chi-squared regularizer, ``1 / (4 chi2_alpha)`` (IQ-Learn's default 0.5)."""

    chi2_alpha: float = 0.5

    def validate(self) -> None:
        super().validate()
        if self.chi2_alpha <= 0:
            raise ValueError(f"chi2_alpha must be > 0, got {self.chi2_alpha}")
        if self.twin_critics:  # its loss is on Q itself, not a TD target to share
            raise ValueError("IQ-Learn takes no twin_critics")
        if self.bc_reference:  # its V(s) is the soft value of the actor alone, in its loss
            raise ValueError("IQ-Learn takes no bc_reference")


class IQLearnPolicy(SoftActorPolicy):
    """IQ-Learn's deployable actor."""

    policy_type = "iq_learn"
    config_class = IQLearnConfig
