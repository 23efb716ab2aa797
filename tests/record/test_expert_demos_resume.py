"""A killed expert recording resumes where it stopped and ends as an uninterrupted one would;
a recording of another task is refused before anything is recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_il.dataset import Dataset
from robot_il.errors import DatasetError
from robot_il.train.demos import record_expert_demos

NOISE = 0.005


def _episodes(path: Path) -> tuple[list[int], list[np.ndarray]]:
    dataset = Dataset.open(path)
    seeds = [dataset.meta(k)["seed"] for k in range(dataset.num_episodes)]
    return seeds, [dataset.episode(k)["action"] for k in range(dataset.num_episodes)]


def test_resumed_recording_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = record_expert_demos("reach", tmp_path / "whole", episodes=2, seed=5,
                                action_noise=NOISE)  # fmt: skip
    record_expert_demos("reach", tmp_path / "parts", episodes=1, seed=5, action_noise=NOISE)
    parts = record_expert_demos("reach", tmp_path / "parts", episodes=2, seed=5,
                                action_noise=NOISE, resume=True)  # fmt: skip
    (seeds, actions), (whole_seeds, whole_actions) = _episodes(parts), _episodes(whole)
    assert seeds == whole_seeds and len(seeds) == 2 and seeds[0] == 5
    for resumed, direct in zip(actions, whole_actions, strict=True):
        np.testing.assert_array_equal(resumed, direct)
    # a finished recording resumed records nothing more
    record_expert_demos("reach", tmp_path / "parts", episodes=2, seed=5, resume=True)
    assert _episodes(parts)[0] == whole_seeds


def test_resume_refuses_another_tasks_recording(tmp_path: Path) -> None:
    path = record_expert_demos("reach", tmp_path / "demos", episodes=1)
    with pytest.raises(DatasetError, match="cannot resume this recording: its task is 'reach'"):
        record_expert_demos("push", tmp_path / "demos", episodes=2, resume=True)
    assert Dataset.open(path).num_episodes == 1
