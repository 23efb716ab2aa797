"""SIGKILL a recording process at random moments; nothing committed may be lost or changed."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_il.dataset import Dataset, ImageStorage
from robot_il.dataset.validate import validate

SCRIPT = Path(__file__).with_name("recording_script.py")
_spec = importlib.util.spec_from_file_location("recording_script", SCRIPT)
recording_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recording_script)

KILLS = {"blosc": 20, "jpegxl": 10, "batches": 10}  # compressed: runs get further (longer delays)


def _run_and_kill(path: Path, delay_s: float, codec: str, mode: str) -> tuple[int, int, int]:
    """Start the recorder, SIGKILL it ``delay_s`` after it is ready; return the episode it
    reported ready with, the last episode it began and the last one it saw committed."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(path), codec, *([mode] if mode == "batches" else [])],
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    ready_line = process.stdout.readline()
    assert ready_line.startswith("ready"), ready_line
    time.sleep(delay_s)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lines = process.stdout.read().split()
    process.stdout.close()
    begun = [int(n) for word, n in zip(lines[::2], lines[1::2], strict=True) if word == "begin"]
    done = [int(n) for word, n in zip(lines[::2], lines[1::2], strict=True) if word == "committed"]
    ready = int(ready_line.split()[1])
    return ready, (begun[-1] if begun else ready), (done[-1] if done else ready - 1)


def _kill_and_check(path: Path, delay_s: float, codec: str, mode: str, kill: int) -> int:
    """One kill ``delay_s`` after the recorder is ready, then every check of what it left;
    returns the number of committed episodes."""
    storage = ImageStorage(codec)
    ready, last_begun, last_committed = _run_and_kill(path, delay_s, codec, mode)
    dataset = Dataset.open(path)
    n = dataset.num_episodes
    assert n >= ready, f"kill {kill}: episodes committed before this run were lost"
    assert n >= last_committed + 1, f"kill {kill}: a reported commit is missing"
    # Every episode before the one in flight is committed (before the batch in flight, which
    # reports no commits); the in-flight one may or may not be.
    least = ready if mode == "batches" else last_begun
    assert least <= n <= last_begun + 1, (kill, ready, last_begun, n)
    for episode in range(n):
        steps, meta = recording_script.episode_content(episode)
        stored = dataset.episode(episode)
        for key, values in steps.items():
            expected = storage.as_stored(values) if key.startswith("rgb_") else values
            assert stored[key].dtype == expected.dtype, (kill, episode, key)
            assert np.array_equal(stored[key], expected), (kill, episode, key)
        if "operator" in dataset.meta_names:
            meta = {"operator": "", **meta}  # episodes before it had none
        assert dataset.meta(episode) == meta, (kill, episode)
    report = validate(path)
    assert report.ok, (kill, report.problems)
    return n


@pytest.mark.parametrize(
    ("codec", "mode"), [("blosc", "episodes"), ("jpegxl", "episodes"), ("blosc", "batches")]
)
def test_sigkill_at_random_moments_loses_at_most_the_episode_in_flight(
    tmp_path: Path, codec: str, mode: str
) -> None:
    """Lossless (one file per frame) and compressed (frames in shard files) recordings, and
    episodes committed in batches (``add_episodes``). On a loaded machine the random kills may
    leave few episodes: longer-lived runs follow until at least 5 are committed, so every
    check also covers a store of several episodes."""
    path = tmp_path / "killed.zarr"
    rng = np.random.default_rng(1234)
    slower = 1 if codec == "blosc" else 3  # encoding frames: fewer episodes per second
    kills = KILLS["batches" if mode == "batches" else codec]
    committed = 0
    for kill in range(kills):
        # Mostly short delays (kills inside writes and commits), sometimes long ones.
        delay = float(rng.uniform(0.0, 0.25) if kill % 4 else rng.uniform(0.0, 0.02))
        committed = _kill_and_check(path, delay * slower, codec, mode, kill)
    for kill in range(kills, kills + 20):
        if committed >= 5:
            break
        delay = float(rng.uniform(0.25, 1.0)) * slower
        committed = _kill_and_check(path, delay, codec, mode, kill)
    assert committed >= 5, "the recorder never got far enough for the test to mean much"
