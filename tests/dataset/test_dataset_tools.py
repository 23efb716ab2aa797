"""``robot-il data``: export to diffusion_policy's layout (read back with plain zarr), merge,
drop-episode, split, export-video; nothing is overwritten without --force."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from robot_il.cli import main as cli
from robot_il.dataset import Dataset, DatasetWriter, ImageStorage
from robot_il.dataset.validate import validate
from robot_il.errors import DatasetError


def _steps(length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "action": rng.normal(size=(length, 7)).astype(np.float32),
        "joint_pos": rng.normal(size=(length, 6)).astype(np.float32),
        "rgb_front": rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8),
    }


def _make(path: Path, lengths: list[int], seed0: int = 0) -> list[dict[str, np.ndarray]]:
    """Lossless images, so that copies can be compared bit for bit."""
    writer = DatasetWriter.create(
        path, robot="ur5e", control_hz=10, attrs={"task": "push"},
        image_storage=ImageStorage("blosc"),
    )  # fmt: skip
    episodes = [_steps(n, seed0 + i) for i, n in enumerate(lengths)]
    for i, steps in enumerate(episodes):
        writer.add_episode(steps, {"success": i % 2 == 0, "task": f"t{seed0 + i}"})
    return episodes


def test_export_zarr_format_2_has_replay_buffer_layout(tmp_path: Path) -> None:
    episodes = _make(tmp_path / "src.zarr", [3, 5, 2])
    out = tmp_path / "dp.zarr"
    assert cli(["data", "export", str(tmp_path / "src.zarr"), str(out), "--zarr-format", "2"]) == 0
    assert (out / ".zgroup").is_file() and not (out / "zarr.json").exists()
    root = zarr.open_group(str(out), mode="r", zarr_format=2)
    assert sorted(root.group_keys()) == ["data", "meta"]
    assert sorted(root["data"].array_keys()) == ["action", "joint_pos", "rgb_front"]
    assert root["meta/episode_ends"][:].tolist() == [3, 8, 10]
    assert root["meta/episode_ends"].dtype == np.int64
    for key in ("action", "joint_pos", "rgb_front"):
        expected = np.concatenate([e[key] for e in episodes])
        stored = root[f"data/{key}"]
        assert stored.dtype == expected.dtype
        np.testing.assert_array_equal(stored[:], expected)
    assert root["data/rgb_front"].chunks == (1, 16, 16, 3)
    zarray = json.loads((out / "data" / "rgb_front" / ".zarray").read_text())
    assert zarray["compressor"]["id"] == "blosc" and zarray["zarr_format"] == 2
    assert root["meta/success"][:].tolist() == [True, False, True]
    assert root.attrs["task"] == "push"
    # robot_il reads its own export back, and a ReplayBuffer without our attrs too
    assert Dataset.open(out).episode(1)["action"].tolist() == episodes[1]["action"].tolist()
    zarr.open_group(str(out), mode="r+", zarr_format=2).attrs.put({})
    foreign = Dataset.open(out)
    assert foreign.robot == "unknown" and foreign.specs["rgb_front"].shape == (16, 16, 3)
    np.testing.assert_array_equal(foreign.episode(2)["rgb_front"], episodes[2]["rgb_front"])
    assert cli(["data", "export", str(tmp_path / "src.zarr"), str(out)]) == 2  # exists


def test_merge_then_drop_episode(tmp_path: Path) -> None:
    a = _make(tmp_path / "a.zarr", [3, 4])
    b = _make(tmp_path / "b.zarr", [2], seed0=10)
    merged = tmp_path / "m.zarr"
    assert (
        cli(["data", "merge", str(merged), str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")]) == 0
    )
    dataset = Dataset.open(merged)
    assert dataset.episode_ends.tolist() == [3, 7, 9]
    np.testing.assert_array_equal(dataset.episode(2)["rgb_front"], b[0]["rgb_front"])
    assert dataset.meta(2)["task"] == "t10"

    assert cli(["data", "drop-episode", str(merged), "1"]) == 2  # in place needs --force
    assert Dataset.open(merged).num_episodes == 3
    assert cli(["data", "drop-episode", str(merged), "1", "--force"]) == 0
    dataset = Dataset.open(merged)
    assert dataset.episode_ends.tolist() == [3, 5]
    np.testing.assert_array_equal(dataset.episode(0)["action"], a[0]["action"])
    np.testing.assert_array_equal(dataset.episode(1)["joint_pos"], b[0]["joint_pos"])
    assert [dataset.meta(i)["task"] for i in range(2)] == ["t0", "t10"]
    assert validate(merged).ok
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no leftovers


def test_merge_takes_int_and_float_meta_in_either_order(tmp_path: Path) -> None:
    """A duration stored as an int in one dataset and as a float in another merges whichever
    comes first: the float widens the merged int array to float64."""
    for name, duration in (("a", 2), ("b", 2.5)):
        with DatasetWriter.create(tmp_path / f"{name}.zarr", robot="ur5e", control_hz=10,
                                  fsync=False) as writer:  # fmt: skip
            writer.add_episode({"action": np.zeros((4, 7), np.float32)}, {"duration": duration})
    for order in ("ab", "ba"):
        merged = tmp_path / f"m_{order}.zarr"
        sources = [str(tmp_path / f"{name}.zarr") for name in order]
        assert cli(["data", "merge", str(merged), *sources]) == 0
        dataset = Dataset.open(merged)
        durations = {"a": 2.0, "b": 2.5}
        assert [dataset.meta(e)["duration"] for e in range(2)] == [durations[n] for n in order]


def test_rewriting_in_place_refuses_while_a_writer_has_the_dataset_open(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """drop-episode --force, merge --force onto it and create(overwrite=True) (record --force)
    swap a new store in: under an open writer, its later episodes would land in the new store
    (corrupting episode_ends) or be lost with the old one. They take the writer's lock."""
    path, other = tmp_path / "held.zarr", tmp_path / "other.zarr"
    _make(path, [3, 4, 5])
    _make(other, [2], seed0=10)
    writer = DatasetWriter.open(path, fsync=False)
    assert cli(["data", "drop-episode", str(path), "0", "--force"]) == 2
    assert "held.zarr: another writer has this dataset open" in capsys.readouterr().err
    assert cli(["data", "merge", str(path), str(other), "--force"]) == 2
    assert "held.zarr: another writer has this dataset open" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="held.zarr: another writer has this dataset open"):
        DatasetWriter.create(path, robot="ur5e", control_hz=10, overwrite=True)
    extra = _steps(6, 20)
    assert writer.add_episode(extra) == 3
    writer.close()
    dataset = Dataset.open(path)
    assert dataset.episode_ends.tolist() == [3, 7, 12, 18]
    np.testing.assert_array_equal(dataset.episode(3)["action"], extra["action"])
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # nothing was built

    assert cli(["data", "drop-episode", str(path), "0", "--force"]) == 0  # the writer is gone
    assert Dataset.open(path).episode_ends.tolist() == [4, 9, 15]
    DatasetWriter.open(path).close()  # and the rewrite left no lock behind


def test_merge_refuses_different_keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _make(tmp_path / "a.zarr", [2])
    writer = DatasetWriter.create(tmp_path / "c.zarr", robot="ur5e", control_hz=10)
    writer.add_episode({"action": np.zeros((2, 7), np.float32)})
    assert (
        cli(
            [
                "data",
                "merge",
                str(tmp_path / "m"),
                str(tmp_path / "a.zarr"),
                str(tmp_path / "c.zarr"),
            ]
        )
        == 2
    )
    assert "only in one of the datasets" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_split_info_and_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "s.zarr"
    _make(path, [3] * 10)
    out = tmp_path / "split.json"
    assert cli(["data", "split", str(path), "--val-fraction", "0.2", "--out", str(out)]) == 0
    split = json.loads(out.read_text())
    assert len(split["val"]) == 2 and sorted(split["train"] + split["val"]) == list(range(10))
    assert cli(["data", "split", str(path), "--out", str(out)]) == 2  # exists, no --force
    assert cli(["data", "info", str(path)]) == 0
    assert "episodes     10, steps 30" in capsys.readouterr().out
    video = tmp_path / "ep.mp4"
    assert cli(["data", "export-video", str(path), "3", str(video)]) == 0
    import imageio.v3 as iio

    assert iio.imread(video).shape == (3, 16, 16, 3)


def test_killed_drop_episode_leaves_the_old_or_the_new_dataset(tmp_path: Path) -> None:
    """drop-episode rewrites aside and swaps atomically: SIGKILL at random moments must leave
    either every original episode or every kept one, never a mix or nothing."""
    original = tmp_path / "orig.zarr"
    episodes = _make(original, [20] * 12)
    rng = np.random.default_rng(5)
    outcomes = set()
    for kill in range(5):
        path = tmp_path / f"run{kill}.zarr"
        shutil.copytree(original, path)
        command = "from robot_il.cli import main; raise SystemExit(main())"
        args = [sys.executable, "-c", command, "data", "drop-episode", str(path), "0", "--force"]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill < 4:
            time.sleep(float(rng.uniform(0.5, 3.0)))
            process.send_signal(signal.SIGKILL)
        process.wait()
        dataset = Dataset.open(path)
        expected = episodes if dataset.num_episodes == 12 else episodes[1:]
        assert dataset.num_episodes == len(expected), (kill, dataset.num_episodes)
        for index, steps in enumerate(expected):
            for key, values in steps.items():
                np.testing.assert_array_equal(dataset.episode(index)[key], values)
        assert validate(path).ok
        outcomes.add(dataset.num_episodes)
    assert 11 in outcomes  # the unkilled run finished


def test_a_ctrl_c_while_a_store_is_built_aside_leaves_nothing_beside_it(tmp_path: Path) -> None:
    """zarr writes on its own IO thread while the caller waits: a Ctrl-C in the wait left the
    writes going, and the half store removed under them came back as a hidden
    ``.<store>.tmp-*`` (4 of 160 early stops of ``robot-il record``)."""
    import threading

    from robot_il.dataset.durability import replace_atomically, settle_zarr_io

    target = tmp_path / "out.zarr"
    main_thread = threading.main_thread().ident

    def ctrl_c_once_chunks_land() -> None:  # in the main thread, so in zarr's wait
        while not any(tmp_path.glob(".out.zarr.tmp-*/x/c/*")):
            time.sleep(0.001)
        signal.pthread_kill(main_thread, signal.SIGINT)

    def build(tmp: Path) -> None:
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=3)
        chunks = root.create_array("x", shape=(4000, 1000), chunks=(10, 1000), dtype="float64")
        chunks[:] = np.random.default_rng(0).random((4000, 1000))

    interrupter = threading.Thread(target=ctrl_c_once_chunks_land)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        replace_atomically(target, build, force=False, flush=False)
    interrupter.join()
    settle_zarr_io()  # whatever zarr had left to write has landed
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_merge_refuses_a_dataset_given_twice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``merge OUT A ./A`` wrote every episode of A twice without a word (weighed twice in
    training, and in both splits)."""
    path = tmp_path / "a.zarr"
    _make(path, [3, 4])
    again = f"{tmp_path}/./a.zarr"
    out = tmp_path / "m.zarr"
    assert cli(["data", "merge", str(out), str(path), again]) == 2
    assert capsys.readouterr().err.strip() == (
        f"robot-il: error: {again}: given twice (as {path}); merging it again would duplicate "
        "every one of its episodes"
    )
    assert not out.exists()
    # a dataset merged into itself with --force (appending another) is still a merge
    other = tmp_path / "b.zarr"
    _make(other, [5], seed0=2)
    assert cli(["data", "merge", str(path), str(path), str(other), "--force"]) == 0
    assert Dataset.open(path).episode_lengths.tolist() == [3, 4, 5]


def test_validate_tells_an_episode_being_recorded_from_a_killed_writers_leftover(
    tmp_path: Path,
) -> None:
    """validate during a recording said every key's uncommitted steps were 'left by a killed
    writer' (and that DatasetWriter.open would truncate them) while the recorder was alive."""
    from robot_il.dataset.durability import lock_for_writing

    path = tmp_path / "live.zarr"
    _make(path, [3, 4])
    action = zarr.open_group(str(path), mode="r+")["data/action"]
    action.resize((9, 7))  # two steps past episode_ends, as a commit under way leaves them
    left = "data/action: 2 steps beyond the last committed episode ("
    assert f"{left}left by a killed writer; readers ignore them, DatasetWriter.open truncates " \
        "them)" in validate(path).notes  # fmt: skip
    with lock_for_writing(path):  # what an open DatasetWriter holds
        report = validate(path)
    assert report.ok
    assert f"{left}the episode being recorded: a writer has the dataset open)" in report.notes
