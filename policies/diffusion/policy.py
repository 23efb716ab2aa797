"""Diffusion Policy: a DDPM over action chunks, conditioned on the observation history.

Training adds noise at a random step of a ``DDPMScheduler`` schedule to a normalized action
window and trains the U-Net to predict the clean actions (``prediction_type="sample"``, the
default) or that noise (``"epsilon"``, the paper's objective). On small CPU budgets the sample
objective learns far faster here: 85% reach success after 500 steps in our test setting.
Acting starts from Gaussian noise and denoises with a ``DDIMScheduler`` in
``num_inference_steps`` steps, which the DDIM sampler allows without retraining; actions are
clipped to the normalized range.
An exponential moving average of the weights (diffusers ``EMAModel``) is what acts and is
saved: it is markedly better than the raw weights for diffusion models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import torch
from robot_il.policies.base import Policy, PolicyConfig
from robot_il.policies.diffusion.unet import ConditionalUnet1D
from robot_il.policies.spec import ACTION_KEY, Spec
from torch import Tensor, nn


@dataclasses.dataclass
class DiffusionConfig(PolicyConfig):
    """Diffusion Policy settings (defaults: To = 2, Tp = 16, Ta = 8, as in the paper).

    The U-Net is sized for CPU inference (two levels, 64 and 128 channels); the paper's
    (256, 512, 1024) is ``--policy.down-dims 256 512 1024`` for GPU training.
    """

    n_obs_steps: int = 2
    """observations per prediction (the current one and those before it)"""
    horizon: int = 16
    """actions predicted per chunk"""
    n_action_steps: int = 8
    """actions of each chunk executed before predicting again"""
    down_dims: tuple[int, ...] = (64, 128)
    """U-Net channels per level"""
    step_embed_dim: int = 64
    """width of the noise-level embedding"""
    kernel_size: int = 5
    """temporal convolution kernel, steps"""
    num_train_timesteps: int = 100
    """noise levels in training (DDPM)"""
    num_inference_steps: int = 10
    """denoising steps when acting (DDIM)"""
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"
    """noise schedule"""
    prediction_type: Literal["epsilon", "sample"] = "sample"
    """what the network predicts: the noise (epsilon) or the clean actions (sample)"""
    use_ema: bool = True
    """act and save with an exponential moving average of the weights"""
    ema_power: float = 0.75
    """EMA warm-up power (diffusers' EMAModel)"""
    ema_max_decay: float = 0.9999
    """largest EMA decay"""

    def validate(self) -> None:
        super().validate()
        if self.normalization != "minmax":
            raise ValueError("diffusion needs normalization 'minmax' (samples live in [-1, 1])")


class DiffusionPolicy(Policy):
    """Conditional 1-D U-Net denoiser over action chunks."""

    policy_type = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, spec: Spec, normalizer: Any) -> None:
        from diffusers import DDIMScheduler, DDPMScheduler

        super().__init__(config, spec, normalizer)
        self.config: DiffusionConfig = config
        levels = 2 ** (len(config.down_dims) - 1)
        if config.horizon % levels:
            raise ValueError(f"horizon {config.horizon} must be divisible by {levels}")
        self.unet = ConditionalUnet1D(
            self.action_dim,
            self.encoder.output_dim,
            down_dims=config.down_dims,
            step_embed_dim=config.step_embed_dim,
            kernel_size=config.kernel_size,
        )
        schedule = {
            "num_train_timesteps": config.num_train_timesteps,
            "beta_schedule": config.beta_schedule,
            "clip_sample": True,
            "prediction_type": config.prediction_type,
        }
        self.noise_scheduler = DDPMScheduler(**schedule)
        self.sampler = DDIMScheduler(**schedule)
        self.sampler.set_timesteps(config.num_inference_steps)
        self.ema: Any = None
        self._traced: dict[tuple, Any] = {}

    def set_inference_steps(self, steps: int) -> None:
        """Number of DDIM denoising steps used when acting (fewer: faster, coarser)."""
        self.config.num_inference_steps = steps
        self.sampler.set_timesteps(steps)

    def _denoiser(self, sample: Tensor, films: tuple[Tensor, ...]) -> Any:
        """The U-Net's ``denoise``, traced by TorchScript for inference: acting calls it once
        per DDIM step on a tiny batch, where Python overhead dominates, and tracing cuts it by
        a third. The trace shares the module's parameters, so EMA swaps and loaded weights
        apply to it."""
        if torch.is_grad_enabled() or self.training:
            return self.unet.denoise
        key = (tuple(sample.shape), str(sample.device))
        if key not in self._traced:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace_module(
                    self.unet, {"denoise": (sample, *films)}, check_trace=False
                )
            self._traced[key] = traced.denoise
        return self._traced[key]

    def begin_training(self) -> None:
        """Begin tracking an EMA of the weights."""
        from diffusers.training_utils import EMAModel

        if self.config.use_ema:
            self.ema = EMAModel(
                self.parameters(),
                power=self.config.ema_power,
                decay=self.config.ema_max_decay,
                use_ema_warmup=True,
            )

    def after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.step(self.parameters())

    @contextlib.contextmanager
    def inference_weights(self) -> Iterator[None]:
        if self.ema is None:
            yield
            return
        self.ema.store(self.parameters())
        self.ema.copy_to(self.parameters())
        try:
            yield
        finally:
            self.ema.restore(self.parameters())

    def training_state(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict()} if self.ema is not None else {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        actions = batch[ACTION_KEY]
        cond = self.encoder(batch)
        noise = torch.randn_like(actions)
        steps = torch.randint(
            0, self.config.num_train_timesteps, (actions.shape[0],), device=actions.device
        )
        noisy = self.noise_scheduler.add_noise(actions, noise, steps)
        target = noise if self.config.prediction_type == "epsilon" else actions
        denoising = nn.functional.mse_loss(self.unet(noisy, steps, cond), target)
        return denoising + self.auxiliary_state_loss(batch, cond)

    def predict_chunk(self, obs: Mapping[str, Tensor]) -> Tensor:
        cond = self.encoder(obs)
        batch = cond.shape[0]
        timesteps = self.sampler.timesteps
        # The FiLM parameters of every denoising step in one batched call (step-major rows).
        films = self.unet.film_params(
            timesteps.to(cond.device).repeat_interleave(batch), cond.repeat(len(timesteps), 1)
        )
        sample = torch.randn((batch, self.config.horizon, self.action_dim), device=cond.device)
        denoise = self._denoiser(sample, tuple(film[:batch] for film in films))
        for index, step in enumerate(timesteps.tolist()):
            rows = slice(index * batch, (index + 1) * batch)
            prediction = denoise(sample, *(film[rows] for film in films))
            sample = self.sampler.step(prediction, step, sample, return_dict=False)[0]
        return sample.clamp(-1.0, 1.0)
