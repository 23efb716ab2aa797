"""Model-free OPT-AIL's update (Xu, Zhang, Chen, Sun, Yu, NeurIPS 2024, arXiv 2411.00610).

One update per env step, in the paper's order: reward -> critic (TD + optimism) -> actor ->
Polyak. Every batch is ``batch_size`` online transitions (the replay buffer of all past
policies stands for the cumulative reward loss) plus as many expert transitions; the
critic and the actor see both halves.

- Reward (online no-regret optimization of ``L(r) = V_r(pi) - V_r(pi_E)``): ``r(s, a) =
  tanh(MLP(LayerNorm([s, a])))`` (without the tanh: ``reward_output``, a deviation);
  ``reward_loss = E_pi[r] - E_E[r] + lambda_gp * gp``,
  ``gp = E[(||grad_x r(x_hat)|| - 1)^2]`` with ``x_hat = u x_E + (1 - u) x_pi`` (plus
  ``eps_drift * drift``, ``drift = E_E[r^2]``, with ``reward_drift_weight``, a deviation). With
  ``reward_input`` ``"state_next_state"`` (a deviation, ``RewardNetConfig``) the net's input
  x is ``[s, s']`` instead, in the reward step, its penalty and every TD target alike.
- Critic (Bellman error): ``td_target = clip(r + gamma (1 - d)(Q_targ(s', a') - alpha log
  pi(a'|s')), -c, c)`` with ``a' ~ pi(s')`` and r from the just-updated reward net (or the
  task's own reward, ``reward_source``, a diagnostic); expert transitions have d = 0.
- Optimism: ``eta * mean_s[V_lse(s) - Q(s, a_tilde)]``, ``a_tilde = tanh(mu(s))`` on online
  states and the expert action on expert states, ``V_lse(s) = alpha logsumexp_j((Q(s, a_j)
  - alpha log q(a_j)) / alpha)`` over N uniform actions (``log q = A log 0.5``) and N policy
  actions (``log q = log pi``).
- Actor (soft-greedy; alpha fixed unless ``learn_temperature``): ``actor_loss = mean(alpha
  log pi(a|s) - Q(s, a))``, a ~ pi(s).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from robot_il.policies.opt_ail.actor_critic import (
    PositionColumns,
    SoftActorCritic,
    heads_td_loss,
    joined,
)
from robot_il.policies.opt_ail.policy import (
    DEFAULT_GP_WEIGHT,
    GP_WEIGHT_BY_TASK,
    REWARD_OFFSET_UNIT,
    TASK_REWARD_SHIFT,
    OPTAILConfig,
    RewardNetConfig,
    SoftActorPolicy,
    mlp,
    td_bound,
)
from robot_il.policies.opt_ail.relu_mlp import mlp_forward, relu_mlp, wide_matmuls_in
from robot_il.policies.optimizers import adam, adam_step, clear_gradients
from torch import Tensor, nn

from robot_il.train.replay import Batch, ReplayBuffer


class RewardNet(nn.Module):
    """``r(x) = tanh(MLP(LayerNorm(x)))`` in (-1, 1) of a transition's ``x = [s, a]`` (or
    ``[s, s']``, ``reward_input``), orthogonal init; ``logit`` is the MLP's output before the
    tanh (DAC's discriminator logit), and r itself with ``bounded`` False (``reward_output``
    "linear").

    The MLP runs as one autograd node (``relu_mlp``, first derivatives only) unless the
    input itself needs a gradient: the gradient penalty differentiates ``grad_x r`` again
    (``mlp_forward``, ordinary autograd)."""

    def __init__(self, inputs: int, hidden: tuple[int, ...], bounded: bool = True) -> None:
        super().__init__()
        self.bounded = bounded
        self.norm = nn.LayerNorm(inputs)
        self.mlp = mlp(inputs, hidden, 1)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.orthogonal_(layer.weight)
                nn.init.zeros_(layer.bias)

    def logit(self, x: Tensor) -> Tensor:
        normed = self.norm(x)
        if x.requires_grad:
            return mlp_forward(self.mlp, normed).squeeze(-1)
        return relu_mlp(self.mlp, normed).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        logit = self.logit(x)
        return torch.tanh(logit) if self.bounded else logit


class TaskReward:
    """The task's own dense reward of encoded next states (``reward_source`` "task"): the
    reward the env gave for the step into s' (``Task.evaluate`` of the raw observation,
    un-normalized from the encoded s'), plus ``TASK_REWARD_SHIFT``.

    Refuses, before any training, a task that is not a UR5e task and a task whose reward
    reads an observation key the policy does not see."""

    def __init__(self, policy: SoftActorPolicy, task: str | None) -> None:
        from robot_il.envs.tasks import TASKS

        if task not in TASKS:
            raise ValueError(f"reward_source 'task': {task!r} is not a UR5e task with a dense "
                             f"reward ({', '.join(TASKS)})")  # fmt: skip
        self.task = TASKS[task]()
        self.normalizer = policy.normalizer
        encoder = policy.encoder
        self.columns = {key: encoder.lowdim_columns([key]) for key in encoder.lowdim_keys}
        try:
            self.task.evaluate(
                {key: np.zeros(len(c), np.float32) for key, c in self.columns.items()}
            )
        except KeyError as missing:
            raise ValueError(f"reward_source 'task': {task}'s reward reads observation key "
                             f"{missing}, not among the obs_keys "
                             f"({', '.join(self.columns)})") from None  # fmt: skip

    def __call__(self, next_obs: Tensor) -> Tensor:
        """The reward (B,) of the transitions into ``next_obs`` (B, obs_dim)."""
        raw = {key: self.normalizer.unnormalize(key, next_obs[:, c].float().cpu().numpy())
               for key, c in self.columns.items()}  # fmt: skip
        rewards = [self.task.evaluate({key: value[i] for key, value in raw.items()})[0]
                   for i in range(len(next_obs))]  # fmt: skip
        return torch.tensor(rewards, dtype=next_obs.dtype, device=next_obs.device) + (
            TASK_REWARD_SHIFT
        )


class OPTAIL(SoftActorCritic):
    """Networks, optimizers and the update of model-free OPT-AIL (see the module docstring).

    ``policy`` is the deployable actor; the loop calls ``explore`` for each env step and
    ``learn`` (one ``update`` on an online and an expert batch) after it.
    """

    REWARD_LOSS = "reward_loss"
    """The name of ``reward_step``'s loss in the metrics."""
    NETWORKS = ("reward", "critic", "critic_target")
    OPTIMIZERS = ("reward_optimizer", "critic_optimizer", "actor_optimizer")
    METRICS: ClassVar[tuple[str, ...]] = (
        "reward_loss", "gradient_penalty", "td_loss", "optimism", "actor_loss",
    )  # fmt: skip

    def __init__(self, policy: SoftActorPolicy, task: str | None) -> None:
        super().__init__(policy, task)
        config: RewardNetConfig = policy.config
        self.gp_weight = config.gp_weight if config.gp_weight > 0 else (
            GP_WEIGHT_BY_TASK.get(task or "", DEFAULT_GP_WEIGHT)
        )  # fmt: skip
        self.td_bound = td_bound(config.td_clip, config.reward_output)
        """What TD targets are clipped to (``td_clip``, or the reward's value bound)."""
        named = config.reward_obs_keys
        self.reward_columns = (
            torch.tensor(policy.encoder.lowdim_columns(named)) if named
            else torch.arange(self.obs_dim) if config.reward_offsets else None
        )  # fmt: skip
        """The columns of an encoded state the reward net sees (``reward_obs_keys``, all
        when none are named); None: the whole state and no offsets."""
        self.offset_ends = [tuple(PositionColumns(policy, key, f"reward_offsets {entry!r}")
                                  for key in entry.split("-"))
                            for entry in config.reward_offsets]  # fmt: skip
        """Each ``reward_offsets`` entry's two positions (a, b)."""
        state = self.obs_dim if self.reward_columns is None else (
            len(self.reward_columns) + 3 * len(config.reward_offsets)
        )  # fmt: skip
        second = state if config.reward_input == "state_next_state" else self.action_dim
        self.reward = RewardNet(state + second, config.hidden_dims,
                                bounded=config.reward_output == "tanh")  # fmt: skip
        self.reward_optimizer = adam(self.reward.parameters(), config.reward_lr)
        self.task_reward = TaskReward(policy, task) if config.reward_source == "task" else None
        """The task's reward the critic learns from instead (``reward_source``), or None."""

        self.critic_warmup_done = 0
        """Actor-frozen updates taken so far (``critic_warmup_updates``)."""

    def learn(
        self, buffer: ReplayBuffer, expert: ReplayBuffer, rng: np.random.Generator
    ) -> dict[str, float]:
        """The loop's updates after an env step: ``critic_updates_per_step`` of them, the
        actor stepping in the last; the first call first takes the ``critic_warmup_updates``
        actor-frozen updates (``RewardNetConfig``). Every update draws its batches with
        ``rng``; the metrics are the last update's."""
        size = self.config.batch_size
        with wide_matmuls_in(self.config.matmul_precision):
            while self.critic_warmup_done < self.config.critic_warmup_updates:
                self.update(buffer.sample(rng, size), self.expert_batch(expert, rng, size),
                            train_actor=False)  # fmt: skip
                self.critic_warmup_done += 1
            for _ in range(self.config.critic_updates_per_step - 1):
                self.update(buffer.sample(rng, size), self.expert_batch(expert, rng, size),
                            train_actor=False)  # fmt: skip
        return super().learn(buffer, expert, rng)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "critic_warmup_done": self.critic_warmup_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if ("critic_warmup_done" not in state and self.config.critic_warmup_updates
                and state["reward_optimizer"]["state"]):  # fmt: skip
            # saved before the field existed, past its first update: a warm-up now would
            # freeze the actor mid-run
            raise ValueError("critic_warmup_updates: this run was saved before the warm-up "
                             "existed, after its first update; it cannot warm up now")  # fmt: skip
        super().load_state_dict(state)
        self.critic_warmup_done = state.get("critic_warmup_done", 0)  # older saves: none

    # ------------------------------------------------------------------ update
    def update(
        self, online: Batch, expert: Batch, model: Batch | None = None, train_actor: bool = True
    ) -> dict[str, float]:
        """One update; returns the losses (floats) for logging. ``model`` transitions (the
        model-based variant) take the place of as many online ones in the critic's and
        actor's batch; the reward step sees the real online batch only. ``train_actor``
        False skips the actor's step (``critic_warmup_updates``); reward, critic and Polyak
        steps are taken as always."""
        obs, action, next_obs, done = joined(online, expert)
        n_online = len(online.obs)

        # 1. reward: online no-regret step on L(r) = V_r(pi) - V_r(pi_E) (none when the
        # critic learns from the task's reward)
        pairs = torch.cat([obs, action], dim=-1)
        reward_loss = gradient_penalty = torch.full((), float("nan"))
        if self.task_reward is None:
            reward_loss, gradient_penalty = self.reward_step(self.reward_input(pairs, next_obs),
                                                             n_online)  # fmt: skip
        if model is not None:
            real = len(online.obs) - len(model.obs)
            mixed = Batch(*(np.concatenate([getattr(online, f)[:real], getattr(model, f)])
                            for f in ("obs", "action", "next_obs", "terminated")))  # fmt: skip
            obs, action, next_obs, done = joined(mixed, expert)
            pairs = torch.cat([obs, action], dim=-1)

        # the actor's distribution on the batch's states, for its step (4.) and the optimism
        # term's policy actions (3.): its weights do not change before step 4
        distribution = self.policy.distribution(obs)

        # 2.-3. critic: clipped TD target with the fresh reward, plus the optimism term
        td_loss, optimism = self.critic_step(pairs, next_obs, done, n_online, distribution)

        # 4. actor: soft-greedy (and alpha's step, if learned); 5. Polyak averaging
        expert_action = action[len(obs) - len(expert.obs) :]
        actor_loss = torch.full((), float("nan"))
        if train_actor:
            actor_loss = self.actor_step(obs, distribution, expert_action=expert_action)
        self.polyak()
        metrics = {
            self.REWARD_LOSS: float(reward_loss),
            "gradient_penalty": float(gradient_penalty),
            "td_loss": float(td_loss),
            "optimism": float(optimism),
            **self.actor_metrics(actor_loss),
        }
        return {name: metrics[name] for name in self.METRICS if name in metrics}

    def reward_step(self, pairs: Tensor, n_online: int) -> tuple[Tensor, Tensor]:
        """One Adam step on ``reward_loss + lambda_gp gp (+ eps_drift drift)`` for ``pairs``,
        the reward net's inputs (``reward_input``) of ``n_online`` policy transitions then the
        expert's; returns ``reward_loss`` and ``gp`` (detached)."""
        reward = self.reward(pairs)  # one pass over the policy's and the expert's pairs
        reward_loss = reward[:n_online].mean() - reward[n_online:].mean()
        gradient_penalty = self.gradient_penalty(pairs[n_online:], pairs[:n_online])
        loss = reward_loss + self.gp_weight * gradient_penalty
        if self.config.reward_drift_weight:
            drift = reward[n_online:].pow(2).mean()
            loss = loss + self.config.reward_drift_weight * drift
        clear_gradients(self.reward_optimizer)
        loss.backward()
        adam_step(self.reward_optimizer)
        return reward_loss.detach(), gradient_penalty.detach()

    def critic_step(
        self,
        pairs: Tensor,
        next_obs: Tensor,
        done: Tensor,
        n_online: int,
        distribution: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """TD (and optimism, see ``optimism_update``) step(s); returns both (detached).
        ``distribution``: the actor's on the batch's states, if computed (``q_and_optimism``)."""
        cfg: OPTAILConfig = self.config
        obs, action = pairs[:, : self.obs_dim], pairs[:, self.obs_dim :]
        td_target = self.td_target(pairs, next_obs, done)
        optimism = torch.zeros(())
        folded = cfg.optimism_update == "folded"
        # the model-based variant takes no optimism step; folded at eta = 0: not even computed
        if cfg.model_based or (folded and cfg.eta == 0):
            td_loss = self.td_loss(obs, action, td_target)
            self.critic_adam_step(td_loss)
        elif folded:  # one critic pass, one Adam step on td_loss + eta * optimism
            heads, optimism = self.q_and_optimism(obs, action, n_online, distribution)
            td_loss = heads_td_loss(heads, td_target)
            self.critic_adam_step(td_loss + cfg.eta * optimism)
        else:  # the reference's second Adam step, taken even at eta = 0
            td_loss = self.td_loss(obs, action, td_target)
            self.critic_adam_step(td_loss)
            optimism = self.optimism(obs, action, n_online, distribution)
            self.critic_adam_step(cfg.eta * optimism)
        return td_loss.detach(), optimism.detach()

    def critic_adam_step(self, loss: Tensor) -> None:
        clear_gradients(self.critic_optimizer)
        loss.backward()
        adam_step(self.critic_optimizer)

    def reward_input(self, pairs: Tensor, next_obs: Tensor) -> Tensor:
        """The reward net's input for transitions ``pairs`` = ``[s, a]`` ending in
        ``next_obs``: ``pairs`` itself, or ``[s, s']`` with ``reward_input``
        ``"state_next_state"``; of each state only its ``reward_obs_keys`` columns and its
        ``reward_offsets`` (``reward_state``)."""
        state, next_state = pairs[:, : self.obs_dim], next_obs
        if self.reward_columns is not None:
            state, next_state = self.reward_state(state), self.reward_state(next_state)
        elif self.config.reward_input == "state_action":
            return pairs
        if self.config.reward_input == "state_next_state":
            return torch.cat([state, next_state], dim=-1)
        return torch.cat([state, pairs[:, self.obs_dim :]], dim=-1)

    def reward_state(self, obs: Tensor) -> Tensor:
        """What the reward net sees of encoded states ``obs``: the ``reward_obs_keys``
        columns, then each ``reward_offsets`` entry's position a minus position b in
        ``REWARD_OFFSET_UNIT``."""
        offsets = [(a.position(obs) - b.position(obs)) / REWARD_OFFSET_UNIT
                   for a, b in self.offset_ends]  # fmt: skip
        return torch.cat([obs[:, self.reward_columns], *offsets], dim=-1)

    def reward_of(self, pairs: Tensor) -> Tensor:
        """The reward the critic learns from: ``r(x)`` of the reward net's inputs ``pairs``
        (``reward_input``), recomputed at every update."""
        return self.reward(pairs)

    @torch.no_grad()
    def td_target(self, pairs: Tensor, next_obs: Tensor, done: Tensor) -> Tensor:
        """``clip(r + gamma (1 - d)(Q_targ(s', a') - alpha log pi(a'|s')), -c, c)``, a' ~ pi(s'),
        r from the reward net on the transitions ``pairs`` = ``[s, a]`` to ``next_obs``
        (``reward_input``), or the task's (``reward_source``); ``done`` is 1 for terminated
        only."""
        cfg = self.config
        soft_next = self.soft_value(self.critic_target, next_obs)
        if self.task_reward is not None:
            target = self.task_reward(next_obs)
        else:
            target = self.reward_of(self.reward_input(pairs, next_obs))
        target = target + cfg.gamma * (1 - done) * soft_next
        return target.clamp(-self.td_bound, self.td_bound)

    def gradient_penalty(self, expert_pairs: Tensor, policy_pairs: Tensor) -> Tensor:
        """``E[(||grad_x r(x_hat)|| - 1)^2]``, ``x_hat = u x_E + (1 - u) x_pi``, u ~ U(0, 1)
        per sample (r: ``reward_of``, the output the learner's reward loss trains)."""
        u = torch.rand(len(expert_pairs), 1)
        x_hat = (u * expert_pairs + (1 - u) * policy_pairs).requires_grad_(True)
        (gradient,) = torch.autograd.grad(self.reward_of(x_hat).sum(), x_hat, create_graph=True)
        return ((gradient.norm(dim=-1) - 1) ** 2).mean()

    def optimism(
        self,
        obs: Tensor,
        action: Tensor,
        n_online: int,
        distribution: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """``mean_s[V_lse(s) - Q(s, a_tilde)]`` (unweighted) over the batch's states, or over
        ``optimism_states`` of them (half online, half expert)."""
        return self.q_and_optimism(obs, action, n_online, distribution)[1]

    def q_and_optimism(
        self,
        obs: Tensor,
        action: Tensor,
        n_online: int,
        distribution: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """Each critic head's ``Q(s, a)`` on the batch (one head, or two with
        ``twin_critics``, whose minimum is Q) and the optimism term (``optimism``) on Q, from
        one critic pass.

        The pass holds the batch's pairs, then each term state with its N uniform and its N
        policy actions, then the online term states with ``a_tilde = tanh(mu(s))``; an expert
        state's ``a_tilde`` is its own action, so its ``Q(s, a_tilde)`` is the batch's row.
        The actor runs once per term state: its N samples share that state's distribution.
        With ``detach_policy_actions``, ``distribution`` (the actor's mean and log std on
        ``obs``, as the actor step computes them) supplies the term states' rows instead of
        another actor pass: the same numbers (a row of a product does not depend on the
        rows beside it; tests/policies/test_opt_ail.py), one pass fewer.
        """
        cfg = self.config
        n_expert = len(obs) - n_online
        if cfg.optimism_states:
            half = cfg.optimism_states // 2
            n_online_states = min(cfg.optimism_states - half, n_online)
            n_expert_states = min(half, n_expert)
        else:
            n_online_states, n_expert_states = n_online, n_expert
        expert_rows = slice(n_online, n_online + n_expert_states)
        states = torch.cat([obs[:n_online_states], obs[expert_rows]])
        n_states, n, dim = len(states), cfg.optimism_actions, self.action_dim
        uniform = torch.rand(n_states * n, dim) * 2 - 1
        uniform_log_q = dim * math.log(0.5)
        if distribution is not None and cfg.detach_policy_actions:
            mu, log_std = (torch.cat([t[:n_online_states], t[expert_rows]]).detach()
                           for t in distribution)  # fmt: skip
        else:
            with torch.set_grad_enabled(not cfg.detach_policy_actions):
                mu, log_std = self.policy.distribution(states)
        with torch.set_grad_enabled(not cfg.detach_policy_actions):
            policy_actions, policy_log_q = self.policy.sample_from(
                mu.repeat_interleave(n, dim=0), log_std.repeat_interleave(n, dim=0)
            )
        online_tilde = torch.tanh(mu[:n_online_states]).detach()
        repeated = states.repeat_interleave(n, dim=0)
        heads = self.critic.heads(
            torch.cat([obs, repeated, repeated, states[:n_online_states]]),
            torch.cat([action, uniform, policy_actions, online_tilde]),
        )
        q = heads[0] if len(heads) == 1 else torch.minimum(*heads)
        q_batch, q_uniform, q_policy, q_online_tilde = q.split(
            [len(obs), n_states * n, n_states * n, n_online_states]
        )
        q_tilde = torch.cat([q_online_tilde, q_batch[expert_rows]])
        soft_uniform = (q_uniform - self.alpha * uniform_log_q).view(n_states, n)
        soft_policy = (q_policy - self.alpha * policy_log_q.detach()).view(n_states, n)
        soft = torch.cat([soft_uniform, soft_policy], dim=1)
        v_lse = self.alpha * torch.logsumexp(soft / self.alpha, dim=1)
        return [head[: len(obs)] for head in heads], (v_lse - q_tilde).mean()
