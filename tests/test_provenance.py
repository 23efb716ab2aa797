"""What a checkpoint records of where it came from: the code (a commit, and whether the code
had changed since it: results the benchmarks write into the checkout as they run are not a
change of the code) and the data (a fingerprint that tells recordings apart by content)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np

from robot_il.dataset import Dataset
from robot_il.dataset.writer import DatasetWriter
from robot_il.provenance import RESULTS_FOLDER, dataset_record, git_state


def _git(repository: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(repository), "-c", "user.name=t", "-c", "user.email=t@t",
                    *arguments], check=True, capture_output=True)  # fmt: skip


def test_results_written_by_benchmarks_leave_the_code_clean_and_code_changes_do_not(tmp_path):
    assert git_state(tmp_path) is None  # not a checkout
    (tmp_path / RESULTS_FOLDER).mkdir(parents=True)
    (tmp_path / RESULTS_FOLDER / "runs.json").write_text("[]\n")
    (tmp_path / "module.py").write_text("X = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / RESULTS_FOLDER / "runs.json").write_text('[{"return": 1}]\n')
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "module.py").write_text("X = 2\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def _recording(path: Path, last_action: float) -> Path:
    with DatasetWriter.create(path, robot="ur5e", control_hz=20.0, fsync=False) as writer:
        for episode in range(3):
            action = np.full((5, 7), episode, np.float32)
            action[-1, 0] = last_action
            writer.add_episode({"joint_pos": np.zeros((5, 6), np.float32), "action": action})
    return path


def test_a_datasets_fingerprint_follows_its_content_not_its_place(tmp_path):
    first = _recording(tmp_path / "first.zarr", last_action=0.5)
    record = dataset_record(Dataset.open(first), first, episodes=2)
    assert record["path"] == str(first) and (record["episodes_used"], record["episodes"]) == (2, 3)
    assert len(record["fingerprint"]) == 16
    moved = shutil.copytree(first, tmp_path / "elsewhere" / "copy.zarr")
    assert dataset_record(Dataset.open(moved), moved, 2)["fingerprint"] == record["fingerprint"]
    other = _recording(tmp_path / "other.zarr", last_action=0.25)  # one number differs
    assert dataset_record(Dataset.open(other), other, 2)["fingerprint"] != record["fingerprint"]
