"""Diffusion Policy: a DDPM over action chunks, conditioned on the observation history.

Training adds noise at a random level of a DDPM schedule (:mod:`.schedule`) to a normalized
action window and trains the U-Net to predict the clean actions (``prediction_type="sample"``,
the default) or that noise (``"epsilon"``, the paper's objective). On small CPU budgets the
sample objective learns far faster here: 85% reach success after 500 steps in our test
setting. Acting starts from Gaussian noise and denoises with DDIM in ``num_inference_steps``
steps, which the DDIM sampler allows without retraining; actions are clipped to the
normalized range.
An exponential moving average of the weights (diffusers ``EMAModel``) is what acts and is
saved: it is markedly better than the raw weights for diffusion models.

Sampling can hold given actions fixed (``inpaint``), as real-time chunking does with the
actions a robot still executes from the previous chunk (Black et al. 2025, "Real-Time
Execution of Action Chunking Flow Policies"), in the simple RePaint form (Lugmayr et al. 2022):
after every denoising step the known positions of the sample are replaced by the known actions
noised to the level of the next step (the forward process, ``add_noise``), and by the known
actions themselves after the last, so that the free positions are denoised around them.
Replacement alone tells the free positions little: at the high noise levels where a sample
picks its mode, the known positions are mostly noise, and on a policy trained on two equally
likely motions the free positions took the other motion as often as without it
(``tests/policies/test_diffusion_inpainting.py``). ``inpaint_guidance`` > 0 adds the guidance
of real-time chunking (RTC's, after Song et al. 2023, PiGDM): each step's clean-action
prediction is moved by ``inpaint_guidance`` times the vector-Jacobian product of its error at
the known positions, ``J^T (known - prediction)`` with ``J`` the prediction's Jacobian in the
sample, so that the free positions change to agree with the known ones (one backward pass
through the U-Net per step: 35 ms per chunk against 10 ms without, one thread, the push
recipe's checkpoint). Too strong a pull throws the samples off: the push recipe's checkpoint,
acting with an inference latency of one period (``benchmarks/chunk_consistency.py``), pushed
26/50 without inpainting, 30 by replacement alone, 35, 38, 34 and 10 with guidance 1, 2, 5 and
20; the default 2 was chosen there, and the toy policy keeps to the committed motion with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import torch
from robot_il.policies.base import Policy, PolicyConfig
from robot_il.policies.diffusion.schedule import NoiseSchedule
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
    inpaint_guidance: float = 2.0
    """acting with committed actions: guidance weight toward them (0: replacement alone, as
    with prediction_type epsilon, whose prediction is not the actions the guidance pulls)"""

    def validate(self) -> None:
        super().validate()
        if self.inpaint_guidance < 0:
            raise ValueError(f"inpaint_guidance must be >= 0, got {self.inpaint_guidance}")
        if self.normalization != "minmax":
            raise ValueError("diffusion needs normalization 'minmax' (samples live in [-1, 1])")


class DiffusionPolicy(Policy):
    """Conditional 1-D U-Net denoiser over action chunks."""

    policy_type = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, spec: Spec, normalizer: Any) -> None:
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
        self.schedule = NoiseSchedule(
            config.num_train_timesteps, config.beta_schedule, config.prediction_type
        )
        self.schedule.set_inference_steps(config.num_inference_steps)
        self.ema: Any = None
        self._traced: dict[tuple, Any] = {}

    def set_inference_steps(self, steps: int) -> None:
        """Number of DDIM denoising steps used when acting (fewer: faster, coarser)."""
        self.config.num_inference_steps = steps
        self.schedule.set_inference_steps(steps)

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
                foreach=True,  # one op over every tensor: 3.5 -> 1.5 ms a step for the
                # learning tests' small U-Net (100 tensors), the same for the default one
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
        noisy = self.schedule.add_noise(actions, noise, steps)
        target = noise if self.config.prediction_type == "epsilon" else actions
        denoising = nn.functional.mse_loss(self.unet(noisy, steps, cond), target)
        return denoising + self.auxiliary_state_loss(batch, cond)

    inpaints_committed = True

    def predict_chunk(
        self, obs: Mapping[str, Tensor], inpaint: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """Normalized actions ``(B, horizon, A)``; with ``inpaint`` = (known ``(B, horizon, A)``,
        mask ``(horizon,)`` bool), those where the mask is true equal ``known`` (module
        docstring)."""
        cond = self.encoder(obs)
        batch = cond.shape[0]
        timesteps = self.schedule.timesteps
        # The FiLM parameters of every denoising step in one batched call (step-major rows).
        films = self.unet.film_params(
            timesteps.to(cond.device).repeat_interleave(batch), cond.repeat(len(timesteps), 1)
        )
        sample = torch.randn((batch, self.config.horizon, self.action_dim), device=cond.device)
        if inpaint is not None:
            sample = self._hold_known(sample, *inpaint, int(timesteps[0]))
        # The guidance pulls a clean-action prediction: an epsilon-predicting U-Net's is noise.
        guided = (
            inpaint is not None
            and self.config.inpaint_guidance > 0
            and self.config.prediction_type == "sample"
        )
        denoise = self._denoiser(sample, tuple(film[:batch] for film in films))
        for index, step in enumerate(timesteps.tolist()):
            rows = slice(index * batch, (index + 1) * batch)
            step_films = tuple(film[rows] for film in films)
            if guided:
                prediction = self._guided_prediction(sample, step_films, *inpaint)
            else:
                prediction = denoise(sample, *step_films)
            sample = self.schedule.ddim_step(prediction, step, sample)
            if inpaint is not None:  # the sample is now at the next step's noise level
                following = int(timesteps[index + 1]) if index + 1 < len(timesteps) else None
                sample = self._hold_known(sample, *inpaint, following)
        return sample.clamp(-1.0, 1.0)

    def _guided_prediction(
        self, sample: Tensor, films: tuple[Tensor, ...], known: Tensor, mask: Tensor
    ) -> Tensor:
        """The U-Net's clean-action prediction for ``sample`` plus ``inpaint_guidance`` times
        ``J^T (known - prediction)`` at the ``mask`` positions (module docstring). Autograd
        runs inside the caller's inference mode on copies (tensors made in inference mode
        cannot be recorded)."""
        with torch.inference_mode(False), torch.enable_grad():
            source = sample.clone().requires_grad_(True)
            prediction = self.unet.denoise(source, *(film.clone() for film in films))
            error = torch.where(
                mask.clone()[None, :, None], known.clone() - prediction.detach(), 0.0
            )
            (pull,) = torch.autograd.grad(prediction, source, grad_outputs=error)
        return prediction.detach() + self.config.inpaint_guidance * pull

    def _hold_known(self, sample: Tensor, known: Tensor, mask: Tensor, step: int | None) -> Tensor:
        """``sample`` with its ``mask`` positions replaced by ``known`` noised to training step
        ``step`` (fresh noise each call, as RePaint), or by ``known`` itself when None."""
        if step is not None:
            noise = torch.randn_like(known)
            level = torch.full((known.shape[0],), step, device=known.device, dtype=torch.long)
            known = self.schedule.add_noise(known, noise, level)
        return torch.where(mask[None, :, None], known, sample)
