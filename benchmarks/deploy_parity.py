"""Deploy/eval parity: the same checkpoint on the same seeds in ``robot-il eval`` and over ROS 2.

For each checkpoint, episodes on seeds ``--seed ..`` in the env (``robot-il eval``'s loop) and
then over ROS 2 (``sim_robot`` in lock-step, the policy node and its safety layer, separate
processes on loopback DDS; :func:`robot_il.ros.ros_eval.evaluate_over_ros`). Prints both
success rates, the difference in points (goal: within 5) and the seeds where they disagree;
appends one JSON row per checkpoint and setting, with the load average, the code (commit)
and the UTC time, to ``--results`` (default ``benchmarks/results/deploy_parity.jsonl``, the
committed rows: give a scratch file to check a checkout).
``--interpolate`` and ``--control-rate`` reproduce the settings that used to differ (the
selection demo: 50 Hz commands with interpolation).

    .venv/bin/python benchmarks/deploy_parity.py CHECKPOINT [CHECKPOINT ...] [--episodes 50]

The two-arm handover cell in the dual-arm tutorial's layout (``--policy-param`` and
``--sim-param`` as in ``robot-il eval --ros``)::

    .venv/bin/python benchmarks/deploy_parity.py HANDOVER_CKPT --episodes 20 \
        --sim-param "tf_prefixes:=['alice_','bob_']" --sim-param controller_layout:=per_arm \
        --policy-param "tf_prefixes:=['alice_','bob_']" --policy-param controller_layout:=per_arm \
        --policy-param gripper_clearance:=-0.05 --policy-param acceleration_limit:=30.0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from json_lines import append_json_line

os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).parent / "results" / "deploy_parity.jsonl"


def main() -> int:
    from robot_il.cli.flags import DOMAIN_ID

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint directories")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=10_000, help="first seed (eval's default)")
    parser.add_argument("--control-rate", type=float, default=None, help="Hz (default: policy's)")
    parser.add_argument("--interpolate", action="store_true", help="blend targets per period")
    parser.add_argument(
        "--domain", type=DOMAIN_ID, default=None, help="ROS domain (default: a free one)"
    )
    for flag in ("--policy-param", "--sim-param"):
        parser.add_argument(flag, action="append", default=[], metavar="NAME:=VALUE")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    from robot_il.cli.eval import _node_params

    policy_params = _node_params(args.policy_param, "--policy-param")
    sim_params = _node_params(args.sim_param, "--sim-param")

    from robot_il.policies import load_policy

    from robot_il.provenance import code_provenance, revision

    code_provenance()  # the code this process loaded, for its rows

    from robot_il.ros.dds import apply_loopback_env, hold_domain, loopback_env
    from robot_il.ros.ros_eval import evaluate_over_ros
    from robot_il.train.evaluate import evaluate, make_eval_env

    # the lock, held while the run lasts, keeps other robot_il processes off its domain
    args.domain, args.domain_lock = hold_domain(args.domain, "benchmarks/deploy_parity.py")
    apply_loopback_env(args.domain)
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=args.domain)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    try:
        for checkpoint in args.checkpoints:
            policy = load_policy(checkpoint)
            env = make_eval_env(policy.spec)
            try:
                in_env = evaluate(
                    policy, env, episodes=args.episodes, seed=args.seed, progress=True
                )
            finally:
                env.close()
            start = time.monotonic()
            with tempfile.TemporaryDirectory() as logs:
                over_ros = evaluate_over_ros(
                    checkpoint,
                    episodes=args.episodes,
                    seed=args.seed,
                    context=context,
                    env={**os.environ, **loopback_env(args.domain)},
                    log_dir=Path(logs),
                    control_rate=args.control_rate,
                    interpolate=args.interpolate,
                    policy_params=policy_params,
                    sim_params=sim_params,
                    progress=True,
                )
            wall = time.monotonic() - start
            differ = [
                seed
                for seed, a, b in zip(
                    in_env.seeds, in_env.successes, over_ros.successes, strict=True
                )
                if a != b
            ]
            points = 100 * (over_ros.success_rate - in_env.success_rate)
            row = {
                "checkpoint": str(checkpoint),
                "action_mode": policy.spec.get("action_mode", "joint"),
                "episodes": args.episodes,
                "seed": args.seed,
                "control_rate": args.control_rate or float(policy.spec["control_hz"]),
                "interpolate": args.interpolate,
                "policy_params": policy_params,
                "sim_params": sim_params,
                "eval_success": in_env.success_rate,
                "ros_success": over_ros.success_rate,
                "points": points,
                "seeds_differ": differ,
                "ros_wall_s": wall,
                "load_avg": os.getloadavg()[0],
                "code": revision(),
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            append_json_line(args.results, row)
            print(
                f"{Path(checkpoint).name} ({row['action_mode']}, {row['control_rate']:g} Hz, "
                f"interpolate {args.interpolate}): eval {in_env.line()} | over ROS "
                f"{over_ros.line()} | {points:+.0f} points [goal within 5] | differ on "
                f"{differ} | load {row['load_avg']:.1f}",
                flush=True,
            )
    finally:
        rclpy.shutdown(context=context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
