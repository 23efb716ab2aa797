"""What the deploy node's safety layer costs a policy, without ROS: a checkpoint steps the env
(joint mode) through the node's own pieces, the end-effector-delta converter
(:class:`robot_il.deploy.eef_delta.TcpDeltaConverter`), one
:class:`robot_il.safety.SafetyFilter` per arm and the two-arm
:class:`robot_il.safety.ClearanceGuard`, at the policy's rate, as the policy node does in
lock-step (``robot-il eval --ros``). Episode lengths match the ROS 2 runs seed for seed
(``benchmarks/results/handover_ros.jsonl``), so a cell's limits can be compared in minutes.

Why it matters for ``bimanual_handover``: the filter models a command stream as a constant
speed per control period and brakes so that it could stop *on* each target within its
acceleration limit ``a``. An end-effector-delta policy sets each target one step ahead of the
measured arm, so at a 20 Hz command period (lock-step) the filter lets no joint cruise faster
than ``a * dt`` (0.75 rad/s at 15 rad/s^2), while the arm the policy was trained on (the env's
servo, ``robot_il.envs.backends.common``: braking ``sqrt(2 a d)``) cruises up to ``2 a dt``
(1.5 rad/s). ``--accelerations 15 30`` compares the two; ``--ramps`` the safe start.

    .venv/bin/python benchmarks/handover_cell_limits.py CHECKPOINT --accelerations 15 30 \\
        --ramps 1.0 [--seeds 10000 10019]

Each (acceleration, ramp) run appends a row to ``--results`` (default
``benchmarks/results/handover_cell_limits.jsonl``, the committed rows: give a scratch file to
check a checkout) with its seeds, successes, lengths, the filter's intervention counts, per
seed the arm-steps whose TCP target the converter put on the workspace box
(``workspace_clamp_steps``: the policy node's ``workspace_clamp`` events, counted every step
rather than once per run of them), the load average, the code (commit) and the UTC time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
from json_lines import append_json_line

os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).parent / "results" / "handover_cell_limits.jsonl"
CLEARANCE = 0.05
GRIPPER_CLEARANCE = -0.05
"""The handover cell's clearances (m), as ``launch/deploy_two_arm_sim.launch.yaml`` sets them."""


def run(checkpoint: str, acceleration: float, ramp: float, seeds: range) -> dict:
    """Success per seed of ``checkpoint`` with the node's safety layer at these limits."""
    from robot_il.envs import make_env
    from robot_il.envs.arm import Arm
    from robot_il.envs.tasks import TASKS
    from robot_il.envs.ur5e.description import JOINT_VEL_LIMITS
    from robot_il.envs.ur5e.kinematics import forward_kinematics
    from robot_il.policies import load_policy
    from tqdm import tqdm

    from robot_il.deploy.eef_delta import TcpDeltaConverter
    from robot_il.safety import ClearanceGuard, SafetyFilter, SafetyLimits

    policy = load_policy(checkpoint)
    spec = policy.spec
    task = TASKS[spec["task"]]
    env = make_env(spec["task"], "mujoco", control_hz=spec["control_hz"], action_mode="joint")
    kinematics = [Arm(mount) for mount in task().mounts()]
    prefixes = [f"{arm.name}_" if arm.name else "" for arm in env.unwrapped.arms]
    period = 1.0 / spec["control_hz"]
    limits = SafetyLimits.ur5e(  # the policy node's limits (robot_il.ros.policy_node)
        acceleration=np.full(6, acceleration),
        max_step=max(0.05, float(np.max(JOINT_VEL_LIMITS)) * period),
        workspace_lower=[-0.9, -0.9, 0.0],
        workspace_upper=[0.9, 0.9, 1.1],
        ramp_duration=ramp,
    )
    converter = TcpDeltaConverter(kinematics, (limits.workspace_lower, limits.workspace_upper))
    steps = round(task.episode_seconds * spec["control_hz"])
    successes, lengths, clamped_steps, counts = [], [], [], Counter()
    for seed in tqdm(seeds, desc=f"a {acceleration:g}, ramp {ramp:g}", unit="ep"):
        obs, _ = env.reset(seed=seed)
        policy.reset()
        filters = [
            SafetyFilter(limits, forward_kinematics, period=period, log_events=False)
            for _ in prefixes
        ]
        guard = None
        if len(prefixes) == 2:
            bases = [arm.world_from_base for arm in kinematics]
            guard = ClearanceGuard(
                bases, CLEARANCE, lambda event: None, gripper_clearance=GRIPPER_CLEARANCE
            )
        joint_action, solved, clamped = None, False, 0
        for step in range(steps):
            t = step * period
            q = np.concatenate([obs[p + "joint_pos"] for p in prefixes]).astype(np.float64)
            action = policy.act(obs)
            if spec.get("action_mode") == "eef_delta":
                joint_action, _ = converter.to_joint_action(action, q, joint_action)
                clamped += len(converter.clamped)
            else:
                joint_action = np.asarray(action, np.float64)
            commands = []
            for a, safety in enumerate(filters):
                safety.watchdog(t, t)
                safe = safety.filter(
                    joint_action[7 * a : 7 * a + 6], q[6 * a : 6 * a + 6], t, command_stamp=t
                )
                counts.update(event.kind.value for event in safe.events)
                commands.append(safe.command)
            if guard is not None:
                commands = guard.check(commands, filters, t, [q[:6], q[6:12]])
            command = joint_action.copy()
            for a, joints in enumerate(commands):
                command[7 * a : 7 * a + 6] = joints
            obs, _, _, _, info = env.step(command.astype(np.float32))
            if info.get("is_success"):
                solved = True
                break
        successes.append(solved)
        lengths.append(step + 1)
        clamped_steps.append(clamped)
    env.close()
    return {
        "successes": successes,
        "lengths": lengths,
        "workspace_clamp_steps": clamped_steps,
        "interventions": dict(counts),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--accelerations", type=float, nargs="+", default=[15.0, 30.0])
    parser.add_argument("--ramps", type=float, nargs="+", default=[1.0], help="safe start, s")
    parser.add_argument(
        "--seeds", type=int, nargs=2, default=[10000, 10019], metavar=("FIRST", "LAST")
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()
    from robot_il.provenance import code_provenance, revision

    code_provenance()  # the code this process loaded, for its rows
    seeds = range(args.seeds[0], args.seeds[1] + 1)
    for acceleration in args.accelerations:
        for ramp in args.ramps:
            start, load = time.time(), os.getloadavg()[0]
            result = run(args.checkpoint, acceleration, ramp, seeds)
            row = {
                "checkpoint": str(Path(args.checkpoint).resolve()),
                "acceleration_limit": acceleration,
                "ramp_duration": ramp,
                "seeds": [seeds[0], seeds[-1]],
                **result,
                "success_count": sum(result["successes"]),
                "wall_s": round(time.time() - start),
                "load_avg": [round(load, 1), round(os.getloadavg()[0], 1)],
                "code": revision(),
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            print(
                f"acceleration {acceleration:g} rad/s^2, ramp {ramp:g} s: "
                f"{row['success_count']}/{len(seeds)} (load {row['load_avg']})",
                flush=True,
            )
            append_json_line(args.results, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
