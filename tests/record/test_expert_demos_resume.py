"""A killed expert recording resumes where it stopped and ends as an uninterrupted one would;
a recording of another task, action noise or first seed is refused before anything is
recorded; one a kill left without a committed episode is recorded afresh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

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
    record_expert_demos("reach", tmp_path / "parts", episodes=2, seed=5, action_noise=NOISE,
                        resume=True)  # fmt: skip
    assert _episodes(parts)[0] == whole_seeds


def test_resume_refuses_another_tasks_recording(tmp_path: Path) -> None:
    path = record_expert_demos("reach", tmp_path / "demos", episodes=1)
    with pytest.raises(DatasetError, match="cannot resume this recording: its task is 'reach'"):
        record_expert_demos("push", tmp_path / "demos", episodes=2, resume=True)
    assert Dataset.open(path).num_episodes == 1


def test_resume_refuses_other_noise_or_first_seed_before_building_an_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = record_expert_demos("reach", tmp_path / "demos", episodes=1, seed=5,
                               action_noise=NOISE)  # fmt: skip

    def no_env(*_args, **_kwargs):
        raise AssertionError("an env was built before the recording was checked")

    monkeypatch.setattr("robot_il.envs.make_env", no_env)
    noise = r"env\.zarr: cannot resume this recording: its action_noise is 0\.005, not 0\.0$"
    with pytest.raises(DatasetError, match=noise):
        record_expert_demos("reach", tmp_path / "demos", episodes=2, seed=5, resume=True)
    with pytest.raises(DatasetError, match=r"its first_seed is 5, not 6$"):
        record_expert_demos("reach", tmp_path / "demos", episodes=2, seed=6, action_noise=NOISE,
                            resume=True)  # fmt: skip
    assert _episodes(path)[0] == [5]


def test_a_recording_without_noise_and_seed_attrs_still_resumes(tmp_path: Path) -> None:
    path = record_expert_demos("reach", tmp_path / "demos", episodes=1, action_noise=NOISE)
    attrs = zarr.open_group(str(path), mode="r+").attrs
    for name in ("action_noise", "first_seed"):  # what recordings before them hold
        del attrs[name]
    record_expert_demos("reach", tmp_path / "demos", episodes=2, action_noise=0.01, resume=True)
    assert len(_episodes(path)[0]) == 2


def _killed_before_its_first_episode(path: Path) -> None:
    """A store whose root metadata is written but not the rest (``Dataset.open`` fails)."""
    zarr.open_group(str(path), mode="w", zarr_format=3).attrs["task"] = "push"
    with pytest.raises(DatasetError):
        Dataset.open(path)


def test_resume_records_afresh_over_a_store_without_committed_episodes(tmp_path: Path) -> None:
    path = tmp_path / "demos" / "env.zarr"
    _killed_before_its_first_episode(path)
    record_expert_demos("reach", path.parent, episodes=1, seed=5, resume=True)
    assert _episodes(path)[0] == [5]
    assert Dataset.open(path).attrs["task"] == "reach"


def test_benchmark_demos_record_afresh_over_an_unreadable_store(
    tmp_path: Path, load_benchmark
) -> None:
    benchmark = load_benchmark("policies")
    name = f"reach_mujoco_1_eef_hold{benchmark.HOLD_STEPS['reach']}_noise{benchmark.ACTION_NOISE}"
    _killed_before_its_first_episode(tmp_path / "demos" / name / "env.zarr")
    path = benchmark.demos(tmp_path, "reach", "mujoco", 1)
    assert path == tmp_path / "demos" / name / "env.zarr"
    assert Dataset.open(path).num_episodes == 1
