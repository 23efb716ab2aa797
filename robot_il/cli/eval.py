"""``robot-il eval``: roll a checkpoint out in simulation and report its success rate.

``robot-il eval --checkpoint runs/bc --episodes 50 [--backend pybullet] [--video]`` prints
each episode's outcome and the success rate with its 95% Wilson interval, and writes
``eval.json``, ``success.png`` and (with ``--video``) ``rollouts.mp4`` into ``--out``
(default: ``<checkpoint>/eval``). The env is checked against the checkpoint's spec before
the first rollout.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from robot_il.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint or training run dir")
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes")
    parser.add_argument("--seed", type=int, default=10_000, help="env seed of the first episode")
    parser.add_argument("--backend", default=None, help="mujoco or pybullet (default: data's)")
    parser.add_argument("--task", default=None, help="task (default: the checkpoint's)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode step limit")
    parser.add_argument("--out", default=None, help="directory for results")
    parser.add_argument("--video", action="store_true", help="write rollouts.mp4")
    parser.add_argument("--camera", default="front", help="camera to film")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
    os.environ.setdefault("MUJOCO_GL", "egl")
    from robot_il.policies import load_policy
    from robot_il.train.evaluate import evaluate, make_eval_env
    from robot_il.train.report import plot_success

    policy = load_policy(args.checkpoint, device=args.device)
    env = make_eval_env(
        policy.spec,
        task=args.task,
        backend=args.backend,
        max_episode_steps=args.max_steps,
        render=args.video,
        render_camera=args.camera,
    )
    out = Path(args.out) if args.out else Path(args.checkpoint) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    writer = None
    if args.video:
        import imageio.v2 as imageio

        fps = float(policy.spec["control_hz"])
        writer = imageio.get_writer(out / "rollouts.mp4", fps=fps, codec="libx264", quality=7)
    try:
        result = evaluate(
            policy,
            env,
            episodes=args.episodes,
            seed=args.seed,
            progress=True,
            on_frame=None if writer is None else writer.append_data,
        )
    finally:
        if writer is not None:
            writer.close()
        env.close()
    where = f"{env.unwrapped.spec_dict()['task']}/{env.unwrapped.backend_name}"
    for seed, success, steps in zip(result.seeds, result.successes, result.lengths, strict=True):
        print(f"seed {seed}: {'success' if success else 'FAILURE'} after {steps} steps")
    print(f"{policy.policy_type} on {where}: {result.line()}, mean return "
          f"{sum(result.returns) / len(result.returns):.1f}")  # fmt: skip
    low, high = result.interval
    summary = {
        "checkpoint": str(args.checkpoint),
        "policy_type": policy.policy_type,
        "env": where,
        "success_rate": result.success_rate,
        "interval95": [low, high],
        "seeds": result.seeds,
        "successes": result.successes,
        "lengths": result.lengths,
        "returns": result.returns,
    }
    (out / "eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_success(result, out / "success.png", f"{policy.policy_type} on {where}")
    print(f"results: {out}")
    return 0
