"""Episodes committed in batches (``DatasetWriter.add_episodes``, what copies and imports use)
read back as the same episodes committed one by one, and a kill inside a batch's commit
leaves only whole episodes. A commit sends its resizes and writes to zarr together, and the
store is the one that writing them one array at a time gave."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from robot_il.dataset import Dataset, DatasetWriter, ImageStorage, validate
from robot_il.dataset import writer as writer_module
from robot_il.dataset.format import EPISODE_ENDS_PATH, META_CHUNK
from robot_il.errors import DatasetError


def _episode(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    length = 1 + seed % 7
    return {
        "joint_pos": rng.normal(size=(length, 6)).astype(np.float32),
        "rgb_front": rng.integers(0, 256, (length, 12, 16, 3), dtype=np.uint8),
    }


METAS: list[dict[str, Any]] = [
    {"success": True},
    {"success": False, "score": 1},  # a new int array in the middle of a batch
    {"score": 2},
    {"score": 2.5, "task": "push"},  # widened to float64, and a new str array
    {},
    {"success": True, "score": 3, "task": "reach"},
    *({"score": n} for n in range(6)),
]


def _commits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(first episode, number of episodes) of every commit from now on."""
    commits: list[tuple[int, int]] = []
    commit = DatasetWriter._commit

    def counted(
        self: DatasetWriter,
        ends: list[int],
        metas: list[dict[str, Any]],
        steps: dict[str, np.ndarray],
    ) -> int:
        commits.append((self.num_episodes, len(ends)))
        return commit(self, ends, metas, steps)

    monkeypatch.setattr(DatasetWriter, "_commit", counted)
    return commits


def _write(path: Path, how: str) -> None:
    with DatasetWriter.create(
        path, robot="ur5e", control_hz=10, fsync=False, image_storage=ImageStorage("blosc")
    ) as writer:
        episodes = [(_episode(seed), meta) for seed, meta in enumerate(METAS)]
        if how == "one by one":
            assert [writer.add_episode(*episode) for episode in episodes] == list(range(12))
        else:
            assert writer.add_episodes(iter(episodes)) == range(12)


def _stream(path: Path) -> None:
    """The recorder's path: each episode step by step, then committed with its meta."""
    with DatasetWriter.create(
        path, robot="ur5e", control_hz=10, fsync=False, image_storage=ImageStorage("blosc")
    ) as writer:
        for seed, meta in enumerate(METAS):
            episode = writer.begin_episode()
            steps = _episode(seed)
            for t in range(len(steps["joint_pos"])):
                episode.append({key: values[t] for key, values in steps.items()})
            episode.commit(meta)


def _arrays(path: Path) -> dict[str, np.ndarray]:
    root = zarr.open_group(path, mode="r")
    return {name: array[:] for name, array in root.arrays()} | {
        f"{group}/{name}": array[:]
        for group, members in root.groups()
        for name, array in members.arrays()
    }


def test_a_commit_writes_what_one_array_at_a_time_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, load_benchmark
) -> None:
    _stream(tmp_path / "together.zarr")
    one_at_a_time = load_benchmark("dataset_io").one_array_at_a_time
    monkeypatch.setattr(writer_module, "_write_tails", one_at_a_time)
    _stream(tmp_path / "one_at_a_time.zarr")
    together, expected = (
        _arrays(tmp_path / "together.zarr"),
        _arrays(tmp_path / "one_at_a_time.zarr"),
    )
    assert sorted(together) == sorted(expected)
    assert {"data/rgb_front", "meta/task", EPISODE_ENDS_PATH} <= set(together)
    for name, values in expected.items():
        np.testing.assert_array_equal(together[name], values, err_msg=name)


def _nan_as_none(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in meta.items()}


def test_batches_read_back_as_episodes_committed_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "one_by_one.zarr", "one by one")
    commits = _commits(monkeypatch)
    _write(tmp_path / "batches.zarr", "batches")
    # A batch ends before an episode whose meta adds or widens an array (1, 3, 5: checked
    # against the arrays written), so also after one that adds an array (2).
    assert commits == [(0, 1), (1, 1), (2, 1), (3, 2), (5, 7)]
    commits.clear()
    monkeypatch.setattr(writer_module, "BATCH_BYTES", 1)  # each episode fills a batch
    _write(tmp_path / "small_batches.zarr", "batches")
    assert commits == [(n, 1) for n in range(12)]

    expected = Dataset.open(tmp_path / "one_by_one.zarr")
    assert [_nan_as_none(expected.meta(n)) for n in (0, 3, 4)] == [
        {"success": True, "score": 0.0, "task": ""},  # an int array's fill, then widened
        {"success": False, "score": 2.5, "task": "push"},
        {"success": False, "score": None, "task": ""},
    ]
    for name in ("batches.zarr", "small_batches.zarr"):
        dataset = Dataset.open(tmp_path / name)
        assert dataset.episode_ends.tolist() == expected.episode_ends.tolist()
        assert sorted(dataset.meta_names) == sorted(expected.meta_names)
        for n in range(12):
            assert _nan_as_none(dataset.meta(n)) == _nan_as_none(expected.meta(n)), (name, n)
            stored, written = dataset.episode(n), expected.episode(n)
            assert all(np.array_equal(stored[k], written[k]) for k in written), (name, n)
        assert validate(tmp_path / name).ok


def test_a_refused_episode_ends_the_call_and_the_ones_before_it_are_committed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "demo.zarr"
    bad = _episode(2) | {"joint_pos": np.full((3, 6), np.nan, np.float32)}
    with DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False) as writer:
        episodes = [(_episode(0), {}), (_episode(1), {}), (bad, {}), (_episode(3), {})]
        with pytest.raises(DatasetError, match="^episode 2: key 'joint_pos' contains NaN or inf$"):
            writer.add_episodes(episodes)
        assert writer.num_episodes == 2
    assert Dataset.open(path).num_episodes == 2


def test_a_batch_does_not_span_two_chunks_of_episode_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One chunk file is written whole or not at all, so a kill can only leave zeros at the
    end of ``episode_ends``, never between committed ends."""
    commits = _commits(monkeypatch)
    count = META_CHUNK + 10
    step = {"joint_pos": np.zeros((1, 6), np.float32)}
    with DatasetWriter.create(tmp_path / "d.zarr", robot="ur5e", control_hz=10) as writer:
        writer.add_episodes((step, {}) for _ in range(count))
    assert commits == [(0, META_CHUNK), (META_CHUNK, 10)]
    assert Dataset.open(tmp_path / "d.zarr").episode_ends.tolist() == list(range(1, count + 1))


def test_a_kill_between_the_ends_shape_and_chunk_of_a_batch_leaves_the_committed_episodes(
    tmp_path: Path,
) -> None:
    """Step 4 of a batch of three killed after ``episode_ends`` grew (its ``zarr.json``) but
    before its chunk was written: three trailing zeros, which readers, validate and the next
    writer take for an uncommitted batch (once only a single trailing zero was)."""
    path = tmp_path / "demo.zarr"
    with DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False) as writer:
        writer.add_episodes((_episode(seed), {"seed": seed}) for seed in range(2))
    ends = zarr.open_array(str(path / EPISODE_ENDS_PATH), mode="r+")
    ends.resize((5,))  # the chunk still holds the two committed ends: the new ones read 0
    assert ends[:].tolist() == [1, 3, 0, 0, 0]

    assert Dataset.open(path).episode_ends.tolist() == [1, 3]
    report = validate(path)
    assert report.ok and f"{EPISODE_ENDS_PATH}[2:5] = 0: a commit was interrupted; ignored" in (
        report.notes
    )
    with DatasetWriter.open(path, fsync=False) as writer:
        assert writer.add_episode(_episode(5), {"seed": 5}) == 2
    dataset = Dataset.open(path)
    assert dataset.episode_ends.tolist() == [1, 3, 9]
    assert [dataset.meta(n)["seed"] for n in range(3)] == [0, 1, 5]


def test_the_copy_benchmark_keeps_a_row_per_case_with_both_timings(
    tmp_path: Path, load_benchmark
) -> None:
    dataset_io = load_benchmark("dataset_io")
    results = tmp_path / "copy.jsonl"
    dataset_io.part_e_copies(tmp_path, 1, results, lowdim_episodes=6, camera_episodes=2)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["case"] for row in rows] == [
        "low-dim, 6 episodes x 50 steps",
        "2 cameras 96x96 lossless, 2 episodes x 50 steps",
    ]
    for row in rows:
        assert {how: len(s) for how, s in row["seconds"].items()} == {
            "batches": 1,
            "one per episode": 1,
        }
        assert row["speedup"] > 0 and len(row["load_before"]) == 3
    assert writer_module.BATCH_BYTES == 32 * 2**20  # put back


def test_the_commit_benchmark_keeps_a_row_per_case_with_both_timings(
    tmp_path: Path, load_benchmark
) -> None:
    dataset_io = load_benchmark("dataset_io")
    together = writer_module._write_tails
    results = tmp_path / "commits.jsonl"
    dataset_io.part_f_commits(tmp_path, 1, results, episodes=2)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["case"] for row in rows] == [
        f"low-dim, 2 episodes x 40 steps, 13 meta, fsync {fsync}" for fsync in (False, True)
    ]
    for row in rows:
        assert {how: len(s) for how, s in row["seconds_per_commit"].items()} == {
            "together": 1,
            "one at a time": 1,
        }
        assert row["speedup"] > 0 and len(row["load_before"]) == 3
    assert writer_module._write_tails is together  # put back
