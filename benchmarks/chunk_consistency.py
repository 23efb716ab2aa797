"""Chunk-to-chunk consistency of a deployed chunked policy: the gap at chunk switches and the
success rate, with and without conditioning each chunk on the actions still executing.

    python benchmarks/chunk_consistency.py --checkpoint RUN [--latency 1 2]
        [--modes off replace guided] [--guidance 2] [--episodes 50] [--seed 10000]

The deploy node computes the next chunk while the current one runs, so two chunks plan the
periods of the inference latency; the old chunk's actions are executed meanwhile and the new
chunk takes over after it (``robot_il.deploy.timeline``). This reproduces that timing offline,
without ROS (:func:`robot_il.deploy.chunk_switch.rollout_with_latency`: the env steps once per
policy period, an inference takes ``--latency`` periods, the node's ``ChunkPlanner`` decides
when to observe), and measures at every switch the gap between the new chunk's action and the
old chunk's action for the same period: per joint (rad, the largest over the joints, both
actions converted to joint targets at the measured joints of the switch as the node converts
an eef_delta action) and per action value (an eef_delta action's translation in mm and rotation
in mrad). Modes: ``off`` (chunks sampled afresh, today's default), ``replace`` (RePaint
replacement of the committed actions, ``inpaint_guidance`` 0) and ``guided`` (with guidance
``--guidance``). Each (latency, mode) runs the same seeded episodes (``--seed`` on, torch
seeded per episode as ``robot-il eval``) and appends one JSON row to
``benchmarks/results/chunk_consistency.jsonl``: the checkpoint, setting, successes (95% Wilson
interval), switch-gap percentiles, the joint gaps over 0.5 rad (an IK branch change of one of
the two targets, not a policy's disagreement), wall time, code, UTC time and load average.

The checkpoint of the recorded rows: state Diffusion on MuJoCo push, the README's recipe
(`robot-il record --task push --backend mujoco --expert --episodes 200 --action-mode eef_delta
--hold-after-success --max-steps 70 --action-noise 0.005 --out push.zarr`, then `robot-il
train diffusion --dataset push.zarr --out RUN --steps 6000 --policy.n-action-steps 4
--threads 1`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from robot_il.policies import load_policy
from tqdm import tqdm

from robot_il.deploy.chunk_switch import rollout_with_latency
from robot_il.provenance import revision
from robot_il.train.evaluate import make_eval_env, torch_seeded
from robot_il.train.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "chunk_consistency.jsonl"
BRANCH_CHANGE = 0.5
"""rad: a joint gap beyond this is one target on another IK branch (a wrist near its limit)."""


def percentiles(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median, 95th percentile, mean and largest of ``values`` times ``scale``, rounded."""
    array = np.asarray(values, np.float64) * scale
    return {
        "p50": round(float(np.median(array)), 4),
        "p95": round(float(np.percentile(array, 95)), 4),
        "mean": round(float(array.mean()), 4),
        "max": round(float(array.max()), 4),
    }


def run(args: argparse.Namespace, policy, env, latency: int, mode: str) -> dict:
    """One (latency, mode) cell over the seeded episodes, as a result row."""
    policy.config.inpaint_guidance = args.guidance if mode == "guided" else 0.0
    load_before, started = os.getloadavg()[0], time.perf_counter()
    successes, joint, translation, rotation, starved = [], [], [], [], 0
    seeds = range(args.seed, args.seed + args.episodes)
    for seed in tqdm(seeds, desc=f"latency {latency} {mode}", unit="ep", leave=False):
        with torch_seeded(seed):
            episode = rollout_with_latency(policy, env, seed, latency, mode != "off")
        successes.append(episode.success)
        starved += episode.starved
        joint += episode.joint_gaps
        translation += [float(g[:3].max()) for g in episode.action_gaps]
        rotation += [float(g[3:6].max()) for g in episode.action_gaps]
    count = int(sum(successes))
    row = {
        "checkpoint": str(args.checkpoint), "task": policy.spec.get("task"),
        "action_mode": policy.spec.get("action_mode"), "latency_periods": latency,
        "mode": mode, "inpaint_guidance": policy.config.inpaint_guidance,
        "n_action_steps": policy.config.n_action_steps, "episodes": args.episodes,
        "eval_seeds": [args.seed, args.seed + args.episodes - 1],
        "successes": count, "success_rate": count / args.episodes,
        "interval95": [round(v, 3) for v in wilson_interval(count, args.episodes)],
        "switches": len(joint), "starved_switches": starved,
        "joint_gap_rad": percentiles(joint),
        f"joint_gaps_over_{BRANCH_CHANGE}_rad": int(np.sum(np.asarray(joint) > BRANCH_CHANGE)),
        "joint_gap_rad_below_branch_change": percentiles(
            [g for g in joint if g <= BRANCH_CHANGE]),
        "wall_s": round(time.perf_counter() - started, 1), "code": revision(),
        "utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip
    if policy.spec.get("action_mode") == "eef_delta":
        row["translation_gap_mm"] = percentiles(translation, 1000.0)
        row["rotation_gap_mrad"] = percentiles(rotation, 1000.0)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a Diffusion checkpoint (or a training run holding policy/)",
    )
    parser.add_argument(
        "--latency",
        type=int,
        nargs="+",
        default=[1, 2],
        help="inference latency, policy periods (>= 1)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=("off", "replace", "guided"),
        default=["off", "replace", "guided"],
    )
    parser.add_argument(
        "--guidance", type=float, default=2.0, help="inpaint_guidance of the guided mode"
    )
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help=f"JSON-lines file for the rows (default {RESULTS.name})",
    )
    args = parser.parse_args()  # fmt: skip
    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(1)
    policy = load_policy(args.checkpoint)
    if not policy.inpaints_committed:
        parser.error(f"{args.checkpoint}: a {policy.policy_type} policy does not inpaint")
    env = make_eval_env(policy.spec)
    print(f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    try:
        for latency in args.latency:
            for mode in args.modes:
                row = run(args, policy, env, latency, mode)
                args.results.parent.mkdir(parents=True, exist_ok=True)
                with args.results.open("a") as file:
                    file.write(json.dumps(row) + "\n")
                gap = row["joint_gap_rad"]
                print(f"latency {latency} {mode:8s}: {row['successes']}/{args.episodes}, "
                      f"{row['switches']} switches, joint gap p50 {gap['p50']:.4f} p95 "
                      f"{gap['p95']:.4f} rad, load {row['load_avg']}", flush=True)  # fmt: skip
    finally:
        env.close()


if __name__ == "__main__":
    main()
