"""LeRobot v3 export and import: a round trip keeps every array (images within the video
codec's loss), and the files read the way LeRobot's loader reads them: parquet through the
``datasets`` library, frames from the mp4 through ``av`` at ``from_timestamp + timestamp``
within LeRobot's tolerance of 1e-4 s."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from robot_il.cli import main as cli
from robot_il.dataset import Dataset, DatasetWriter
from robot_il.dataset.lerobot import import_lerobot
from robot_il.errors import DatasetError


def camera_frames(rng: np.random.Generator, length: int, height: int, width: int) -> np.ndarray:
    """A shaded table, a cube moving two pixels a frame to the right (wrapping at the edge)
    and sensor noise of 2 grey levels (std)."""
    y, x = np.mgrid[0:height, 0:width]
    table = np.stack([90 + 0.4 * x, 80 + 0.3 * y, 70 + 0.2 * (x + y)], axis=-1)
    frames = np.empty((length, height, width, 3), np.uint8)
    for t in range(length):
        frame = table + rng.normal(scale=2.0, size=table.shape)
        x = 2 + (2 * t) % (width - 12)
        frame[10:18, x : x + 8] = (200, 40, 40)
        frames[t] = np.clip(frame, 0, 255)
    return frames


FPS = 20
LENGTHS = (30, 17, 24)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src.zarr"
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=FPS, fsync=False,
                                  attrs={"task": "reach", "action_mode": "joint"})  # fmt: skip
    rng = np.random.default_rng(0)
    for episode, n in enumerate(LENGTHS):
        writer.add_episode(
            {
                "rgb_front": camera_frames(rng, n, 48, 64),
                "rgb_wrist": camera_frames(rng, n, 32, 32),
                "joint_pos": rng.normal(size=(n, 6)).astype(np.float32),
                "gripper": rng.uniform(size=(n, 1)).astype(np.float32),
                "action": rng.normal(size=(n, 7)).astype(np.float32),
                "timestamp": np.arange(n) / FPS + 0.003 * episode,  # recorded, not i / fps
            },
            {"success": episode != 1, "task": ["reach", "reach", "push"][episode]},
        )
    writer.close()
    return path


def test_round_trip_keeps_arrays_within_codec_loss(source: Path, tmp_path: Path) -> None:
    exported, back = tmp_path / "lerobot", tmp_path / "back.zarr"
    assert cli(["data", "export", "--format", "lerobot", str(source), str(exported)]) == 0
    assert cli(["data", "import", "--format", "lerobot", str(exported), str(back)]) == 0
    original, restored = Dataset.open(source), Dataset.open(back)
    assert restored.episode_ends.tolist() == original.episode_ends.tolist()
    assert restored.specs == original.specs and restored.robot == "ur5e"
    assert restored.control_hz == FPS and restored.attrs["action_mode"] == "joint"
    for episode in range(len(LENGTHS)):
        assert restored.meta(episode) == original.meta(episode)
        a, b = original.episode(episode), restored.episode(episode)
        for key in ("joint_pos", "gripper", "action", "timestamp"):
            assert b[key].dtype == a[key].dtype
            np.testing.assert_array_equal(b[key], a[key])
        for key in ("rgb_front", "rgb_wrist"):
            error = np.abs(b[key].astype(int) - a[key])
            assert error.mean(axis=(1, 2, 3)).max() < 4.0, f"{key}: video loss too large"
        # frames stay in order: the red cube is where it was in each frame (to the pixel that
        # yuv420p's half-resolution colour blurs; a frame off would be 2 pixels off)
        shift = _cube_column(b["rgb_front"]) - _cube_column(a["rgb_front"])
        assert np.abs(shift).max() <= 1, shift
    assert cli(["data", "export", "--format", "lerobot", str(source), str(exported)]) == 2


def _cube_column(frames: np.ndarray) -> np.ndarray:
    """Left edge (px) of the red cube in each frame."""
    red = frames[:, 10:18, :, 0].astype(int) - frames[:, 10:18, :, 1]
    return np.argmax(red.mean(axis=1) > 80, axis=1)


def test_files_read_the_way_lerobot_reads_them(source: Path, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    datasets = pytest.importorskip("datasets")
    import pandas as pd

    root = tmp_path / "lerobot"
    assert cli(["data", "export", "--format", "lerobot", str(source), str(root)]) == 0
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(LENGTHS)
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    assert info["features"]["observation.state"]["shape"] == [7]  # joint_pos + gripper

    frames = datasets.load_dataset(
        "parquet", data_files=str(root / "data" / "*" / "*.parquet"), split="train"
    )
    episodes = datasets.load_dataset(
        "parquet", data_files=str(root / "meta" / "episodes" / "*" / "*.parquet"), split="train"
    )
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    assert tasks.loc["reach", "task_index"] == 0 and tasks.loc["push", "task_index"] == 1
    assert len(frames) == sum(LENGTHS) and len(episodes) == 3
    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    original = Dataset.open(source)
    frames = frames.with_format("numpy")
    for episode in (0, 2):
        row = episodes[episode]
        assert row["tasks"] == [["reach", "reach", "push"][episode]]
        start, stop = row["dataset_from_index"], row["dataset_to_index"]
        steps = frames[start:stop]
        assert steps["episode_index"].tolist() == [episode] * (stop - start)
        assert steps["frame_index"].tolist() == list(range(stop - start))
        state = np.concatenate([original.get("joint_pos", start, stop),
                                original.get("gripper", start, stop)], axis=1)  # fmt: skip
        np.testing.assert_array_equal(np.stack(steps["observation.state"]), state)
        np.testing.assert_array_equal(
            np.stack(steps["action"]), original.get("action", start, stop)
        )
        # frames as LeRobot's pyav decoder finds them: seek, decode, match pts to the query
        video = root / info["video_path"].format(
            video_key="observation.images.front",
            chunk_index=row["videos/observation.images.front/chunk_index"],
            file_index=row["videos/observation.images.front/file_index"],
        )
        queries = (
            row["videos/observation.images.front/from_timestamp"] + steps["timestamp"][[0, 5, -1]]
        )
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            container.seek(int(queries[0] / stream.time_base), stream=stream, backward=True)
            decoded = {}
            for frame in container.decode(stream):
                decoded[float(frame.pts * stream.time_base)] = frame.to_ndarray(format="rgb24")
                if frame.pts * stream.time_base > queries[-1]:
                    break
        times = np.array(sorted(decoded))
        for query, local in zip(queries, (0, 5, stop - start - 1), strict=True):
            nearest = times[np.argmin(np.abs(times - query))]
            assert abs(nearest - query) < 1e-4, "LeRobot's tolerance_s"
            expected = original.get("rgb_front", start + local, start + local + 1)[0]
            assert np.abs(decoded[nearest].astype(int) - expected).mean() < 4.0


def test_import_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        import_lerobot(tmp_path, tmp_path / "out.zarr", force=False)
    with pytest.raises(DatasetError, match=r"typo\.lerobot: does not exist$"):
        import_lerobot(tmp_path / "typo.lerobot", tmp_path / "out.zarr", force=False)
    (tmp_path / "old" / "meta").mkdir(parents=True)
    (tmp_path / "old" / "meta" / "info.json").write_text('{"codebase_version": "v2.1"}')
    with pytest.raises(DatasetError, match="codebase_version 'v2.1'; only v3.x is read"):
        import_lerobot(tmp_path / "old", tmp_path / "out.zarr", force=False)
    assert not (tmp_path / "out.zarr").exists()


def test_import_refuses_a_damaged_dataset_in_one_line_before_writing(
    source: Path, tmp_path: Path
) -> None:
    """A torn info.json and a missing fps were tracebacks (JSONDecodeError, KeyError), and a
    dataset without meta/episodes/ imported as 0 episodes; a missing video stopped the
    import half-way."""
    exported = tmp_path / "lerobot"
    assert cli(["data", "export", str(source), str(exported), "--format", "lerobot"]) == 0
    out = tmp_path / "out.zarr"

    def refused(damage: str, match: str) -> None:
        damaged = tmp_path / damage
        shutil.copytree(exported, damaged)
        info_file = damaged / "meta" / "info.json"
        info = json.loads(info_file.read_text())
        if damage == "torn_info":
            info_file.write_text(info_file.read_text()[:100])
        elif damage == "no_fps":
            info_file.write_text(json.dumps({k: v for k, v in info.items() if k != "fps"}))
        elif damage == "no_episodes":
            shutil.rmtree(damaged / "meta" / "episodes")
        elif damage == "no_video":
            next((damaged / "videos").rglob("*.mp4")).unlink()
        elif damage == "no_column":
            info["features"]["observation.extra"] = {"dtype": "float32", "shape": [1]}
            info_file.write_text(json.dumps(info))
        with pytest.raises(DatasetError, match=match):
            import_lerobot(damaged, out, force=False)
        assert not out.exists()

    refused("torn_info", "info.json: not valid JSON")
    refused("no_fps", "'fps' must be a positive number, got None")
    refused("no_episodes", "no parquet files under meta/episodes/")
    refused("no_video", r"video videos/observation\.images\.\w+/chunk-000/file-000\.mp4 is missing")
    refused("no_column", "feature 'observation.extra' of meta/info.json has no column in data/")
