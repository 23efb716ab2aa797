"""``robot-il demo``: the main job, end to end on its embedded default.

It runs the same commands a user would type, in order, on a simulated UR5e with local zarr and
ROS 2 over loopback DDS (nothing leaves the machine), and leaves everything under ``--out``:

1. ``record``: scripted-expert demonstrations into a crash-safe zarr dataset;
2. ``sim rollout``: a video of the expert, to watch;
3. ``train bc``: a policy trained from the recorded demonstrations;
4. ``eval``: its success rate in simulation with a 95% interval, a plot and a video;
5. ``select sim`` with that one checkpoint: the policy deployed over ROS 2 on the simulated
   UR5e (``sim_robot`` + ``policy`` behind the safety layer, through the UR driver's topics),
   five episodes judged by a simulated person;
6. ``select sim``: four candidates of graded quality, one of them unsafe, chosen among by UCB
   from the simulated person's feedback; it prints which candidate won.

The demonstrations are end-effector deltas recorded past success (``--hold-after-success``):
BC then also learns to settle on the goal instead of stopping just short of it.

A failing step stops the demo with that step's exit code, so the demo doubles as a smoke test
of the whole pipeline. Run again into the same ``--out``, it replaces its results, as its
``record --force`` and ``select sim --fresh`` do: an earlier demo's BC run is removed before
BC trains (it would resume on the new recording, which ``train`` refuses after the old
recording is gone, or find itself finished and train nothing).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time
from pathlib import Path

from robot_il.errors import ConfigError

DEFAULT_OUT = Path("outputs/demo")
BC_RUN = "bc"
"""The demo's BC training run inside ``--out``."""


def configure(parser: argparse.ArgumentParser) -> None:
    # Numbers are checked here, not by the step that takes them minutes later.
    from robot_il.cli.flags import COUNT, integer
    from robot_il.select.candidates import DEFAULT_RECIPES

    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--task", default="reach", help="task to demonstrate and learn")
    parser.add_argument("--backend", default="mujoco", choices=("mujoco", "pybullet"))
    parser.add_argument("--episodes", type=COUNT, default=50, help="demonstrations to record")
    parser.add_argument("--train-steps", type=COUNT, default=1500, help="BC gradient steps")
    parser.add_argument("--eval-episodes", type=COUNT, default=20, help="evaluation rollouts")
    parser.add_argument(
        "--select-episodes",
        type=integer(len(DEFAULT_RECIPES)),
        default=20,
        help=f"rated episodes of the selection (at least one per candidate: "
        f"{len(DEFAULT_RECIPES)})",
    )
    parser.set_defaults(run=run)


def demo_steps(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The commands of the demo, named, as ``robot-il`` argument lists."""
    out: Path = args.out
    dataset = shlex.quote(str(out / f"{args.task}.zarr"))
    checkpoint = shlex.quote(str(out / BC_RUN))
    task = f"--task {shlex.quote(args.task)} --backend {args.backend}"
    commands = [
        (
            "record expert demonstrations",
            f"record {task} --expert --episodes {args.episodes} --out {dataset} "
            "--action-mode eef_delta --hold-after-success --max-steps 40 --force",
        ),
        (
            "film the expert",
            f"sim rollout {task} --expert --episodes 2 "
            f"--video {shlex.quote(str(out / 'expert.mp4'))}",
        ),
        (
            "train BC",
            f"train bc --dataset {dataset} --out {checkpoint} --steps {args.train_steps}",
        ),
        (
            "evaluate BC in simulation",
            f"eval --checkpoint {checkpoint} --episodes {args.eval_episodes} "
            f"--backend {args.backend} --video --out {shlex.quote(str(out / 'eval'))}",
        ),
        (
            "deploy BC over ROS 2 on the simulated UR5e",
            f"select sim --candidates {shlex.quote(str(out / BC_RUN / 'policy'))} "
            "--rule uniform --episodes 5 --fresh "
            f"--out {shlex.quote(str(out / 'deploy'))}",
        ),
        (
            "select among candidates from simulated human feedback",
            f"select sim --episodes {args.select_episodes} --fresh "
            f"--out {shlex.quote(str(out / 'select'))}",
        ),
    ]
    return [(title, shlex.split(command)) for title, command in commands]


def earlier_run(out: Path) -> Path | None:
    """The BC run an earlier demo left in ``out`` (None if none), which this demo replaces;
    ``ConfigError``, before anything is recorded, for a folder there that is no training run
    (the demo deletes only its own) or a training that runs there now."""
    from robot_il.train.trainer import CONFIG_YAML, running_training

    run = out / BC_RUN
    if not run.exists():
        return None
    if not (run / CONFIG_YAML).is_file():
        raise ConfigError(f"{run}: not a training run, where the demo trains BC; move it, or "
                          "pass another --out")  # fmt: skip
    if holder := running_training(run):
        raise ConfigError(f"{run}: a training runs there ({holder}); wait for it to end, or "
                          "pass another --out")  # fmt: skip
    return run


def run(args: argparse.Namespace) -> int:
    earlier = earlier_run(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    code = run_steps(demo_steps(args), earlier)
    if code == 0:
        print(f"\n[demo] all steps passed; results in {args.out}/")
    return code


def run_steps(steps: list[tuple[str, list[str]]], earlier: Path | None) -> int:
    """Run the demo's named ``robot-il`` commands in order, removing ``earlier``, an earlier
    demo's BC run, before BC trains; returns the first failing step's exit code, else 0."""
    from robot_il.cli import main

    for index, (title, argv) in enumerate(steps, start=1):
        if argv[0] == "train" and earlier is not None:  # the recording it ran on is replaced
            print(f"\n[demo] replacing the BC run of an earlier demo in {earlier}", flush=True)
            shutil.rmtree(earlier)
        print(f"\n[demo {index}/{len(steps)}] {title}: robot-il {' '.join(argv)}", flush=True)
        started = time.monotonic()
        code = main(argv)
        if code != 0:
            print(f"[demo] step '{title}' failed with exit code {code}")
            return code
        print(f"[demo] {title}: done in {time.monotonic() - started:.0f} s", flush=True)
    return 0
