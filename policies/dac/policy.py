"""DAC's settings and its deployable actor (the soft actor every online learner here shares).

``DACConfig`` is OPT-AIL's reward-network config: the same networks, learning rates,
gradient penalty and TD clip, so that a comparison differs only in the reward's loss and
the missing optimism term (``robot_il.policies.dac.learner``).
"""

from __future__ import annotations

import dataclasses

from robot_il.policies.opt_ail.policy import RewardNetConfig, SoftActorPolicy


@dataclasses.dataclass
class DACConfig(RewardNetConfig):
    """DAC hyperparameters: those of ``RewardNetConfig`` (OPT-AIL's values)."""

    def validate(self) -> None:
        super().validate()
        if self.reward_output != "tanh":
            raise ValueError(f"reward_output {self.reward_output!r}: DAC's reward is its "
                             "discriminator's logit, unbounded already; the setting is "
                             "OPT-AIL's")  # fmt: skip


class DACPolicy(SoftActorPolicy):
    """DAC's deployable actor."""

    policy_type = "dac"
    config_class = DACConfig
