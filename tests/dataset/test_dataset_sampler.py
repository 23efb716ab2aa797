"""Training windows: edge padding by repetition, never crossing episodes, obs trimming."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from robot_il.dataset import Dataset, DatasetWriter, SequenceSampler
from robot_il.errors import DatasetError

LENGTHS = [5, 1, 8]


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Step value = 1000 * episode + t, so every window element says where it came from."""
    path = tmp_path_factory.mktemp("sampler") / "s.zarr"
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False)
    for episode, length in enumerate(LENGTHS):
        t = np.arange(length) + 1000 * episode
        pixels = (t % 251).astype(np.uint8)[:, None, None, None]
        writer.add_episode(
            {
                "action": np.repeat(t[:, None], 2, axis=1).astype(np.float32),
                "obs": t.astype(np.float64)[:, None],
                "rgb": np.broadcast_to(pixels, (length, 4, 4, 3)),
            }
        )
    return path


def _origin(window: np.ndarray) -> list[int]:
    return window.reshape(window.shape[0], -1)[:, 0].astype(int).tolist()


@pytest.mark.parametrize("cache", ["none", "compressed", "ram"])
def test_windows_pad_by_repeating_episode_edges(dataset_path: Path, cache: str) -> None:
    dataset = Dataset.open(dataset_path, cache=cache)
    sampler = SequenceSampler(
        dataset, keys=["action"], obs_keys=["obs", "rgb"], horizon=4, n_obs_steps=2
    )
    assert len(sampler) == sum(LENGTHS)  # default padding: one window per step
    windows = [sampler[i] for i in range(len(sampler))]
    assert _origin(windows[0]["action"]) == [0, 0, 1, 2]  # 1 step of padding before
    assert _origin(windows[0]["obs"]) == [0, 0]
    assert _origin(windows[4]["action"]) == [3, 4, 4, 4]  # last window of episode 0
    assert _origin(windows[5]["action"]) == [1000] * 4  # one-step episode: all padding
    assert _origin(windows[6]["action"]) == [2000, 2000, 2001, 2002]
    assert _origin(windows[-1]["obs"]) == [2006, 2007]
    assert _origin(windows[-1]["action"]) == [2006, 2007, 2007, 2007]
    for window in windows:
        assert window["action"].shape == (4, 2) and window["obs"].shape == (2, 1)
        assert window["rgb"].shape == (2, 4, 4, 3) and window["rgb"].dtype == np.uint8
        episodes = {v // 1000 for v in _origin(window["action"]) + _origin(window["obs"])}
        assert len(episodes) == 1  # never crosses into a neighbouring episode
        # the current step (last obs) is a real step and the action window starts with it
        assert _origin(window["obs"])[-1] == _origin(window["action"])[1]
    assert len({tuple(_origin(w["obs"])) for w in windows}) == len(windows)

    batch = sampler.batch([0, 5, 13])
    for key in ("action", "obs", "rgb"):
        expected = np.stack([windows[0][key], windows[5][key], windows[13][key]])
        np.testing.assert_array_equal(batch[key], expected)


@pytest.mark.parametrize("cache", ["none", "compressed", "ram"])
def test_padding_longer_than_the_observation_window_repeats_the_first_step(
    dataset_path: Path, cache: str
) -> None:
    """pad_before >= n_obs_steps: the first windows' observations lie wholly before their
    episode, and are its first step repeated."""
    sampler = SequenceSampler(
        Dataset.open(dataset_path, cache=cache), keys=["action"], obs_keys=["obs", "rgb"],
        horizon=4, n_obs_steps=2, pad_before=2,
    )  # fmt: skip
    first = sampler[0]
    assert _origin(first["obs"]) == [0, 0] and _origin(first["rgb"]) == [0, 0]
    assert _origin(first["action"]) == [0, 0, 0, 1]
    one_step_episode = int(np.flatnonzero(sampler.bounds[:, 1] == LENGTHS[0])[0])
    assert _origin(sampler[one_step_episode]["obs"]) == [1000, 1000]
    batch = sampler.batch([0, one_step_episode])
    np.testing.assert_array_equal(batch["obs"][0], first["obs"])
    assert _origin(batch["rgb"][1]) == [1000 % 251, 1000 % 251]


def test_episode_subset_and_explicit_padding(dataset_path: Path) -> None:
    dataset = Dataset.open(dataset_path, cache="ram")
    sampler = SequenceSampler(
        dataset, keys=["action"], obs_keys=[], horizon=3, n_obs_steps=1, episodes=[2],
        pad_before=0, pad_after=0,
    )  # fmt: skip
    assert len(sampler) == LENGTHS[2] - 3 + 1
    assert _origin(sampler[0]["action"]) == [2000, 2001, 2002]
    assert _origin(sampler[-1]["action"]) == [2005, 2006, 2007]
    with pytest.raises(ValueError, match="read-only"):
        sampler[0]["action"][0, 0] = 1  # RAM windows are views of the cache
    with pytest.raises(IndexError):
        sampler[len(sampler)]


def test_bad_sampler_arguments(dataset_path: Path) -> None:
    dataset = Dataset.open(dataset_path)
    with pytest.raises(DatasetError, match="'nope' is not in the dataset"):
        SequenceSampler(dataset, keys=["nope"], obs_keys=[], horizon=2, n_obs_steps=1)
    with pytest.raises(DatasetError, match="n_obs_steps <= horizon"):
        SequenceSampler(dataset, keys=["action"], obs_keys=[], horizon=2, n_obs_steps=3)
    with pytest.raises(DatasetError, match="episodes must be in"):
        SequenceSampler(
            dataset, keys=["action"], obs_keys=[], horizon=2, n_obs_steps=1, episodes=[3]
        )


@pytest.mark.parametrize("cache", ["none", "ram"])
def test_sampler_pickles_for_dataloader_workers(dataset_path: Path, cache: str) -> None:
    sampler = SequenceSampler(
        Dataset.open(dataset_path, cache=cache),
        keys=["action"],
        obs_keys=["rgb"],
        horizon=4,
        n_obs_steps=2,
    )
    copy = pickle.loads(pickle.dumps(sampler))
    assert copy.dataset.cache == cache and len(copy) == len(sampler)
    for index in (0, 5, len(sampler) - 1):
        for key, window in sampler[index].items():
            np.testing.assert_array_equal(copy[index][key], window)
