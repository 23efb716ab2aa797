"""Diffusion Policy's noise schedule: DDPM's forward process (training, inpainting) and the
deterministic DDIM sampler (acting), in torch alone.

Why not diffusers' ``DDPMScheduler`` and ``DDIMScheduler``, which this replaced: importing
diffusers imports ``torch._dynamo`` and reads every installed package's metadata, 3-4 s of
CPU in each process that loads a Diffusion Policy (a policy node's inference process,
``robot-il eval``, a selection's candidates) for three formulas. The values are diffusers'
to the bit for the settings Diffusion Policy uses (``timestep_spacing="leading"``,
``set_alpha_to_one``, ``clip_sample`` at 1, ``eta`` 0: ``tests/policies/test_diffusion_schedule.py``
compares them), so checkpoints act as they did.

Notation of Ho et al. 2020 (DDPM) and Song et al. 2021 (DDIM): ``alpha_bar[t]`` =
prod_{s <= t} (1 - beta_s) over the ``num_train_timesteps`` training levels t = 0, 1, ...; a
clean sample ``x0`` noised to level t is ``sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

BETA_START, BETA_END = 1e-4, 0.02
"""The ``linear`` schedule's first and last beta (DDPM's, scaled to its level count)."""
MAX_BETA = 0.999
"""The cosine schedule's betas are capped here: its last would be 1 (no signal left)."""


class NoiseSchedule:
    """The levels of one diffusion model and the DDIM steps it acts with.

    ``beta_schedule``: ``squaredcos_cap_v2`` (Nichol & Dhariwal 2021's cosine alpha_bar,
    offset 0.008) or ``linear``; ``prediction_type``: what the denoiser predicts, the noise
    (``epsilon``) or the clean sample (``sample``)."""

    def __init__(
        self,
        num_train_timesteps: int,
        beta_schedule: Literal["squaredcos_cap_v2", "linear"],
        prediction_type: Literal["epsilon", "sample"],
    ) -> None:
        if beta_schedule == "linear":
            betas = torch.linspace(BETA_START, BETA_END, num_train_timesteps, dtype=torch.float32)
        elif beta_schedule == "squaredcos_cap_v2":
            betas = _cosine_betas(num_train_timesteps)
        else:
            raise ValueError(f"beta_schedule {beta_schedule!r} is not squaredcos_cap_v2 or linear")
        if prediction_type not in ("epsilon", "sample"):
            raise ValueError(f"prediction_type {prediction_type!r} is not epsilon or sample")
        self.num_train_timesteps = num_train_timesteps
        self.prediction_type = prediction_type
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        """alpha_bar[t], float32."""
        self.timesteps = torch.zeros(0, dtype=torch.int64)
        """The levels the DDIM steps start from, noisiest first (:meth:`set_inference_steps`)."""

    def set_inference_steps(self, steps: int) -> None:
        """Act in ``steps`` DDIM steps: from levels ``(steps - 1) * k, ..., k, 0`` with stride
        ``k = num_train_timesteps // steps`` (diffusers' "leading" spacing)."""
        stride = self.num_train_timesteps // steps
        levels = (np.arange(0, steps) * stride).round()[::-1].copy().astype(np.int64)
        self.timesteps = torch.from_numpy(levels)

    def add_noise(self, clean: Tensor, noise: Tensor, levels: Tensor) -> Tensor:
        """``clean`` (B, ...) noised to ``levels`` (B,) with ``noise`` (the forward process)."""
        alphas_cumprod = self.alphas_cumprod.to(device=clean.device, dtype=clean.dtype)
        alpha_bar = alphas_cumprod[levels.to(clean.device)]
        shape = (-1, *([1] * (clean.dim() - 1)))
        signal, spread = (alpha_bar**0.5).reshape(shape), ((1 - alpha_bar) ** 0.5).reshape(shape)
        return signal * clean + spread * noise

    def ddim_step(self, prediction: Tensor, level: int, sample: Tensor) -> Tensor:
        """The sample at the next, less noisy level of the DDIM steps (Song et al. 2021,
        eq. 12 with sigma = 0): the clean-sample estimate, clipped to [-1, 1], noised again
        along the predicted noise. Level 0's next is the clean sample (alpha_bar = 1)."""
        alpha_bar = self.alphas_cumprod[level]
        previous = level - self.num_train_timesteps // len(self.timesteps)
        alpha_bar_next = self.alphas_cumprod[previous] if previous >= 0 else torch.tensor(1.0)
        beta_bar = 1 - alpha_bar
        if self.prediction_type == "epsilon":
            clean = (sample - beta_bar**0.5 * prediction) / alpha_bar**0.5
            noise = prediction
        else:
            clean = prediction
            noise = (sample - alpha_bar**0.5 * clean) / beta_bar**0.5
        clean = clean.clamp(-1.0, 1.0)
        return alpha_bar_next**0.5 * clean + (1 - alpha_bar_next) ** 0.5 * noise


def _cosine_betas(levels: int) -> Tensor:
    """Betas whose alpha_bar follows cos^2 of the time (t + 0.008) / 1.008 * pi / 2, each at
    most :data:`MAX_BETA` (computed in float64, stored float32)."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / levels) / alpha_bar(i / levels), MAX_BETA)
        for i in range(levels)
    ]
    return torch.tensor(betas, dtype=torch.float32)
