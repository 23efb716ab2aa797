"""What a checkpoint records of where it came from: the code (a commit, and whether the code
had changed since it: results the benchmarks write into the checkout as they run are not a
change of the code) and the data (a fingerprint that tells recordings apart by content)."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import zarr

from robot_il.dataset import Dataset
from robot_il.dataset.writer import DatasetWriter
from robot_il.provenance import RESULTS_FOLDER, code_provenance, dataset_record, git_state


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
    (tmp_path / "NOTES.md").write_text("a page, not code\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "new_module.py").write_text("Y = 1\n")  # not added to git yet: still code
    assert git_state(tmp_path) == {"commit": head, "dirty": True}
    (tmp_path / "new_module.py").unlink()
    (tmp_path / "module.py").write_text("X = 2\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def _recording(path: Path, episode_2_action: float = 2.0) -> Path:
    """Three episodes of five steps, the third's actions ``episode_2_action``."""
    with DatasetWriter.create(path, robot="ur5e", control_hz=20.0, fsync=False) as writer:
        for action in (0.0, 1.0, episode_2_action):
            writer.add_episode({"joint_pos": np.zeros((5, 6), np.float32),
                                "action": np.full((5, 7), action, np.float32)})  # fmt: skip
    return path


def test_a_datasets_fingerprint_follows_the_content_it_used_not_its_place(tmp_path):
    first = _recording(tmp_path / "first.zarr")
    record = dataset_record(Dataset.open(first), first, episodes=3)
    assert record["path"] == str(first) and (record["episodes_used"], record["episodes"]) == (3, 3)
    assert len(record["fingerprint"]) == 16
    moved = shutil.copytree(first, tmp_path / "elsewhere" / "copy.zarr")
    assert dataset_record(Dataset.open(moved), moved, 3)["fingerprint"] == record["fingerprint"]
    other = _recording(tmp_path / "other.zarr", episode_2_action=2.5)  # one episode differs
    assert dataset_record(Dataset.open(other), other, 3)["fingerprint"] != record["fingerprint"]
    # ... and is the same data to a policy that learned from the first two episodes only
    two = [dataset_record(Dataset.open(d), d, 2)["fingerprint"] for d in (first, other)]
    assert two[0] == two[1] != record["fingerprint"]
    # observations count as actions do (a recalibrated or re-read sensor is other data)
    zarr.open_group(str(moved), mode="r+")["data"]["joint_pos"][3, 0] = 0.001
    assert dataset_record(Dataset.open(moved), moved, 3)["fingerprint"] != record["fingerprint"]
    relative = Path(os.path.relpath(first))  # recorded as the absolute path it names
    assert dataset_record(Dataset.open(first), relative, 3)["path"] == str(first.resolve())


def test_the_libraries_that_train_and_sample_a_diffusion_policy_are_recorded() -> None:
    """Diffusion's EMA is diffusers' code (its noise schedules were): a checkpoint that does
    not name its version cannot be traced to the code that made its numbers."""
    libraries = code_provenance()["libraries"]
    assert {"torch", "numpy", "diffusers"} <= libraries.keys()
