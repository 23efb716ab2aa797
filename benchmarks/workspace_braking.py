"""How the safety filter stops the UR5e at the workspace box's wall, against a baseline revision.

A policy that drives the tool out of the box should find the arm braking at the acceleration
limit and coming to rest at the wall, not running into it and being stopped there in one
control period (a step change of velocity the servo cannot follow). Each trial starts the
filter at a pose near the UR5e's home with the tool inside the box and commands a far joint
target (home plus up to 2.5 rad per joint, within the joint limits) for 3 s at 500 Hz; the
arm follows its commands exactly. Both the policy node's limits (its default box) and a tight
box that most trials leave are run, the same trials for the baseline (default 6875a9a: the
braking reckoned from the straight line through the next step, with the quadratic stopping
speed) and today's filter (the crossing found along the tool point's path, the exact
discrete stopping speed). Printed per box and filter: trials, how many asked for more than
the acceleration limit at any tick (a one-period stop: more than 1.01 a), the worst such ask
(in units of a), how far the tool point ever got out of the box, and tool points computed per
tick (the cost of the search). Deterministic: no timing, so it may run beside other work.

    .venv/bin/python benchmarks/workspace_braking.py [--trials 400] [--seed 11]

Each run appends a row to ``--results`` (default
``benchmarks/results/workspace_braking.jsonl``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from control_tick_cost import HOME, PERIOD, node_limits
from git_revision import module_at
from json_lines import append_row_with_load

RESULTS = Path(__file__).parent / "results" / "workspace_braking.jsonl"
TICKS = 1500
"""3 s at 500 Hz: long enough to reach the wall and rest there."""


def box_limits():
    """The policy node's limits (the UR5e's default box) and a tight box."""
    from robot_il.safety import SafetyLimits

    tight = SafetyLimits.ur5e(
        acceleration=np.full(6, 10.0),
        max_step=0.05,
        workspace_lower=[-0.5, -0.6, 0.15],
        workspace_upper=[0.6, 0.5, 0.7],
        ramp_duration=0.2,
    )
    return {"node": node_limits(), "tight": tight}


def trials(limits, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, far target) pairs (rad) whose start puts the tool point inside the box."""
    from robot_il.envs.ur5e.kinematics import tcp_point

    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < count:
        start = HOME + rng.uniform(-0.8, 0.8, 6)
        far = np.clip(
            HOME + rng.uniform(-2.5, 2.5, 6), limits.position_lower, limits.position_upper
        )
        point = np.asarray(tcp_point(start))
        if np.all((point >= limits.workspace_lower) & (point <= limits.workspace_upper)):
            pairs.append((start, far))
    return pairs


def run_trial(module, limits, start: np.ndarray, far: np.ndarray) -> dict[str, float]:
    """One trial's worst acceleration asked (in units of the limit), the tool point's furthest
    distance out of the box (m) and tool points computed per tick."""
    from robot_il.envs.ur5e.kinematics import tcp_point

    computed = 0

    def counted_tool_point(q):
        nonlocal computed
        computed += 1
        return tcp_point(q)

    safety = module.SafetyFilter(
        limits, tool_point=counted_tool_point, period=PERIOD, log_events=False
    )
    t, measured, commands = 5.0, start, []
    for _ in range(TICKS):
        t += PERIOD
        safety.watchdog(t, t)
        measured = safety.filter(far, measured, t, command_stamp=t).command
        commands.append(measured)
    velocity = np.diff(np.vstack([start, *commands]), axis=0) / PERIOD
    asked = np.abs(np.diff(velocity, axis=0)) / PERIOD / limits.acceleration
    points = np.array([tcp_point(q) for q in commands])
    out = np.maximum(limits.workspace_lower - points, points - limits.workspace_upper)
    return {
        "worst_ask": float(asked.max()),
        "outside_m": float(out.clip(min=0.0).max()),
        "tool_points_per_tick": computed / TICKS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400, help="trials per box")
    parser.add_argument("--seed", type=int, default=11, help="seed of the trials")
    parser.add_argument("--baseline", default="6875a9a", help="git revision to compare with")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    from tqdm import tqdm

    import robot_il.safety.filter as current
    from robot_il.provenance import code_provenance, revision

    code_provenance()
    filters = {
        "baseline": module_at(args.baseline, "robot_il/safety/filter.py", "baseline_filter"),
        "current": current,
    }
    row = {"baseline": args.baseline, "code": revision(), "trials": args.trials,
           "seed": args.seed, "load_before": os.getloadavg()}  # fmt: skip
    for box, limits in box_limits().items():
        pairs = trials(limits, args.trials, args.seed)
        for name, module in filters.items():
            results = [
                run_trial(module, limits, *pair) for pair in tqdm(pairs, desc=f"{box} {name}")
            ]
            asks = np.array([r["worst_ask"] for r in results])
            row[f"{box}_{name}"] = {
                "one_period_stops": int((asks > 1.01).sum()),
                "worst_ask_in_a": round(float(asks.max()), 2),
                "outside_m": max(r["outside_m"] for r in results),
                "tool_points_per_tick": round(
                    float(np.mean([r["tool_points_per_tick"] for r in results])), 2
                ),
            }
            print(f"{box:5s} {name:8s} {row[f'{box}_{name}']}")
    append_row_with_load(args.results, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
