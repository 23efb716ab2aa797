"""User journeys of ``robot-il record`` and ``robot-il data`` found wanting in review: appending
to a dataset, merging datasets whose numbers mean different things, and flags whose bad values
failed as tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_errors import argparse_error

from robot_il.cli import main
from robot_il.dataset import Dataset

pytest.importorskip("mujoco")


def record(out: Path, *flags: str) -> int:
    return main(["record", "--task", "reach", "--expert", "--no-fsync", "--out", str(out), *flags])


def seeds(path: Path) -> list[int]:
    dataset = Dataset.open(path)
    return [dataset.meta(e)["seed"] for e in range(dataset.num_episodes)]


def test_append_continues_after_the_datasets_seeds_instead_of_repeating_them(
    tmp_path: Path,
) -> None:
    out = tmp_path / "reach.zarr"
    assert record(out, "--episodes", "2", "--seed", "3") == 0
    assert record(out, "--episodes", "2", "--append") == 0  # no --seed: after the last one
    assert seeds(out) == [3, 4, 5, 6]
    assert record(out, "--episodes", "1", "--append", "--seed", "3") == 0  # asked for: as asked
    assert seeds(out)[-1] == 3


def test_append_refuses_other_cameras_or_codec_before_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reach.zarr"
    assert record(out, "--episodes", "1") == 0
    capsys.readouterr()
    assert record(out, "--episodes", "1", "--append", "--cameras", "front") == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"robot-il: error: {out}: cannot append: this session records rgb_front, which the "
        "dataset does not have (see --cameras, --image-size)"
    )
    assert "expert episodes" not in err  # refused before the first episode began
    front = tmp_path / "front.zarr"
    assert record(front, "--episodes", "1", "--cameras", "front", "--image-size", "32,32") == 0
    capsys.readouterr()
    assert record(front, "--episodes", "1", "--append", "--cameras", "front") == 2
    assert "rgb_front is (32, 32, 3) in the dataset, (96, 96, 3) in this session" in (
        capsys.readouterr().err
    )
    flags = ("--cameras", "front", "--image-size", "32,32", "--image-codec", "blosc")
    assert record(front, "--episodes", "1", "--append", *flags) == 2
    assert "dataset stores frames as jpegxl, quality 90; drop --image-codec" in (
        capsys.readouterr().err
    )
    assert Dataset.open(out).num_episodes == 1 and Dataset.open(front).num_episodes == 1


def test_merge_refuses_datasets_whose_actions_mean_different_things(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    joint, delta = tmp_path / "joint.zarr", tmp_path / "delta.zarr"
    assert record(joint, "--episodes", "1") == 0
    assert record(delta, "--episodes", "1", "--action-mode", "eef_delta") == 0
    capsys.readouterr()
    merged = tmp_path / "merged.zarr"
    assert main(["data", "merge", str(merged), str(joint), str(delta)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"robot-il: error: {delta}: action_mode 'eef_delta' differs from {joint}'s 'joint'"
    )
    assert not merged.exists()


def test_data_flags_refuse_bad_numbers_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reach.zarr"
    assert record(out, "--episodes", "1") == 0
    split = ["data", "split", str(out), "--seed", "-1"]
    assert "argument --seed: must be >= 0, got -1" in argparse_error(split, capsys)
    view = ["data", "view", str(out), "--port", "70000"]
    assert "argument --port: must be in 0..65535, got 70000" in argparse_error(view, capsys)


def test_export_video_makes_the_folder_it_writes_into(tmp_path: Path) -> None:
    out = tmp_path / "front.zarr"
    assert record(out, "--episodes", "1", "--cameras", "front", "--image-size", "32,32") == 0
    video = tmp_path / "videos" / "episode0.mp4"
    assert main(["data", "export-video", str(out), "0", str(video)]) == 0
    assert video.stat().st_size > 0


def test_merge_refuses_datasets_of_other_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """push and pick_place record the same keys: their merge was labelled push throughout, and
    robot-il eval then ran every policy trained on it in push alone."""
    push, pick = tmp_path / "push.zarr", tmp_path / "pick.zarr"
    argv = ["record", "--expert", "--no-fsync", "--episodes", "1"]
    assert main([*argv, "--task", "push", "--out", str(push)]) == 0
    assert main([*argv, "--task", "pick_place", "--out", str(pick)]) == 0
    capsys.readouterr()
    merged = tmp_path / "merged.zarr"
    assert main(["data", "merge", str(merged), str(push), str(pick)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"robot-il: error: {pick}: task 'pick_place' differs from {push}'s 'push'"
    )
    assert not merged.exists()


def test_info_names_the_task_and_the_actions(tmp_path: Path, capsys) -> None:
    """``data info`` showed the action key's units as "see attrs action_mode" and named neither
    that mode nor the task: whether a recording holds joint targets or end-effector deltas
    (what ``train`` learns, what ``merge`` accepts) was not to be seen."""
    out = tmp_path / "reach.zarr"
    assert record(out, "--episodes", "1", "--action-mode", "eef_delta") == 0
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "task         reach (mujoco, expert)" in lines, lines
    assert "actions      eef_delta" in lines, lines
