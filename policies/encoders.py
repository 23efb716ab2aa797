"""Observation encoders shared by the policies: low-dimensional state and RGB cameras.

Low-dimensional keys arrive normalized (by the policy's normalizer) and are concatenated.
Each camera gets its own small ResNet with GroupNorm instead of BatchNorm, because batch
statistics drift between training batches and single-observation inference and interact
badly with EMA weights (the Diffusion Policy paper's finding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from robot_il.policies.spec import is_image_key
from torch import Tensor, nn


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(8, channels), num_channels=channels)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual path; ``stride`` 2 halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = _group_norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                _group_norm(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return torch.relu(h + self.shortcut(x))


class ResNetImageEncoder(nn.Module):
    """A small ResNet (stem + four residual stages) mapping uint8 (..., H, W, 3) to features.

    Global average pooling makes it independent of the image size; pixels are scaled to
    [-1, 1] inside, so callers pass raw camera frames.
    """

    def __init__(self, feature_dim: int = 64, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), _group_norm(widths[0]), nn.ReLU()
        )
        stages = []
        in_channels = widths[0]
        for i, width in enumerate(widths):
            stages.append(_BasicBlock(in_channels, width, stride=1 if i == 0 else 2))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(in_channels, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, images: Tensor) -> Tensor:
        lead = images.shape[:-3]
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).float()
        x = x / 127.5 - 1.0
        x = self.stages(self.stem(x)).mean(dim=(2, 3))
        return self.head(x).reshape(*lead, self.feature_dim)


class ObservationEncoder(nn.Module):
    """Encodes a dict of observation histories ``key -> (B, T, ...)`` into ``(B, T * D)``.

    Keys are taken in sorted order so the feature layout does not depend on dict order.
    """

    def __init__(
        self, obs_shapes: Mapping[str, Sequence[int]], n_obs_steps: int, image_feature_dim: int
    ) -> None:
        super().__init__()
        self.lowdim_keys = sorted(k for k in obs_shapes if not is_image_key(k))
        self.image_keys = sorted(k for k in obs_shapes if is_image_key(k))
        self.cameras = nn.ModuleDict(
            {k: ResNetImageEncoder(image_feature_dim) for k in self.image_keys}
        )
        lowdim = sum(int(torch.tensor(obs_shapes[k]).prod()) for k in self.lowdim_keys)
        self.step_dim = lowdim + image_feature_dim * len(self.image_keys)
        self.output_dim = self.step_dim * n_obs_steps

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        parts = [obs[k].flatten(start_dim=2).float() for k in self.lowdim_keys]
        parts += [self.cameras[k](obs[k]) for k in self.image_keys]
        return torch.cat(parts, dim=-1).flatten(start_dim=1)
