"""Scripted expert success per task and backend, with 95% Wilson intervals.

The goal of issue 2 is at least 95% success on 100 seeds per task per backend; the tests run a
10-seed version. Seeds are 0 .. episodes-1, the same on both backends.

    python benchmarks/expert_success.py --episodes 100
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_il.envs import TASKS, make_env, make_expert  # noqa: E402
from robot_il.envs.backends import BACKENDS  # noqa: E402
from tqdm import tqdm  # noqa: E402

from robot_il.train.stats import wilson_interval  # noqa: E402


def run(task: str, backend: str, episodes: int) -> tuple[int, list[int], float]:
    """Successes, the failed seeds and the mean episode length (s, simulated)."""
    env = make_env(task, backend)
    expert = make_expert(env)
    successes, failed, seconds = 0, [], 0.0
    for seed in tqdm(range(episodes), desc=f"{task}/{backend}", leave=False):
        obs, info = env.reset(seed=seed)
        expert.reset(obs)
        steps, done = 0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            steps += 1
            done = terminated or truncated
        if info["is_success"]:
            successes += 1
        else:
            failed.append(seed)
        seconds += steps / env.unwrapped.control_hz
    env.close()
    return successes, failed, seconds / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = parser.parse_args()
    print(
        f"{'task':<18} {'backend':<9} {'success':>9} {'rate':>6} {'95% Wilson':>15}"
        f" {'ep. s':>6} {'wall s':>7}  failed seeds"
    )
    for task in args.tasks:
        for backend in args.backends:
            start = time.perf_counter()
            successes, failed, seconds = run(task, backend, args.episodes)
            low, high = wilson_interval(successes, args.episodes)
            wall = time.perf_counter() - start
            print(
                f"{task:<18} {backend:<9} {successes:>4}/{args.episodes:<4} "
                f"{successes / args.episodes:>6.0%} [{low:>5.1%}, {high:>6.1%}] {seconds:>6.2f}"
                f" {wall:>7.1f}  {failed[:10]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
