"""A dataset as the ROS recorder writes it on a real cell (``record_real_cell.launch.yaml``)
trains with the README's command: its frames' capture stamps (``stamp_rgb_<camera>``, one
float per step) are bookkeeping, not observations (BC took them for one and failed with an
IndexError traceback at its first step)."""

from __future__ import annotations

import json

import numpy as np

from robot_il.cli import main
from robot_il.dataset import DatasetWriter, ImageStorage


def test_a_real_cell_recording_with_camera_stamps_trains(tmp_path) -> None:
    path = tmp_path / "cell.zarr"
    rng = np.random.default_rng(0)
    attrs = {"task": "reach", "action_mode": "joint", "source": "ros"}  # as recorder_node's
    with DatasetWriter.create(
        path, robot="ur5e", control_hz=20.0, attrs=attrs, fsync=False,
        image_storage=ImageStorage("blosc"),
    ) as writer:  # fmt: skip
        for _ in range(2):
            n = 12
            timestamp = np.arange(n) / 20.0
            writer.add_episode(
                {
                    "joint_pos": rng.normal(size=(n, 6)).astype(np.float32),
                    "joint_vel": rng.normal(size=(n, 6)).astype(np.float32),
                    "gripper": np.zeros((n, 1), np.float32),
                    "eef_pose": rng.normal(size=(n, 7)).astype(np.float32),
                    "target_pos": rng.normal(size=(n, 3)).astype(np.float32),
                    "rgb_front": rng.integers(0, 255, (n, 96, 96, 3), dtype=np.uint8),
                    "stamp_rgb_front": timestamp - 0.01,
                    "action": rng.normal(size=(n, 7)).astype(np.float32),
                    "timestamp": timestamp,
                },
                {"task": "reach", "success": False},
            )
    out = tmp_path / "bc"
    argv = ["train", "bc", "--dataset", str(path), "--out", str(out), "--steps", "2"]
    assert main([*argv, "--batch-size", "4", "--eval.episodes", "0", "--no-progress"]) == 0
    spec = json.loads((out / "policy" / "config.json").read_text())
    assert "stamp_rgb_front" not in json.dumps(spec)
