"""Observation encoders shared by the policies: low-dimensional state and RGB cameras.

Low-dimensional keys arrive normalized (by the policy's normalizer) and are concatenated.
Each camera gets its own encoder, never batch-normalized, because batch statistics drift
between training batches and single-observation inference and interact badly with EMA
weights (the Diffusion Policy paper's finding): a small ResNet with GroupNorm (``resnet``),
or a pooled three-layer conv stack read out by a spatial softmax (``conv``, after robomimic's
keypoint encoder), which trains many times as many steps per second on this CPU
(``benchmarks/vision.py --speed``). Training batches are augmented before encoding
(``robot_il.policies.augment``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from robot_il.policies.augment import ImageAugmentation
from robot_il.policies.spec import is_image_key
from torch import Tensor, nn

ImageEncoderKind = Literal["resnet", "conv"]

DEPTH_PREFIX = "depth_"
"""Depth cameras' keys (``depth_<camera>``, (H, W) float32 metres, recorded over ROS 2 by
``robot_il.ros.observation``): no encoder reads them yet, and as low-dimensional keys each
pixel would be one normalized input of the MLP."""


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
    """A small ResNet (stem + four residual stages) mapping images to features; global
    average pooling makes it independent of the image size."""

    input_pool = 1
    """Frames are read at full resolution (see ``CameraEncoder``)."""

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

    def forward(self, x: Tensor) -> Tensor:
        """Features (N, feature_dim) of normalized images (N, 3, H, W) in [-1, 1]."""
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))


class SpatialSoftmax(nn.Module):
    """Each channel of a feature map (N, C, H, W) as the expected image position (x, y) in
    [-1, 1]^2 of its softmax over pixels: (N, 2C) keypoints (Levine et al. 2016)."""

    def forward(self, features: Tensor) -> Tensor:
        n, channels, height, width = features.shape
        attention = torch.softmax(features.reshape(n, channels, height * width), dim=-1)
        ys = torch.linspace(-1.0, 1.0, height, device=features.device)
        xs = torch.linspace(-1.0, 1.0, width, device=features.device)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        x = (attention * grid_x.reshape(-1)).sum(-1)
        y = (attention * grid_y.reshape(-1)).sum(-1)
        return torch.cat([x, y], dim=-1)


class ConvImageEncoder(nn.Module):
    """Frames read at half resolution (``input_pool``: 96x96 at 48x48, which quarters every
    layer's cost), three 3x3 convolutions (16, 32, 32 channels; strides 2, 2, 1: a 12x12 map
    from 96x96), a spatial softmax over the last map's channels and a linear head: (N, 3, H, W) in
    [-1, 1] -> (N, feature_dim).

    Each channel of the last map is normalized over its pixels (GroupNorm with one channel a
    group; cheap at 12x12), so every keypoint's softmax has contrast to pick a place from.
    Without it the maps shrank to a near-constant (pixel std 0.008 after 5,000 steps), the
    softmax went uniform, the keypoints stopped moving with the image and the policy ignored
    its camera (0/50 on push); with 8 groups of 4 channels the maps differed between channels
    but were still flat over pixels. The earlier layers have no normalization (GroupNorm there
    cost 40% of the encoder's time on this CPU). The last convolution has no ReLU, so the
    softmax sees signed activations. Fewer channels in the first layer, at the largest map,
    halve its cost; the keypoints come from the last layer's 32 channels."""

    input_pool = 2
    """Frames are 2x2 average-pooled before this network (see ``CameraEncoder``)."""

    def __init__(
        self, feature_dim: int = 64, widths: Sequence[int] = (16, 32, 32),
        strides: Sequence[int] = (2, 2, 1),
    ) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for i, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            layers.append(nn.Conv2d(in_channels, width, 3, stride, 1))
            last = i == len(widths) - 1
            layers.append(nn.GroupNorm(width, width) if last else nn.ReLU())
            in_channels = width
        self.convs = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax()
        self.head = nn.Linear(2 * in_channels, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.keypoints(self.convs(x)))


IMAGE_ENCODERS: dict[str, type[nn.Module]] = {
    "resnet": ResNetImageEncoder,
    "conv": ConvImageEncoder,
}


def pool_frames(frames: Tensor, factor: int) -> Tensor:
    """uint8 frames (N, H, W, C) average-pooled over ``factor`` x ``factor`` blocks: float
    (N, H // factor, W // factor, C), pixel values still in [0, 255]; rows and columns past a
    multiple of ``factor`` are dropped. Summed as int16 slices of the (N, H, W, C) layout the
    frames arrive in: on one CPU thread 2.4x cheaper than ``avg_pool2d`` on the float
    (N, C, H, W) view and 7x cheaper than a reshaped ``mean``."""
    n, height, width, channels = frames.shape
    rows, cols = height // factor, width // factor
    blocks = frames[:, : rows * factor, : cols * factor].to(torch.int16)
    blocks = blocks.reshape(n, rows, factor, cols, factor, channels)
    summed = sum(blocks[:, :, i] for i in range(factor))
    summed = sum(summed[:, :, :, j] for j in range(factor))
    return summed.float() / factor**2


class CameraEncoder(nn.Module):
    """One camera: raw uint8 frames (..., H, W, 3) -> (..., feature_dim) features.

    Frames are average-pooled by the ``kind`` network's ``input_pool`` (rows and columns past
    a multiple of it dropped), scaled to [-1, 1] and augmented (training mode only; the
    ``shift`` is in camera pixels, so ``shift // input_pool`` pooled pixels) before the
    network. Pooling comes first, so augmentation works on the smaller frames.

    A ``crop`` (top, left, height, width in camera pixels) cuts every frame, in training and
    acting alike, to a fixed region of interest read at full resolution (no pooling): where
    the objects fill a small part of the view, it spends the network's pixels on them."""

    def __init__(
        self, kind: ImageEncoderKind, feature_dim: int, shift: int, jitter: float,
        crop: Sequence[int] = (),
    ) -> None:  # fmt: skip
        super().__init__()
        self.network = IMAGE_ENCODERS[kind](feature_dim)
        self.crop = tuple(int(c) for c in crop)
        self.pool = 1 if self.crop else int(self.network.input_pool)
        self.augment = ImageAugmentation(shift // self.pool, jitter)
        self.feature_dim = feature_dim

    def prepare(self, frames: Tensor) -> Tensor:
        """uint8 frames (N, H, W, 3) cropped, pooled and scaled: float (N, 3, h, w) in
        [-1, 1], what the network reads (before augmentation)."""
        if self.crop:
            top, left, height, width = self.crop
            frames = frames[:, top : top + height, left : left + width]
        x = pool_frames(frames, self.pool) if self.pool > 1 else frames.float()
        return (x / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()

    def forward(self, images: Tensor) -> Tensor:
        lead = images.shape[:-3]
        height, width = images.shape[-3:-1]
        x = self.prepare(images.reshape(-1, height, width, 3))
        return self.network(self.augment(x)).reshape(*lead, self.feature_dim)


class ObservationEncoder(nn.Module):
    """Encodes a dict of observation histories ``key -> (B, T, ...)`` into ``(B, T * D)``.

    Keys are taken in sorted order so the feature layout does not depend on dict order.
    """

    def __init__(
        self,
        obs_shapes: Mapping[str, Sequence[int]],
        n_obs_steps: int,
        image_feature_dim: int,
        image_encoder: ImageEncoderKind = "resnet",
        image_shift: int = 0,
        image_jitter: float = 0.0,
        image_crop: Sequence[int] = (),
        image_crop_keys: Sequence[str] = (),
    ) -> None:
        """``image_crop`` cuts the frames of the ``image_crop_keys`` cameras (empty: all); a
        crop without a camera, a crop key that is not a camera here and a depth camera
        (``DEPTH_PREFIX``) are refused (``ValueError``)."""
        super().__init__()
        depth = sorted(k for k in obs_shapes if k.startswith(DEPTH_PREFIX))
        if depth:
            raise ValueError(
                f"obs_keys {', '.join(depth)}: depth cameras are not policy inputs (the image "
                "encoders read rgb_<camera> frames); leave them out of --policy.obs-keys"
            )
        self.lowdim_keys = sorted(k for k in obs_shapes if not is_image_key(k))
        self.image_keys = sorted(k for k in obs_shapes if is_image_key(k))
        if image_crop and not self.image_keys:  # else the crop would be silently ignored
            raise ValueError(
                f"image_crop {tuple(image_crop)} cuts camera frames, but the observation has "
                f"no camera ({', '.join(self.lowdim_keys)}): name one in --policy.obs-keys, "
                "e.g. rgb_front"
            )
        unknown = sorted(set(image_crop_keys) - set(self.image_keys))
        if unknown:
            raise ValueError(
                f"image_crop_keys {', '.join(unknown)} are not cameras of the observation "
                f"({', '.join(self.image_keys) or 'none'})"
            )
        cropped = set(image_crop_keys or self.image_keys) if image_crop else set()
        for key in self.image_keys:
            if key in cropped:
                top, left, height, width = image_crop
                frame_height, frame_width = obs_shapes[key][:2]
                if top + height > frame_height or left + width > frame_width:
                    raise ValueError(
                        f"image_crop {tuple(image_crop)} (top, left, height, width) leaves the "
                        f"{frame_height}x{frame_width} frames of {key}"
                    )
        self.cameras = nn.ModuleDict(
            {
                k: CameraEncoder(
                    image_encoder,
                    image_feature_dim,
                    image_shift,
                    image_jitter,
                    image_crop if k in cropped else (),
                )
                for k in self.image_keys
            }
        )
        self.obs_widths = {k: int(torch.tensor(obs_shapes[k]).prod()) for k in self.lowdim_keys}
        """Each low-dimensional key's features per step."""
        self.lowdim_dim = sum(self.obs_widths.values())
        self.image_dim = image_feature_dim * len(self.image_keys)
        self.step_dim = self.lowdim_dim + self.image_dim
        self.output_dim = self.step_dim * n_obs_steps

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        parts = [obs[k].flatten(start_dim=2).float() for k in self.lowdim_keys]
        parts += [self.cameras[k](obs[k]) for k in self.image_keys]
        return torch.cat(parts, dim=-1).flatten(start_dim=1)

    def lowdim_columns(self, keys: Sequence[str]) -> list[int]:
        """The columns of ``forward``'s output that hold the low-dimensional ``keys`` at the
        last (current) step, in the output's order; a key that is not a low-dimensional
        observation here is refused (``ValueError``)."""
        unknown = sorted(set(keys) - set(self.lowdim_keys))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not low-dimensional observation keys "
                             f"({', '.join(self.lowdim_keys)})")  # fmt: skip
        columns, start = [], self.output_dim - self.step_dim
        for key in self.lowdim_keys:
            width = self.obs_widths[key]
            if key in keys:
                columns.extend(range(start, start + width))
            start += width
        return columns

    def current_image_features(self, encoded: Tensor) -> Tensor:
        """The cameras' features (B, image_dim) of the last (current) step of ``encoded``, an
        output of ``forward`` (steps oldest first, each low-dimensional keys then cameras)."""
        return encoded[:, encoded.shape[1] - self.image_dim :]
