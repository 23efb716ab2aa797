"""One inference of a trained policy over an explicit observation history.

``Policy.act`` keeps its own history and queue, which suits a loop that steps once per policy
period. A deployed policy observes on its own timeline and wants the whole chunk at once, so
the deploy node keeps the (timestamped) history itself and calls :func:`predict_actions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_il.policies.spec import ACTION_KEY


def predict_actions(policy: Any, history: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ``n_action_steps`` actions (float32, env units) a policy executes from ``history``.

    ``history[key]`` holds the last ``n_obs_steps`` observations of each key of
    ``policy.obs_keys``, oldest first (shape ``(n_obs_steps, ...)``). Action 0 belongs to the
    time of the last observation.
    """
    import torch

    batch = {
        key: torch.as_tensor(value[None], device=policy.device)
        for key, value in policy.normalize_window(history).items()
    }
    with torch.inference_mode(), policy.inference_weights():
        chunk = policy.predict_chunk(batch)[0].float().cpu().numpy()
    actions = policy.normalizer.unnormalize(ACTION_KEY, chunk).astype(np.float32)
    start = policy.config.n_obs_steps - 1
    return actions[start : start + policy.config.n_action_steps]
