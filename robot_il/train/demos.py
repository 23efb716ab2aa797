"""Scripted-expert demonstrations recorded into a dataset, for training experiments.

Goes through the real recorder (``robot_il.record``), so tests and benchmarks train on the
same zarr format a user's recordings have. The dataset's attrs carry ``task``,
``action_mode``, ``backend`` and the env's ``spec_dict()`` as ``env_spec``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_il.errors import DatasetError, RecordingError

if TYPE_CHECKING:
    from robot_il.dataset import Dataset


def record_expert_demos(
    task: str,
    root: str | Path,
    *,
    episodes: int,
    backend: str = "mujoco",
    seed: int = 0,
    progress: bool = False,
    action_noise: float = 0.0,
    resume: bool = False,
    **env_kwargs: Any,
) -> Path:
    """Record ``episodes`` successful expert episodes (seeds from ``seed``) under ``root``;
    returns the dataset path (``root/env.zarr``). ``action_noise``: see ``record_expert``.

    ``resume=True`` appends to a dataset a killed recording of the same task, backend and
    env left there (its committed episodes kept; tried again from the seed after its last
    kept one), so a long camera recording goes on where it stopped and ends as an
    uninterrupted one would (episode seeds decide everything); without a dataset there it
    records afresh. A dataset of another task, backend or env is refused (``DatasetError``).
    """
    from robot_il.dataset import DatasetWriter
    from robot_il.envs import make_env, make_expert
    from robot_il.record import Recorder
    from robot_il.record.demos import ENV_STREAM, env_stream, record_expert

    path = Path(root) / f"{ENV_STREAM}.zarr"
    resuming = resume and path.exists()
    if resuming:  # before building the env: a wrong dataset fails at once
        _check_recording(path, {"task": task, "backend": backend})
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
        kept, next_seed = 0, seed
        if resuming:
            kept, next_seed = _resume_point(_check_recording(path, attrs), seed)
            recorder = Recorder(streams, {ENV_STREAM: DatasetWriter.open(path, fsync=False)})
        else:
            recorder = Recorder.to_directory(
                root, streams, robot=spec["robot"], attrs=attrs, overwrite=True, fsync=False
            )
        with recorder:
            summary = record_expert(
                env,
                make_expert(env),
                recorder,
                episodes=max(episodes - kept, 0),
                seed=next_seed,
                progress=progress,
                action_noise=action_noise,
            )
    finally:
        env.close()
    if summary.kept < episodes - kept:
        raise RecordingError(f"expert for {task}/{backend}: {summary.line()}")
    return path


def _check_recording(path: Path, attrs: dict[str, Any]) -> Dataset:
    """The dataset at ``path``, if its attrs hold ``attrs`` (else ``DatasetError``)."""
    from robot_il.dataset import Dataset

    dataset = Dataset.open(path)
    for name, wanted in json.loads(json.dumps(attrs)).items():  # as zarr stores them
        if dataset.attrs.get(name) != wanted:
            raise DatasetError(
                f"{path}: cannot resume this recording: its {name} is "
                f"{dataset.attrs.get(name)!r}, not {wanted!r}"
            )
    return dataset


def _resume_point(dataset: Dataset, seed: int) -> tuple[int, int]:
    """(episodes kept, seed to try next) of a recording that stopped (``seed``: its first)."""
    if dataset.num_episodes == 0:
        return 0, seed
    return dataset.num_episodes, int(dataset.meta(dataset.num_episodes - 1)["seed"]) + 1
