"""Wall time of a 100k-env-step OPT-AIL run on one core: the update as it was before it was made
faster (the old path) against today's (the new path), timed in the same process.

    python benchmarks/opt_ail_speed.py --task dmc:cartpole_swingup --profile cpu
    python benchmarks/opt_ail_speed.py --task dmc:walker_walk --profile paper --loop-steps 1500

The old path is model-free OPT-AIL's learner at ``--baseline-rev`` (its ``learner.py`` and
``actor_critic.py`` from ``git show``, loaded as modules beside today's). Both start from the
same weights and learn from the same replay and expert buffers (random transitions of the
task's sizes: an update's cost does not depend on the values); timing rounds alternate between
them, so the load of this shared machine falls on both alike. Reported per update: wall
milliseconds and CPU milliseconds (``time.process_time``, which counts only this process and so
depends less on the load); per env step of the loop: acting, stepping the env and storing the
transition; per evaluation (every 10k env steps: 10 deterministic episodes). A 100k-env-step
run is projected as ``100k x (env step) + (100k - learning starts) x (update) + 10 x
(evaluation)``, in wall time and in CPU time (the one-core figure on an idle machine).
Each path's updates run as its loop runs them: with denormal floats flushed to zero
(``robot_il.train.online.denormals_flushed``) where that revision's loop does (today's does;
822a158's did not). Random buffers and
fresh networks hold no denormal number, so they hide that cost: ``--state DIR`` (a run's
``train_state/``, e.g. ``outputs/opt_ail/walker_walk/s0_d1_k1_cpu/train_state``) starts both
learners from that run's weights and Adam states and samples its replay buffer and the
task's first expert trajectory, as the run does at that step.
``--loop-steps N`` also runs N env steps of the real loop (``train_online``, updates from the
first step, no evaluation) with each learner and prints its env steps per second (the loop
flushes denormals for both).

Both paths' weights after the same updates from the same random state are compared (the
largest absolute difference is printed): the new path computes the same quantities. Each
invocation appends a row to ``--results`` (default ``benchmarks/results/opt_ail_speed.json``,
the committed rows: give a scratch file to check a checkout) with its budget (rounds, updates,
samples, loop steps), the load average, the code (commit) and the UTC time.

``--precision bf16`` adds a third path, ``bf16``: today's learner with ``matmul_precision
"bf16"`` (the hidden layers' products from bfloat16 operands), timed in the same alternating
rounds; the script prints its projection, its update CPU time against today's float32 one
(``new``), and how far its weights are from ``new``'s after the same 5 updates.
``--bf16-baseline-rev REV`` adds a fourth, ``bf16_old``: the bf16 learner as of ``REV``
(its ``relu_mlp.py``, ``policy.py``, ``actor_critic.py`` and ``learner.py``), to time a
change of the bf16 path against the one before it and check they give the same weights;
then acting (its ``explore``) and evaluation (in eval mode or not, as the loop at ``REV``
evaluated) are timed for ``bf16_old`` and ``bf16`` alternately, and each projects with its
own (the other paths with ``bf16``'s).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
from git_revision import module_at

from robot_il.provenance import code_provenance, revision

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "opt_ail_speed.json"
BASELINE_REV = "822a158"
"""The last commit before the update was made faster."""
ENV_STEPS, LEARNING_STARTS, EVALUATIONS, EVAL_EPISODES = 100_000, 2000, 10, 10
PROFILES = {"cpu": {"optimism_states": 128}, "paper": {}}
"""``cpu``: the optimism term on 128 states of each batch; ``paper``: on all 512."""
LEARNER = "robot_il.policies.opt_ail.actor_critic"


def modules_at(rev: str, names: tuple[str, ...]) -> dict[str, types.ModuleType]:
    """``policies/opt_ail/<name>.py`` of git revision ``rev`` for each name, executed in order
    as new modules beside today's; each imports the earlier ones of ``rev`` (the old learner
    imports the old core), today's for the rest."""

    import robot_il.policies.opt_ail.learner  # noqa: F401  (today's modules are loaded first)

    package = LEARNER.rpartition(".")[0]
    today = {name: sys.modules[f"{package}.{name}"] for name in names}
    modules = {}
    try:
        for name in names:
            module = module_at(rev, f"policies/opt_ail/{name}.py", f"opt_ail_at_{rev}_{name}")
            modules[name] = sys.modules[f"{package}.{name}"] = module
    finally:
        sys.modules.update({f"{package}.{name}": module for name, module in today.items()})
    return modules


def baseline_learner_class(rev: str) -> type:
    """``OPTAIL`` as of git revision ``rev``: that revision's ``actor_critic.py`` and
    ``learner.py`` executed as new modules (the old learner imports the old core)."""
    return modules_at(rev, ("actor_critic", "learner"))["learner"].OPTAIL


def bf16_baseline(rev: str) -> tuple[type, type, type]:
    """``OPTAIL``, its policy and config classes as of ``rev`` with that revision's
    ``relu_mlp.py`` and ``policy.py`` too (where its bfloat16 products are computed)."""
    modules = modules_at(rev, ("relu_mlp", "policy", "actor_critic", "learner"))
    return modules["learner"].OPTAIL, modules["policy"].OPTAILPolicy, modules["policy"].OPTAILConfig


def task_spec(task: str) -> tuple[dict[str, Any], Any]:
    from robot_il.envs import make_env
    from robot_il.policies.spec import spec_from_env

    env = make_env(task)
    return spec_from_env(env), env


def build(learner_class: type, task: str, profile: str, precision: str = "fp32",
          policy_classes: tuple[type, type] | None = None) -> Any:  # fmt: skip
    """A learner of ``learner_class`` with fresh weights; ``policy_classes``: its policy and
    config classes (default today's)."""
    import torch
    from robot_il.policies.opt_ail import OPTAILConfig, OPTAILPolicy
    from robot_il.policies.opt_ail.policy import identity_observation_normalizer

    OPTAILPolicy, OPTAILConfig = policy_classes or (OPTAILPolicy, OPTAILConfig)  # noqa: N806

    spec, env = task_spec(task)
    normalizer = identity_observation_normalizer(spec, env.action_space.low,
                                                 env.action_space.high)  # fmt: skip
    env.close()
    torch.manual_seed(0)
    precision_setting = {"matmul_precision": precision} if precision != "fp32" else {}
    config = OPTAILConfig(obs_keys=("state",), **PROFILES[profile], **precision_setting)
    return learner_class(OPTAILPolicy(config, spec, normalizer), task)


def random_buffer(capacity: int, obs_dim: int, action_dim: int, seed: int) -> Any:
    from robot_il.train.replay import ReplayBuffer

    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(capacity, obs_dim, action_dim)
    buffer.extend(rng.standard_normal((capacity, obs_dim), np.float32),
                  rng.uniform(-1, 1, (capacity, action_dim)).astype(np.float32),
                  rng.standard_normal((capacity, obs_dim), np.float32),
                  (rng.random(capacity) < 0.01).astype(np.float32))  # fmt: skip
    return buffer


FLUSHING_PATHS = {"new", "bf16", "bf16_old"}
"""The paths whose loop flushes denormals; ``main`` adds "old" when the baseline's loop does."""


def loop_flushes_denormals(rev: str) -> bool:
    """Whether the online loop at ``rev`` runs its updates with denormals flushed."""
    online = subprocess.run(["git", "show", f"{rev}:robot_il/train/online.py"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    return online.returncode == 0 and "def denormals_flushed" in online.stdout


def update_context(path: str) -> Any:
    """How the loop runs ``path``'s updates: with denormals flushed where its loop does."""
    from robot_il.train.online import denormals_flushed

    return denormals_flushed() if path in FLUSHING_PATHS else contextlib.nullcontext()


def time_updates(learners: dict[str, Any], rounds: int, updates: int,
                 buffers: tuple[Any, Any] | None = None) -> dict[str, dict]:  # fmt: skip
    """Per update wall and CPU seconds of each learner, rounds alternating between them,
    on ``buffers`` (online, expert; default: random ones)."""
    import torch

    some = next(iter(learners.values()))
    buffer, expert = buffers or (random_buffer(10_000, some.obs_dim, some.action_dim, 1),
                                 random_buffer(1000, some.obs_dim, some.action_dim, 2))  # fmt: skip
    totals = {name: {"wall_s": 0.0, "cpu_s": 0.0} for name in learners}
    for name, learner in learners.items():  # warm-up (allocator, first-call costs)
        rng = np.random.default_rng(0)
        with update_context(name):
            for _ in range(3):
                learner.learn(buffer, expert, rng)
    for round_ in range(rounds):
        for name, learner in learners.items():
            rng = np.random.default_rng(round_)
            torch.manual_seed(round_)
            wall, cpu = time.perf_counter(), time.process_time()
            with update_context(name):
                for _ in range(updates):
                    learner.learn(buffer, expert, rng)
            totals[name]["wall_s"] += time.perf_counter() - wall
            totals[name]["cpu_s"] += time.process_time() - cpu
    return {name: {k: v / (rounds * updates) for k, v in t.items()} for name, t in totals.items()}


def same_maths(learners: dict[str, Any], updates: int = 5,
               buffers: tuple[Any, Any] | None = None, other: str = "old",
               this: str = "new") -> float:  # fmt: skip
    """Largest absolute difference of any weight after ``updates`` updates of the ``other``
    learner and the ``this`` one from the same weights on the same batches and the same
    torch random stream."""
    import torch

    old, new = learners[other], learners[this]
    old.load_state_dict(copy.deepcopy(new.state_dict()))  # Adam loads its state uncopied
    buffer, expert = buffers or (random_buffer(5000, new.obs_dim, new.action_dim, 3),
                                 random_buffer(1000, new.obs_dim, new.action_dim, 4))  # fmt: skip
    for name, learner in ((other, old), (this, new)):
        rng = np.random.default_rng(5)
        torch.manual_seed(5)
        with update_context(name):
            for _ in range(updates):
                learner.learn(buffer, expert, rng)
    worst = 0.0
    for network in ("actor", "reward", "critic", "critic_target"):
        a, b = old.state_dict()[network], new.state_dict()[network]
        worst = max(worst, *(float((a[k] - b[k]).abs().max()) for k in a))
    return worst


def run_state(state_dir: Path, task: str) -> tuple[dict[str, Any], tuple[Any, Any], int, int]:
    """A run's saved learner state, its replay buffer and the task's first expert
    trajectory (as ``benchmarks/opt_ail.py`` runs it), its env step, and how many numbers
    of its weights and Adam states are denormal (nonzero, below 1.2e-38 in magnitude)."""
    import torch

    from robot_il.dataset import Dataset
    from robot_il.train.replay import ReplayBuffer, expert_buffer

    state = torch.load(state_dir / "state.pt", weights_only=False)
    with np.load(state_dir / "replay.npz") as saved:
        capacity, obs_dim = int(saved["capacity"]), saved["obs"].shape[1]
        action_dim = saved["action"].shape[1]
    buffer = ReplayBuffer(capacity, obs_dim, action_dim)
    buffer.load(state_dir / "replay.npz")
    dataset = Dataset.open(str(ROOT / "data" / f"dmc_{task.removeprefix('dmc:')}_expert"
                               / "env.zarr"), cache="ram")  # fmt: skip
    expert = expert_buffer(dataset, ["state"], episodes=1, subsample=1, seed=0)
    tiny = torch.finfo(torch.float32).tiny

    def denormals(value: Any) -> int:
        if isinstance(value, dict):
            return sum(denormals(v) for v in value.values())
        if torch.is_tensor(value) and value.is_floating_point():
            return int(((value != 0) & (value.abs() < tiny)).sum())
        return 0

    algorithm = state["algorithm"]
    return algorithm, (buffer, expert), int(state["step"]), denormals(algorithm)


def time_env_steps(learner: Any, task: str, steps: int) -> dict[str, float]:
    """Per env step wall and CPU seconds of the loop's acting, stepping and storing."""
    from robot_il.envs import make_env

    from robot_il.train.online import NormalizedActions
    from robot_il.train.replay import ReplayBuffer, flatten_observation

    env = NormalizedActions(make_env(task))
    buffer = ReplayBuffer(steps, learner.obs_dim, learner.action_dim)
    keys = ("state",)
    obs = flatten_observation(env.reset(seed=0)[0], keys)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        action = learner.explore(obs)
        raw, _, terminated, truncated, _ = env.step(action)
        next_obs = flatten_observation(raw, keys)
        buffer.add(obs, action, next_obs, terminated)
        obs = flatten_observation(env.reset()[0], keys) if terminated or truncated else next_obs
    result = {"wall_s": (time.perf_counter() - wall) / steps,
              "cpu_s": (time.process_time() - cpu) / steps}  # fmt: skip
    env.close()
    return result


def time_evaluation(learner: Any, task: str, eval_mode: bool = True) -> dict[str, float]:
    """Wall and CPU seconds of one evaluation (``EVAL_EPISODES`` episodes; one is timed),
    with the policy in eval mode throughout as today's loop runs it, or (``eval_mode``
    False) left in training mode, which ``predict_actions`` toggles at every action."""
    from robot_il.envs import make_env

    from robot_il.train.evaluate import evaluate

    env = make_env(task)
    learner.policy.train(not eval_mode)
    wall, cpu = time.perf_counter(), time.process_time()
    evaluate(learner.policy, env, episodes=1, seed=0)
    learner.policy.train()
    result = {"wall_s": (time.perf_counter() - wall) * EVAL_EPISODES,
              "cpu_s": (time.process_time() - cpu) * EVAL_EPISODES}  # fmt: skip
    env.close()
    return result


def loop_evaluates_in_eval_mode(rev: str) -> bool:
    """Whether the online loop at ``rev`` switches the policy to eval mode to evaluate."""
    online = subprocess.run(["git", "show", f"{rev}:robot_il/train/online.py"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    return online.returncode == 0 and "policy.eval()" in online.stdout


def time_acting(learners: dict[str, Any], task: str, steps: int, rounds: int = 4,
                old_rev: str | None = None) -> dict[str, tuple[dict, dict]]:  # fmt: skip
    """Per env step (``time_env_steps``) and per evaluation (``time_evaluation``) seconds of
    each learner, rounds alternating between them; ``bf16_old`` evaluates as the loop at
    ``old_rev`` did."""
    totals: dict[str, list[dict[str, float]]] = {name: [{}, {}] for name in learners}
    old_eval_mode = "bf16_old" not in learners or loop_evaluates_in_eval_mode(old_rev or "HEAD")
    for _ in range(rounds):
        for name, learner in learners.items():
            eval_mode = name != "bf16_old" or old_eval_mode
            parts = (time_env_steps(learner, task, steps // rounds),
                     time_evaluation(learner, task, eval_mode))  # fmt: skip
            for total, part in zip(totals[name], parts, strict=True):
                for clock, value in part.items():
                    total[clock] = total.get(clock, 0.0) + value / rounds
    return {name: (t[0], t[1]) for name, t in totals.items()}


def time_loop(task: str, profile: str, steps: int, path: str, rev: str) -> float:
    """Env steps per second of ``steps`` steps of ``train_online`` with the ``path`` learner
    (updates from the first step, no evaluation, no save before the end)."""
    from robot_il.train import online
    from robot_il.train.config import load_config

    dataset = ROOT / "data" / f"dmc_{task.removeprefix('dmc:')}_expert" / "env.zarr"
    if not dataset.exists():
        raise SystemExit(f"{dataset}: missing; make it with benchmarks/dmc_experts.py record")
    out = ROOT / "outputs" / "opt_ail_speed" / path
    shutil.rmtree(out, ignore_errors=True)
    config = load_config("opt_ail", None, [])
    config = dataclasses.replace(config, dataset=str(dataset), out=str(out), env_steps=steps,
                                 max_episodes=1, learning_starts=0, save_every=10 * steps,
                                 progress=False, buffer_size=ENV_STEPS)  # fmt: skip
    config.eval.episodes = 0
    for key, value in PROFILES[profile].items():
        setattr(config.policy, key, value)
    if path == "bf16":
        config.policy.matmul_precision = "bf16"
    algorithms = dict(online.ONLINE_ALGORITHMS)
    if path == "old":
        module = f"opt_ail_at_{rev}_learner"
        baseline_learner_class(rev)
        online.ONLINE_ALGORITHMS["opt_ail"] = f"{module}:OPTAIL"
    try:
        started = time.perf_counter()
        online.train_online(config)
        return steps / (time.perf_counter() - started)
    finally:
        online.ONLINE_ALGORITHMS.clear()
        online.ONLINE_ALGORITHMS.update(algorithms)


def main() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="dmc:cartpole_swingup")
    parser.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=20, help="updates per timing round")
    parser.add_argument("--env-step-samples", type=int, default=2000)
    parser.add_argument("--loop-steps", type=int, default=0)
    parser.add_argument("--state", type=Path, help="a run's train_state/ to start from")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: also time today's learner with bfloat16 hidden products",
    )
    parser.add_argument("--bf16-baseline-rev", help="with --precision bf16: also time the "
                        "bf16 learner as of this revision (path bf16_old)")  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS, help="the rows' JSON")
    args = parser.parse_args()
    code_provenance()  # the code this process loaded, for its row

    import torch
    from robot_il.policies.opt_ail import OPTAIL

    torch.set_num_threads(1)
    if loop_flushes_denormals(args.baseline_rev):
        FLUSHING_PATHS.add("old")
    load_before = os.getloadavg()
    learners = {"old": build(baseline_learner_class(args.baseline_rev), args.task, args.profile),
                "new": build(OPTAIL, args.task, args.profile)}  # fmt: skip
    if args.precision == "bf16":
        learners["bf16"] = build(OPTAIL, args.task, args.profile, "bf16")
        if args.bf16_baseline_rev:
            learner_class, *policy_classes = bf16_baseline(args.bf16_baseline_rev)
            learners["bf16_old"] = build(learner_class, args.task, args.profile, "bf16",
                                         tuple(policy_classes))  # fmt: skip
    buffers, where = None, "random buffers, fresh networks"
    if args.state:
        algorithm, buffers, step, denormals = run_state(args.state, args.task)
        for learner in learners.values():
            learner.load_state_dict(copy.deepcopy(algorithm))
        where = f"{args.state} at env step {step} ({denormals} denormal numbers in its state)"
    difference = same_maths(learners, buffers=buffers)
    if "bf16" in learners:
        bf16_difference = same_maths(learners, buffers=buffers, other="bf16")
    if "bf16_old" in learners:
        bf16_old_difference = same_maths(learners, buffers=buffers, other="bf16_old",
                                         this="bf16")  # fmt: skip
    update = time_updates(learners, args.rounds, args.updates, buffers)
    acting_paths = ("bf16", "bf16_old") if "bf16_old" in learners else ("new",)
    acting = time_acting({path: learners[path] for path in acting_paths}, args.task,
                         args.env_step_samples, old_rev=args.bf16_baseline_rev)  # fmt: skip
    env_step, evaluation = acting[acting_paths[0]]
    print(f"updates on {where}")
    print(f"{args.task}, profile {args.profile}, one torch thread; old = {args.baseline_rev}; "
          f"largest weight difference old vs new after 5 updates: {difference:.2e}")  # fmt: skip
    print(f"env step (act + step + store): {env_step['wall_s'] * 1e3:.2f} ms wall, "
          f"{env_step['cpu_s'] * 1e3:.2f} ms CPU; evaluation ({EVAL_EPISODES} episodes): "
          f"{evaluation['wall_s']:.1f} s wall, {evaluation['cpu_s']:.1f} s CPU")  # fmt: skip
    row: dict[str, Any] = {
        "task": args.task, "profile": args.profile, "baseline_rev": args.baseline_rev,
        "new_rev": revision(), "max_weight_difference": difference,
        "env_step_s": env_step, "evaluation_s": evaluation, "updates_on": where,
        "rounds": args.rounds, "updates": args.updates,
        "env_step_samples": args.env_step_samples, "loop_steps": args.loop_steps,
    }  # fmt: skip
    if "bf16" in learners:
        print(f"largest weight difference bf16 vs new (fp32) after 5 updates: "
              f"{bf16_difference:.2e}")  # fmt: skip
        row["bf16_max_weight_difference"] = bf16_difference
    if "bf16_old" in learners:
        print(f"bf16_old = bf16 at {args.bf16_baseline_rev}; largest weight difference "
              f"bf16_old vs bf16 after 5 updates: {bf16_old_difference:.2e}")  # fmt: skip
        row["bf16_baseline_rev"] = args.bf16_baseline_rev
        row["bf16_old_max_weight_difference"] = bf16_old_difference
        old_step, old_evaluation = acting["bf16_old"]
        print(f"bf16_old's env step: {old_step['wall_s'] * 1e3:.2f} ms wall, "
              f"{old_step['cpu_s'] * 1e3:.2f} ms CPU; its evaluation: "
              f"{old_evaluation['wall_s']:.1f} s wall, {old_evaluation['cpu_s']:.1f} s CPU "
              f"(acting and evaluation timed alternately with bf16's)")  # fmt: skip
        row["bf16_old_env_step_s"], row["bf16_old_evaluation_s"] = old_step, old_evaluation
    for path in learners:
        step_s, evaluation_s = acting.get(path, (env_step, evaluation))
        projected = {
            clock: (ENV_STEPS * step_s[clock] + (ENV_STEPS - LEARNING_STARTS)
                    * update[path][clock] + EVALUATIONS * evaluation_s[clock])
            for clock in ("wall_s", "cpu_s")
        }  # fmt: skip
        steps_per_s = {clock: ENV_STEPS / projected[clock] for clock in projected}
        print(f"{path}: update {update[path]['wall_s'] * 1e3:.1f} ms wall, "
              f"{update[path]['cpu_s'] * 1e3:.1f} ms CPU; {steps_per_s['wall_s']:.1f} env "
              f"steps/s wall ({steps_per_s['cpu_s']:.1f} by CPU time); projected 100k-step "
              f"run: {projected['wall_s'] / 3600:.2f} h wall, "
              f"{projected['cpu_s'] / 3600:.2f} h CPU")  # fmt: skip
        row[path] = {"update_ms": {k: v * 1e3 for k, v in update[path].items()},
                     "env_steps_per_s": steps_per_s, "projected_100k_h":
                     {k: v / 3600 for k, v in projected.items()}}  # fmt: skip
    ratio = update["old"]["cpu_s"] / update["new"]["cpu_s"]
    print(f"update CPU time old / new: {ratio:.2f}x")
    row["update_cpu_speedup"] = ratio
    if "bf16" in learners:
        bf16_ratio = update["new"]["cpu_s"] / update["bf16"]["cpu_s"]
        print(f"update CPU time new (fp32) / bf16: {bf16_ratio:.2f}x")
        row["bf16_update_cpu_speedup"] = bf16_ratio
    if "bf16_old" in learners:
        bf16_old_ratio = update["bf16_old"]["cpu_s"] / update["bf16"]["cpu_s"]
        print(f"update CPU time bf16_old / bf16: {bf16_old_ratio:.3f}x")
        row["bf16_old_update_cpu_speedup"] = bf16_old_ratio
        hours = {path: row[path]["projected_100k_h"]["cpu_s"] for path in ("bf16_old", "bf16")}
        run_ratio = hours["bf16_old"] / hours["bf16"]
        print(f"projected 100k-step run, CPU time bf16_old / bf16: {run_ratio:.3f}x")
        row["bf16_old_projected_cpu_ratio"] = run_ratio
    if args.loop_steps:
        for path in (path for path in learners if path != "bf16_old"):
            rate = time_loop(args.task, args.profile, args.loop_steps, path, args.baseline_rev)
            row[path]["loop_env_steps_per_s"] = rate
            print(f"{path}: train_online, {args.loop_steps} env steps: {rate:.1f} env steps/s")
    row["loadavg"] = [round(v, 2) for v in (*load_before, *os.getloadavg())]
    row["utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"load average before {load_before}, after {os.getloadavg()} ({os.cpu_count()} CPUs)")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(args.results.read_text()) if args.results.exists() else {"runs": []}
    data["runs"].append(row)
    args.results.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
