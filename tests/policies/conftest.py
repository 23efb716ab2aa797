"""Fixtures for policy tests: a small synthetic dataset (no simulator) and real scripted
``reach`` demonstrations recorded through the recorder into zarr."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_il.dataset import DatasetWriter

REACH_DEMOS = 50
"""Scripted reach episodes recorded for the learning tests."""


@pytest.fixture
def metrics_without_timing() -> Callable[[Path], list[dict[str, str]]]:
    """Reads the rows of a run's ``metrics.csv`` less ``steps_per_s``, the only column that
    differs between two runs that train alike."""

    def read(out: Path) -> list[dict[str, str]]:
        with (out / "metrics.csv").open(newline="") as file:
            return [{k: v for k, v in row.items() if k != "steps_per_s"}
                    for row in csv.DictReader(file)]  # fmt: skip

    return read


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small models train fastest on one thread, and results do not depend on the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_synthetic_dataset(path: Path, episodes: int = 6, steps: int = 30, **attrs) -> Path:
    """A dataset whose action is a fixed function of the observation (learnable, no sim)."""
    rng = np.random.default_rng(0)
    attrs = {"task": "reach", "action_mode": "joint", **attrs}
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=20.0, attrs=attrs, fsync=False)
    with writer:
        for _ in range(episodes):
            joint_pos = rng.uniform(-1, 1, (steps, 6)).astype(np.float32)
            target = rng.uniform(-1, 1, (steps, 3)).astype(np.float32)
            action = np.concatenate([joint_pos + 0.1, target[:, :1] > 0], axis=1)
            writer.add_episode(
                {"joint_pos": joint_pos, "target_pos": target, "action": action.astype(np.float32)}
            )
    return path


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "demo.zarr")


@pytest.fixture(scope="session")
def reach_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scripted reach demonstrations in eef_delta mode; episodes run their full 2 s (the
    expert holds the target), so the data shows how to settle on the target, not only how
    to approach it."""
    from robot_il.train.demos import record_expert_demos

    return record_expert_demos(
        "reach",
        tmp_path_factory.mktemp("reach"),
        episodes=REACH_DEMOS,
        action_mode="eef_delta",
        terminate_on_success=False,
        max_episode_steps=40,
    )
