"""Damaged stores and bad episodes: one-line DatasetErrors naming key and episode, and
``validate`` naming every problem at once. Nothing already committed is lost."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from robot_il.cli import main as cli
from robot_il.dataset import Dataset, DatasetWriter, ImageStorage, KeySpec
from robot_il.dataset.validate import validate
from robot_il.errors import DatasetError


def _steps(length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "joint_pos": rng.normal(size=(length, 6)).astype(np.float32),
        "gripper": rng.uniform(size=(length, 1)).astype(np.float32),
        "rgb_front": rng.integers(0, 256, (length, 8, 8, 3), dtype=np.uint8),
    }


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """Three committed episodes of lengths 4, 5, 6 (ends 4, 9, 15), one file per frame."""
    path = tmp_path / "demo.zarr"
    writer = DatasetWriter.create(
        path, robot="ur5e", control_hz=10, fsync=False, image_storage=ImageStorage("blosc")
    )
    for seed, length in enumerate([4, 5, 6]):
        writer.add_episode(_steps(length, seed), {"success": True})
    return path


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("kind", ["missing", "file", "empty_dir", "bare_group"])
def test_a_path_that_is_not_a_dataset(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x"
    if kind == "file":
        path.write_text("hello")
    elif kind == "empty_dir":
        path.mkdir()
    elif kind == "bare_group":
        zarr.open_group(str(path), mode="w")
    with pytest.raises(DatasetError) as error:
        Dataset.open(path)
    assert str(path) in _one_line(error)
    with pytest.raises(DatasetError):
        DatasetWriter.open(path)
    assert not validate(path).ok


def test_the_folder_of_a_dataset_names_the_store_inside(demo: Path) -> None:
    """Before: ``data/dmc_walker_walk_expert`` (the folder, not its ``env.zarr``) said "not a
    dataset (no zarr group metadata)" alone. A folder of several stores names none."""
    folder = demo.parent
    (folder / "notes").mkdir()  # neither a store nor counted as one
    hint = f"; did you mean {folder}/demo.zarr?"
    with pytest.raises(DatasetError) as error:
        Dataset.open(folder)
    assert _one_line(error) == f"{folder}: not a dataset (no zarr group metadata){hint}"
    with pytest.raises(DatasetError, match=re.escape(hint)):
        DatasetWriter.open(f"{folder}/")
    assert validate(folder).problems[0].endswith(hint)
    shutil.copytree(demo, folder / "other.zarr")
    with pytest.raises(DatasetError) as error:
        Dataset.open(folder)
    assert _one_line(error).endswith("(no zarr group metadata)")


def test_corrupt_chunk_names_key_and_episode(demo: Path) -> None:
    chunk = demo / "data" / "rgb_front" / "c" / "6" / "0" / "0" / "0"  # step 6 = episode 1
    chunk.write_bytes(chunk.read_bytes()[:10])
    dataset = Dataset.open(demo)
    dataset.episode(0)  # undamaged episodes stay readable
    with pytest.raises(DatasetError) as error:
        dataset.episode(1)
    assert "data/rgb_front episode 1" in _one_line(error)
    assert any("data/rgb_front: episode 1: unreadable" in p for p in validate(demo).problems)


def test_missing_chunk_file_is_found(demo: Path) -> None:
    (demo / "data" / "rgb_front" / "c" / "10" / "0" / "0" / "0").unlink()  # episode 2
    problems = validate(demo).problems
    assert problems == ["data/rgb_front: episode 2: 1 chunk file(s) missing"]


@pytest.mark.parametrize("cache", ["none", "compressed"])
def test_a_missing_chunk_file_is_damage_to_readers_not_zeros(demo: Path, cache: str) -> None:
    """robot_il writes every chunk, so an absent one (a copy cut short) must not read as the
    fill value, zero frames or actions a policy would train on."""
    (demo / "data" / "rgb_front" / "c" / "10" / "0" / "0" / "0").unlink()  # episode 2
    dataset = Dataset.open(demo, cache=cache)
    dataset.episode(1)
    with pytest.raises(DatasetError) as error:
        dataset.episode(2)
    assert re.search(r"data/rgb_front episode 2 .*c/10/0/0/0 is missing", _one_line(error))
    with pytest.raises(DatasetError, match="data/rgb_front episode 2"):
        Dataset.open(demo, cache="ram")
    (demo / "data" / "joint_pos" / "c" / "0" / "0").unlink()  # every episode's joints
    with pytest.raises(DatasetError, match=r"data/joint_pos: chunk file c/0/0 is missing"):
        Dataset.open(demo)


def test_a_missing_shard_file_is_damage_to_readers_not_black_frames(tmp_path: Path) -> None:
    path = tmp_path / "demo.zarr"
    with DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False) as writer:
        writer.add_episode(_steps(4), {"success": True})  # jpegxl frames in one shard file
    (path / "data" / "rgb_front" / "c" / "0" / "0" / "0" / "0").unlink()
    with pytest.raises(DatasetError, match=r"data/rgb_front: frame 0 has no data in shard c/0"):
        Dataset.open(path)


def test_corrupt_array_metadata_names_the_key(demo: Path) -> None:
    (demo / "data" / "gripper" / "zarr.json").write_text("{not json")
    with pytest.raises(DatasetError) as error:
        Dataset.open(demo)
    assert "data/gripper" in _one_line(error)


def test_missing_key_and_truncated_store(demo: Path) -> None:
    shutil.rmtree(demo / "data" / "gripper")
    with pytest.raises(DatasetError, match="data/gripper is missing"):
        Dataset.open(demo)
    root = zarr.open_group(str(demo), mode="r+")
    root["data/joint_pos"].resize((7, 6))  # episode 1 ends at 9
    problems = validate(demo).problems
    assert "missing key data/gripper" in problems
    assert any(
        p.startswith("data/joint_pos: length mismatch") and "episode 1" in p for p in problems
    )


def test_validate_names_every_problem(demo: Path, capsys: pytest.CaptureFixture) -> None:
    root = zarr.open_group(str(demo), mode="r+")
    ends = root["meta/episode_ends"]
    ends[:] = [4, 3, 15]  # episode 1 ends before episode 0
    root["data/gripper"][12] = np.nan  # episode 2
    root["data/gripper"][13] = np.inf
    del root["data/joint_pos"]
    root["data"].create_array("joint_pos", shape=(15, 6), dtype="float64")[:] = 1.0  # wrong dtype
    with pytest.raises(DatasetError) as error:
        Dataset.open(demo)
    assert "episode 1" in _one_line(error)

    assert cli(["data", "validate", str(demo)]) == 1
    lines = capsys.readouterr().out.splitlines()
    problems = [line for line in lines if line.startswith("problem: ")]
    assert len(problems) == 3, lines
    assert "non-increasing episode ends" in problems[0] and "episode 1" in problems[0]
    assert "data/joint_pos: wrong dtype float64" in "\n".join(problems)
    assert any("data/gripper: episode 2: NaN or inf in 2 step(s), first at step 9" in p
               for p in problems)  # fmt: skip


def test_bad_episodes_are_refused_and_nothing_committed_is_lost(demo: Path) -> None:
    writer = DatasetWriter.open(demo)
    cases = {
        "different lengths": {**_steps(3), "gripper": np.zeros((2, 1), np.float32)},
        "missing key 'rgb_front'": {k: v for k, v in _steps(3).items() if k != "rgb_front"},
        "key 'extra' is not in this dataset": {**_steps(3), "extra": np.zeros((3, 1))},
        "'joint_pos' contains NaN": {**_steps(3), "joint_pos": np.full((3, 6), np.nan)},
        "'gripper' contains NaN or inf": {**_steps(3), "gripper": np.full((3, 1), -np.inf)},
        "'gripper' has shape \\(3, 2\\)": {**_steps(3), "gripper": np.zeros((3, 2), np.float32)},
    }
    for message, steps in cases.items():
        with pytest.raises(DatasetError, match=f"episode 3: .*{message}"):
            writer.add_episode(steps)
    stream = writer.begin_episode()
    stream.append({key: value[0] for key, value in _steps(1).items()})
    with pytest.raises(DatasetError, match="episode 3 step 1: missing key 'gripper'"):
        stream.append(
            {"joint_pos": np.zeros(6, np.float32), "rgb_front": np.zeros((8, 8, 3), np.uint8)}
        )
    stream.discard()
    dataset = Dataset.open(demo)
    assert dataset.num_episodes == 3
    np.testing.assert_array_equal(dataset.episode(2)["joint_pos"], _steps(6, 2)["joint_pos"])
    assert validate(demo).ok


def test_a_dataset_moved_away_while_open_gets_nothing_more_and_frees_the_writer(
    demo: Path,
) -> None:
    """A dataset folder moved (or removed) while a writer had it open: every write went on
    by path, so an episode "committed" into a fresh tree of loose chunk folders at the old
    path, which is no dataset, and the moved dataset never got it. Each write that would go
    there (a frame, a commit, a new episode) is refused as a DatasetError naming the folder,
    nothing is created at the old path, a failed commit leaves no episode in flight, and once
    the folder is back the writer records again."""
    moved = demo.with_name("moved.zarr")
    frame = {key: value[0] for key, value in _steps(1, 7).items()}
    writer = DatasetWriter.open(demo, fsync=False)
    gone = rf"^{re.escape(str(demo))}: the dataset's folder was moved or removed"
    stream = writer.begin_episode()
    stream.append(frame)
    demo.rename(moved)
    with pytest.raises(DatasetError, match=gone):
        stream.append(frame)  # its frame would be a chunk file of a new tree
    with pytest.raises(DatasetError, match=gone):
        stream.commit({"success": True})
    assert not demo.exists()
    with pytest.raises(DatasetError, match=gone + ".*episode 3 cannot begin"):
        writer.begin_episode()  # refused for the folder, not for an episode in flight
    moved.rename(demo)
    stream = writer.begin_episode()
    stream.append(frame)
    assert stream.commit({"success": True}) == 3
    writer.close()
    dataset = Dataset.open(demo)
    assert dataset.num_episodes == 4
    np.testing.assert_array_equal(dataset.episode(2)["joint_pos"], _steps(6, 2)["joint_pos"])
    np.testing.assert_array_equal(dataset.episode(3)["rgb_front"][0], frame["rgb_front"])
    assert validate(demo).ok


def test_a_commit_whose_last_flush_fails_keeps_its_visible_episode(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flush after an episode's end is written failed (EIO from the disk), and the
    writer, which counted an episode only after that flush, did not count it although
    ``meta/episode_ends`` already showed it: the recorder called it discarded and the next
    episode was written over its steps. The commit now says the episode is committed and its
    flush failed, and the next one comes after it. No disk here fails on demand, so the flush
    is replaced by one that raises EIO after the end is written (the commit's second)."""
    from robot_il.dataset import writer as writer_module

    flushes = []

    def flush_filesystem(path: Path) -> None:
        flushes.append(path)
        if len(flushes) == 2:  # the commit's second: after episode_ends holds the episode
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(writer_module, "flush_filesystem", flush_filesystem)
    writer = DatasetWriter.open(demo, fsync=True)
    stream = writer.begin_episode()
    for step in range(2):
        stream.append({key: value[step] for key, value in _steps(2, 3).items()})
    committed = rf"{re.escape(str(demo))}: episode 3 is committed, but the disk failed .*"
    with pytest.raises(DatasetError, match=committed + r"\(Input/output error \(EIO\)\)"):
        stream.commit({"success": True})
    assert writer.num_episodes == Dataset.open(demo).num_episodes == 4
    assert writer.add_episode(_steps(3, 4), {"success": False}) == 4
    writer.close()
    dataset = Dataset.open(demo)
    assert dataset.num_episodes == 5
    np.testing.assert_array_equal(dataset.episode(3)["joint_pos"], _steps(2, 3)["joint_pos"])
    np.testing.assert_array_equal(dataset.episode(4)["joint_pos"], _steps(3, 4)["joint_pos"])
    assert validate(demo).ok


def test_values_and_meta_that_do_not_fit_are_refused_not_narrowed(tmp_path: Path) -> None:
    """An int that would wrap, a float that would overflow to inf, a bool meta value into an
    int meta array, an int meta value beyond int64: each is refused before anything of the
    episode is written."""
    path = tmp_path / "narrow.zarr"
    keys = {"enc": KeySpec((1,), "int16"), "force": KeySpec((1,), "float16")}
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False, keys=keys)
    fits = {"enc": np.array([[-32768], [32767]], np.int64), "force": np.array([[1e4], [0.1]])}
    assert writer.add_episode(fits, {"duration": 5, "score": 0.5}) == 0
    cases = {
        "key 'enc': int64 values from 40000 to 70000 do not fit int16":
            ({**fits, "enc": np.array([[40000], [70000]], np.int64)}, {}),
        "key 'force': float64 values from 2.0 to 100000.0 do not fit float16":
            ({**fits, "force": np.array([[1e5], [2.0]])}, {}),
        "meta 'duration' = True does not fit": (fits, {"duration": True}),
        f"meta 'count' = {2**63} does not fit int64": (fits, {"count": 2**63}),
    }  # fmt: skip
    for message, (steps, meta) in cases.items():
        with pytest.raises(DatasetError, match=f"^episode 1: {re.escape(message)}"):
            writer.add_episode(steps, meta)
    stream = writer.begin_episode()
    stream.append({key: value[0] for key, value in fits.items()})
    with pytest.raises(DatasetError, match="episode 1: meta 'score' = 'x' does not fit"):
        stream.commit({"score": "x"})
    assert stream.commit({"duration": 6, "score": 1}) == 1  # an int fits a float meta array
    writer.close()
    dataset = Dataset.open(path)
    assert dataset.num_episodes == 2 and dataset.num_steps == 3
    assert dataset.episode(0)["enc"].ravel().tolist() == [-32768, 32767]
    assert dataset.meta(1) == {"duration": 6, "score": 1.0}
    assert validate(path).ok


def test_a_float_meta_value_widens_an_int_array_exactly(tmp_path: Path) -> None:
    """A float given for a meta name first stored as an int turns its array into float64,
    keeping every committed value exactly (ints up to 2**53), so datasets merge in any
    order; an array holding a larger int is refused before anything is written. The widened
    array was swapped in whole: nothing is left beside the store, and the store validates."""
    path = tmp_path / "widen.zarr"
    steps = {"x": np.zeros((2, 1), np.float32)}
    with DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=True) as writer:
        writer.add_episode(steps, {"duration": 3, "big": 2**53 + 1})
        writer.add_episode(steps, {"duration": 2**53})
    with DatasetWriter.open(path, fsync=True) as writer:
        assert writer.add_episode(steps, {"duration": 2.5}) == 2
        refused = r"^episode 3: meta 'big' = 0.5 would widen its int64 array to float64, but "
        with pytest.raises(DatasetError, match=refused + r"it holds ints beyond 2\*\*53"):
            writer.add_episode(steps, {"big": 0.5})
        assert writer.add_episode(steps, {"duration": 4}) == 3
    dataset = Dataset.open(path)
    assert dataset.num_steps == 8
    durations = [dataset.meta(e)["duration"] for e in range(4)]
    assert durations == [3.0, float(2**53), 2.5, 4.0] and int(durations[1]) == 2**53
    assert isinstance(durations[0], float) and dataset.meta(0)["big"] == 2**53 + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["widen.zarr"]
    assert validate(path).ok


def test_newer_format_version_is_refused(demo: Path) -> None:
    meta = json.loads((demo / "zarr.json").read_text())
    meta["attributes"]["format_version"] = 99
    (demo / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="format version 99 is newer"):
        Dataset.open(demo)


def test_validate_notes_an_episode_with_a_gap_in_its_timestamps(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A recorder that waited for a stalled camera recorded nothing meanwhile: the episode is
    valid data with a hole in it, which validate said nothing about."""
    path = tmp_path / "gap.zarr"
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False)
    steady = np.arange(6, dtype=np.float64)[:, None] * 0.1
    holed = steady.copy()
    holed[4:] += 1.5  # steps 3 and 4 lie 1.6 s apart: 16 periods at 10 Hz
    for stamps in (steady, holed):
        writer.add_episode({**_steps(6), "timestamp": stamps}, {"success": True})
    writer.close()
    assert cli(["data", "validate", str(path)]) == 0  # a note, not a problem
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: timestamp: episode 1: 1.60 s between steps 3 and 4 (16 control periods): nothing "
        "was recorded meanwhile (robot-il data drop-episode removes an episode)"
    ]


def test_a_dataset_that_does_not_exist_names_the_folder_a_relative_path_is_from() -> None:
    """Run from another folder than the repository's, a relative path failed with its name
    alone, as if the dataset were gone."""
    from robot_il.dataset import Dataset

    with pytest.raises(
        DatasetError,
        match=r"^demos/none\.zarr: no such dataset \(path does not exist, relative to /",
    ):
        Dataset.open("demos/none.zarr")


def test_a_flush_the_disk_fails_raises_rather_than_falling_back_to_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``syncfs`` failing (EIO) fell back to ``sync``, which reports nothing: a commit whose
    flush the disk had failed counted as durable. The error now reaches the caller; ``sync``
    stays the fallback where the C library has no ``syncfs``. No disk here fails on demand, so
    the C library's ``syncfs`` is replaced by one that fails with EIO."""
    import ctypes

    from robot_il.dataset import durability

    synced = []

    class FailingLibc:
        @staticmethod
        def syncfs(fd: int) -> int:
            ctypes.set_errno(errno.EIO)
            return -1

    monkeypatch.setattr(durability.os, "sync", lambda: synced.append(True))
    monkeypatch.setattr(durability, "_LIBC", FailingLibc())
    with pytest.raises(OSError, match="Input/output error") as raised:
        durability.flush_filesystem(tmp_path)
    assert raised.value.errno == errno.EIO and raised.value.filename == str(tmp_path)
    monkeypatch.setattr(durability, "_LIBC", object())  # no syncfs
    durability.flush_filesystem(tmp_path)
    assert synced == [True]
