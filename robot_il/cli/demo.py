"""``robot-il demo``: the main job, end to end on its embedded default.

It runs the same commands a user would type, in order, on a simulated UR5e with local zarr and
ROS 2 over loopback DDS (nothing leaves the machine), and leaves everything under ``--out``:

1. ``record``: scripted-expert demonstrations into a crash-safe zarr dataset;
2. ``sim rollout``: a video of the expert, to watch;
3. ``train bc``: a policy trained from the recorded demonstrations;
4. ``eval``: its success rate in simulation with a 95% interval, a plot and a video.

A failing step stops the demo with that step's exit code, so the demo doubles as a smoke test
of the whole pipeline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEFAULT_OUT = Path("outputs/demo")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--task", default="reach", help="task to demonstrate and learn")
    parser.add_argument("--backend", default="mujoco", choices=("mujoco", "pybullet"))
    parser.add_argument("--episodes", type=int, default=50, help="demonstrations to record")
    parser.add_argument("--train-steps", type=int, default=1500, help="BC gradient steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="evaluation rollouts")
    parser.set_defaults(run=run)


def demo_steps(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The commands of the demo, named, as ``robot-il`` argument lists."""
    out: Path = args.out
    dataset = str(out / f"{args.task}.zarr")
    checkpoint = str(out / "bc")
    task = ["--task", args.task, "--backend", args.backend]
    return [
        (
            "record expert demonstrations",
            ["record", *task, "--expert", "--episodes", str(args.episodes), "--out", dataset,
             "--action-mode", "eef_delta", "--hold-after-success", "--max-steps", "40",
             "--force"],
        ),
        (
            "film the expert",
            ["sim", "rollout", *task, "--expert", "--episodes", "2",
             "--video", str(out / "expert.mp4")],
        ),
        (
            "train BC",
            ["train", "bc", "--dataset", dataset, "--out", checkpoint,
             "--steps", str(args.train_steps)],
        ),
        (
            "evaluate BC in simulation",
            ["eval", "--checkpoint", checkpoint, "--episodes", str(args.eval_episodes),
             "--backend", args.backend, "--video", "--out", str(out / "eval")],
        ),
    ]


def run(args: argparse.Namespace) -> int:
    from robot_il.cli import main

    args.out.mkdir(parents=True, exist_ok=True)
    steps = demo_steps(args)
    for index, (title, argv) in enumerate(steps, start=1):
        print(f"\n[demo {index}/{len(steps)}] {title}: robot-il {' '.join(argv)}", flush=True)
        started = time.monotonic()
        code = main(argv)
        if code != 0:
            print(f"[demo] step '{title}' failed with exit code {code}")
            return code
        print(f"[demo] {title}: done in {time.monotonic() - started:.0f} s", flush=True)
    print(f"\n[demo] all steps passed; results in {args.out}/")
    return 0
