"""A conditional 1-D temporal U-Net: the noise-prediction network of Diffusion Policy.

It convolves along time over an action sequence ``(B, T, A)``. Every residual block is
modulated by FiLM (a per-channel scale and bias) computed from the conditioning vector: the
diffusion-step embedding concatenated with the encoded observation history. Time is halved
at each level going down and doubled going up, with skip connections between levels, so
``T`` must be divisible by ``2 ** (len(down_dims) - 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of the (integer) diffusion step."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, steps: Tensor) -> Tensor:
        angles = steps.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvNormMish(nn.Sequential):
    """Conv1d (same padding) -> GroupNorm -> Mish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(groups, out_channels),
            nn.Mish(),
        )


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; the first's output is scaled and shifted by FiLM from ``cond``."""

    def __init__(
        self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, groups: int
    ) -> None:
        super().__init__()
        self.block1 = ConvNormMish(in_channels, out_channels, kernel_size, groups)
        self.block2 = ConvNormMish(out_channels, out_channels, kernel_size, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.residual = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(scale * h + bias)
        return h + (x if self.residual is None else self.residual(x))


class ConditionalUnet1D(nn.Module):
    """Predicts the noise in ``sample`` (B, T, A) at ``timestep`` given ``global_cond`` (B, C)."""

    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: Sequence[int] = (64, 128, 256),
        step_embed_dim: int = 128,
        kernel_size: int = 5,
        groups: int = 8,
    ) -> None:
        super().__init__()
        self.step_encoder = nn.Sequential(
            SinusoidalEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        cond_dim = step_embed_dim + global_cond_dim
        dims = [action_dim, *down_dims]

        def block(cin: int, cout: int) -> FiLMResidualBlock:
            return FiLMResidualBlock(cin, cout, cond_dim, kernel_size, groups)

        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = i == len(down_dims) - 1
            resample = nn.Identity() if last else nn.Conv1d(cout, cout, 3, 2, 1)
            self.down.append(nn.ModuleList([block(cin, cout), block(cout, cout), resample]))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]) for _ in range(2)])
        self.up = nn.ModuleList()
        for cout, cin in reversed(list(zip(down_dims[:-1], down_dims[1:], strict=True))):
            self.up.append(
                nn.ModuleList(
                    [
                        block(2 * cin, cout),
                        block(cout, cout),
                        nn.ConvTranspose1d(cout, cout, 4, 2, 1),
                    ]
                )
            )
        self.final = nn.Sequential(
            ConvNormMish(down_dims[0], down_dims[0], kernel_size, groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )

    def forward(self, sample: Tensor, timestep: Tensor, global_cond: Tensor) -> Tensor:
        cond = torch.cat([self.step_encoder(timestep), global_cond], dim=-1)
        x = sample.transpose(1, 2)
        skips = []
        for first, second, downsample in self.down:
            x = second(first(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)
        for first, second, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = upsample(second(first(x, cond), cond))
        return self.final(x).transpose(1, 2)
