"""The soft actor-critic core that OPT-AIL, DAC and IQ-Learn share in the online loop.

One Q-network (no twin) and its Polyak-averaged target, the tanh-Gaussian actor of a
``SoftActorPolicy`` with its soft-greedy loss ``actor_loss = mean(alpha log pi(a|s) - Q(s, a))`` at
a temperature alpha (fixed, or learned as SAC's: ``learn_temperature``), exploration by sampling the
actor, and the state to resume; with the config's behaviour-cloning deviations
(``SoftActorConfig``), the actor's BC pretraining (``pretrain_actor``), the decaying BC term of its
loss, and the clone kept as IBRL's second proposal in acting and in the bootstrapped value
(``bc_reference``) or as the centre the actor's mean stays near (``clone_radius``), and the training
episodes relabelled to the goal they reached joining the BC term's data (``hindsight_goal``,
``end_episode``) or every expert batch (``hindsight_as_expert``, ``expert_batch``). Each learner
adds how the critic is trained (its reward, its loss) in ``update``; ``learn`` is what the loop
calls after each env step.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from robot_il.envs.task_frame import MOVING_FRAMES
from robot_il.policies.opt_ail.policy import (
    SoftActorConfig,
    SoftActorPolicy,
    critic_network,
    demonstration_loss,
)
from robot_il.policies.opt_ail.relu_mlp import wide_matmuls_in
from robot_il.policies.optimizers import adam, adam_step, adamw, clear_gradients
from torch import Tensor, nn

from robot_il.train.replay import Batch, ReplayBuffer


def heads_td_loss(heads: list[Tensor], td_target: Tensor) -> Tensor:
    """``sum_heads mean (Q_head - td_target)^2`` for each head's values on a batch."""
    first, *others = heads
    loss = nn.functional.mse_loss(first, td_target)
    for q in others:
        loss = loss + nn.functional.mse_loss(q, td_target)
    return loss


def joined(online: Batch, expert: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``obs, action, next_obs, done`` of the online then the expert transitions; expert
    transitions have ``done`` 0 (their trajectories end by time limits)."""
    t = {k: torch.as_tensor(np.concatenate([getattr(online, k), getattr(expert, k)]))
         for k in ("obs", "action", "next_obs")}  # fmt: skip
    done = torch.as_tensor(np.concatenate([online.terminated, np.zeros_like(expert.terminated)]))
    return t["obs"], t["action"], t["next_obs"], done


class PositionColumns:
    """A position (m; the first three entries of observation key ``key``) in encoded
    states: read un-normalized from their columns (``position``) and mapped back into
    them (``encode``). ``where`` names the setting that asks for it, in the error for a
    key of fewer than three entries."""

    def __init__(self, policy: SoftActorPolicy, key: str, where: str) -> None:
        columns = policy.encoder.lowdim_columns([key])
        if len(columns) < 3:
            raise ValueError(f"{where}: {key} has {len(columns)} entries, not a position "
                             "(three)")  # fmt: skip
        stats = policy.normalizer.stats(key)
        self.columns = torch.tensor(columns[:3])
        self.scale = torch.as_tensor(stats["scale"].reshape(-1)[:3])
        self.shift = torch.as_tensor(stats["offset"].reshape(-1)[:3])

    def position(self, obs: Tensor) -> Tensor:
        """The position (B, 3), in metres, in states ``obs`` (B, obs_dim)."""
        return (obs[:, self.columns] - self.shift.to(obs.dtype)) / self.scale.to(obs.dtype)

    def encode(self, position: Tensor) -> Tensor:
        """Positions (B, 3), in metres, as the encoded states' columns hold them."""
        return position * self.scale.to(position.dtype) + self.shift.to(position.dtype)


class SoftActorCritic:
    """Critic, target critic, actor and their optimizers; see the module docstring.

    Subclasses list the networks and optimizers to save in ``NETWORKS``/``OPTIMIZERS`` and
    the names of ``update``'s metrics in ``METRICS`` (the loop's CSV columns).
    """

    NETWORKS: ClassVar[tuple[str, ...]] = ("critic", "critic_target")
    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("critic_optimizer", "actor_optimizer")
    METRICS: ClassVar[tuple[str, ...]] = ("actor_loss",)
    REFERENCE_SHARE_RATE = 1e-3
    """The step of ``reference_share``'s moving average (about the last 1000 env steps)."""

    def __init__(self, policy: SoftActorPolicy, task: str | None) -> None:
        config: SoftActorConfig = policy.config
        self.config = config
        self.policy = policy
        self.task = task
        self.obs_dim, self.action_dim = policy.encoder.output_dim, policy.action_dim
        self.critic = policy.critic if policy.critic is not None else (
            critic_network(config, self.obs_dim, self.action_dim)
        )  # fmt: skip
        """The policy's own with ``bc_reference`` (it chooses the deployed action), else one
        of the learner's."""
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = adam(self.critic.parameters(), config.critic_lr)
        self.actor_optimizer = adam(policy.actor.parameters(), config.actor_lr)
        self.actor_updates = 0
        """Actor steps taken so far (``bc_weight``'s schedule counts them)."""
        self.last_bc_loss = float("nan")
        """The last actor step's BC loss (with ``bc_weight``; a metric)."""
        if config.bc_weight > 0:  # a column only in runs that have the term
            self.METRICS = (*self.METRICS, "bc_loss")
        self.reference_share = 0.0
        """With ``bc_reference``: the share of recent training steps that took the clone's
        action (``REFERENCE_SHARE_RATE``; a metric)."""
        if config.bc_reference:
            self.METRICS = (*self.METRICS, "reference_share")
        self.hindsight: tuple[PositionColumns, PositionColumns] | None = None
        """With ``hindsight_goal``: where the achieved position and the goal lie in a state."""
        if config.hindsight_goal:
            where = f"hindsight_goal {config.hindsight_goal!r}"
            if policy.spec.get("frame") in MOVING_FRAMES:  # its origin follows the goal itself
                raise ValueError(f"{where}: relabelling needs world positions, not frame "
                                 f"{policy.spec['frame']!r} ones")  # fmt: skip
            achieved, goal = config.hindsight_goal.split("-")
            self.hindsight = (PositionColumns(policy, achieved, where),
                              PositionColumns(policy, goal, where))  # fmt: skip
            self.METRICS = (*self.METRICS, "hindsight_transitions")
        self.hindsight_obs = torch.zeros(0, self.obs_dim)
        self.hindsight_action = torch.zeros(0, self.action_dim)
        self.hindsight_next_obs = torch.zeros(0, self.obs_dim)
        """The relabelled training transitions drawn from beside the expert's."""
        self.expert_transitions = 0
        """How many expert transitions the relabelled ones are drawn beside (``end_episode``
        reads it)."""
        self.log_alpha = torch.tensor(float(np.log(config.alpha)), requires_grad=True)
        """log alpha, learned with ``learn_temperature`` (else it stays ``log(alpha)``)."""
        self.temperature_optimizer = torch.optim.Adam([self.log_alpha], lr=config.temperature_lr)
        self.target_entropy = config.target_entropy_per_dim * self.action_dim
        """SAC's entropy target H_target (nats, of the squashed action)."""
        self.alpha = config.alpha
        """The temperature every loss reads now: ``exp(log_alpha)``, a float."""
        if config.learn_temperature:
            self.METRICS = (*self.METRICS, "alpha")

    @torch.no_grad()
    def explore(self, obs: np.ndarray) -> np.ndarray:
        """A sampled action in [-1, 1] for one flat observation (training rollouts); with
        ``bc_reference``, that or the clone's action, whichever the critic prefers."""
        state = torch.as_tensor(obs)[None]
        action, taken = self.policy.choose(state, self.policy.sample_action(state))
        if self.config.bc_reference:
            self.reference_share += self.REFERENCE_SHARE_RATE * (
                float(taken[0]) - self.reference_share
            )
        return action[0].cpu().numpy()

    def learn(
        self, buffer: ReplayBuffer, expert: ReplayBuffer, rng: np.random.Generator
    ) -> dict[str, float]:
        """What the loop runs after each env step once learning has started: one update on
        ``batch_size`` online and as many expert transitions drawn with ``rng``."""
        size = self.config.batch_size
        with wide_matmuls_in(self.config.matmul_precision):
            return self.update(buffer.sample(rng, size), self.expert_batch(expert, rng, size))

    def update(self, online: Batch, expert: Batch) -> dict[str, float]:
        raise NotImplementedError

    def end_episode(self, buffer: ReplayBuffer, expert: ReplayBuffer, steps: int) -> None:
        """What the loop calls when a training episode of ``steps`` transitions (the last
        ones added to ``buffer``) has ended. With ``hindsight_goal`` "a-b": if position a
        moved at least ``hindsight_min_move`` (m) from the episode's first state to its last
        next state, the episode's (state, action) pairs, every state's goal b set to where a
        ended, join the BC term's data (HER's relabelling, Andrychowicz et al. 2017, used as
        GCSL's supervised data, Ghosh et al. 2021): whatever the episode did, it showed how
        to take a to that end."""
        if self.hindsight is None or steps == 0:
            return
        self.expert_transitions = len(expert)
        rows = (buffer.cursor - steps + np.arange(steps)) % buffer.capacity
        obs = torch.as_tensor(buffer.obs[rows])
        achieved, goal = self.hindsight
        end = achieved.position(torch.as_tensor(buffer.next_obs[rows[-1:]]))
        if float((end - achieved.position(obs[:1])).norm()) < self.config.hindsight_min_move:
            return
        next_obs = torch.as_tensor(buffer.next_obs[rows])
        for states in (obs, next_obs):
            states[:, goal.columns] = goal.encode(end).to(states.dtype)
        self.hindsight_obs = torch.cat([self.hindsight_obs, obs])
        self.hindsight_action = torch.cat([self.hindsight_action,
                                           torch.as_tensor(buffer.action[rows])])  # fmt: skip
        self.hindsight_next_obs = torch.cat([self.hindsight_next_obs, next_obs])

    def expert_batch(self, expert: ReplayBuffer, rng: np.random.Generator, size: int) -> Batch:
        """``size`` expert transitions drawn with ``rng``; with ``hindsight_as_expert``, once
        relabelled transitions are held, k ~ Binomial(size, H / (H + N_E)) of them are
        relabelled ones (not terminal), so the batch draws uniformly from the expert's N_E
        and the H relabelled transitions together."""
        batch = expert.sample(rng, size)
        held = len(self.hindsight_action)
        if not self.config.hindsight_as_expert or held == 0:
            return batch
        k = int(rng.binomial(size, held / (held + self.expert_transitions)))
        picked = torch.as_tensor(rng.integers(held, size=k))

        def mixed(relabelled: Tensor, drawn: np.ndarray) -> np.ndarray:
            return np.concatenate([relabelled[picked].cpu().numpy(), drawn[k:]])

        return Batch(mixed(self.hindsight_obs, batch.obs),
                     mixed(self.hindsight_action, batch.action),
                     mixed(self.hindsight_next_obs, batch.next_obs),
                     np.concatenate([np.zeros(k, np.float32), batch.terminated[k:]]))  # fmt: skip

    def td_loss(self, obs: Tensor, action: Tensor, td_target: Tensor) -> Tensor:
        """``mean (Q(s, a) - td_target)^2``, summed over the critic's heads (one, or two with
        ``twin_critics``)."""
        return heads_td_loss(self.critic.heads(obs, action), td_target)

    def actor_step(
        self,
        obs: Tensor,
        distribution: tuple[Tensor, Tensor] | None = None,
        expert_action: Tensor | None = None,
    ) -> Tensor:
        """One Adam step on ``actor_loss = mean(alpha log pi(a|s) - Q(s, a))``, a ~ pi(s); the
        loss. ``distribution``: the actor's mean and log std on ``obs`` (with their graph), if
        the learner computed them already. With ``bc_weight``, ``expert_action`` holds the
        actions of the last rows of ``obs`` (the expert's states) and the step adds the
        weighted ``bc_loss`` on them (``SoftActorConfig``); the loss returned is
        ``actor_loss`` alone, the BC loss is kept in ``last_bc_loss`` (``actor_metrics``)."""
        mu, log_std = distribution if distribution is not None else self.policy.distribution(obs)
        new_action, log_pi = self.policy.sample_from(mu, log_std)
        self.critic.requires_grad_(False)
        actor_loss = (self.alpha * log_pi - self.critic(obs, new_action)).mean()
        self.critic.requires_grad_(True)
        loss = actor_loss
        if self.config.bc_weight > 0 and expert_action is not None:
            rows = slice(len(obs) - len(expert_action), None)
            bc_rows = self.with_hindsight_rows(mu[rows], log_std[rows], expert_action)
            bc_loss = demonstration_loss(self.config.bc_loss, *bc_rows)
            loss = actor_loss + self.current_bc_weight() * bc_loss
            self.last_bc_loss = float(bc_loss.detach())
        clear_gradients(self.actor_optimizer)
        loss.backward()
        adam_step(self.actor_optimizer)
        self.actor_updates += 1
        if self.config.learn_temperature:
            self.temperature_step(log_pi.detach())
        return actor_loss.detach()

    def temperature_step(self, log_pi: Tensor) -> None:
        """One Adam step on ``temperature_loss = -log(alpha) * mean(log pi(a|s) +
        H_target)`` for the actor step's sampled actions' ``log_pi``: alpha rises while the
        actor's entropy is below the target, falls while above (``learn_temperature``)."""
        temperature_loss = -(self.log_alpha * (log_pi + self.target_entropy)).mean()
        self.temperature_optimizer.zero_grad(set_to_none=True)
        temperature_loss.backward()
        self.temperature_optimizer.step()
        self.alpha = float(self.log_alpha.detach().exp())

    def with_hindsight_rows(
        self, mu: Tensor, log_std: Tensor, expert_action: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The BC term's rows (the actor's mean and log std, and the demonstrated action):
        the batch's expert rows, of which, once relabelled transitions are held
        (``end_episode``), k ~ Binomial(B, H / (H + N_E)) are replaced by as many relabelled
        ones drawn uniformly (torch's generator), so the term draws uniformly from the
        expert's N_E and the H relabelled transitions together."""
        held = len(self.hindsight_action)
        if held == 0 or self.config.hindsight_as_expert:  # then the expert rows hold them
            return mu, log_std, expert_action
        share = torch.tensor(held / (held + self.expert_transitions))
        k = int(torch.binomial(torch.tensor(float(len(expert_action))), share))
        picked = torch.randint(held, (k,))
        relabelled_mu, relabelled_log_std = self.policy.distribution(self.hindsight_obs[picked])
        return (torch.cat([relabelled_mu, mu[k:]]), torch.cat([relabelled_log_std, log_std[k:]]),
                torch.cat([self.hindsight_action[picked], expert_action[k:]]))  # fmt: skip

    def actor_metrics(self, actor_loss: Tensor) -> dict[str, float]:
        """``actor_loss`` and, in runs with ``bc_weight``, the last step's ``bc_loss``; with
        ``bc_reference``, ``reference_share``."""
        metrics = {"actor_loss": float(actor_loss)}
        if self.config.learn_temperature:
            metrics["alpha"] = self.alpha
        if self.config.bc_weight > 0:
            metrics["bc_loss"] = self.last_bc_loss
        if self.config.bc_reference:
            metrics["reference_share"] = self.reference_share
        if self.hindsight is not None:
            metrics["hindsight_transitions"] = float(len(self.hindsight_action))
        return metrics

    def current_bc_weight(self) -> float:
        """``bc_weight * max(0, 1 - k / bc_decay_updates)`` at actor update k (0 when off)."""
        cfg = self.config
        if cfg.bc_weight <= 0 or cfg.bc_decay_updates == 0:
            return cfg.bc_weight
        return cfg.bc_weight * max(0.0, 1.0 - self.actor_updates / cfg.bc_decay_updates)

    def pretrain_actor(self, expert: ReplayBuffer, rng: np.random.Generator) -> float:
        """``bc_pretrain_steps`` AdamW steps of ``demonstration_loss`` (``bc_loss``) on
        batches of ``batch_size`` expert transitions drawn with ``rng`` (the actor alone; its
        own optimizer is left untouched); returns the last batch's loss. With
        ``bc_reference`` or ``clone_radius`` the clone is also kept, frozen, as the policy's
        ``reference``."""
        cfg = self.config
        optimizer = adamw(self.policy.actor.parameters(), cfg.bc_pretrain_lr,
                          cfg.bc_pretrain_weight_decay)  # fmt: skip
        loss = torch.zeros(())
        for _ in range(cfg.bc_pretrain_steps):
            batch = expert.sample(rng, cfg.batch_size)
            mu, log_std = self.policy.network_distribution(torch.as_tensor(batch.obs))
            loss = demonstration_loss(cfg.bc_loss, mu, log_std, torch.as_tensor(batch.action))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if self.policy.reference is not None:
            self.policy.reference.load_state_dict(self.policy.actor.state_dict())
        return float(loss.detach())

    def soft_value(self, critic: nn.Module, obs: Tensor) -> Tensor:
        """``V(s) = Q(s, a) - alpha log pi(a|s)``, a ~ pi(s): the one-sample soft value (a
        gradient reaches ``critic``, none the actor); with ``bc_reference``, the larger of
        that and ``Q(s, tanh(mu_ref(s)))``, the clone's action's (IBRL's bootstrap)."""
        with torch.no_grad():
            action, log_pi = self.policy.sample(obs)
        value = critic(obs, action) - self.alpha * log_pi
        if not self.config.bc_reference:
            return value
        return torch.maximum(value, critic(obs, self.policy.reference_action(obs)))

    @torch.no_grad()
    def polyak(self) -> None:
        """``Q_targ <- (1 - tau) Q_targ + tau Q``."""
        torch._foreach_lerp_(list(self.critic_target.parameters()),
                             list(self.critic.parameters()), self.config.tau)  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume: networks (the actor's through ``policy``) and optimizers."""
        reference = self.policy.reference
        return {
            "actor": self.policy.actor.state_dict(),
            **({"reference": reference.state_dict()} if reference is not None else {}),
            **({"reference_share": self.reference_share} if self.config.bc_reference else {}),
            **(self.hindsight_state() if self.hindsight is not None else {}),
            **(self.temperature_state() if self.config.learn_temperature else {}),
            "actor_updates": self.actor_updates,
            **{name: getattr(self, name).state_dict() for name in self.NETWORKS},
            **{name: getattr(self, name).state_dict() for name in self.OPTIMIZERS},
        }

    def hindsight_state(self) -> dict[str, Any]:
        """The relabelled data (``hindsight_goal``): training state, saved for resume."""
        return {"hindsight_obs": self.hindsight_obs, "hindsight_action": self.hindsight_action,
                "hindsight_next_obs": self.hindsight_next_obs,
                "expert_transitions": self.expert_transitions}  # fmt: skip

    def temperature_state(self) -> dict[str, Any]:
        """The learned log alpha and its optimizer (``learn_temperature``), saved for resume."""
        return {"log_alpha": self.log_alpha.detach().clone(),
                "temperature_optimizer": self.temperature_optimizer.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.actor.load_state_dict(state["actor"])
        if self.policy.reference is not None:
            self.policy.reference.load_state_dict(state["reference"])
        if self.config.bc_reference:
            self.reference_share = state["reference_share"]
        if self.hindsight is not None:
            self.hindsight_obs, self.hindsight_action, self.hindsight_next_obs = (
                state["hindsight_obs"],
                state["hindsight_action"],
                state["hindsight_next_obs"],
            )
            self.expert_transitions = state["expert_transitions"]
        if self.config.learn_temperature:
            with torch.no_grad():
                self.log_alpha.copy_(state["log_alpha"])
            self.temperature_optimizer.load_state_dict(state["temperature_optimizer"])
            self.alpha = float(self.log_alpha.detach().exp())
        self.actor_updates = state.get("actor_updates", 0)  # saves before it existed: 0
        for name in (*self.NETWORKS, *self.OPTIMIZERS):
            getattr(self, name).load_state_dict(state[name])
