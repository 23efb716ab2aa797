"""DAC's update (Kostrikov, Agrawal, Dwibedi, Levine, Tompson, ICLR 2019), GAIL-style.

The discriminator is OPT-AIL's reward network read before its tanh, ``D(s, a) =
sigmoid(logit(s, a))``, trained by binary cross-entropy with expert pairs labelled 1 and
the replay buffer's pairs 0, plus the same gradient penalty (on the logit):
``discriminator_loss = E_E[-log D] + E_pi[-log(1 - D)]``. The critic learns from DAC's
reward ``r = log D - log(1 - D)``, which is the logit itself, recomputed at every update,
with OPT-AIL's clipped TD target and no optimism term; the actor is the same soft-greedy
one. Deviation: DAC's absorbing states are not added (the tasks run here end by time
limits only; a terminated transition simply does not bootstrap). With ``reward_input``
``"state_next_state"`` (a deviation, ``RewardNetConfig``) the discriminator sees ``[s, s']``
instead of ``[s, a]``, as GAIfO's.
"""

from __future__ import annotations

import torch
from robot_il.policies.opt_ail.learner import OPTAIL
from torch import Tensor, nn


def discriminator_loss(expert_logits: Tensor, policy_logits: Tensor) -> Tensor:
    """``E_E[-log sigmoid(l)] + E_pi[-log(1 - sigmoid(l))]``, in the stable softplus form."""
    return (
        nn.functional.softplus(-expert_logits).mean() + nn.functional.softplus(policy_logits).mean()
    )


class DAC(OPTAIL):
    """OPT-AIL's networks and loop with DAC's reward loss, reward and no optimism."""

    REWARD_LOSS = "discriminator_loss"
    METRICS = ("discriminator_loss", "gradient_penalty", "td_loss", "actor_loss")

    def reward_step(self, pairs: Tensor, n_online: int) -> tuple[Tensor, Tensor]:
        """One Adam step on ``discriminator_loss + lambda_gp gp`` for ``pairs``, the
        discriminator's inputs (``reward_input``: ``[s, a]`` or ``[s, s']``) of ``n_online``
        policy transitions then the expert's; returns both (detached)."""
        logits = self.reward.logit(pairs)  # one pass over the policy's and the expert's pairs
        loss = discriminator_loss(logits[n_online:], logits[:n_online])
        gradient_penalty = self.gradient_penalty(pairs[n_online:], pairs[:n_online])
        self.reward_optimizer.zero_grad(set_to_none=True)
        (loss + self.gp_weight * gradient_penalty).backward()
        self.reward_optimizer.step()
        return loss.detach(), gradient_penalty.detach()

    def reward_of(self, pairs: Tensor) -> Tensor:
        """``log D - log(1 - D)``: the discriminator's logit."""
        return self.reward.logit(pairs)

    def critic_step(
        self,
        pairs: Tensor,
        next_obs: Tensor,
        done: Tensor,
        n_online: int,
        distribution: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One Adam step on the TD loss (``distribution``, the actor's on the batch, is for
        OPT-AIL's optimism term, which DAC has not)."""
        obs, action = pairs[:, : self.obs_dim], pairs[:, self.obs_dim :]
        td_loss = self.td_loss(obs, action, self.td_target(pairs, next_obs, done))
        self.critic_optimizer.zero_grad(set_to_none=True)
        td_loss.backward()
        self.critic_optimizer.step()
        return td_loss.detach(), torch.zeros(())
