"""An untrained ``reach`` checkpoint: for checks where the weights do not matter.

Deploy timing (``benchmarks/deploy_latency.py``) and the inference-process tests need a real
checkpoint with a real network's size and cost, not a trained one; this writes one in a
second, from random data with ``reach``'s shapes (6 joint angles in rad, target in m, 7
actions: joint targets and the gripper).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from robot_il.policies import policy_class

from robot_il.dataset import Normalizer

REACH_SPEC: dict[str, Any] = {
    "robot": "ur5e",
    "task": "reach",
    "backend": "mujoco",
    "control_hz": 20.0,
    "action_mode": "joint",
    "observation": {"joint_pos": [6], "target_pos": [3]},
    "action_dim": 7,
}


def untrained_reach_checkpoint(policy_type: str, directory: Path, **config: Any) -> Path:
    """Save a ``policy_type`` checkpoint with untrained weights under ``directory/policy_type``.

    ``config`` overrides the policy config's defaults (e.g. ``n_obs_steps``, ``horizon``).
    """
    rng = np.random.default_rng(0)
    arrays = {
        "joint_pos": rng.uniform(-3, 3, (100, 6)).astype(np.float32),
        "target_pos": rng.uniform(-0.5, 0.5, (100, 3)).astype(np.float32),
        "action": rng.uniform(-3, 3, (100, 7)).astype(np.float32),
    }
    cls = policy_class(policy_type)
    policy_config = cls.config_class(obs_keys=("joint_pos", "target_pos"), **config)
    policy = cls(policy_config, REACH_SPEC, Normalizer.fit_arrays(arrays))
    return policy.save(Path(directory) / policy_type)
