"""OPT-AIL's settings and its deployable part: the SAC-style actor as a robot_il ``Policy``.

The actor maps the (flat, concatenated) observation to a tanh-squashed Gaussian over
actions in [-1, 1]^A; deployed, it acts with its mean, ``tanh(mu)``. The checkpoint holds
only the actor (reward net and critic are training state), so ``robot-il eval``, the ROS 2
policy node and the candidate selector load it as any other checkpoint. Its normalizer is
the identity on observations (the paper feeds raw states) and maps the env's action box to
[-1, 1] for actions, so ``act`` returns env units.

``OPTAILConfig`` holds every hyperparameter of the algorithm (``robot_il.policies.opt_ail.
learner``), the paper's values by default; the fields marked *deviation* choose between
the reference code's behaviour and the corrections ``ALGORITHMS.md`` lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from robot_il.policies.base import Policy, PolicyConfig
from robot_il.policies.spec import ACTION_KEY, Spec
from torch import Tensor, nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
"""The actor's log standard deviation is ``LOG_STD_MIN + (MAX - MIN)/2 (tanh(.) + 1)``."""

GP_WEIGHT_BY_TASK = {"dmc:cartpole_swingup": 1.0, "dmc:walker_walk": 1.0}
"""The paper's gradient-penalty weight per task; every other task uses ``DEFAULT_GP_WEIGHT``."""
DEFAULT_GP_WEIGHT = 10.0


@dataclasses.dataclass
class OPTAILConfig(PolicyConfig):
    """OPT-AIL hyperparameters (the paper's 2024 run script unless said otherwise).

    Sizes: ``batch_size`` online plus as many expert transitions per update. Learning
    rates: Adam. ``gp_weight`` 0 or less means the paper's per-task value
    (``GP_WEIGHT_BY_TASK``). ``eta`` is the optimism weight η (0 turns the term off).

    Deviations from the reference code (``ALGORITHMS.md``):

    - ``optimism_update``: ``"folded"`` adds η·optimism to the critic's TD loss in one Adam
      step and skips the term entirely at η = 0; ``"separate_step"`` is the reference's
      second Adam step on the optimism loss alone, taken even at η = 0 (Adam's momentum
      then still moves the critic).
    - ``detach_policy_actions``: sample the optimism term's policy actions without a
      gradient path into the actor (the reference lets it through).
    - ``optimism_states``: 0 uses every state of the batch (the paper); N > 0 uses N of
      them, half online, half expert: the CPU profile (the term is most of an update's cost).
    """

    hidden_dims: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 0.01
    reward_lr: float = 3e-5
    critic_lr: float = 3e-4
    actor_lr: float = 3e-5
    gp_weight: float = 0.0
    td_clip: float = 100.0
    eta: float = 1e-3
    optimism_actions: int = 10
    optimism_update: Literal["folded", "separate_step"] = "folded"
    detach_policy_actions: bool = True
    optimism_states: int = 0

    def validate(self) -> None:
        super().validate()
        if self.n_obs_steps != 1 or self.horizon != 1 or self.n_action_steps != 1:
            raise ValueError("OPT-AIL acts on the current observation: horizons must be 1")
        if self.batch_size < 1 or self.optimism_actions < 1 or self.optimism_states < 0:
            raise ValueError("batch_size and optimism_actions must be >= 1, optimism_states >= 0")
        if self.eta < 0 or self.alpha <= 0 or not 0 < self.tau <= 1 or not 0 <= self.gamma < 1:
            raise ValueError("need eta >= 0, alpha > 0, 0 < tau <= 1 and 0 <= gamma < 1")


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    """ReLU MLP ``inputs -> hidden... -> outputs``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


class OPTAILPolicy(Policy):
    """The actor; see the module docstring."""

    policy_type = "opt_ail"
    config_class = OPTAILConfig

    def __init__(self, config: OPTAILConfig, spec: Spec, normalizer: Any) -> None:
        super().__init__(config, spec, normalizer)
        self.config: OPTAILConfig = config
        self.actor = mlp(self.encoder.output_dim, config.hidden_dims, 2 * self.action_dim)

    def distribution(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log standard deviation (pre-squash) for flat observations ``(B, D)``."""
        mu, raw = self.actor(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1)
        return mu, log_std

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Reparameterized actions in [-1, 1] and their log-density ``log pi(a|s)``, (B,)."""
        mu, log_std = self.distribution(obs)
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        gaussian = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        # log |d tanh(u)/du| = log(1 - tanh(u)^2), in a form that is stable for large |u|
        squash = (2 * (np.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), gaussian - squash

    def mean_action(self, obs: Tensor) -> Tensor:
        """The deterministic action ``tanh(mu(s))`` in [-1, 1]."""
        return torch.tanh(self.distribution(obs)[0])

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        raise NotImplementedError("OPT-AIL trains online: robot_il.train.online")

    def predict_chunk(self, obs: Mapping[str, Tensor]) -> Tensor:
        return self.mean_action(self.encoder(obs))[:, None]


def identity_observation_normalizer(spec: Spec, action_low: np.ndarray, action_high: np.ndarray):
    """A ``Normalizer`` that leaves observations as they are and maps the action box
    ``[action_low, action_high]`` to [-1, 1] (see the module docstring)."""
    from robot_il.dataset import Normalizer

    bounds = {
        key: np.stack([-np.ones(shape, np.float32), np.ones(shape, np.float32)])
        for key, shape in spec["observation"].items()
    }
    bounds[ACTION_KEY] = np.stack([action_low, action_high]).astype(np.float32)
    return Normalizer.fit_arrays(bounds, mode="minmax")
