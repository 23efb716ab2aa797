"""The hang backstop (tests/hang_backstop.py) ends a test that pytest-timeout cannot stop, says
which test it was, and the run goes on to its summary."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("xdist")

STUCK_TEST = """
import signal, subprocess, time

def test_stuck(tmp_path):
    child = subprocess.Popen(["sleep", "600"])
    (tmp_path.parents[2] / "child.pid").write_text(str(child.pid))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # as a main thread in native code
    time.sleep(600)
"""


def test_a_test_the_timeout_cannot_stop_is_named_its_stacks_kept_and_its_children_killed(
    tmp_path,
):
    (tmp_path / "test_stuck.py").write_text(STUCK_TEST)
    (tmp_path / "test_fine.py").write_text("def test_fine():\n    pass\n")
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "hang_backstop", "-n", "2", "--dist", "loadfile",
         "--max-worker-restart=0", "-o", "timeout=1", "-o", "hang_backstop_grace_s=1",
         "--basetemp", str(tmp_path / "base"), "-p", "no:cacheprovider", "-c", "/dev/null",
         "--rootdir", str(tmp_path), str(tmp_path)],
        env={"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert time.monotonic() - started < 60, run.stdout
    assert "crashed while running 'test_stuck.py::test_stuck'" in run.stdout, run.stdout
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    (report,) = (tmp_path / ".pytest-hangs").iterdir()
    text = report.read_text()
    assert text.startswith("test_stuck.py::test_stuck ran past its 1 s timeout"), text
    assert "line 8 in test_stuck" in text, text  # the stuck main thread's stack
    child = int((tmp_path / "child.pid").read_text())
    assert f"killed process {child}: sleep 600" in text, text
    assert not Path(f"/proc/{child}").exists() or "Z" in stat_state(child)


def stat_state(pid: int) -> str:
    """A process's state letter (Z: a zombie, ended but not yet reaped by its parent)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]
