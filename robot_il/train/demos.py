"""Scripted-expert demonstrations recorded into a dataset, for training experiments.

Goes through the real recorder (``robot_il.record``), so tests and benchmarks train on the
same zarr format a user's recordings have. The dataset's attrs carry ``task``,
``action_mode``, ``backend``, the env's ``spec_dict()`` as ``env_spec``, the DART
``action_noise`` and the ``first_seed`` tried.
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

    ``resume=True`` appends to a dataset a killed recording of the same task, backend, env,
    ``action_noise`` and first ``seed`` left there (its committed episodes kept; tried again
    from the seed after its last kept one), so a long camera recording goes on where it
    stopped and ends as an uninterrupted one would (episode seeds decide everything); without
    a committed episode there (no dataset, an empty one, or one a kill left unreadable) it
    records afresh. A dataset that differs in any of these is refused (``DatasetError``).
    """
    from robot_il.dataset import DatasetWriter
    from robot_il.envs import make_env, make_expert
    from robot_il.record import Recorder
    from robot_il.record.demos import ENV_STREAM, env_stream, record_expert

    path = Path(root) / f"{ENV_STREAM}.zarr"
    recorded = committed_recording(path) if resume else None
    settings = {"task": task, "backend": backend, "action_noise": action_noise,
                "first_seed": seed}  # fmt: skip
    if recorded is not None:  # before building the env: a wrong dataset fails at once
        _check_recording(recorded, settings)
    env = make_env(task, backend, **env_kwargs)
    spec = env.unwrapped.spec_dict()
    attrs = {**settings, "action_mode": spec["action_mode"], "env_spec": spec}
    try:
        streams = [env_stream(env.unwrapped.control_hz)]
        kept, next_seed = 0, seed
        if recorded is not None:
            _check_recording(recorded, {"action_mode": attrs["action_mode"], "env_spec": spec})
            kept = recorded.num_episodes
            next_seed = int(recorded.meta(kept - 1)["seed"]) + 1
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


ATTRS_ADDED_LATER = ("action_noise", "first_seed")
"""Attrs older recordings lack: a recording without one is resumed unchecked on it."""


def committed_recording(path: str | Path) -> Dataset | None:
    """The recording at ``path`` if it holds a committed episode; ``None`` if it holds none
    to keep: no dataset, an empty one, or one a kill left unreadable (e.g. before its first
    episode's arrays were written), which a new recording may then replace."""
    from robot_il.dataset import Dataset

    if not Path(path).exists():
        return None
    try:
        dataset = Dataset.open(path)
    except DatasetError:
        return None
    return dataset if dataset.num_episodes else None


def _check_recording(dataset: Dataset, attrs: dict[str, Any]) -> None:
    """``DatasetError`` unless ``dataset``'s attrs hold ``attrs`` (those of
    ``ATTRS_ADDED_LATER`` only where it has them)."""
    for name, wanted in json.loads(json.dumps(attrs)).items():  # as zarr stores them
        if name in ATTRS_ADDED_LATER and name not in dataset.attrs:
            continue
        if dataset.attrs.get(name) != wanted:
            raise DatasetError(
                f"{dataset.where}: cannot resume this recording: its {name} is "
                f"{dataset.attrs.get(name)!r}, not {wanted!r}"
            )
