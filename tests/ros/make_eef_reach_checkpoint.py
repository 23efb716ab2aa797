"""Regenerate ``fixtures/bc_reach_eef``: a small BC policy trained on scripted reach
demonstrations recorded in the env's ``eef_delta`` action mode (TCP deltas, world frame).

``test_deploy_eef_delta.py`` deploys it, so the policy node's conversion of TCP deltas to joint
targets is exercised end to end without training in the default suite.
    .venv/bin/python tests/ros/make_eef_reach_checkpoint.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).with_name("fixtures") / "bc_reach_eef"


def train_eef_reach_bc(
    out: Path, *, episodes: int = 50, steps: int = 1500, progress: bool = False
) -> Path:
    """Record ``episodes`` expert eef_delta reach demos and train a BC MLP on
    (eef_pose, target_pos); returns the checkpoint directory."""
    from robot_il.train.config import BCTrainConfig, EvalConfig
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.trainer import train

    dataset = record_expert_demos(
        "reach",
        out / "demos",
        episodes=episodes,
        seed=0,
        action_mode="eef_delta",
        terminate_on_success=False,
        max_episode_steps=40,
    )
    config = BCTrainConfig(
        dataset=str(dataset),
        out=str(out / "run"),
        steps=steps,
        batch_size=256,
        progress=progress,
        eval=EvalConfig(episodes=0),
    )
    config.policy.obs_keys = ("eef_pose", "target_pos")
    config.policy.hidden_dims = (128, 128)
    return train(config).checkpoint


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        checkpoint = train_eef_reach_bc(Path(work), progress=True)
        shutil.rmtree(FIXTURE, ignore_errors=True)
        shutil.copytree(checkpoint, FIXTURE)
    print(f"wrote {FIXTURE}", file=sys.stderr)
