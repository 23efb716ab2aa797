"""The dynamics ensemble of model-based OPT-AIL (arXiv 2605.01778): ``s' = s + Δs(s, a)``.

``members`` MLPs (Swish, LayerNorm, as the paper's settings; ``ALGORITHMS.md``) run as one
batched network: each layer holds a ``(members, in, out)`` weight. Inputs ``[s, a]`` and
targets ``Δs = s' - s`` are standardized with statistics of the data of the latest fit
(kept as buffers), so a member predicts the normalized change of state. A fit trains every
member on its own random minibatches by mean squared error, warm-started from the previous
fit, stops early when no member's hold-out L1 error has improved for ``PATIENCE`` checks,
keeps each member's best weights, and picks the ``elites`` members of lowest hold-out L1.
Units are the env's observation units (raw states, as the actor sees them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

MAX_HOLDOUT = 5000
"""Hold-out transitions at most (a fraction of a large buffer would cost too much to score)."""
CHECK_EVERY = 20
"""Adam steps between hold-out checks during a fit."""
PATIENCE = 3
"""Checks without a 1% improvement of any member's hold-out error before a fit stops."""


class EnsembleLinear(nn.Module):
    """``members`` independent affine maps applied to ``(members, B, in)`` at once."""

    def __init__(self, members: int, inputs: int, outputs: int) -> None:
        super().__init__()
        bound = 1 / np.sqrt(inputs)
        self.weight = nn.Parameter(torch.empty(members, inputs, outputs).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(members, 1, outputs))

    def forward(self, x: Tensor, member: int | None = None) -> Tensor:
        if member is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return x @ self.weight[member] + self.bias[member]


@dataclass
class FitReport:
    """One fit's outcome: Adam steps taken, hold-out L1 (normalized Δs) of each member."""

    steps: int
    holdout_l1: np.ndarray
    elites: list[int]


class DynamicsEnsemble(nn.Module):
    """See the module docstring. ``predict`` gives next states in env units."""

    def __init__(
        self, obs_dim: int, action_dim: int, members: int, elites: int, hidden: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.members, self.n_elites = members, elites
        widths = (obs_dim + action_dim, *hidden)
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(w, elementwise_affine=False) for w in hidden)
        self.head = EnsembleLinear(members, widths[-1], obs_dim)
        self.register_buffer("input_mean", torch.zeros(obs_dim + action_dim))
        self.register_buffer("input_std", torch.ones(obs_dim + action_dim))
        self.register_buffer("delta_mean", torch.zeros(obs_dim))
        self.register_buffer("delta_std", torch.ones(obs_dim))
        self.register_buffer("elites", torch.arange(elites))

    def forward(self, x: Tensor, member: int | None = None) -> Tensor:
        """Normalized Δs for normalized inputs: ``(members, B, in)``, or ``(B, in)`` for one
        ``member``."""
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x = nn.functional.silu(norm(layer(x, member)))
        return self.head(x, member)

    def normalize_input(self, obs: Tensor, action: Tensor) -> Tensor:
        return (torch.cat([obs, action], dim=-1) - self.input_mean) / self.input_std

    @torch.no_grad()
    def predict(self, obs: Tensor, action: Tensor, member: Tensor) -> Tensor:
        """``s'`` for each row, by the member that ``member`` (long, (B,)) names."""
        x = self.normalize_input(obs, action)
        delta = torch.empty_like(obs)
        for m in member.unique().tolist():
            rows = member == m
            delta[rows] = self.forward(x[rows], m)
        return obs + delta * self.delta_std + self.delta_mean

    @torch.no_grad()
    def holdout_l1(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Mean absolute error of each member's normalized Δs, ``(members,)``."""
        x = self.normalize_input(obs, action).expand(self.members, -1, -1)
        target = (next_obs - obs - self.delta_mean) / self.delta_std
        return (self.forward(x) - target).abs().mean(dim=(1, 2))

    def fit(
        self,
        optimizer: torch.optim.Optimizer,
        data: tuple[np.ndarray, np.ndarray, np.ndarray],
        rng: np.random.Generator,
        *,
        holdout: float,
        batch_size: int,
        max_steps: int,
    ) -> FitReport:
        """Fit on ``(obs, action, next_obs)`` arrays; see the module docstring."""
        obs, action, next_obs = (torch.as_tensor(a) for a in data)
        order = torch.as_tensor(rng.permutation(len(obs)))
        n_hold = max(1, min(int(holdout * len(obs)), MAX_HOLDOUT))
        hold, train = order[:n_hold], order[n_hold:]
        inputs = torch.cat([obs[train], action[train]], dim=-1)
        delta = next_obs[train] - obs[train]
        self.input_mean.copy_(inputs.mean(0))
        self.input_std.copy_(inputs.std(0).clamp_min(1e-6))
        self.delta_mean.copy_(delta.mean(0))
        self.delta_std.copy_(delta.std(0).clamp_min(1e-6))
        x = (inputs - self.input_mean) / self.input_std
        y = (delta - self.delta_mean) / self.delta_std
        held = (obs[hold], action[hold], next_obs[hold])
        best = self.holdout_l1(*held)
        best_state = copy.deepcopy(self.state_dict())
        stale, step = 0, 0
        while step < max_steps and stale < PATIENCE:
            for _ in range(min(CHECK_EVERY, max_steps - step)):
                index = torch.as_tensor(rng.integers(0, len(x), (self.members, batch_size)))
                loss = ((self.forward(x[index]) - y[index]) ** 2).mean(dim=(1, 2)).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
            error = self.holdout_l1(*held)
            improved = error < best * 0.99
            stale = 0 if bool(improved.any()) else stale + 1
            if bool(improved.any()):
                state = self.state_dict()
                for m in torch.nonzero(improved).flatten().tolist():
                    for name, value in state.items():
                        if name.endswith(("weight", "bias")):
                            best_state[name][m] = value[m]
                best = torch.minimum(best, error)
        self.load_state_dict(best_state)  # each member's best weights, this fit's statistics
        error = self.holdout_l1(*held)
        elites = torch.argsort(error)[: self.n_elites]
        self.elites.copy_(elites)
        return FitReport(step, error.cpu().numpy(), elites.tolist())
