"""Model pieces on synthetic tensors: U-Net shapes, image observations, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from robot_il.policies.bc import BCConfig, BCPolicy
from robot_il.policies.diffusion.unet import ConditionalUnet1D, TemporalConv1d

from robot_il.train.stats import permutation_test, wilson_interval


class _Identity:
    """Stands in for a fitted normalizer where the data are already in range."""

    def normalize(self, key, x):
        return x

    def unnormalize(self, key, x):
        return x


def test_unet_keeps_the_action_sequence_shape_and_uses_the_condition() -> None:
    torch.manual_seed(0)
    unet = ConditionalUnet1D(action_dim=7, global_cond_dim=10, down_dims=(16, 32, 64))
    sample, steps = torch.randn(4, 16, 7), torch.tensor([0, 5, 50, 99])
    out = unet(sample, steps, torch.zeros(4, 10))
    assert out.shape == sample.shape
    assert not torch.allclose(out, unet(sample, steps, torch.ones(4, 10)))


@pytest.mark.parametrize(("kernel", "stride", "steps"), [(5, 1, 8), (1, 1, 8), (3, 2, 16)])
def test_temporal_conv_matches_the_native_convolution(kernel: int, stride: int, steps: int) -> None:
    """Its fast path (a batch of one, at most 8 output steps) computes what nn.Conv1d does."""
    torch.manual_seed(0)
    conv = TemporalConv1d(12, 20, kernel, stride, padding=kernel // 2)
    native = torch.nn.Conv1d(12, 20, kernel, stride, padding=kernel // 2)
    native.load_state_dict(conv.state_dict())
    x = torch.randn(1, 12, steps)
    torch.testing.assert_close(conv(x), native(x), rtol=1e-5, atol=1e-5)


def test_unet_film_params_for_many_steps_give_the_same_output() -> None:
    """Acting computes FiLM for all denoising steps at once, then slices out each step's."""
    torch.manual_seed(0)
    unet = ConditionalUnet1D(action_dim=3, global_cond_dim=5, down_dims=(8, 16)).eval()
    cond, sample = torch.randn(1, 5), torch.randn(1, 8, 3)
    steps = torch.tensor([90, 40, 0])
    films = unet.film_params(steps, cond.repeat(3, 1))
    for index, step in enumerate(steps):
        expected = unet(sample, step[None], cond)
        got = unet.denoise(sample, *(film[index : index + 1] for film in films))
        torch.testing.assert_close(got, expected)


def test_bc_with_a_camera_learns_from_pixels() -> None:
    """The target depends only on the image's brightness: the ResNet encoder must see it."""
    spec = {"robot": "ur5e", "control_hz": 20.0, "action_dim": 2,
            "observation": {"joint_pos": [6], "rgb_front": [24, 24, 3]}}  # fmt: skip
    torch.manual_seed(0)
    policy = BCPolicy(BCConfig(hidden_dims=(32,), image_feature_dim=16), spec, _Identity())
    rng = np.random.default_rng(0)
    bright = rng.random(32) > 0.5
    images = np.where(bright[:, None, None, None, None], 220, 30).astype(np.uint8)
    images = np.broadcast_to(images, (32, 1, 24, 24, 3)).copy()
    batch = {
        "joint_pos": torch.zeros(32, 1, 6),
        "rgb_front": torch.from_numpy(images),
        "action": torch.from_numpy(np.where(bright, 1.0, -1.0)[:, None, None].repeat(2, 2)).float(),
    }
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = policy(batch).item()
    for _ in range(40):
        loss = policy(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first
    policy.eval()
    action = policy.act({"joint_pos": np.zeros(6, np.float32), "rgb_front": images[0, 0]})
    assert action.shape == (2,) and np.sign(action[0]) == (1 if bright[0] else -1)


def test_gaussian_head_predicts_mean_and_spread() -> None:
    spec = {"robot": "ur5e", "control_hz": 20.0, "action_dim": 1,
            "observation": {"x": [1]}}  # fmt: skip
    torch.manual_seed(0)
    policy = BCPolicy(BCConfig(hidden_dims=(32,), head="gaussian"), spec, _Identity())
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for _ in range(300):
        x = torch.rand(256, 1, 1)
        batch = {"x": x, "action": 2 * x + 0.3 * torch.randn(256, 1, 1)}
        loss = policy(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        mean, log_std = policy._distribution(policy.encoder({"x": torch.full((1, 1, 1), 0.5)}))
    assert float(mean) == pytest.approx(1.0, abs=0.1)
    assert float(log_std.exp()) == pytest.approx(0.3, abs=0.1)


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(9, 10)
    assert (low, high) == (pytest.approx(0.5958, abs=1e-3), pytest.approx(0.9821, abs=1e-3))
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] < 0.17


def test_permutation_test_separates_real_from_chance_differences() -> None:
    assert permutation_test([1] * 9 + [0], [0] * 9 + [1]) < 0.01
    assert permutation_test([1, 0] * 10, [0, 1] * 10) > 0.4
