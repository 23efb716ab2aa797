"""Diffusion Policy's own noise schedule gives diffusers' ``DDPMScheduler``/``DDIMScheduler``
values to the bit (checkpoints act as they did before it replaced them), and acting with a
Diffusion Policy no longer imports diffusers (3-4 s of CPU a process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from robot_il.policies.diffusion.schedule import NoiseSchedule
from robot_il.policies.untrained import untrained_reach_checkpoint

SETTINGS = [
    (levels, beta_schedule, prediction_type)
    for levels in (100, 1000)
    for beta_schedule in ("squaredcos_cap_v2", "linear")
    for prediction_type in ("sample", "epsilon")
]


@pytest.mark.parametrize(("levels", "beta_schedule", "prediction_type"), SETTINGS)
def test_the_schedule_is_diffusers_to_the_bit(
    levels: int, beta_schedule: str, prediction_type: str
) -> None:
    settings = {"num_train_timesteps": levels, "beta_schedule": beta_schedule,
                "clip_sample": True, "prediction_type": prediction_type}  # fmt: skip
    ddpm, ddim = DDPMScheduler(**settings), DDIMScheduler(**settings)
    ours = NoiseSchedule(levels, beta_schedule, prediction_type)
    assert torch.equal(ours.alphas_cumprod, ddpm.alphas_cumprod)
    generator = torch.Generator().manual_seed(levels)
    clean = 1.5 * torch.randn(64, 16, 7, generator=generator)  # some outside [-1, 1]: clipped
    noise = torch.randn(64, 16, 7, generator=generator)
    noised_to = torch.randint(0, levels, (64,), generator=generator)
    assert torch.equal(
        ours.add_noise(clean, noise, noised_to), ddpm.add_noise(clean, noise, noised_to)
    )
    for steps in (1, 3, 10, 16):
        ours.set_inference_steps(steps)
        ddim.set_timesteps(steps)
        assert torch.equal(ours.timesteps, ddim.timesteps), steps
        for level in ours.timesteps.tolist():
            prediction = torch.randn(8, 16, 7, generator=generator)
            sample = torch.randn(8, 16, 7, generator=generator)
            expected = ddim.step(prediction, level, sample, return_dict=False)[0]
            assert torch.equal(ours.ddim_step(prediction, level, sample), expected), level


def test_acting_with_a_diffusion_policy_imports_no_diffusers(tmp_path: Path) -> None:
    path = untrained_reach_checkpoint("diffusion", tmp_path, horizon=8, n_action_steps=4)
    act = (
        "import sys, numpy as np; from robot_il.policies import load_policy; "
        f"policy = load_policy({str(path)!r}); "
        "obs = {k: np.zeros(s, np.float32) for k, s in policy.spec['observation'].items()}; "
        "print(policy.act(obs).shape, 'diffusers' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", act], capture_output=True, text=True)
    assert shown.stdout.split()[-1] == "False", shown.stdout + shown.stderr
