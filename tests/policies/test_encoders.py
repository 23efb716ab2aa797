"""Image encoder pieces on hand-made inputs: the spatial softmax reads out where a blob is."""

from __future__ import annotations

import torch
from robot_il.policies.encoders import SpatialSoftmax


def test_spatial_softmax_returns_the_blob_position_and_the_centre_of_a_flat_map() -> None:
    """Channel 0 holds one sharp peak at row 2, column 10 of a 9x13 map: its keypoint is that
    pixel's coordinates on the [-1, 1] grid (x along columns, y along rows). Channel 1 is flat:
    its softmax is uniform and the keypoint is the map's centre."""
    maps = torch.zeros(1, 2, 9, 13)
    maps[0, 0, 2, 10] = 50.0
    keypoints = SpatialSoftmax()(maps)
    x0, x1, y0, y1 = keypoints[0].tolist()  # layout: all x, then all y
    assert abs(x0 - (-1 + 2 * 10 / 12)) < 1e-4 and abs(y0 - (-1 + 2 * 2 / 8)) < 1e-4
    assert abs(x1) < 1e-6 and abs(y1) < 1e-6


def test_spatial_softmax_averages_two_equal_peaks() -> None:
    """Two equal peaks share the softmax's mass: the keypoint lies midway between them, which
    is why a keypoint channel must single out one object."""
    maps = torch.zeros(1, 1, 5, 5)
    maps[0, 0, 0, 0] = maps[0, 0, 4, 2] = 40.0
    x, y = SpatialSoftmax()(maps)[0].tolist()
    assert abs(x - (-1 + 0.0) / 2) < 1e-4 and abs(y - 0.0) < 1e-4


def test_image_crop_reads_only_its_region_at_full_resolution() -> None:
    """A crop (top, left, height, width) hands the network that region of the frame unpooled,
    in training and acting alike (pixels outside it change nothing); a crop that leaves the
    frame is refused when the encoder is built."""
    import pytest
    from robot_il.policies.encoders import CameraEncoder, ObservationEncoder

    torch.manual_seed(0)
    camera = CameraEncoder("conv", 8, shift=0, jitter=0.0, crop=(4, 6, 10, 12))
    frames = torch.randint(0, 256, (2, 20, 24, 3), dtype=torch.uint8)
    prepared = camera.prepare(frames)
    assert prepared.shape == (2, 3, 10, 12)
    torch.testing.assert_close(
        prepared, frames[:, 4:14, 6:18].permute(0, 3, 1, 2).float() / 127.5 - 1.0
    )
    outside = frames.clone()
    outside[:, :4] = 0
    outside[:, :, 18:] = 255
    for mode in (camera.train, camera.eval):
        mode()
        torch.testing.assert_close(camera(frames), camera(outside), rtol=0, atol=0)
    with pytest.raises(ValueError, match="leaves the 20x24 frames of rgb_front"):
        ObservationEncoder({"rgb_front": [20, 24, 3]}, 1, 8, "conv", image_crop=(12, 0, 10, 12))


def test_image_crop_keys_crop_only_the_named_cameras() -> None:
    """With ``image_crop_keys`` the crop cuts the named camera's frames only (a scene camera's
    workspace); the other camera keeps whole, pooled frames. A crop key that is no camera of
    the observation is refused when the encoder is built."""
    import pytest
    from robot_il.policies.encoders import ObservationEncoder

    shapes = {"rgb_front": [20, 24, 3], "rgb_wrist": [20, 24, 3], "joint_pos": [6]}
    encoder = ObservationEncoder(shapes, 1, 8, "conv", image_crop=(4, 6, 8, 12),
                                 image_crop_keys=("rgb_front",))  # fmt: skip
    frames = torch.randint(0, 256, (2, 20, 24, 3), dtype=torch.uint8)
    assert encoder.cameras["rgb_front"].prepare(frames).shape == (2, 3, 8, 12)  # cropped
    assert encoder.cameras["rgb_wrist"].prepare(frames).shape == (2, 3, 10, 12)  # pooled
    assert encoder.cameras["rgb_wrist"].crop == () and encoder.cameras["rgb_wrist"].pool == 2
    every = ObservationEncoder(shapes, 1, 8, "conv", image_crop=(4, 6, 8, 12))
    assert every.cameras["rgb_wrist"].prepare(frames).shape == (2, 3, 8, 12)
    with pytest.raises(ValueError, match="image_crop_keys rgb_side are not cameras"):
        ObservationEncoder(shapes, 1, 8, "conv", image_crop=(4, 6, 8, 12),
                           image_crop_keys=("rgb_side",))  # fmt: skip
    from robot_il.policies.base import PolicyConfig

    with pytest.raises(ValueError, match="image_crop_keys name the cameras image_crop cuts"):
        PolicyConfig(image_crop_keys=("rgb_front",)).validate()  # keys without a crop


def test_a_checkpoint_restores_its_crop_and_the_cameras_it_cuts(tmp_path) -> None:
    """Cropped and pooled cameras have weights of the same shapes, so only the checkpoint's
    config tells them apart: a loaded policy cuts the same camera, and only that one."""
    import numpy as np
    from robot_il.policies import load_policy
    from robot_il.policies.bc import BCConfig, BCPolicy

    from robot_il.dataset import Normalizer

    spec = {"robot": "ur5e", "control_hz": 20.0, "action_dim": 2, "action_mode": "joint",
            "observation": {"joint_pos": [6], "rgb_front": [20, 24, 3],
                            "rgb_wrist": [20, 24, 3]}}  # fmt: skip
    rng = np.random.default_rng(0)
    normalizer = Normalizer.fit_arrays(
        {"joint_pos": rng.normal(size=(10, 6)), "action": rng.normal(size=(10, 2))}
    )
    config = BCConfig(image_encoder="conv", image_crop=(4, 6, 8, 12),
                      image_crop_keys=("rgb_front",))  # fmt: skip
    BCPolicy(config, spec, normalizer).save(tmp_path / "policy")
    cameras = load_policy(tmp_path / "policy").encoder.cameras
    assert cameras["rgb_front"].crop == (4, 6, 8, 12) and cameras["rgb_wrist"].crop == ()
