"""Behavior cloning: an MLP from the (encoded) observation history to an action chunk.

With the defaults it is the plain BC baseline: one observation, one action, mean squared error
on normalized actions. ``horizon`` > 1 turns on action chunking (predict several future
actions, execute ``n_action_steps`` of them), which smooths the jitter of single-step BC.
The ``gaussian`` head predicts a mean and a per-dimension log standard deviation trained by
negative log-likelihood; acting uses the mean unless ``sample_actions`` is set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from robot_il.policies.base import Policy, PolicyConfig
from robot_il.policies.spec import ACTION_KEY, Spec
from torch import Tensor, nn

LOG_STD_RANGE = (-5.0, 2.0)
"""Clamp of the Gaussian head's log standard deviation (normalized action units)."""


@dataclasses.dataclass
class BCConfig(PolicyConfig):
    """BC settings; see the module docstring."""

    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """widths of the MLP's hidden layers"""
    dropout: float = 0.0
    """dropout probability after each hidden layer"""
    head: Literal["deterministic", "gaussian"] = "deterministic"
    """deterministic (squared error) or gaussian (mean, log std; negative log-likelihood)"""
    sample_actions: bool = False
    """gaussian head: act with sampled actions instead of the mean"""


class BCPolicy(Policy):
    """MLP behavior cloning policy."""

    policy_type = "bc"
    config_class = BCConfig

    def __init__(self, config: BCConfig, spec: Spec, normalizer: Any) -> None:
        super().__init__(config, spec, normalizer)
        self.config: BCConfig = config
        outputs = config.horizon * self.action_dim
        if config.head == "gaussian":
            outputs *= 2
        layers: list[nn.Module] = []
        width = self.encoder.output_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, outputs))
        self.mlp = nn.Sequential(*layers)

    def _distribution(self, encoded: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.mlp(encoded)
        shape = (out.shape[0], self.config.horizon, self.action_dim)
        if self.config.head == "deterministic":
            return out.reshape(shape), None
        mean, log_std = out.chunk(2, dim=-1)
        return mean.reshape(shape), log_std.reshape(shape).clamp(*LOG_STD_RANGE)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        target = batch[ACTION_KEY]
        encoded = self.encoder(batch)
        mean, log_std = self._distribution(encoded)
        auxiliary = self.auxiliary_state_loss(batch, encoded)
        if log_std is None:
            return nn.functional.mse_loss(mean, target) + auxiliary
        nll = 0.5 * ((target - mean) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
        return nll.mean() + auxiliary

    def predict_chunk(self, obs: Mapping[str, Tensor]) -> Tensor:
        mean, log_std = self._distribution(self.encoder(obs))
        if log_std is not None and self.config.sample_actions:
            return mean + log_std.exp() * torch.randn_like(mean)
        return mean
