"""A checkpoint's code record: a commit and whether the code had changed since it; results
the benchmarks write into the checkout as they run are not a change of the code."""

import subprocess
from pathlib import Path

from robot_il.provenance import RESULTS_FOLDER, git_state


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
