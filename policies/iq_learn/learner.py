"""IQ-Learn's update (Garg, Chakraborty, Cundy, Song, Ermon, NeurIPS 2021), online.

No reward network: the critic is trained so that the reward it implies, ``r(s, a) = Q(s, a)
- gamma (1 - d) V(s')``, maximizes the chi-squared-regularized inverse-RL objective

    iq_loss = -E_E[Q(s, a) - gamma (1 - d) V(s')]              (expert reward)
              + E[V(s) - gamma (1 - d) V(s')]                     (value loss)
              + 1 / (4 chi2_alpha) E[(Q(s, a) - gamma (1 - d) V(s'))^2]  (chi2 regularizer)

with the second and third expectations over the online and expert transitions together, V the
one-sample soft value ``Q(s, a~pi) - alpha log pi(a|s)``, and V(s') from the target critic without
gradient. The actor is SAC's at a fixed temperature (unless ``learn_temperature``); Polyak targets.
"""

from __future__ import annotations

import torch
from robot_il.policies.opt_ail.actor_critic import SoftActorCritic, joined
from torch import Tensor

from robot_il.train.replay import Batch


def iq_learn_loss(
    q: Tensor, v: Tensor, v_next: Tensor, done: Tensor, expert: Tensor, gamma: float,
    chi2_alpha: float,
) -> dict[str, Tensor]:  # fmt: skip
    """The three terms of the module docstring and their sum (``iq_loss``) for per-transition
    ``q = Q(s, a)``, ``v = V(s)``, ``v_next = V(s')``, ``done`` and ``expert`` (bool mask)."""
    implied_reward = q - gamma * (1 - done) * v_next
    expert_reward = implied_reward[expert].mean()
    value_loss = (v - gamma * (1 - done) * v_next).mean()
    chi2 = (implied_reward**2).mean() / (4 * chi2_alpha)
    return {"expert_reward": expert_reward, "value_loss": value_loss, "chi2": chi2,
            "iq_loss": -expert_reward + value_loss + chi2}  # fmt: skip


class IQLearn(SoftActorCritic):
    """IQ-Learn's critic update on the shared soft actor-critic core."""

    METRICS = ("iq_loss", "expert_reward", "value_loss", "chi2", "actor_loss")

    def update(self, online: Batch, expert: Batch) -> dict[str, float]:
        obs, action, next_obs, done = joined(online, expert)
        is_expert = torch.arange(len(obs)) >= len(online.obs)
        with torch.no_grad():
            v_next = self.soft_value(self.critic_target, next_obs)
        terms = iq_learn_loss(self.critic(obs, action), self.soft_value(self.critic, obs),
                              v_next, done, is_expert, self.config.gamma,
                              self.config.chi2_alpha)  # fmt: skip
        self.critic_optimizer.zero_grad(set_to_none=True)
        terms["iq_loss"].backward()
        self.critic_optimizer.step()
        actor_loss = self.actor_step(obs, expert_action=action[len(online.obs) :])
        self.polyak()
        return {**{k: float(v.detach()) for k, v in terms.items()},
                **self.actor_metrics(actor_loss)}  # fmt: skip
