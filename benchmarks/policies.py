"""Benchmarks of the BC and Diffusion policies (not run in CI).

Parts, each behind a flag (``--all`` runs every part; ``--quick`` shrinks every budget so a
part finishes in minutes on a laptop CPU):

- ``--latency``: inference latency p50/p99 on this CPU, one observation in, one action chunk
  out: BC, and Diffusion with 10 and 16 DDIM steps (goal: Diffusion state-based p50 < 15 ms),
  as ratios to BC measured in the same process; plus the per-step cost of ``act`` with the
  action queue.
- ``--train-speed``: training steps per second of BC and Diffusion (default configs), the
  ratio Diffusion/BC; then the fused AdamW every trainer builds (``robot_il.policies.optimizers``)
  against PyTorch's default one (a Python loop over the tensors) in the same process, rounds
  alternated, for BC, Diffusion and the learning tests' small Diffusion (a row each in
  ``benchmarks/results/train_speed.jsonl``).
- ``--success``: success of BC and Diffusion on ``push`` and ``pick_place`` from 50, 100 and 200
  scripted demonstrations, in MuJoCo and PyBullet (goal: >= 90% with 200 demonstrations);
  every run is also evaluated in the other simulator (sim-to-sim transfer); a plot.
- ``--multimodal``: a 2-D point must pass an obstacle; demonstrations go round it above or
  below with equal probability. Averaging the two (MSE BC) drives into the obstacle; Diffusion
  commits to one route.

Datasets and runs are kept under ``--work`` (default ``/tmp/robot_il_bench``) and reused; each
success cell's row (``runs/<cell>/result.json``, nothing in ``benchmarks/results/``) names its
budget, evaluation seeds, the load average, the code (commit) and the UTC time.
Run: ``.venv/bin/python benchmarks/policies.py --latency --success --quick``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch
from json_lines import append_row_with_load
from robot_il.envs.ur5e.scene_geometry import MARKER_RADIUS
from robot_il.policies import load_policy

from robot_il.dataset import DatasetWriter
from robot_il.provenance import code_provenance, revision
from robot_il.train.config import load_config
from robot_il.train.demos import committed_recording, record_expert_demos
from robot_il.train.evaluate import EvalResult, evaluate, make_eval_env
from robot_il.train.trainer import train

RESULTS = Path(__file__).parent / "results"


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1000)


# ------------------------------------------------------------------------------ helpers
HOLD_STEPS = {"reach": 40, "push": 70, "pick_place": 120}
"""Episode length (control steps at 20 Hz) of the end-effector-delta demonstrations: long
enough for the expert to finish and then hold the goal, so BC learns to settle on it (reach:
20-50% success without holding, 90-100% with)."""

ACTION_NOISE = 0.005
"""DART noise (m, rad) executed while recording, not recorded: BC on PyBullet push with 200
demonstrations went from 76% without it to 98% with it."""


def demos(
    work: Path, task: str, backend: str, episodes: int, cameras: tuple[str, ...] = ()
) -> Path:
    """Expert demonstrations (end-effector deltas held past success, see ``HOLD_STEPS``, with
    ``ACTION_NOISE``; 96x96 frames of ``cameras``), recorded once per (task, backend, count,
    cameras) and reused; smaller counts of the success grid train on the first episodes of
    the largest recording. A recording a kill left short is resumed (one it left without a
    committed episode, or unreadable, is recorded afresh)."""
    name = f"{task}_{backend}_{episodes}_eef_hold{HOLD_STEPS[task]}_noise{ACTION_NOISE}"
    if cameras:
        name += "_rgb_" + "_".join(cameras) + f"_marker{MARKER_RADIUS}"  # frames show it
    path = work / "demos" / name / "env.zarr"
    recorded = committed_recording(path)
    if recorded is None or recorded.num_episodes < episodes:
        record_expert_demos(
            task, path.parent, episodes=episodes, backend=backend, progress=True,
            action_noise=ACTION_NOISE, action_mode="eef_delta", terminate_on_success=False,
            max_episode_steps=HOLD_STEPS[task], cameras=cameras, image_size=(96, 96),
            resume=True,
        )  # fmt: skip
    return path


def train_run(dataset: Path, out: Path, policy_type: str, steps: int, *settings: str) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    config = load_config(
        policy_type,
        None,
        ["--dataset", str(dataset), "--out", str(out), "--steps", str(steps),
         "--eval.episodes", "0", *settings],
    )  # fmt: skip
    return train(config).checkpoint


def evaluate_checkpoint(
    checkpoint: Path, episodes: int, backend: str | None = None, action_steps: int | None = None
) -> EvalResult:
    """``episodes`` seeded episodes of ``checkpoint`` (``action_steps``: actions executed per
    predicted chunk instead of the trained ``n_action_steps``)."""
    policy = load_policy(checkpoint)
    if action_steps is not None:
        policy.set_action_steps(action_steps)
    env = make_eval_env(policy.spec, backend=backend)
    try:
        torch.manual_seed(0)
        return evaluate(policy, env, episodes=episodes, seed=10_000, progress=True)
    finally:
        env.close()


# ------------------------------------------------------------------------------ parts
def bench_latency(work: Path, quick: bool) -> None:
    """Per-inference latency of untrained policies (weights do not change the cost)."""
    dataset = demos(work, "reach", "mujoco", 5)
    repeats = 50 if quick else 300
    bc = load_policy(train_run(dataset, work / "lat_bc", "bc", 1, "--no-progress"))
    diffusion = load_policy(train_run(dataset, work / "lat_diff", "diffusion", 1, "--no-progress"))
    env = make_eval_env(bc.spec)
    obs, _ = env.reset(seed=0)
    env.close()

    def chunk_latency(policy) -> list[float]:
        policy.reset()
        samples = []
        for i in range(repeats + 5):
            policy.reset()  # empty queue: every call runs the network
            start = time.perf_counter()
            policy.act(obs)
            if i >= 5:  # first calls trace the model and warm caches
                samples.append(time.perf_counter() - start)
        return samples

    def step_latency(policy, steps: int = 160) -> list[float]:
        policy.reset()
        samples = []
        for _ in range(steps):
            start = time.perf_counter()
            policy.act(obs)
            samples.append(time.perf_counter() - start)
        return samples

    base = chunk_latency(bc)
    base_p50 = percentile_ms(base, 50)
    print(f"\n== inference latency, one chunk (torch threads {torch.get_num_threads()}, "
          f"load avg {os.getloadavg()[0]:.1f}) ==")  # fmt: skip
    print(f"{'policy':<22}{'p50 ms':>9}{'p99 ms':>9}{'p50 / BC':>10}")
    rows = [("BC (MLP)", base)]
    for steps in (10, 16):
        diffusion.set_inference_steps(steps)
        rows.append((f"Diffusion DDIM {steps}", chunk_latency(diffusion)))
    for name, samples in rows:
        p50, p99 = percentile_ms(samples, 50), percentile_ms(samples, 99)
        print(f"{name:<22}{p50:>9.2f}{p99:>9.2f}{p50 / base_p50:>10.1f}")
    diffusion.set_inference_steps(10)
    per_step = step_latency(diffusion)
    p50, p99 = percentile_ms(per_step, 50), percentile_ms(per_step, 99)
    print(f"Diffusion DDIM 10 per env step, with its action queue (Ta=8): p50 {p50:.3f} ms, "
          f"p99 {p99:.2f} ms")  # fmt: skip


def bench_train_speed(work: Path, quick: bool) -> None:
    dataset = demos(work, "reach", "mujoco", 20)
    steps = 50 if quick else 300
    rates = {}
    for policy_type in ("bc", "diffusion"):
        start = time.perf_counter()
        train_run(dataset, work / f"speed_{policy_type}", policy_type, steps, "--no-progress",
                  "--save-every", str(10 * steps))  # fmt: skip
        rates[policy_type] = steps / (time.perf_counter() - start)
    print(
        "\n== training speed (default configs, incl. start-up and one checkpoint; load avg "
        f"{os.getloadavg()[0]:.1f}) =="
    )
    for name, rate in rates.items():
        print(f"{name:<10}{rate:>8.1f} steps/s{rate / rates['bc']:>8.2f} x BC")
    bench_optimizer(dataset, work, quick)


SMALL_DIFFUSION = ("--batch-size", "64", "--policy.down-dims", "32", "64",
                   "--policy.step-embed-dim", "32", "--policy.horizon", "8",
                   "--policy.n-action-steps", "4")  # fmt: skip
"""The Diffusion Policy of ``tests/policies/test_learning.py``."""


def bench_optimizer(dataset: Path, work: Path, quick: bool, rounds: int = 2) -> None:
    """Steps per second of ``train`` with the fused AdamW (as shipped) and with PyTorch's
    default AdamW in its place, rounds alternated in this process; the rate of each run is
    that of its steps after the first log interval (start-up and first steps left out)."""
    from robot_il.train import trainer

    fused = trainer.adamw

    def loop(parameters, lr: float, weight_decay: float) -> torch.optim.AdamW:
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)

    cases = {"bc": ("bc", 600, ()), "diffusion": ("diffusion", 60, ()),
             "diffusion (tests' small)": ("diffusion", 300, SMALL_DIFFUSION)}  # fmt: skip
    load_before = os.getloadavg()
    print(f"\n== fused AdamW against the default (loop) AdamW, steps/s, {rounds} rounds ==")
    for name, (policy_type, steps, settings) in cases.items():
        steps = max(steps // 10, 12) if quick else steps
        rates: dict[str, list[float]] = {"fused": [], "loop": []}
        for _ in range(rounds):
            for label, build in (("fused", fused), ("loop", loop)):
                trainer.adamw = build
                out = work / "optimizer_speed" / policy_type
                try:
                    train_run(dataset, out, policy_type, steps, "--no-progress",
                              "--log-every", str(steps // 3), *settings)  # fmt: skip
                finally:
                    trainer.adamw = fused
                with (out / "metrics.csv").open(newline="") as file:
                    logged = [float(row["steps_per_s"]) for row in csv.DictReader(file)]
                rates[label].append(float(np.mean(logged[1:])))
        fused_rate, loop_rate = (float(np.median(rates[k])) for k in ("fused", "loop"))
        print(f"{name:<26}fused {fused_rate:7.1f}  loop {loop_rate:7.1f}  "
              f"{fused_rate / loop_rate:5.2f}x")  # fmt: skip
        append_row_with_load(RESULTS / "train_speed.jsonl", {
            "case": name, "steps": steps, "rounds": rounds, "threads": torch.get_num_threads(),
            "steps_per_s": rates, "ratio": round(fused_rate / loop_rate, 3), "quick": quick,
            "code": revision(), "load_before": load_before,
        })  # fmt: skip


CHUNK = ("--policy.horizon", "8", "--policy.n-action-steps", "4")
RECIPES: dict[tuple[str, str], tuple[int, tuple[str, ...]]] = {
    ("bc", "push"): (20_000, CHUNK),
    ("bc", "pick_place"): (20_000, CHUNK),
    ("diffusion", "push"): (4_000, ()),
    ("diffusion", "pick_place"): (4_000, ()),
}
"""Gradient steps and extra training flags per (policy, task) in the success grid. BC on 200
MuJoCo pick_place demonstrations with ``ACTION_NOISE``: 96% with action chunks (8 predicted,
4 executed), 8% without; on push without noise, 82% without chunks and 92% with."""


def grid_cell(
    work: Path,
    task: str,
    backend: str,
    count: int,
    policy_type: str,
    recipe: tuple[int, tuple[str, ...]],
    episodes: int,
    recording: int,
    kept_only: bool = False,
) -> dict | None:
    """Train on the first ``count`` of ``recording`` demonstrations and evaluate, also in the
    other simulator (sim-to-sim transfer). The result is kept in the run's ``result.json``,
    with the load average before and after, the code that computed it (``revision``: the
    commit this process loaded) and the UTC time, and reused while the recipe is the same
    (its ``code`` then names the older code); ``kept_only`` returns None instead of
    training."""
    steps, settings = recipe
    out = work / "runs" / f"{task}_{backend}_{count}_{policy_type}"
    kept = out / "result.json"
    dataset = demos(work, task, backend, recording)
    key = {"data": dataset.parent.name, "steps": steps, "settings": list(settings),
           "episodes": episodes}  # fmt: skip
    if kept.exists() and json.loads(kept.read_text())["recipe"] == key:
        return json.loads(kept.read_text())
    if kept_only:
        return None
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    checkpoint = train_run(
        dataset, out, policy_type, steps, "--max-episodes", str(count), "--no-progress", *settings
    )
    train_seconds = time.perf_counter() - start
    other = "pybullet" if backend == "mujoco" else "mujoco"
    here = evaluate_checkpoint(checkpoint, episodes)
    result = {
        "recipe": key,
        "train_seconds": train_seconds,
        "successes": here.successes,
        "transfer_successes": evaluate_checkpoint(checkpoint, episodes, other).successes,
        "eval_seeds": [here.seeds[0], here.seeds[-1]],
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "code": revision(),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    kept.write_text(json.dumps(result))
    return result


def bench_success(work: Path, quick: bool, grid: argparse.Namespace) -> None:
    """Success per (task, backend, demonstrations, policy), and of the same runs in the other
    simulator. ``grid`` narrows the full grid (``--tasks``, ``--backends``, ``--counts``,
    ``--policies``) so that it can run in parts, e.g. one process per core; finished cells
    are kept and reused."""
    tasks = grid.tasks or (("push",) if quick else ("push", "pick_place"))
    counts = sorted(grid.counts or ((20,) if quick else (50, 100, 200)))
    backends = grid.backends or (("mujoco",) if quick else ("mujoco", "pybullet"))
    policies = grid.policies or ("bc", "diffusion")
    recipes = {}
    for (name, task), (steps, settings) in RECIPES.items():
        override = getattr(grid, f"{name}_settings")
        recipes[name, task] = (
            grid.steps or (200 if quick else steps),
            settings if override is None else tuple(override),
        )
    episodes = 10 if quick else 50
    print(f"\n== success, {episodes} seeded episodes per cell ==")
    rows = []
    for task in tasks:
        for backend in backends:
            for policy_type in policies:
                for count in sorted(counts, reverse=True):  # the goal's cell first
                    cell = grid_cell(work, task, backend, count, policy_type,
                                     recipes[policy_type, task], episodes, max(counts),
                                     grid.kept_only)  # fmt: skip
                    if cell is None:
                        continue
                    rows.append((task, backend, policy_type, count, cell))
                    here = EvalResult(successes=cell["successes"])
                    there = np.mean(cell["transfer_successes"])
                    print(
                        f"{task:<11}{backend:<9}{policy_type:<10}{count:>4} demos  {here.line()}; "
                        f"in the other simulator {there:.0%} "
                        f"(trained {cell['train_seconds'] / 60:.1f} min)",
                        flush=True,
                    )
    rows.sort(key=lambda row: row[3])
    print("\n-- success rate by demonstrations (goal >= 90% with 200) --")
    header = "".join(f"{count:>6}" for count in counts)
    print(f"{'task':<11}{'trained in':<11}{'policy':<10}{header}   in the other simulator")
    for task in tasks:
        for backend in backends:
            for policy_type in policies:
                cells = {r[3]: r[4] for r in rows if r[:3] == (task, backend, policy_type)}
                rates = transfer = ""
                for count in counts:
                    cell = cells.get(count)
                    rates += f"{np.mean(cell['successes']):>6.0%}" if cell else f"{'-':>6}"
                    transfer += (
                        f"{np.mean(cell['transfer_successes']):>6.0%}" if cell else f"{'-':>6}"
                    )
                print(f"{task:<11}{backend:<11}{policy_type:<10}{rates}   {transfer}")
    plot_success(work / "success_grid.png", rows)


def plot_success(path: Path, rows: list) -> None:
    """Success rate against demonstrations, one panel per task, with 95% Wilson intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({row[0] for row in rows})
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for backend, policy_type in sorted({(r[1], r[2]) for r in rows if r[0] == task}):
            cells = [r for r in rows if r[:3] == (task, backend, policy_type)]
            results = [EvalResult(successes=cell[4]["successes"]) for cell in cells]
            rates = np.array([r.success_rate for r in results])
            bounds = np.array([r.interval for r in results]).T
            axis.errorbar([cell[3] for cell in cells], rates, yerr=np.abs(bounds - rates),
                          marker="o", capsize=3, label=f"{policy_type}, {backend}")  # fmt: skip
        axis.axhline(0.9, color="grey", linestyle=":", linewidth=1)
        axis.set(title=task, xlabel="demonstrations", ylabel="success rate", ylim=(0, 1.02))
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"plot: {path}")


# -------------------------------------------------------------------- multimodal 2-D task
OBSTACLE_RADIUS = 0.3
START = np.array([-0.6, 0.0])
GOAL = np.array([0.9, 0.0])
MAX_STEP = 0.08


def _start(rng: np.random.Generator) -> np.ndarray:
    """On the obstacle's axis (jitter along it only): up and down are exactly as good."""
    return START + np.array([rng.normal(0, 0.02), 0.0])


def _route_demo(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pass a disc obstacle at the origin above or below (a fair coin), then reach the goal.

    The start is close to the obstacle, so a policy that averages the two routes (MSE BC)
    heads straight on and hits it before any asymmetry can grow into a choice.
    """
    side = 1.0 if rng.random() < 0.5 else -1.0
    pos = _start(rng)
    waypoints = [np.array([-0.25, 0.45 * side]), np.array([0.25, 0.45 * side]), GOAL]
    observations, actions = [], []
    for waypoint in waypoints:
        while np.linalg.norm(waypoint - pos) > 0.02:
            delta = waypoint - pos
            step = delta * min(1.0, MAX_STEP / np.linalg.norm(delta))
            observations.append(pos.copy())
            actions.append(step)
            pos = pos + step
    return {"pos": np.asarray(observations, np.float32), "action": np.asarray(actions, np.float32)}


def _rollout_2d(policy, seed: int, steps: int = 80) -> tuple[bool, float]:
    """(success, side): success = reached the goal without touching the obstacle."""
    pos = _start(np.random.default_rng(seed))
    policy.reset()
    side = 0.0
    for _ in range(steps):
        action = np.clip(policy.act({"pos": pos.astype(np.float32)}), -MAX_STEP, MAX_STEP)
        pos = pos + action
        if abs(pos[0]) < 0.05:
            side = np.sign(pos[1])
        if np.linalg.norm(pos) < OBSTACLE_RADIUS:
            return False, side
        if np.linalg.norm(pos - GOAL) < 0.05:
            return True, side
    return False, side


def bench_multimodal(work: Path, quick: bool) -> None:
    path = work / "demos" / "route2d.zarr"
    rng = np.random.default_rng(0)
    with DatasetWriter.create(path, robot="point2d", control_hz=10.0, attrs={"task": "route2d"},
                              overwrite=True, fsync=False) as writer:  # fmt: skip
        for _ in range(100):
            writer.add_episode(_route_demo(rng))
    steps = 800 if quick else 5000
    episodes = 20 if quick else 100
    print(f"\n== multimodal: two equally good routes round an obstacle ({episodes} episodes) ==")
    settings = ("--policy.obs-keys", "pos", "--no-progress")
    results = {}
    for policy_type in ("bc", "diffusion"):
        checkpoint = train_run(path, work / "runs" / f"route2d_{policy_type}", policy_type, steps,
                               *settings)  # fmt: skip
        policy = load_policy(checkpoint)
        torch.manual_seed(0)
        outcomes = [_rollout_2d(policy, 1000 + i) for i in range(episodes)]
        wins = [s for s, _ in outcomes]
        above = sum(1 for _, side in outcomes if side > 0)
        results[policy_type] = EvalResult(list(range(episodes)), wins, [0] * episodes)
        print(f"{policy_type:<10}{results[policy_type].line()}; passed above {above}, "
              f"below {sum(1 for _, side in outcomes if side < 0)}")  # fmt: skip
    from robot_il.train.stats import permutation_test

    p = permutation_test(results["diffusion"].successes, results["bc"].successes)
    print(f"Diffusion > BC: one-sided permutation p = {p:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for part in ("latency", "train-speed", "success", "multimodal"):
        parser.add_argument(f"--{part}", action="store_true", help=f"run the {part} part")
    parser.add_argument("--all", action="store_true", help="run every part")
    parser.add_argument("--quick", action="store_true", help="small budgets (minutes)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--work", default="/tmp/robot_il_bench", help="datasets and runs")
    grid = parser.add_argument_group("success grid (default: all of it)")
    grid.add_argument("--tasks", nargs="+", default=None, help="e.g. push pick_place")
    grid.add_argument("--backends", nargs="+", default=None, help="mujoco and/or pybullet")
    grid.add_argument("--counts", nargs="+", type=int, default=None, help="demonstrations")
    grid.add_argument("--policies", nargs="+", default=None, help="bc and/or diffusion")
    grid.add_argument("--steps", type=int, default=None, help="gradient steps per run")
    grid.add_argument(
        "--kept-only",
        action="store_true",
        help="report the cells already trained (runs in parts) and train nothing",
    )
    for name in ("bc", "diffusion"):
        grid.add_argument(
            f"--{name}-settings",
            type=shlex.split,
            default=None,
            help=f"{name}'s training flags in one string instead of the recipe's, e.g. "
            "'--policy.horizon 8 --policy.n-action-steps 4'",
        )
    args = parser.parse_args()
    code_provenance()  # the code this process loaded, for its rows
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    parts = {
        "latency": bench_latency,
        "train_speed": bench_train_speed,
        "success": bench_success,
        "multimodal": bench_multimodal,
    }
    chosen = [name for name in parts if args.all or getattr(args, name)]
    if not chosen:
        parser.error("choose a part (--latency, --success, ...) or --all")
    for name in chosen:
        if name == "success":
            bench_success(work, args.quick, args)
        else:
            parts[name](work, args.quick)


if __name__ == "__main__":
    main()
