"""``robot-il record --teleop keyboard`` in a pseudo-terminal, as a person runs it: the episode
goes on past the scripted expert's step limit until the person ends it with a key."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robot_il.dataset import Dataset

pytest.importorskip("mujoco")

CONTROL_HZ = 20.0


def test_teleop_episode_runs_until_the_person_ends_it(tmp_path: Path) -> None:
    from robot_il.envs import make_env

    expert_limit = make_env("reach", "mujoco", control_hz=CONTROL_HZ).unwrapped.max_episode_steps
    out = tmp_path / "teleop.zarr"
    master, slave = pty.openpty()
    command = [
        str(Path(sys.executable).with_name("robot-il")), "record", "--task", "reach",
        "--teleop", "keyboard", "--episodes", "1", "--control-hz", str(CONTROL_HZ),
        "--out", str(out), "--no-fsync",
    ]  # fmt: skip
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 90
        while b"episode keys" not in output:  # the session is up and recording
            assert time.monotonic() < deadline, output.decode(errors="replace")
            output += _read(master)
        seconds = 1.5 * expert_limit / CONTROL_HZ  # well past the expert's limit
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            output += _read(master)
        os.write(master, b"q")  # the person keeps the episode and quits
        process.wait(timeout=60)
        output += _read(master)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert process.returncode == 0, output.decode(errors="replace")
    # The person is told which keys move the arm, not only the episode keys.
    assert b"w/s a/d r/f move x/y/z" in output, output.decode(errors="replace")
    dataset = Dataset.open(out)
    assert dataset.num_episodes == 1
    steps = int(dataset.episode_lengths[0])
    assert steps > expert_limit, f"{steps} steps: cut at the expert's limit ({expert_limit})"
    assert dataset.meta(0)["success"] is False  # nobody moved the arm: only the key ended it


def _read(fd: int) -> bytes:
    import select

    ready, _, _ = select.select([fd], [], [], 0.1)
    if not ready:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
