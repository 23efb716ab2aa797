"""Our DMP beside ``movement_primitives``' ``DMP`` (0.9.1, Cython step as installed).

The same demonstration (a curved 3-D tool path over 2 s, 100 Hz samples) is learnt by both
with 50 weights per dimension; both roll it out at 100 Hz, and the largest distance between
the two rollouts and to the demonstration is printed (goal: within 5 mm of each other). Then
one step at 500 Hz (dt = 2 ms) is timed for each, interleaved in the same process: median and
p99 microseconds (goal: ours costs no more than theirs). Writes the result, with the load
average, the code (commit) and the CPU, to ``--out`` (default
``benchmarks/results/dmp_vs_movement_primitives.json``, the committed figures: give a scratch
path to check a checkout without changing them).

    .venv/bin/python benchmarks/dmp_vs_movement_primitives.py [--steps 5000] [--out PATH]
    (needs the ``compare`` extra)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from robot_il.policies.dmp import DMP

from robot_il.provenance import code_provenance, revision

OUT = Path(__file__).parent / "results" / "dmp_vs_movement_primitives.json"
DT = 0.01
STEP_DT = 0.002


def demonstration() -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(0.0, 2.0 + DT / 2, DT)
    s = times / times[-1]
    m = s**3 * (10 - 15 * s + 6 * s**2)
    return times, np.stack([0.3 + 0.3 * m, 0.2 * np.sin(np.pi * m), 0.1 + 0.05 * m], axis=1)


def theirs(times: np.ndarray, path: np.ndarray, dt: float):
    from movement_primitives.dmp import DMP as TheirDMP

    dmp = TheirDMP(n_dims=3, execution_time=float(times[-1]), dt=dt, n_weights_per_dim=50)
    dmp.imitate(times, path)
    dmp.configure(start_y=path[0], goal_y=path[-1])
    return dmp


def reproduction() -> dict[str, float]:
    times, path = demonstration()
    ours = DMP.fit(path, times).rollout(DT, steps=len(times) - 1)
    _, their_path = theirs(times, path, DT).open_loop()
    n = min(len(ours), len(their_path))
    return {
        "ours_vs_theirs_max_m": float(np.linalg.norm(ours[:n] - their_path[:n], axis=1).max()),
        "ours_vs_demo_max_m": float(np.linalg.norm(ours - path, axis=1).max()),
        "theirs_vs_demo_max_m": float(np.linalg.norm(their_path[:n] - path[:n], axis=1).max()),
    }


def step_timing(steps: int = 5000) -> dict[str, dict[str, float]]:
    times, path = demonstration()
    ours = DMP.fit(path, times)
    state = ours.begin()
    their = theirs(times, path, STEP_DT)
    y, yd = path[0].copy(), np.zeros(3)
    spent: dict[str, list[float]] = {"ours": [], "theirs_rk4_cython": [], "theirs_euler_cython": []}
    for i in range(steps):
        if i % 900 == 0:  # restart both before the phase runs out
            state = ours.begin()
            their.reset()
            y, yd = path[0].copy(), np.zeros(3)
        begin = time.perf_counter_ns()
        ours.step(state, STEP_DT)
        spent["ours"].append(time.perf_counter_ns() - begin)
        begin = time.perf_counter_ns()
        y, yd = their.step(y, yd)
        spent["theirs_rk4_cython"].append(time.perf_counter_ns() - begin)
        begin = time.perf_counter_ns()
        their.step(y, yd, step_function="euler-cython")
        their.t -= their.dt_  # the Euler step is timed only; keep the rk4 run's clock
        spent["theirs_euler_cython"].append(time.perf_counter_ns() - begin)
    return {
        name: {
            "median_us": float(np.median(ns) / 1e3),
            "p99_us": float(np.percentile(ns, 99) / 1e3),
        }
        for name, ns in spent.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="timed 500 Hz steps of each")
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON to write")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: time at least one step")
    import movement_primitives.dmp._dmp as their_module

    code_provenance()  # the code this process loaded, read before the timing
    load_before = os.getloadavg()
    result = {
        "reproduction": reproduction(),
        "step_500hz": step_timing(args.steps),
        "steps": args.steps,
        "their_step_functions": sorted(their_module.DMP_STEP_FUNCTIONS),
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg": [round(v, 2) for v in os.getloadavg()],
        "code": revision(),
        "cpu": code_provenance()["cpu"],
        "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
