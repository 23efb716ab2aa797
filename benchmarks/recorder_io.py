"""Recorder I/O: can robot_il record two VGA cameras and 500 Hz joint state without dropping?

Streams: joint state at 500 Hz (joint_pos, joint_vel, gripper, eef_pose) and two 480x640 RGB
cameras at 30 Hz, each sampled by the recorder's own threads, written to real zarr datasets on
disk (one per stream) with the dataset writer's crash-safe commit. Camera frames are synthetic
but image-like (a textured scene that moves, plus sensor noise) and are drawn in advance, so the
benchmark measures recording, not frame synthesis.

Baseline, in the same process: the same recorder, streams and episode length with writers that
throw frames away, i.e. the sampling loop without writing. Printed: per stream frames, late and
dropped counts; process CPU time / wall time (cores used) for both runs and their ratio; bytes
on disk against raw bytes. Goals (issue 3): 0 dropped frames, CPU share under one core.

The recording runs twice: dataset writers on threads of the recording process, and on
processes of their own (``writer_processes=True``); CPU time includes the writer processes.

    .venv/bin/python benchmarks/recorder_io.py [--seconds 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_il.dataset.store import bytes_on_disk
from robot_il.record import Recorder, StreamSpec

HEIGHT, WIDTH = 480, 640


class DiscardingWriter:
    """The baseline's writer: accepts frames and commits, keeps nothing."""

    class _Episode:
        def append(self, frame: dict[str, np.ndarray]) -> None:
            pass

        def commit(self, meta: dict[str, Any] | None = None) -> int:
            return 0

        def discard(self) -> None:
            pass

    def begin_episode(self) -> _Episode:
        return self._Episode()


def camera_frames(seed: int, count: int = 30) -> list[np.ndarray]:
    """``count`` frames of a textured scene drifting sideways, with per-frame sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0 : WIDTH * 2]
    scene = np.stack(
        [
            120 + 60 * np.sin(x / 37.0) * np.cos(y / 23.0),
            110 + 50 * np.sin((x + y) / 51.0),
            100 + 40 * np.cos(x / 13.0 + y / 71.0),
        ],
        axis=-1,
    )
    for _ in range(12):  # a few solid objects on the table
        cy, cx, r = rng.integers(40, HEIGHT - 40), rng.integers(40, 2 * WIDTH - 40), 30
        scene[cy - r : cy + r, cx - r : cx + r] = rng.integers(0, 255, 3)
    frames = []
    for i in range(count):
        view = scene[:, 8 * i : 8 * i + WIDTH]
        noisy = view + rng.normal(0.0, 2.0, view.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


class SyntheticRobot:
    """Sources for the three streams; reads return fresh arrays (the recorder keeps them)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._cameras = {"front": camera_frames(1), "wrist": camera_frames(2)}
        self._count = {"front": 0, "wrist": 0}

    def joint_state(self) -> dict[str, np.ndarray]:
        t = time.monotonic() - self._t0
        q = np.sin(t + np.arange(6)).astype(np.float32)
        return {
            "joint_pos": q,
            "joint_vel": np.cos(t + np.arange(6)).astype(np.float32),
            "gripper": np.array([0.5 + 0.5 * np.sin(t)], dtype=np.float32),
            "eef_pose": np.concatenate([q[:3] * 0.3, [1, 0, 0, 0]]).astype(np.float32),
        }

    def camera(self, name: str):
        frames = self._cameras[name]

        def read() -> dict[str, np.ndarray]:
            self._count[name] += 1
            return {f"rgb_{name}": frames[self._count[name] % len(frames)]}

        return read


def streams(robot: SyntheticRobot) -> list[StreamSpec]:
    return [
        StreamSpec("joint", 500.0, robot.joint_state),
        StreamSpec("cam_front", 30.0, robot.camera("front")),
        StreamSpec("cam_wrist", 30.0, robot.camera("wrist")),
    ]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (writer processes)."""
    total = time.process_time()
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    for child in multiprocessing.active_children():
        with open(f"/proc/{child.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks_per_s  # utime, stime
    return total


def run(recorder: Recorder, seconds: float) -> dict[str, Any]:
    """One episode of ``seconds``; CPU and wall time cover sampling, writing and the commit."""
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    recorder.start_episode()
    time.sleep(seconds)
    stop0 = time.perf_counter()
    report = recorder.stop_episode(commit=True)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return {"report": report, "wall": wall, "cpu": cpu, "commit_s": time.perf_counter() - stop0}


def print_run(label: str, result: dict[str, Any]) -> None:
    print(
        f"\n{label}: wall {result['wall']:.2f} s, process CPU {result['cpu']:.2f} s "
        f"-> CPU share {result['cpu'] / result['wall']:.3f} cores "
        f"(stop+commit took {result['commit_s']:.2f} s)"
    )
    for stats in result["report"].stats.values():
        print(f"  {stats.summary()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="episode length (s)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args()

    robot = SyntheticRobot()
    names = [spec.name for spec in streams(robot)]
    print(
        f"recorder I/O benchmark: 2 cameras {HEIGHT}x{WIDTH} RGB @ 30 Hz + joint state @ 500 Hz, "
        f"{args.seconds:g} s episodes; load average before: {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="recorder_io_") as tmp:
        out = args.out or Path(tmp)
        discarding = dict.fromkeys(names, DiscardingWriter())
        with Recorder(streams(robot), discarding) as baseline_recorder:
            baseline = run(baseline_recorder, args.seconds)
        print_run("baseline: sampling loop, frames discarded", baseline)
        results = {}
        for mode, in_processes in (("threads", False), ("processes", True)):
            with Recorder.to_directory(
                out / mode, streams(robot), robot="ur5e", writer_processes=in_processes
            ) as recorder:
                results[mode] = run(recorder, args.seconds)
            print_run(f"recording: zarr on disk, writers in {mode}, fsync at commit", results[mode])

        stats = results["processes"]["report"].stats
        raw = sum(
            stats[name].frames * HEIGHT * WIDTH * 3 for name in ("cam_front", "cam_wrist")
        ) + stats["joint"].frames * ((6 + 6 + 1 + 7) * 4 + 16)  # + timestamp, tick
        disk = sum(bytes_on_disk(out / "processes" / f"{name}.zarr") for name in names)
        base_share = baseline["cpu"] / baseline["wall"]
        print(f"\nsummary (load average after: {os.getloadavg()[0]:.2f})")
        print(f"  {'':28s} {'dropped':>8s} {'late':>6s} {'CPU cores':>10s} {'vs baseline':>12s}")
        print(
            f"  {'baseline (no writing)':28s} {baseline['report'].dropped:8d} "
            f"{baseline['report'].late:6d} {base_share:10.3f} {1.0:11.2f}x"
        )
        for mode, result in results.items():
            share = result["cpu"] / result["wall"]
            print(
                f"  {'recording, writer ' + mode:28s} {result['report'].dropped:8d} "
                f"{result['report'].late:6d} {share:10.3f} {share / base_share:11.2f}x"
            )
        print("  goals: 0 dropped frames, CPU under 1 core")
        print(
            f"  bytes on disk / raw bytes: {disk / raw:.3f} ({disk / 1e6:.1f} MB of "
            f"{raw / 1e6:.1f} MB)"
        )


if __name__ == "__main__":
    main()
