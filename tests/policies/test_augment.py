"""Image augmentation: it changes training batches and never what a policy sees when acting;
an image checkpoint refuses data without its cameras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from robot_il.policies.augment import colour_jitter, random_shift
from robot_il.policies.bc import BCConfig, BCPolicy
from robot_il.policies.diffusion import DiffusionConfig, DiffusionPolicy
from robot_il.policies.encoders import CameraEncoder, ConvImageEncoder, pool_frames
from torch import nn

from robot_il.dataset import Dataset, DatasetWriter, Normalizer
from robot_il.errors import DatasetError
from robot_il.train.finetune import finetune_checkpoint

SPEC = {"robot": "ur5e", "control_hz": 20.0, "action_dim": 2, "action_mode": "joint",
        "observation": {"joint_pos": [6], "rgb_front": [20, 20, 3]}}  # fmt: skip


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 20, 20, 3), dtype=np.uint8)


def _batch(n: int = 8) -> dict[str, torch.Tensor]:
    return {
        "joint_pos": torch.zeros(n, 1, 6),
        "rgb_front": torch.from_numpy(_images(n)),
        "action": torch.zeros(n, 1, 2),
    }


class _Identity:
    def normalize(self, key, x):
        return x

    def unnormalize(self, key, x):
        return x


def test_random_shift_moves_each_image_by_at_most_pad_pixels() -> None:
    """A single bright pixel lands within ``pad`` of where it was, differently per image."""
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 16, 16)
    images[:, 0, 8, 8] = 1.0
    shifted = random_shift(images, pad=3)
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0, as_tuple=True)[1:]
    assert shifted.shape == images.shape and len(rows) == 64  # exactly one pixel each
    assert (rows - 8).abs().max() <= 3 and (cols - 8).abs().max() <= 3
    assert len({(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}) > 10
    assert torch.equal(random_shift(images, pad=0), images)


def test_pool_frames_averages_blocks_like_avg_pool2d() -> None:
    """The conv encoder's input pooling equals torch's average pool (odd edges dropped), and
    the camera encoder sees a frame's 2x2 block means: a frame and its block-constant copy
    give the same features."""
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 9, 8, 3), np.uint8))
    reference = nn.functional.avg_pool2d(frames.permute(0, 3, 1, 2).float(), 2)
    torch.testing.assert_close(pool_frames(frames, 2), reference.permute(0, 2, 3, 1))
    assert pool_frames(frames, 3).shape == (3, 3, 2, 3)
    camera = CameraEncoder("conv", 8, shift=4, jitter=0.1).eval()
    coarse = torch.from_numpy(np.random.default_rng(1).integers(20, 236, (1, 16, 16, 3), np.uint8))
    blocky = coarse.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # 32x32
    noisy = blocky.clone()
    noisy[0, 0, 0] += 10
    noisy[0, 1, 1] -= 10  # the same 2x2 block sum
    with torch.no_grad():
        torch.testing.assert_close(camera(noisy), camera(blocky))
        assert not torch.allclose(camera(blocky), camera(blocky.flip(1)))
    assert camera.augment.shift == 2  # 4 camera pixels = 2 pooled pixels


def test_conv_keypoints_follow_an_object_across_the_frame() -> None:
    """A fresh conv encoder's spatial-softmax keypoints move with a bright square: the maps
    before the softmax have contrast (the encoder without its last GroupNorm had maps so flat
    that every frame gave the same keypoints, and its policy ignored the camera)."""
    torch.manual_seed(0)
    network = ConvImageEncoder(feature_dim=8)
    frames = torch.full((5, 3, 48, 48), -1.0)
    for i, col in enumerate(range(4, 44, 8)):
        frames[i, :, 20:28, col : col + 6] = 1.0
    with torch.no_grad():
        maps = network.convs(frames)
        keypoints = network.keypoints(maps)
    assert maps.std(dim=(2, 3)).mean() > 0.5  # unit-variance groups, not a flat map
    xs = keypoints[:, :32]
    assert (xs[-1] - xs[0]).abs().mean() > 0.05  # the square crossed the frame


def test_colour_jitter_stays_in_range_and_varies_per_image() -> None:
    torch.manual_seed(0)
    images = torch.rand(32, 3, 8, 8) * 2 - 1
    jittered = colour_jitter(images, 0.3)
    assert jittered.min() >= -1 and jittered.max() <= 1
    change = (jittered - images).abs().mean(dim=(1, 2, 3))
    assert change.min() > 0 and change.std() > 0.01
    assert torch.equal(colour_jitter(images, 0.0), images)


@pytest.mark.parametrize("encoder", ["resnet", "conv"])
def test_augmentation_changes_training_batches_and_never_evaluation(encoder: str) -> None:
    """In training mode the same batch gives a different loss at each pass (its frames are
    shifted and jittered anew); in eval mode the encoder sees the frames untouched: exactly
    what a policy with augmentation off computes from the same weights."""
    config = BCConfig(hidden_dims=(16,), image_feature_dim=8, image_encoder=encoder)
    torch.manual_seed(0)
    policy = BCPolicy(config, SPEC, _Identity())
    plain = BCPolicy(BCConfig(hidden_dims=(16,), image_feature_dim=8, image_encoder=encoder,
                              image_shift=0, image_jitter=0.0), SPEC, _Identity())  # fmt: skip
    plain.load_state_dict(policy.state_dict())
    batch = _batch()
    policy.train()
    plain.train()
    assert policy(batch).item() != policy(batch).item()
    assert plain(batch).item() == plain(batch).item()
    policy.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(policy.encoder(batch), plain.encoder(batch), rtol=0, atol=0)
        assert policy(batch).item() == policy(batch).item()
    obs = {"joint_pos": np.zeros(6, np.float32), "rgb_front": _images(1, seed=1)[0, 0]}
    np.testing.assert_array_equal(policy.act(obs), plain.act(obs))


def test_diffusion_acts_on_the_frames_unaugmented() -> None:
    """Diffusion's sampling is random, so compare under one seed: the augmented policy and its
    augmentation-free twin give the same action for the same frame."""
    config = DiffusionConfig(down_dims=(8, 16), image_feature_dim=8, image_encoder="conv")
    torch.manual_seed(0)
    policy = DiffusionPolicy(config, SPEC, _Identity()).eval()
    twin_config = DiffusionConfig(down_dims=(8, 16), image_feature_dim=8, image_encoder="conv",
                                  image_shift=0, image_jitter=0.0)  # fmt: skip
    twin = DiffusionPolicy(twin_config, SPEC, _Identity()).eval()
    twin.load_state_dict(policy.state_dict())
    obs = {"joint_pos": np.zeros(6, np.float32), "rgb_front": _images(1, seed=2)[0, 0]}
    torch.manual_seed(5)
    first = policy.act(obs)
    torch.manual_seed(5)
    np.testing.assert_array_equal(first, twin.act(obs))


def test_image_checkpoint_refuses_a_dataset_without_its_cameras(tmp_path: Path) -> None:
    """Fine-tuning an image checkpoint on corrections or demonstrations recorded without its
    camera stops before training, naming the missing key, and writes nothing."""
    rng = np.random.default_rng(0)
    paths = {}
    for name, attrs in (("corrections", {"kind": "corrections"}), ("demos", {})):
        path = tmp_path / f"{name}.zarr"
        attrs = {"task": "reach", "action_mode": "joint", **attrs}
        with DatasetWriter.create(
            path, robot="ur5e", control_hz=20.0, fsync=False, attrs=attrs
        ) as writer:
            for _ in range(2):
                joint_pos = rng.uniform(-1, 1, (10, 6)).astype(np.float32)
                action = rng.uniform(-1, 1, (10, 2)).astype(np.float32)
                writer.add_episode({"joint_pos": joint_pos, "action": action})
        paths[name] = path
    normalizer = Normalizer.fit(Dataset.open(paths["demos"]), ["joint_pos", "action"])
    BCPolicy(BCConfig(image_encoder="conv"), SPEC, normalizer).save(tmp_path / "image_policy")
    with pytest.raises(DatasetError, match="lacks key.*rgb_front"):
        finetune_checkpoint(tmp_path / "image_policy", paths["corrections"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
