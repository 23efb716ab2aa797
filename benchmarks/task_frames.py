"""Tuned BC (or state Diffusion) in a task frame and in the world, evaluated in the env and over
ROS 2, one row each.

    python benchmarks/task_frames.py --task push --frame push --seed 0 --where env ros
    python benchmarks/task_frames.py --task pick_place --frame world --seed 0 --where env
    python benchmarks/task_frames.py --policy diffusion --task push --frame push --seed 0

Trains BC as ``benchmarks/opt_ail.py bc`` does (Gaussian head and normalization, AdamW, one
torch thread, ``--max-episodes`` = demos, no in-training evaluation), or, with ``--policy
diffusion``, state Diffusion with the 200-demonstration recipe of ``benchmarks/vision.py``
(defaults, 4 executed actions per chunk, 6,000 steps: 45/50 on push from 200; ``--lr`` and
``--weight-decay`` are BC's), on the demonstrations
``benchmarks/policies.py demos`` records under ``outputs/opt_ail/demos/`` (converted with
``robot_il.envs.task_frame.frame_dataset`` beside them for a frame), into
``outputs/task_frames/<task>_<frame>_s<seed>_...`` (reused when that run finished, resumed
when it was killed), then runs ``robot-il eval --checkpoint CKPT --episodes N --seed S
[--ros]`` and appends one JSON line per evaluation to ``benchmarks/results/task_frames.jsonl``:
task, frame, seed, setting, episodes, successes, success_rate, where (env or ros), the eval
command, code (commit, +changes when the tree differed from it, as the evaluation started), UTC
time, load average and the training's wall time.
``opt_ail.py bc`` covers push only and skips a setting whose row exists; this keeps the
checkpoint and adds the ROS 2 evaluation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "task_frames.jsonl"
RUNS = ROOT / "outputs" / "task_frames"
DEMO_RUNS = ROOT / "outputs" / "opt_ail"  # opt_ail.py's RUNS: its demos/ recordings are shared
DIFFUSION_STEPS = 6_000
"""Gradient steps of state Diffusion (the 200-demonstration recipe's) unless ``--steps``."""


def dataset(task: str, frame: str, demos: int) -> Path:
    from policies import demos as recorded_demos  # benchmarks/policies.py

    world = recorded_demos(DEMO_RUNS, task, "mujoco", demos)
    if frame == "world":
        return world
    from robot_il.envs.task_frame import frame_dataset

    converted = world.parent.with_name(f"{world.parent.name}_frame_{frame}") / "env.zarr"
    return converted if converted.is_dir() else frame_dataset(world, converted, frame)


def setting(args: argparse.Namespace) -> dict[str, object]:
    """What was trained, as the row records it."""
    if args.policy == "diffusion":
        return {"method": "diffusion", "n_action_steps": 4, "steps": args.steps}
    return {"method": "bc", "head": "gaussian", "normalization": "gaussian",
            "weight_decay": args.weight_decay, "lr": args.lr, "steps": args.steps}  # fmt: skip


def train_policy(args: argparse.Namespace, out: Path) -> tuple[Path, float | None]:
    checkpoint = out / "policy"  # the deployable checkpoint the trainer refreshes
    if (out / "summary.json").exists():  # written last: a killed run is resumed below
        return checkpoint, None
    import torch

    from robot_il.train.config import BCTrainConfig, DiffusionTrainConfig, EvalConfig
    from robot_il.train.trainer import train

    torch.set_num_threads(1)
    common = dict(
        dataset=str(dataset(args.task, args.frame, args.demos)), out=str(out), steps=args.steps,
        seed=args.seed, max_episodes=args.demos, progress=False, eval=EvalConfig(episodes=0),
    )  # fmt: skip
    if args.policy == "diffusion":
        config = DiffusionTrainConfig(**common)
        config.policy.n_action_steps = 4
    else:
        config = BCTrainConfig(**common, lr=args.lr, weight_decay=args.weight_decay)
        config.policy.head = "gaussian"
        config.policy.normalization = "gaussian"
    started = time.perf_counter()
    path = train(config).checkpoint
    return Path(path), round(time.perf_counter() - started, 1)


def code() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           text=True, capture_output=True, check=True).stdout.strip()  # fmt: skip
    return head + ("+changes" if dirty else "")


def main() -> None:
    from robot_il.envs.task_frame import TASK_FRAMES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", choices=("bc", "diffusion"), default="bc")
    parser.add_argument("--task", choices=("push", "pick_place"), default="push")
    parser.add_argument("--frame", choices=(*TASK_FRAMES, "world"), default="push")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--steps", type=int, help=f"default 4000 (BC), {DIFFUSION_STEPS} (Diffusion)"
    )
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--eval-seed", type=int, default=10_000)
    parser.add_argument("--where", nargs="+", choices=("env", "ros"), default=["env"])
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help=f"JSON-lines file for the rows (default {RESULTS.name})")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.steps is None:
        args.steps = DIFFUSION_STEPS if args.policy == "diffusion" else 4000
    name = f"{args.task}_{args.frame}_s{args.seed}_d{args.demos}"
    if args.policy == "diffusion":
        name += f"_diffusion_steps{args.steps}"
    else:
        name += f"_wd{args.weight_decay:g}_lr{args.lr:g}_steps{args.steps}"
    checkpoint, train_s = train_policy(args, RUNS / name)
    print(f"checkpoint {checkpoint} (trained in {train_s} s)" if train_s else
          f"checkpoint {checkpoint} (reused)", flush=True)  # fmt: skip
    for where in args.where:
        out = RUNS / name / f"eval_{where}_{args.eval_seed}_{args.episodes}"
        command = [str(ROOT / ".venv" / "bin" / "robot-il"), "eval", "--checkpoint",
                   str(checkpoint), "--episodes", str(args.episodes), "--seed",
                   str(args.eval_seed), "--out", str(out)]  # fmt: skip
        command += ["--ros"] if where == "ros" else []
        revision, started = code(), time.perf_counter()  # the code the evaluation runs
        subprocess.run(command, cwd=ROOT, check=True)
        summary = json.loads((out / "eval.json").read_text())
        row = {
            "task": args.task, "frame": args.frame, "seed": args.seed, "demos": args.demos,
            "setting": setting(args),
            "episodes": args.episodes,
            "eval_seeds": [args.eval_seed, args.eval_seed + args.episodes - 1],
            "successes": int(sum(summary["successes"])), "success_rate": summary["success_rate"],
            "interval95": [round(v, 3) for v in summary["interval95"]], "where": where,
            "env": summary["env"],
            "command": shlex.join(["robot-il", *command[1:]]), "code": revision,
            "utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "loadavg": [round(v, 2) for v in os.getloadavg()],
            "train_wall_s": train_s, "eval_wall_s": round(time.perf_counter() - started, 1),
        }  # fmt: skip
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{args.task} {args.frame} seed {args.seed} {where}: {row['successes']}/"
              f"{args.episodes}, load {row['loadavg']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
