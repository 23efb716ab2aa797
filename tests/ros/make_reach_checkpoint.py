"""Regenerate ``fixtures/bc_reach``: a small BC policy trained on scripted reach demonstrations.

The deploy tests run this checkpoint so that the default suite does not train (the slow test
``test_deploy_sim.py::test_trained_from_scratch...`` does the same from scratch).
    .venv/bin/python tests/ros/make_reach_checkpoint.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).with_name("fixtures") / "bc_reach"


def train_reach_bc(out: Path, *, episodes: int = 50, steps: int = 1500, progress: bool = False):
    """Record ``episodes`` expert reach demos and train a BC MLP on (joint_pos, target_pos);
    returns the checkpoint directory."""
    from robot_il.train.config import BCTrainConfig, EvalConfig
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.trainer import train

    dataset = record_expert_demos("reach", out / "demos", episodes=episodes, seed=0)
    config = BCTrainConfig(
        dataset=str(dataset),
        out=str(out / "run"),
        steps=steps,
        batch_size=256,
        progress=progress,
        eval=EvalConfig(episodes=0),
    )
    config.policy.obs_keys = ("joint_pos", "target_pos")
    config.policy.hidden_dims = (128, 128)
    return train(config).checkpoint


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        checkpoint = train_reach_bc(Path(work), progress=True)
        shutil.rmtree(FIXTURE, ignore_errors=True)
        shutil.copytree(checkpoint, FIXTURE)
    print(f"wrote {FIXTURE}", file=sys.stderr)
