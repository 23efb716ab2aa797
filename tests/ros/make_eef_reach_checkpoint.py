"""Regenerate ``fixtures/bc_reach_eef``: a small BC policy trained on scripted reach
demonstrations recorded in the env's ``eef_delta`` action mode (TCP deltas, world frame).

``test_deploy_eef_delta.py`` deploys it, so the policy node's conversion of TCP deltas to joint
targets is exercised end to end without training in the default suite.
    .venv/bin/python tests/ros/make_eef_reach_checkpoint.py
"""

from __future__ import annotations

from pathlib import Path

from make_reach_checkpoint import regenerate, train_reach_bc

FIXTURE = Path(__file__).with_name("fixtures") / "bc_reach_eef"


def train_eef_reach_bc(out: Path, **kwargs) -> Path:
    """Record expert eef_delta reach demos and train a BC MLP on (eef_pose, target_pos);
    returns the checkpoint directory (``kwargs`` as for ``train_reach_bc``)."""
    return train_reach_bc(
        out,
        obs_keys=("eef_pose", "target_pos"),
        action_mode="eef_delta",
        terminate_on_success=False,
        max_episode_steps=40,
        **kwargs,
    )


if __name__ == "__main__":
    regenerate(FIXTURE, train_eef_reach_bc)
