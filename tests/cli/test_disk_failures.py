"""A disk that fails a dataset's flush (EIO from ``syncfs``) under the ``robot-il`` verbs that
write datasets: one line naming the dataset and the error's meaning, a non-zero exit, and
every episode committed before it still there. A full disk had such a line; EIO ended in an
OSError traceback (``robot-il data drop-episode``) or an error's type name and number
(``robot-il record --append``: "committing failed: OSError: [Errno 5] ...").

No disk here fails on demand, so the C library's ``syncfs`` under ``flush_filesystem`` is
replaced by one that fails as a failing disk's does."""

from __future__ import annotations

import ctypes
import errno
import shutil
from pathlib import Path

import numpy as np
import pytest

from robot_il.cli import main
from robot_il.dataset import Dataset, durability
from robot_il.dataset.validate import validate


class FailingDisk:
    """A C library whose ``syncfs`` fails with EIO."""

    @staticmethod
    def syncfs(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1


@pytest.fixture
def failing_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durability, "_LIBC", FailingDisk())


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The error ``robot-il`` printed, which must be its output's only line of its kind."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    return errors[0]


def _episodes(path: Path) -> list[np.ndarray]:
    dataset = Dataset.open(path)
    return [dataset.episode(i)["action"] for i in range(dataset.num_episodes)]


def _copied(source: Path, path: Path) -> list[np.ndarray]:
    """Copy the dataset ``source`` to ``path``; its episodes' actions."""
    shutil.copytree(source, path)
    return _episodes(path)


def _assert_episodes(path: Path, before: list[np.ndarray]) -> None:
    for episode, actions in zip(_episodes(path), before, strict=True):
        np.testing.assert_array_equal(episode, actions)


def test_a_rewrite_whose_flush_fails_leaves_the_dataset_it_would_replace(
    reach: Path, tmp_path: Path, failing_disk: None, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "kept.zarr"
    before = _copied(reach, kept)
    assert main(["data", "drop-episode", str(reach), "0", "--out", str(kept), "--force"]) == 2
    assert _error_line(capsys) == (
        f"robot-il: error: {kept}: not replaced, it is unchanged: Input/output error (EIO)"
    )
    _assert_episodes(kept, before)
    new = tmp_path / "new.zarr"
    assert main(["data", "merge", str(new), str(reach), str(kept)]) == 2
    assert _error_line(capsys) == f"robot-il: error: {new}: not written: Input/output error (EIO)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.zarr"]  # no build left beside


def test_a_recording_whose_commit_flush_fails_keeps_the_committed_episodes(
    reach: Path, tmp_path: Path, failing_disk: None, capsys: pytest.CaptureFixture[str]
) -> None:
    demos = tmp_path / "demos.zarr"
    before = _copied(reach, demos)
    argv = ["record", "--task", "reach", "--expert", "--episodes", "1", "--append"]
    assert main([*argv, "--out", str(demos)]) == 2
    assert _error_line(capsys) == (
        f"robot-il: error: stream env: {demos}: episode 2 is not committed: Input/output error "
        "(EIO); the dataset keeps its 2 committed episode(s)"
    )
    assert validate(demos).ok
    _assert_episodes(demos, before)
