"""Where ``robot-il data`` writes: an output under a file, a folder where a file goes, or a
video name without a container suffix is one error line before any work (each was an
OSError or KeyError traceback, the rewrites' after the whole copy was built)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_il.cli import main as cli
from robot_il.dataset import DatasetWriter, ImageStorage


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "d.zarr"
    writer = DatasetWriter.create(
        path,
        robot="ur5e",
        control_hz=10,
        fsync=False,
        attrs={"task": "push"},
        image_storage=ImageStorage("blosc"),
    )
    rng = np.random.default_rng(0)
    for _ in range(2):
        writer.add_episode(
            {
                "action": rng.normal(size=(4, 7)).astype(np.float32),
                "rgb_front": rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8),
            }
        )
    writer.close()
    return path


def error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_outputs_under_a_file_are_refused_in_one_line(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes").write_text("a file, not a folder")
    out = tmp_path / "notes" / "out"
    for argv in (
        ["data", "merge", f"{out}.zarr", str(dataset)],
        ["data", "drop-episode", str(dataset), "0", "--out", f"{out}.zarr"],
        ["data", "export", str(dataset), f"{out}.zarr"],
        ["data", "export", str(dataset), str(out), "--format", "lerobot"],
        ["data", "split", str(dataset), "--out", f"{out}.json"],
        ["data", "export-video", str(dataset), "0", f"{out}.mp4"],
    ):
        assert error_line(argv, capsys).endswith(
            f"cannot be written: {tmp_path / 'notes'} is a file"
        ), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr", "notes"]  # no leftovers


def test_file_outputs_refuse_a_folder_and_make_missing_parents(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    split = ["data", "split", str(dataset), "--out", str(folder), "--force"]
    assert error_line(split, capsys).endswith(f"{folder}: is a folder; name a file to write")
    video = ["data", "export-video", str(dataset), "0", str(folder / "v.mp4"), "--force"]
    (folder / "v.mp4").mkdir()
    assert error_line(video, capsys).endswith(
        f"{folder / 'v.mp4'}: is a folder; name a file to write"
    )
    assert cli(["data", "split", str(dataset), "--out", str(tmp_path / "new" / "s.json")]) == 0
    assert (tmp_path / "new" / "s.json").is_file()


def test_export_video_needs_a_container_suffix(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "episode0"
    assert error_line(["data", "export-video", str(dataset), "0", str(bare)], capsys).endswith(
        f"{bare}: a video needs one of the suffixes .mp4, .mkv, .mov"
    )
    assert cli(["data", "export-video", str(dataset), "0", str(tmp_path / "e.mkv")]) == 0
    assert (tmp_path / "e.mkv").stat().st_size > 0
