"""Scripted-expert demonstrations recorded into a dataset, for training experiments.

Goes through the real recorder (``robot_il.record``), so tests and benchmarks train on the
same zarr format a user's recordings have. The dataset's attrs carry ``task``,
``action_mode``, ``backend`` and the env's ``spec_dict()`` as ``env_spec``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robot_il.errors import RecordingError


def record_expert_demos(
    task: str,
    root: str | Path,
    *,
    episodes: int,
    backend: str = "mujoco",
    seed: int = 0,
    progress: bool = False,
    action_noise: float = 0.0,
    **env_kwargs: Any,
) -> Path:
    """Record ``episodes`` successful expert episodes (seeds from ``seed``) under ``root``;
    returns the dataset path (``root/env.zarr``). ``action_noise``: see ``record_expert``."""
    from robot_il.envs import make_env, make_expert
    from robot_il.record import Recorder
    from robot_il.record.demos import ENV_STREAM, env_stream, record_expert

    env = make_env(task, backend, **env_kwargs)
    spec = env.unwrapped.spec_dict()
    attrs = {
        "task": task,
        "backend": backend,
        "action_mode": spec["action_mode"],
        "env_spec": spec,
    }
    try:
        streams = [env_stream(env.unwrapped.control_hz)]
        with Recorder.to_directory(
            root, streams, robot=spec["robot"], attrs=attrs, overwrite=True, fsync=False
        ) as recorder:
            summary = record_expert(
                env,
                make_expert(env),
                recorder,
                episodes=episodes,
                seed=seed,
                progress=progress,
                action_noise=action_noise,
            )
    finally:
        env.close()
    if summary.kept < episodes:
        raise RecordingError(f"expert for {task}/{backend}: {summary.line()}")
    return Path(root) / f"{ENV_STREAM}.zarr"
