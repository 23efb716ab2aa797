"""Episode control in a real teleop session: keys typed into a pseudo-terminal drive the reach
env in MuJoCo through the recorder, and next / re-record / discard / quit do what they say."""

from __future__ import annotations

import os
import pty
import threading
import time

import numpy as np
import pytest

from robot_il.dataset import Dataset, DatasetWriter
from robot_il.record import Recorder
from robot_il.record.demos import EnvTeleopSource, env_stream, record_teleop
from robot_il.record.teleop.keyboard import KeyboardTeleop

pytest.importorskip("mujoco")


def test_episode_keys_keep_redo_drop_and_quit(tmp_path):
    from robot_il.envs import make_env

    env = make_env(
        "reach", "mujoco", action_mode="eef_delta", control_hz=20.0, max_episode_steps=10_000
    )
    master, slave = pty.openpty()
    device = KeyboardTeleop(slave, linear_step=0.01)
    source = EnvTeleopSource(env, device)
    writer = DatasetWriter.create(
        tmp_path / "teleop.zarr", robot="ur5e", control_hz=20.0, fsync=False
    )
    # Per episode: keys to type once it has run 3 steps. The first episode moves +x twice.
    script = [b"ww\x1b[C", b"\x1b[D", b"\x7f", b"q"]
    failures: list[str] = []

    def operator() -> None:
        for number, keys in enumerate(script, start=1):
            deadline = time.monotonic() + 20
            while not (source.episodes_started == number and source.steps >= 3):
                if time.monotonic() > deadline:
                    failures.append(f"episode {number} never ran 3 steps")
                    return
                time.sleep(0.005)
            os.write(master, keys)

    typist = threading.Thread(target=operator, daemon=True)
    typist.start()
    try:
        with Recorder([env_stream(20.0, source)], {"env": writer}, realtime=False) as recorder:
            summary = record_teleop(
                source, recorder, episodes=10, seed=5, progress=False, say=lambda line: None
            )
    finally:
        typist.join(timeout=5)
        device.close()
        env.close()
        os.close(master)
        os.close(slave)
    assert not failures, failures
    # next (kept, seed 5), re-record (dropped, same seed 6 again), discard (dropped), quit (kept)
    assert (summary.kept, summary.attempts, summary.discarded, summary.quit) == (2, 4, 2, True)
    dataset = Dataset.open(tmp_path / "teleop.zarr")
    assert dataset.num_episodes == 2
    assert [dataset.meta(i)["seed"] for i in range(2)] == [5, 7]
    first = dataset.episode(0)
    assert first["action"].shape[1] == 7
    # The two +x presses arrive as +x deltas in some recorded step.
    assert np.isclose(first["action"][:, 0].sum(), 0.02, atol=1e-6)
    assert np.all(first["action"][:, 1:6] == 0)
    assert np.all(np.diff(first["tick"]) >= 1)
