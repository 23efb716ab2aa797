"""Model-free OPT-AIL's update (Xu, Zhang, Chen, Sun, Yu, NeurIPS 2024, arXiv 2411.00610).

One update per env step, in the paper's order: reward -> critic (TD + optimism) -> actor ->
Polyak. Every batch is ``batch_size`` online transitions (the replay buffer of all past
policies stands for the cumulative reward loss) plus as many expert transitions; the
critic and the actor see both halves.

- Reward (online no-regret optimization of ``L(r) = V_r(pi) - V_r(pi_E)``): ``r(s, a) =
  tanh(MLP(LayerNorm([s, a])))``; ``reward_loss = E_pi[r] - E_E[r] + lambda_gp * gp``,
  ``gp = E[(||grad_x r(x_hat)|| - 1)^2]`` with ``x_hat = u x_E + (1 - u) x_pi``.
- Critic (Bellman error): ``td_target = clip(r + gamma (1 - d)(Q_targ(s', a') - alpha log
  pi(a'|s')), -c, c)`` with ``a' ~ pi(s')`` and r from the just-updated reward net; expert
  transitions have d = 0.
- Optimism: ``eta * mean_s[V_lse(s) - Q(s, a_tilde)]``, ``a_tilde = tanh(mu(s))`` on online
  states and the expert action on expert states, ``V_lse(s) = alpha logsumexp_j((Q(s, a_j)
  - alpha log q(a_j)) / alpha)`` over N uniform actions (``log q = A log 0.5``) and N policy
  actions (``log q = log pi``).
- Actor (soft-greedy, fixed temperature alpha): ``actor_loss = mean(alpha log pi(a|s) -
  Q(s, a))``, a ~ pi(s).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from robot_il.policies.opt_ail.policy import (
    DEFAULT_GP_WEIGHT,
    GP_WEIGHT_BY_TASK,
    OPTAILConfig,
    OPTAILPolicy,
    mlp,
)
from torch import Tensor, nn

from robot_il.train.replay import Batch


class RewardNet(nn.Module):
    """``r(s, a) = tanh(MLP(LayerNorm([s, a])))`` in (-1, 1), orthogonal init."""

    def __init__(self, inputs: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(inputs)
        self.mlp = mlp(inputs, hidden, 1)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.orthogonal_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.mlp(self.norm(x))).squeeze(-1)


class QNet(nn.Module):
    """``Q(s, a)``: one MLP on ``[s, a]`` (no twin)."""

    def __init__(self, inputs: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.mlp = mlp(inputs, hidden, 1)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.mlp(torch.cat([obs, action], dim=-1)).squeeze(-1)


class OPTAIL:
    """Networks, optimizers and the update of model-free OPT-AIL (see the module docstring).

    ``policy`` is the deployable actor (an ``OPTAILPolicy``); the loop calls ``explore``
    for each env step and ``update`` with one online and one expert batch.
    """

    def __init__(self, policy: OPTAILPolicy, task: str | None) -> None:
        config: OPTAILConfig = policy.config
        self.config = config
        self.policy = policy
        obs_dim, action_dim = policy.encoder.output_dim, policy.action_dim
        self.action_dim = action_dim
        self.gp_weight = config.gp_weight if config.gp_weight > 0 else (
            GP_WEIGHT_BY_TASK.get(task or "", DEFAULT_GP_WEIGHT)
        )  # fmt: skip
        self.reward = RewardNet(obs_dim + action_dim, config.hidden_dims)
        self.critic = QNet(obs_dim + action_dim, config.hidden_dims)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.reward_optimizer = torch.optim.Adam(self.reward.parameters(), lr=config.reward_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.actor_optimizer = torch.optim.Adam(policy.actor.parameters(), lr=config.actor_lr)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def explore(self, obs: np.ndarray) -> np.ndarray:
        """A sampled action in [-1, 1] for one flat observation (training rollouts)."""
        action, _ = self.policy.sample(torch.as_tensor(obs)[None])
        return action[0].numpy()

    # ------------------------------------------------------------------ update
    def update(self, online: Batch, expert: Batch) -> dict[str, float]:
        """One OPT-AIL update; returns the losses (floats) for logging."""
        cfg = self.config
        t = {k: torch.as_tensor(np.concatenate([getattr(online, k), getattr(expert, k)]))
             for k in ("obs", "action", "next_obs")}  # fmt: skip
        obs, action, next_obs = t["obs"], t["action"], t["next_obs"]
        expert_done = np.zeros_like(expert.terminated)  # expert transitions: d = 0
        done = torch.as_tensor(np.concatenate([online.terminated, expert_done]))
        n_online = len(online.obs)

        # 1. reward: online no-regret step on L(r) = V_r(pi) - V_r(pi_E)
        pairs = torch.cat([obs, action], dim=-1)
        reward_loss = self.reward(pairs[:n_online]).mean() - self.reward(pairs[n_online:]).mean()
        gradient_penalty = self.gradient_penalty(pairs[n_online:], pairs[:n_online])
        reward_total = reward_loss + self.gp_weight * gradient_penalty
        self.reward_optimizer.zero_grad(set_to_none=True)
        reward_total.backward()
        self.reward_optimizer.step()

        # 2. critic: clipped TD target with the fresh reward
        td_target = self.td_target(pairs, next_obs, done)
        td_loss = nn.functional.mse_loss(self.critic(obs, action), td_target)

        # 3. optimism: eta * mean_s[V_lse(s) - Q(s, a_tilde)]
        optimism = torch.zeros(())
        if cfg.optimism_update == "folded":
            critic_loss = td_loss
            if cfg.eta > 0:  # eta = 0: the term is not even computed
                optimism = self.optimism(obs, action, n_online)
                critic_loss = critic_loss + cfg.eta * optimism
            self.critic_optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_optimizer.step()
        else:  # the reference's second Adam step, taken even at eta = 0
            self.critic_optimizer.zero_grad(set_to_none=True)
            td_loss.backward()
            self.critic_optimizer.step()
            optimism = self.optimism(obs, action, n_online)
            self.critic_optimizer.zero_grad(set_to_none=True)
            (cfg.eta * optimism).backward()
            self.critic_optimizer.step()

        # 4. actor: soft-greedy with fixed temperature
        new_action, log_pi = self.policy.sample(obs)
        self.critic.requires_grad_(False)
        actor_loss = (cfg.alpha * log_pi - self.critic(obs, new_action)).mean()
        self.critic.requires_grad_(True)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()

        # 5. Polyak averaging of the target critic
        with torch.no_grad():
            for target, source in zip(
                self.critic_target.parameters(), self.critic.parameters(), strict=True
            ):
                target.lerp_(source, cfg.tau)
        return {
            "reward_loss": float(reward_loss.detach()),
            "gradient_penalty": float(gradient_penalty.detach()),
            "td_loss": float(td_loss.detach()),
            "optimism": float(optimism.detach()),
            "actor_loss": float(actor_loss.detach()),
        }

    @torch.no_grad()
    def td_target(self, pairs: Tensor, next_obs: Tensor, done: Tensor) -> Tensor:
        """``clip(r + gamma (1 - d)(Q_targ(s', a') - alpha log pi(a'|s')), -c, c)``, a' ~ pi(s'),
        r from the reward net on ``pairs`` = ``[s, a]``; ``done`` is 1 for terminated only."""
        cfg = self.config
        next_action, next_log_pi = self.policy.sample(next_obs)
        soft_next = self.critic_target(next_obs, next_action) - cfg.alpha * next_log_pi
        target = self.reward(pairs) + cfg.gamma * (1 - done) * soft_next
        return target.clamp(-cfg.td_clip, cfg.td_clip)

    def gradient_penalty(self, expert_pairs: Tensor, policy_pairs: Tensor) -> Tensor:
        """``E[(||grad_x r(x_hat)|| - 1)^2]``, ``x_hat = u x_E + (1 - u) x_pi``, u ~ U(0, 1)
        per sample."""
        u = torch.rand(len(expert_pairs), 1)
        x_hat = (u * expert_pairs + (1 - u) * policy_pairs).requires_grad_(True)
        (gradient,) = torch.autograd.grad(self.reward(x_hat).sum(), x_hat, create_graph=True)
        return ((gradient.norm(dim=-1) - 1) ** 2).mean()

    def optimism(self, obs: Tensor, action: Tensor, n_online: int) -> Tensor:
        """``mean_s[V_lse(s) - Q(s, a_tilde)]`` (unweighted) over the batch's states, or over
        ``optimism_states`` of them (half online, half expert)."""
        cfg = self.config
        online_index = torch.arange(n_online)
        expert_index = torch.arange(n_online, len(obs))
        if cfg.optimism_states:
            half = cfg.optimism_states // 2
            online_index = online_index[: cfg.optimism_states - half]
            expert_index = expert_index[:half]
        index = torch.cat([online_index, expert_index])
        states, n_states = obs[index], len(index)
        with torch.no_grad():
            online_tilde = self.policy.mean_action(obs[online_index])
        a_tilde = torch.cat([online_tilde, action[expert_index]])
        n, dim = cfg.optimism_actions, self.action_dim
        repeated = states.repeat_interleave(n, dim=0)
        uniform = torch.rand(n_states * n, dim) * 2 - 1
        uniform_log_q = torch.full((n_states * n,), dim * math.log(0.5))
        if cfg.detach_policy_actions:
            with torch.no_grad():
                policy_actions, policy_log_q = self.policy.sample(repeated)
        else:
            policy_actions, policy_log_q = self.policy.sample(repeated)
            policy_log_q = policy_log_q.detach()
        # one critic pass over [uniform; policy; a_tilde] actions (three would cost more)
        q = self.critic(torch.cat([repeated, repeated, states]),
                        torch.cat([uniform, policy_actions, a_tilde]))  # fmt: skip
        q_uniform, q_policy, q_tilde = q.split([n_states * n, n_states * n, n_states])
        soft_uniform = (q_uniform - cfg.alpha * uniform_log_q).view(n_states, n)
        soft_policy = (q_policy - cfg.alpha * policy_log_q).view(n_states, n)
        soft = torch.cat([soft_uniform, soft_policy], dim=1)
        v_lse = cfg.alpha * torch.logsumexp(soft / cfg.alpha, dim=1)
        return (v_lse - q_tilde).mean()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything to resume: networks (the actor's through ``policy``) and optimizers."""
        return {
            "actor": self.policy.actor.state_dict(),
            "reward": self.reward.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "reward_optimizer": self.reward_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.actor.load_state_dict(state["actor"])
        for name in ("reward", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("reward_optimizer", "critic_optimizer", "actor_optimizer"):
            getattr(self, name).load_state_dict(state[name])
