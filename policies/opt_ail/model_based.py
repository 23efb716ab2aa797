"""Model-based OPT-AIL (arXiv 2605.01778): OPT-AIL's updates on real and model transitions.

The released code crashes at its first update and its "optimistic model" term has no
gradient (``ALGORITHMS.md``), so only its settings are taken. After each env step, once
learning has started:

1. once ``MIN_MODEL_DATA`` real transitions are in, and then every ``model_every`` env
   steps, refit the dynamics ensemble on every real transition
   (``robot_il.policies.opt_ail.dynamics``; at most ``model_max_steps`` Adam steps: the CPU
   cap of the reference's every-250-steps fit to convergence);
2. every ``rollout_every`` env steps, 1-step rollouts: ``rollout_states`` states drawn from
   the real replay buffer, actions from the current policy (as it explores: with
   ``bc_reference``, the critic's choice between its sample and the clone's), next states
   from one random elite each, into the model buffer (a ring of ``model_buffer_rollouts``
   rollouts). The model buffer holds no rewards: the reward net scores model pairs at each
   update, so the critic never learns from a reward the reward net has since revised. Model
   transitions are never terminal (the tasks it is run on end by time limits only);
3. ``updates_per_step`` OPT-AIL updates, each on ``batch_size`` real online transitions for
   the reward and a critic/actor batch of ``real_ratio`` of them, the rest model
   transitions, plus the expert's; no optimism term.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from robot_il.policies.opt_ail.dynamics import DynamicsEnsemble
from robot_il.policies.opt_ail.learner import OPTAIL
from robot_il.policies.opt_ail.policy import (
    DEFAULT_REAL_RATIO,
    REAL_RATIO_BY_TASK,
    OPTAILConfig,
    SoftActorPolicy,
)
from robot_il.policies.opt_ail.relu_mlp import wide_matmuls_in
from robot_il.policies.optimizers import adam

from robot_il.train.replay import ReplayBuffer

MIN_MODEL_DATA = 100
"""Real transitions before the first model fit; until then updates use real data only."""


class ModelBasedOPTAIL(OPTAIL):
    """See the module docstring; ``learn`` is the loop's entry point."""

    METRICS = ("reward_loss", "gradient_penalty", "td_loss", "actor_loss", "model_holdout_l1",
               "model_fit_steps")  # fmt: skip

    def __init__(self, policy: SoftActorPolicy, task: str | None) -> None:
        super().__init__(policy, task)
        cfg: OPTAILConfig = policy.config
        self.real_ratio = cfg.real_ratio or REAL_RATIO_BY_TASK.get(task or "", DEFAULT_REAL_RATIO)
        self.model = DynamicsEnsemble(self.obs_dim, self.action_dim, cfg.ensemble_size,
                                      cfg.elites, cfg.model_hidden_dims)  # fmt: skip
        self.model_optimizer = adam(self.model.parameters(), cfg.model_lr)
        self.model_buffer = ReplayBuffer(cfg.rollout_states * cfg.model_buffer_rollouts,
                                         self.obs_dim, self.action_dim)  # fmt: skip
        self.learn_calls = self.model_fits = 0
        self.model_metrics = {"model_holdout_l1": float("nan"), "model_fit_steps": 0.0}

    def learn(
        self, buffer: ReplayBuffer, expert: ReplayBuffer, rng: np.random.Generator
    ) -> dict[str, float]:
        cfg: OPTAILConfig = self.config
        if len(buffer) >= MIN_MODEL_DATA:
            if self.model_fits == 0 or self.learn_calls % cfg.model_every == 0:
                self.fit_model(buffer, rng)
            if len(self.model_buffer) == 0 or self.learn_calls % cfg.rollout_every == 0:
                self.rollout(buffer, rng)
        self.learn_calls += 1
        size = cfg.batch_size
        n_model = size - round(self.real_ratio * size) if len(self.model_buffer) else 0
        metrics: dict[str, float] = {}
        for _ in range(cfg.updates_per_step):
            online, demos = buffer.sample(rng, size), self.expert_batch(expert, rng, size)
            model = self.model_buffer.sample(rng, n_model) if n_model else None
            with wide_matmuls_in(cfg.matmul_precision):
                metrics = self.update(online, demos, model)
        return {**metrics, **self.model_metrics}

    def fit_model(self, buffer: ReplayBuffer, rng: np.random.Generator) -> None:
        """Refit the ensemble on every real transition so far."""
        cfg: OPTAILConfig = self.config
        n = len(buffer)
        report = self.model.fit(
            self.model_optimizer, (buffer.obs[:n], buffer.action[:n], buffer.next_obs[:n]),
            rng, holdout=cfg.model_holdout, batch_size=cfg.model_batch_size,
            max_steps=cfg.model_max_steps,
        )  # fmt: skip
        self.model_fits += 1
        self.model_metrics = {
            "model_holdout_l1": float(report.holdout_l1[report.elites].mean()),
            "model_fit_steps": float(report.steps),
        }

    @torch.no_grad()
    def rollout(self, buffer: ReplayBuffer, rng: np.random.Generator) -> None:
        """1-step model rollouts from ``rollout_states`` real states into the model buffer."""
        index = rng.integers(0, len(buffer), self.config.rollout_states)
        obs = torch.as_tensor(buffer.obs[index])
        action = self.policy.choose(obs, self.policy.sample_action(obs))[0]
        elites = self.model.elites[torch.as_tensor(rng.integers(0, len(self.model.elites),
                                                                len(index)))]  # fmt: skip
        next_obs = self.model.predict(obs, action, elites)
        self.model_buffer.extend(obs.cpu().numpy(), action.cpu().numpy(), next_obs.cpu().numpy(),
                                 np.zeros(len(index), np.float32))  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        model_buffer = io.BytesIO()
        self.model_buffer.save(model_buffer)
        return {
            **super().state_dict(),
            "model": self.model.state_dict(),
            "model_optimizer": self.model_optimizer.state_dict(),
            "model_buffer": model_buffer.getvalue(),
            "learn_calls": self.learn_calls,
            "model_fits": self.model_fits,
            "model_metrics": dict(self.model_metrics),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.model.load_state_dict(state["model"])
        self.model_optimizer.load_state_dict(state["model_optimizer"])
        self.model_buffer.load(io.BytesIO(state["model_buffer"]))
        self.learn_calls, self.model_fits = state["learn_calls"], state["model_fits"]
        self.model_metrics = dict(state["model_metrics"])
