"""Writing and reading back: whole and streamed episodes, meta, reopening, RAM cache, URLs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from robot_il.dataset import FORMAT_VERSION, Dataset, DatasetWriter, ImageStorage, KeySpec
from robot_il.errors import DatasetError


def _episode(seed: int, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "joint_pos": rng.normal(size=(length, 6)).astype(np.float32),
        "gripper": rng.uniform(size=(length, 1)).astype(np.float32),
        "timestamp": np.arange(length, dtype=np.float64) / 20,
        "rgb_front": rng.integers(0, 256, (length, 24, 32, 3), dtype=np.uint8),
        "rgb_wrist": rng.integers(0, 256, (length, 24, 32, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("codec", ["blosc", "jpegxl", "jpeg2k"])
def test_whole_and_streamed_episodes_read_back_identical(tmp_path: Path, codec: str) -> None:
    """Lossless storage reads back bit for bit; lossy storage exactly as the codec returns
    the frames (encode + decode), whether written whole, streamed or appended later."""
    path = tmp_path / "demo.zarr"
    storage = ImageStorage(codec)
    episodes = [_episode(seed, length) for seed, length in enumerate([5, 1, 9])]
    writer = DatasetWriter.create(
        path, robot="ur5e", control_hz=20, attrs={"task": "push"}, image_storage=storage
    )
    assert writer.add_episode(episodes[0], {"success": True, "operator": "ann"}) == 0
    stream = writer.begin_episode()
    for t in range(1):
        stream.append({key: value[t] for key, value in episodes[1].items()})
    assert stream.commit({"success": False}) == 1
    discarded = writer.begin_episode()
    discarded.append({key: value[0] for key, value in episodes[2].items()})
    discarded.discard()
    writer.close()

    appender = DatasetWriter.open(path)
    assert (appender.num_episodes, appender.num_steps) == (2, 6)
    assert appender.add_episode(episodes[2], {"success": True, "duration": 0.45}) == 2

    for cache in ("none", "compressed", "ram"):
        dataset = Dataset.open(path, cache=cache)
        assert dataset.num_episodes == 3 and dataset.num_steps == 15
        assert dataset.episode_ends.tolist() == [5, 6, 15]
        assert dataset.attrs["format_version"] == FORMAT_VERSION
        assert dataset.attrs["task"] == "push" and dataset.robot == "ur5e"
        assert dataset.specs["joint_pos"].units == "rad"
        assert dataset.specs["rgb_front"].is_image
        assert dataset.episode_slice(1) == slice(5, 6)
        if cache == "compressed":  # images compressed in RAM, low-dim keys decoded
            assert dataset.arrays["rgb_front"].held
            assert isinstance(dataset.arrays["joint_pos"], np.ndarray)
        for index, episode in enumerate(episodes):
            stored = dataset.episode(index)
            assert stored.keys() == episode.keys()
            for key, values in episode.items():
                expected = storage.as_stored(values) if key.startswith("rgb_") else values
                assert stored[key].dtype == expected.dtype
                np.testing.assert_array_equal(stored[key], expected)
        np.testing.assert_array_equal(
            dataset.get("joint_pos", 3, 8),
            np.concatenate([episodes[0]["joint_pos"][3:], episodes[1]["joint_pos"],
                            episodes[2]["joint_pos"][:2]]),
        )  # fmt: skip
        assert dataset.meta(0) == {"success": True, "operator": "ann", "duration": pytest.approx(
            float("nan"), nan_ok=True)}  # fmt: skip
        assert dataset.meta(1)["success"] is False and dataset.meta(1)["operator"] == ""
        assert dataset.meta(2)["duration"] == pytest.approx(0.45)


def test_lossless_images_are_one_frame_per_compressed_chunk(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    writer = DatasetWriter.create(
        path, robot="ur5e", control_hz=10, image_storage=ImageStorage("blosc")
    )
    frames = np.zeros((6, 24, 32, 3), np.uint8)
    frames[:, 4:8] = 200  # compressible, like a rendered scene
    writer.add_episode({"rgb_front": frames, "joint_pos": np.zeros((6, 6), np.float32)})
    array = zarr.open_group(str(path), mode="r")["data/rgb_front"]
    assert array.chunks == (1, 24, 32, 3)
    assert array.compressors[0].to_dict()["configuration"]["cname"] == "zstd"
    assert array.nchunks_initialized == 6
    chunk_files = list((path / "data" / "rgb_front" / "c").rglob("*"))
    chunk_bytes = sum(f.stat().st_size for f in chunk_files if f.is_file())
    assert chunk_bytes < frames.nbytes / 5


def test_keys_can_be_declared_up_front_and_casting_is_limited(tmp_path: Path) -> None:
    keys = {"action": KeySpec((7,), "float32", "rad"), "rgb_top": KeySpec((8, 8, 3), "uint8")}
    writer = DatasetWriter.create(tmp_path / "k.zarr", robot="ur5e", control_hz=10, keys=keys)
    writer.add_episode(  # float64 actions narrow to the declared float32
        {"action": np.ones((2, 7)), "rgb_top": np.zeros((2, 8, 8, 3), np.uint8)}
    )
    with pytest.raises(DatasetError, match="episode 1: key 'rgb_top' has dtype int64"):
        writer.add_episode({"action": np.ones((2, 7)), "rgb_top": np.zeros((2, 8, 8, 3), int)})
    dataset = Dataset.open(tmp_path / "k.zarr")
    assert dataset.get("action", 0, 2).dtype == np.float32
    assert dataset.num_episodes == 1


def test_reads_through_an_fsspec_url(tmp_path: Path) -> None:
    path = tmp_path / "url.zarr"
    steps = _episode(3, 4)
    DatasetWriter.create(path, robot="ur5e", control_hz=20).add_episode(steps)
    dataset = Dataset.open(f"file://{path}")
    expected = ImageStorage().as_stored(steps["rgb_wrist"])
    np.testing.assert_array_equal(dataset.episode(0)["rgb_wrist"], expected)


def test_existing_dataset_is_not_overwritten_without_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keep.zarr"
    DatasetWriter.create(path, robot="ur5e", control_hz=20).add_episode(_episode(0, 3))
    with pytest.raises(DatasetError, match="already exists"):
        DatasetWriter.create(path, robot="ur5e", control_hz=20)
    assert Dataset.open(path).num_episodes == 1
    plain_dir = tmp_path / "not_zarr"
    plain_dir.mkdir()
    (plain_dir / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a zarr store"):
        DatasetWriter.create(plain_dir, robot="ur5e", control_hz=20, overwrite=True)
    assert (plain_dir / "notes.txt").read_text() == "mine"
    DatasetWriter.create(path, robot="ur5e", control_hz=20, overwrite=True)
    assert Dataset.open(path).num_episodes == 0


def test_direct_chunk_reads_match_zarr_across_chunk_boundaries(tmp_path: Path) -> None:
    """Disk reads decode chunks without zarr's read path; they must agree with zarr."""
    path = tmp_path / "long.zarr"
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=500, fsync=False)
    rng = np.random.default_rng(7)
    for _ in range(3):
        writer.add_episode({"timestamp": rng.normal(size=1500), "q": rng.normal(size=(1500, 6))})
    dataset = Dataset.open(path)
    stored = zarr.open_group(str(path), mode="r")
    for key in ("timestamp", "q"):
        assert dataset.arrays[key].direct is not None  # the fast path is in use
        chunk = stored[f"data/{key}"].chunks[0]
        assert chunk < 4500
        for start, stop in [(0, 4500), (chunk - 3, chunk + 5), (4000, 4500), (7, 7)]:
            np.testing.assert_array_equal(
                dataset.get(key, start, stop), stored[f"data/{key}"][start:stop]
            )
