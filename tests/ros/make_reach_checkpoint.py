"""Regenerate ``fixtures/bc_reach``: a small BC policy trained on scripted reach demonstrations.

The deploy tests run this checkpoint so that the default suite does not train (the slow test
``test_deploy_sim.py::test_trained_from_scratch...`` does the same from scratch).
    .venv/bin/python tests/ros/make_reach_checkpoint.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).with_name("fixtures") / "bc_reach"


def train_reach_bc(
    out: Path,
    *,
    obs_keys: tuple[str, ...] = ("joint_pos", "target_pos"),
    episodes: int = 50,
    steps: int = 1500,
    progress: bool = False,
    **env_kwargs: Any,
) -> Path:
    """Record ``episodes`` expert reach demos (env built with ``env_kwargs``) and train a BC MLP
    on ``obs_keys``; returns the checkpoint directory."""
    from robot_il.train.config import BCTrainConfig, EvalConfig
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.trainer import train

    dataset = record_expert_demos("reach", out / "demos", episodes=episodes, seed=0, **env_kwargs)
    config = BCTrainConfig(
        dataset=str(dataset),
        out=str(out / "run"),
        steps=steps,
        batch_size=256,
        progress=progress,
        eval=EvalConfig(episodes=0),
    )
    config.policy.obs_keys = obs_keys
    config.policy.hidden_dims = (128, 128)
    return train(config).checkpoint


def regenerate(fixture: Path, train_fn: Callable[..., Path]) -> None:
    """Train with ``train_fn(workdir, progress=True)`` and replace ``fixture`` by its checkpoint."""
    with tempfile.TemporaryDirectory() as work:
        checkpoint = train_fn(Path(work), progress=True)
        shutil.rmtree(fixture, ignore_errors=True)
        shutil.copytree(checkpoint, fixture)
    print(f"wrote {fixture}", file=sys.stderr)


if __name__ == "__main__":
    regenerate(FIXTURE, train_reach_bc)
