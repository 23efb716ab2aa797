"""Normalizer statistics and the train/validation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_il.dataset import Dataset, DatasetWriter, Normalizer, split_episodes
from robot_il.errors import DatasetError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("norm") / "n.zarr"
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False)
    rng = np.random.default_rng(0)
    for length in (50, 70):
        action = rng.normal(loc=[1.0, -2.0, 0.0], scale=[0.5, 3.0, 1.0], size=(length, 3))
        action[:, 2] = 0.25  # a constant feature
        writer.add_episode({
            "action": action.astype(np.float32),
            "rgb": rng.integers(10, 200, (length, 4, 4, 3), dtype=np.uint8),
        })  # fmt: skip
    return Dataset.open(path)


def test_minmax_maps_the_data_range_to_minus_one_one(dataset: Dataset) -> None:
    norm = Normalizer.fit(dataset, ["action", "rgb"], mode="minmax")
    action = dataset.get("action", 0, dataset.num_steps)
    y = norm.normalize("action", action)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[:, :2].min(axis=0), -1.0, atol=1e-6)
    np.testing.assert_allclose(y[:, :2].max(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(y[:, 2], 0.0, atol=1e-6)  # constant: centred, not blown up
    np.testing.assert_allclose(norm.unnormalize("action", y), action, atol=1e-5)
    rgb = dataset.get("rgb", 0, dataset.num_steps)
    assert norm.stats("rgb")["min"].shape == (3,)  # per channel
    assert norm.normalize("rgb", rgb).min() == pytest.approx(-1.0)


def test_gaussian_and_state_dict_round_trip_with_torch(dataset: Dataset) -> None:
    norm = Normalizer.fit(dataset, ["action"], mode="gaussian", episodes=[1])
    action = dataset.episode(1)["action"]
    y = norm.normalize("action", action)
    np.testing.assert_allclose(y[:, :2].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y[:, :2].std(axis=0), 1.0, atol=1e-4)
    state = norm.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    loaded = Normalizer.from_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    tensor = loaded.normalize("action", torch.from_numpy(action))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), y, atol=1e-6)
    np.testing.assert_allclose(loaded.unnormalize("action", tensor).numpy(), action, atol=1e-5)
    with pytest.raises(DatasetError, match="no statistics for key 'rgb'"):
        loaded.normalize("rgb", action)


@pytest.mark.parametrize("mode", ["minmax", "gaussian"])
def test_statistics_that_are_not_finite_are_refused(mode: str) -> None:
    """An inf in the data (or values whose squares overflow) would give a zero or NaN scale,
    and every normalised value after it inf or NaN."""
    action = np.random.default_rng(0).normal(size=(20, 3))
    action[5, 2] = np.inf
    with pytest.raises(DatasetError, match="key 'action' feature 2: max is inf"):
        Normalizer.fit_arrays({"action": action}, mode=mode)
    huge = np.full((4, 2), 1e200)
    with pytest.raises(DatasetError, match="key 'x' feature 0: std is nan"):
        Normalizer.fit_arrays({"x": huge}, mode=mode)


@pytest.mark.parametrize(("mode", "per_floor"), [("gaussian", 1.0), ("minmax", 2.0)])
def test_spread_floor_keeps_a_nearly_constant_feature_from_blowing_up(
    tmp_path, mode: str, per_floor: float
) -> None:
    """A feature of std 1 mm maps a 1 cm departure to 10 std; floored at 5 cm, to 0.2 (its
    range, to 0.4 of [-1, 1]). Wide and constant features are left as they were."""
    rng = np.random.default_rng(1)
    state = np.stack([rng.normal(0.5, 1.0, 300), rng.normal(-0.2, 0.001, 300),
                      np.full(300, 0.3)], axis=1).astype(np.float32)  # fmt: skip
    path = tmp_path / "f.zarr"
    with DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False) as writer:
        writer.add_episode({"state": state})
    dataset = Dataset.open(path)
    plain = Normalizer.fit(dataset, ["state"], mode=mode)
    floored = Normalizer.fit(dataset, ["state"], mode=mode, spread_floor=0.05)
    for stat in ("scale", "offset"):
        np.testing.assert_array_equal(floored.stats("state")[stat][[0, 2]],
                                      plain.stats("state")[stat][[0, 2]])  # fmt: skip
    centre = (state[:, 1].max() + state[:, 1].min()) / 2 if mode == "minmax" else state[:, 1].mean()
    step = np.array([0.0, 0.01, 0.0], np.float32)
    point = np.array([0.5, centre, 0.3], np.float32)
    moved = floored.normalize("state", point + step) - floored.normalize("state", point)
    assert moved[1] == pytest.approx(per_floor * 0.01 / 0.05, rel=1e-3)
    assert floored.normalize("state", point)[1] == pytest.approx(0.0, abs=1e-3)  # centred
    blown = plain.normalize("state", point + step) - plain.normalize("state", point)
    assert blown[1] > 1.5  # the unfloored map: over 1.5 (minmax) and about 10 (gaussian)


def test_split_is_by_episode_seeded_and_complete() -> None:
    train, val = split_episodes(20, 0.25, seed=3)
    assert len(val) == 5 and sorted(train + val) == list(range(20))
    assert (train, val) == split_episodes(20, 0.25, seed=3)
    assert val != split_episodes(20, 0.25, seed=4)[1]
    assert split_episodes(2, 0.01, seed=0)[1] != []  # at least one validation episode
    assert len(split_episodes(3, 0.9, seed=0)[0]) == 1  # never an empty training set
    with pytest.raises(DatasetError):
        split_episodes(5, 1.0, seed=0)
