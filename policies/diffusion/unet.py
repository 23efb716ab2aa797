"""A conditional 1-D temporal U-Net: the noise-prediction network of Diffusion Policy.

It convolves along time over an action sequence ``(B, T, A)``. Every residual block is
modulated by FiLM (a per-channel scale and bias) computed from the conditioning vector: the
diffusion-step embedding concatenated with the encoded observation history. Time is halved
at each level going down and doubled going up, with skip connections between levels, so
``T`` must be divisible by ``2 ** (len(down_dims) - 1)``.

Acting runs the network once per DDIM step on a batch of one, where fixed per-call costs
dominate, so the network is split in two: ``film_params`` (step embedding and every block's
FiLM projection, which do not depend on the sample) can be computed for all denoising steps
in one batched call, and ``denoise`` is the convolutional part that must run per step.
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


class TemporalConv1d(nn.Conv1d):
    """``nn.Conv1d`` (same weights and state dict) that is fast on short single sequences.

    PyTorch's CPU convolution lowers to a GEMM whose output columns are the time steps; with
    8 of them (the U-Net's lower level at horizon 16) MKL runs it 1.4-2.5x slower than the
    equivalent GEMM with time on the rows, which is what this computes for a batch of one.
    Training batches take the native path.
    """

    def forward(self, x: Tensor) -> Tensor:
        pad, stride = self.padding[0], self.stride[0]
        batch, steps = x.shape[0], (x.shape[2] + 2 * pad - self.kernel_size[0]) // stride + 1
        if batch * steps > 8 or self.dilation[0] != 1 or self.groups != 1 or self.bias is None:
            return super().forward(x)
        windows = nn.functional.pad(x, (pad, pad)).unfold(2, self.kernel_size[0], stride)
        rows = windows.permute(0, 2, 1, 3).reshape(batch * steps, -1)  # (B*T_out, C_in*k)
        out = torch.addmm(self.bias, rows, self.weight.reshape(self.out_channels, -1).t())
        return out.reshape(batch, steps, self.out_channels).transpose(1, 2)


class ConvNormMish(nn.Sequential):
    """Conv1d (same padding) -> GroupNorm -> Mish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int) -> None:
        super().__init__(
            TemporalConv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(groups, out_channels),
            nn.Mish(),
        )


class FiLMResidualBlock(nn.Module):
    """Two conv blocks; the first's output is scaled and shifted by FiLM.

    ``film`` maps the conditioning vector to the per-channel (scale, bias), concatenated;
    ``forward`` takes that projection, so it can be computed ahead for many steps.
    """

    def __init__(
        self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, groups: int
    ) -> None:
        super().__init__()
        self.block1 = ConvNormMish(in_channels, out_channels, kernel_size, groups)
        self.block2 = ConvNormMish(out_channels, out_channels, kernel_size, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.residual = (
            TemporalConv1d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor, film: Tensor) -> Tensor:
        h = self.block1(x)
        scale, bias = film.unsqueeze(-1).chunk(2, dim=1)
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
            resample = nn.Identity() if last else TemporalConv1d(cout, cout, 3, 2, 1)
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
        self.blocks = [m for m in self.modules() if isinstance(m, FiLMResidualBlock)]
        """Every FiLM block, in the order ``denoise`` runs them (module registration order)."""

    def forward(self, sample: Tensor, timestep: Tensor, global_cond: Tensor) -> Tensor:
        return self.denoise(sample, *self.film_params(timestep, global_cond))

    def film_params(self, timestep: Tensor, global_cond: Tensor) -> tuple[Tensor, ...]:
        """Each block's FiLM projection (B, 2 * channels) for steps (B,) and conditions (B, C)."""
        cond = torch.cat([self.step_encoder(timestep), global_cond], dim=-1)
        return tuple(block.film(cond) for block in self.blocks)

    def denoise(self, sample: Tensor, *films: Tensor) -> Tensor:
        """The network's output for ``sample`` (B, T, A), given ``film_params``' output."""
        film = iter(films)
        x = sample.transpose(1, 2)
        skips = []
        for first, second, downsample in self.down:
            x = second(first(x, next(film)), next(film))
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, next(film))
        for first, second, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = upsample(second(first(x, next(film)), next(film)))
        return self.final(x).transpose(1, 2)
