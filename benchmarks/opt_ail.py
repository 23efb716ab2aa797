"""OPT-AIL (model-free and model-based), IQ-Learn, DAC and tuned BC on DeepMind Control tasks
from few expert trajectories, and on the UR5e push task from 10 scripted demonstrations.

    python benchmarks/opt_ail.py opt_ail --task dmc:walker_walk --seeds 0 1 2 --env-steps 100000
    python benchmarks/opt_ail.py opt_ail --model-based --task dmc:walker_walk --env-steps 50000
    python benchmarks/opt_ail.py iq_learn --task dmc:walker_walk     # and dac
    python benchmarks/opt_ail.py bc --task dmc:walker_walk
    python benchmarks/opt_ail.py dac --task dmc:walker_walk --precision bf16 \
        --final-episodes 100                 # each run's checkpoint at 100k, on 100 episodes
    python benchmarks/opt_ail.py opt_ail --task ur5e:push --seeds 0 --env-steps 30000 \
        --eval-every 5000                                  # --demos defaults to 10 here
    python benchmarks/opt_ail.py bc --task ur5e:push --seeds 0

Runnable in parts: each online run (method, variant, task, seed, demos, subsample, profile)
keeps its own directory under ``outputs/opt_ail/`` and resumes from its last save when rerun; each
evaluation point becomes a row of ``benchmarks/results/opt_ail.json`` as soon as it is made
(a row of the same run and env step is replaced, so a resumed run does not duplicate). A BC
grid setting whose row exists is skipped and one cut short resumes from its ``train_state``;
``--bc-weight-decays`` and ``--bc-lrs`` run part of the grid (e.g. in parallel processes).
Rows: ``task, method, variant, seed, demos, subsample, env_steps, return, expert_return,
success_rate, wall_s`` (+ ``profile``, ``returns``, ``loadavg``; BC rows add their grid
setting and carry ``env_steps`` 0). DMC tasks have no success test: ``success_rate`` is null.
UR5e rows fill ``success_rate`` and its 95% Wilson interval ``success_ci`` over 50 seeded
episodes (seeds 10000-10049, the same for every method), and have no expert return (null).

Demonstrations come from ``data/dmc_<task>_expert/env.zarr`` (``benchmarks/dmc_experts.py``),
whose attrs give the expert's return and the seed its SAC expert was trained with; DMC rows
carry that ``expert_seed`` (rows without one imitated the first experts, seed 0, lost with
their machine) and runs on another expert keep their own directory (``_x<seed>``).
``ur5e:push`` demonstrations are the scripted expert's in end-effector deltas on MuJoCo, held
past success, with DART noise (``benchmarks/policies.py`` ``demos``), recorded once under
``outputs/opt_ail/demos/``. Online learners on UR5e tasks see observations mapped by the
demonstrations' mean and std (std floored at 5 cm/rad, frozen; ``--obs-normalization``, rows'
``obs_normalization``), as tuned BC's inputs are (unfloored); on DMC tasks, raw observations as
in the paper. ``--profile cpu`` applies the optimism term to 128 states of each batch instead
of 512 (the CPU profile); ``paper`` is the paper's update.
``benchmarks/opt_ail_speed.py`` times an update of either profile (one torch thread) and
projects a 100k-env-step run's wall and CPU time.
For model-based OPT-AIL, ``cpu`` is the CPU cap (a model fit of at most 300 steps every
1000 env steps) and ``paper`` the reference's schedule (every 250, up to 5000 steps);
IQ-Learn and DAC have no profile setting (the name only keeps runs apart).
``--bc-pretrain-steps``, ``--bc-weight``, ``--bc-decay-updates``, ``--log-std-min``, ``--bc-loss
mse``, ``--twin-critics``, ``--action-bounds demos``, ``--bc-reference``, ``--clone-radius``,
``--critic-layer-norm``, ``--learn-temperature``, ``--hindsight-goal`` (``--hindsight-as-expert``)
and ``--actor-lr`` turn on the deviations of the online learners (``SoftActorConfig``: the actor
cloned from the demonstrations before the first env step, a BC term in its loss decaying to 0, a
higher floor under the actor's spread, cloning the mean action alone, clipped double Q, actions
within the demonstrations' reach, the frozen clone's action competing with the actor's by Q, IBRL's,
the actor's mean held near the clone's, LayerNorm critics, SAC's learned temperature, training
episodes relabelled to the goal they reached in the BC term's data or every expert batch, another
actor learning rate than the paper's);
``--reward-input state_next_state``, ``--reward-obs-keys``, ``--reward-offsets``,
``--critic-warmup-updates`` and ``--critic-updates-per-step`` those of OPT-AIL's and DAC's
reward (``RewardNetConfig``: a reward on ``[s, s']``, on some observation keys, with offsets
between positions, actor-frozen updates first, several updates per env step with one actor
step), ``--reward-output linear`` OPT-AIL's reward without its tanh (WGAN-GP's critic),
``--reward-drift-weight`` ProGAN's drift penalty on OPT-AIL's reward (``OPTAILConfig``) and
``--td-clip`` another clip of the TD targets than the reward's value bound (the paper's
100 for its tanh, none for the linear reward; rows name any bound but 100, ``td-clip inf``);
``--reward-source task`` replaces the learned reward by the task's own, a diagnostic of the
online phase (UR5e tasks);
such runs keep their own directory and their rows name them in ``deviation`` (null: the
paper's method), e.g. ``bc-init10000, bc 1 to 0 in 10000``.
``--final-episodes N`` evaluates each seed's run again at its budget (its checkpoint at
``--env-steps``) on N episodes from env seed 20000, rows in
``benchmarks/results/opt_ail_final.json``.
``benchmarks/opt_ail_report.py`` makes the README's tables and plots from the rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from robot_il.envs.task_frame import TASK_FRAMES
from robot_il.policies.opt_ail.policy import LOG_STD_MIN, TANH_TD_BOUND, td_bound

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "opt_ail.json"
FINAL_RESULTS = RESULTS.with_name("opt_ail_final.json")
"""``--final-episodes`` rows: runs evaluated again, on more episodes, at their budget."""
FINAL_EVAL_SEED = 20_000
"""First env seed of a ``--final-episodes`` evaluation, apart from the in-loop ones'."""
RUNS = ROOT / "outputs" / "opt_ail"
RUN_NAME_LIMIT = 255
"""Longest run directory name (bytes) that spells its deviations out, the file systems' limit
(NAME_MAX); a longer one names them by a digest (its rows carry them in full)."""
PAPER_NAMES = {"dmc:walker_walk": "Walker Walk", "dmc:walker_stand": "Walker Stand",
               "dmc:cartpole_swingup": "Cartpole Swingup"}  # fmt: skip
UR5E_TASKS = {"ur5e:push": "push"}
"""UR5e tasks benchmarked here: benchmark name -> ``make_env`` task."""
EVAL_EPISODES = {"dmc": 10, "ur5e": 50}
"""Evaluation episodes per evaluation point, by task family."""
DEFAULT_DEMOS = {"dmc": 1, "ur5e": 10}
DEFAULT_BC_STEPS = {"dmc": 10_000, "ur5e": 4000}
MAX_ENV_STEPS = 100_000
"""Replay capacity of every online run: the largest budget a run may be extended to."""
BC_GRID = {"weight_decay": (1e-6, 1e-4, 1e-3, 1e-2), "lr": (1e-3, 3e-4)}
"""Tuned BC: every pair of these (AdamW), Gaussian head, the best by mean return."""
RUN_KEY = ("task", "method", "variant", "deviation", "profile", "obs_normalization", "precision",
           "bf16_rounds", "frame", "seed", "demos", "subsample", "env_steps", "weight_decay", "lr",
           "steps", "expert_seed")  # fmt: skip
"""What tells one run's row apart; ``bf16_rounds`` too, so a ``bf16`` run rerun on a CPU
that rounds the products (AMX) keeps the rows of one that did not."""
OBS_NORMALIZATION = {"dmc": "raw", "ur5e": "gaussian"}
"""What the online learners' networks see, by task family: raw observations (the paper's
DMC runs) or each feature mapped by the demonstrations' mean and std (tuned BC's inputs)."""


def family(task: str) -> str:
    """``dmc`` or ``ur5e``: the part of a benchmark task name before the colon."""
    return task.split(":", 1)[0]


def task_slug(task: str) -> str:
    """The task name without its family, for directory and file names."""
    return task.split(":", 1)[1]


def dmc_expert_dataset(task: str) -> Path:
    """Where ``benchmarks/dmc_experts.py record`` writes the DMC task's demonstrations."""
    return ROOT / "data" / f"dmc_{task_slug(task)}_expert" / "env.zarr"


def dataset_path(task: str, demos: int, frame: str | None = None) -> Path:
    """The demonstrations of ``task`` (UR5e ones recorded here on first use), in the task
    ``frame`` (UR5e; converted beside the world recording on first use) or the world's."""
    if family(task) == "ur5e":
        from robot_il.envs.task_frame import FRAME_KEYS, frame_dataset

        from policies import demos as recorded_demos  # benchmarks/policies.py
        from robot_il.dataset import Dataset

        world = recorded_demos(RUNS, UR5E_TASKS[task], "mujoco", demos)
        if not frame:
            return world
        converted = world.parent.with_name(f"{world.parent.name}_frame_{frame}") / "env.zarr"
        if converted.is_dir():  # converted before: reused while its keys are today's
            specs = Dataset.open(converted).specs
            if all(specs[key].shape == shape for key, shape in FRAME_KEYS.items()):
                return converted
        return frame_dataset(world, converted, frame, overwrite=True)
    if frame:
        raise SystemExit(f"--task-frame: {task} has no task frame")
    path = dmc_expert_dataset(task)
    if not path.is_dir():
        raise SystemExit(f"{path}: no expert dataset for {task}; make it with "
                         f"benchmarks/dmc_experts.py train, then record --task {task}")  # fmt: skip
    return path


def expert_return(task: str, demos: int) -> float | None:
    """Mean return of the first ``demos`` recorded expert episodes (the ones imitated); None
    for UR5e tasks (their recordings keep successful episodes only, no returns)."""
    import zarr

    if family(task) == "ur5e":
        return None
    attrs = zarr.open_group(str(dataset_path(task, demos)), mode="r").attrs
    return float(np.mean(attrs["expert_returns"][:demos]))


def expert_seed(task: str, demos: int) -> int | None:
    """The seed the imitated SAC expert was trained with (0 for the first experts, whose
    datasets predate the attribute); None for UR5e tasks (a scripted expert)."""
    import zarr

    if family(task) == "ur5e":
        return None
    attrs = zarr.open_group(str(dataset_path(task, demos)), mode="r").attrs
    return int(attrs.get("expert_seed", 0))


def row_expert_seed(row: dict[str, Any]) -> int | None:
    """A row's ``expert_seed``; DMC rows from before the field imitated seed 0's expert."""
    return row.get("expert_seed", 0 if family(row["task"]) == "dmc" else None)


def run_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """The fields of ``RUN_KEY`` that tell a row's run and step (``row_expert_seed``: a DMC
    row from before ``expert_seed`` is seed 0's expert's; a row from before ``deviation``
    had none)."""
    fill = {"expert_seed": row_expert_seed(row), "deviation": row.get("deviation") or ""}
    return tuple(fill[k] if k in fill else row.get(k) for k in RUN_KEY)


def existing_rows() -> list[dict[str, Any]]:
    return json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []


def append_row(row: dict[str, Any], results: Path | None = None) -> None:
    """Add ``row`` to the ``results`` file (``RESULTS`` unless given), replacing a row of the
    same run and step; the row gets the ``code`` that computed it (``revision``) and the
    ``cpu``.

    Seeds run as parallel processes, so the read-modify-write holds an exclusive lock."""
    from robot_il.provenance import code_provenance, revision

    row = {**row, "code": revision(), "cpu": code_provenance()["cpu"]}
    results = results or RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(results.read_text()) if results.exists() else {"runs": []}
        data["runs"] = [r for r in data["runs"] if run_key(r) != run_key(row)]
        data["runs"].append(row)
        tmp = results.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, results)


ONLINE_METHODS = ("opt_ail", "iq_learn", "dac")
"""Parts that train in the online loop; ``--model-based`` makes ``opt_ail`` model-based."""


def deviation(args: argparse.Namespace) -> str | None:
    """The deviations an online run has (behaviour cloning, twin critics, the reward's input,
    the critic warm-up), as its rows and its directory name them (None: none)."""
    parts = [f"{args.task_frame} frame"] if args.task_frame else []
    parts += [f"bc-init{args.bc_pretrain_steps}"] if args.bc_pretrain_steps else []
    if args.bc_weight:
        decay = f" to 0 in {args.bc_decay_updates}" if args.bc_decay_updates else ""
        parts.append(f"bc {args.bc_weight:g}{decay}")
    if args.bc_loss != "nll":
        parts.append(f"bc-loss {args.bc_loss}")
    if args.log_std_min != LOG_STD_MIN:
        parts.append(f"log-std-min {args.log_std_min:g}")
    if args.action_bounds != "env":
        parts.append(f"action-bounds demos {args.action_bounds_margin:g}")
    if args.twin_critics:
        parts.append("twin-q")
    if args.bc_reference:
        parts.append("bc-reference")
    if args.actor_lr is not None:
        parts.append(f"actor-lr {args.actor_lr:g}")
    if args.clone_radius:
        parts.append(f"clone-radius {args.clone_radius:g}")
    if args.critic_layer_norm:
        parts.append("critic-layernorm")
    if args.learn_temperature:
        parts.append("learned-alpha")
    if args.hindsight_goal:
        parts.append(
            f"hindsight {args.hindsight_goal} {args.hindsight_min_move:g}"
            + (" as expert" if args.hindsight_as_expert else "")
        )
    if args.reward_input != "state_action":
        parts.append(f"reward {args.reward_input.replace('_', '-')}")
    if args.reward_obs_keys:
        parts.append(f"reward-keys {'+'.join(sorted(args.reward_obs_keys))}")
    if args.reward_offsets:
        parts.append(f"reward-offsets {'+'.join(args.reward_offsets)}")
    if args.reward_source != "learned":
        parts.append(f"{args.reward_source}-reward")
    if args.critic_warmup_updates:
        parts.append(f"critic-warmup{args.critic_warmup_updates}")
    if args.critic_updates_per_step > 1:
        parts.append(f"utd {args.critic_updates_per_step}")
    if args.reward_output != "tanh":
        parts.append(f"{args.reward_output}-reward")
    if args.reward_drift_weight:
        parts.append(f"drift {args.reward_drift_weight:g}")
    bound = td_bound(args.td_clip, args.reward_output)
    if bound != TANH_TD_BOUND:  # named by the bound it clips to, however it was reached
        parts.append(f"td-clip {bound:g}")
    return ", ".join(parts) or None


def run_directory(args: argparse.Namespace, seed: int) -> Path:
    """Each run's own directory (model-free OPT-AIL keeps its first sessions' names; deviations
    too many to spell out within ``RUN_NAME_LIMIT`` are named by a digest)."""
    name = f"s{seed}_d{args.demos}_k{args.subsample}"
    if args.obs_normalization != "raw":
        name += f"_obs{args.obs_normalization}"
    if args.precision != "fp32":
        name += f"_{args.precision}"
    expert_id = expert_seed(args.task, args.demos)
    if expert_id:
        name += f"_x{expert_id}"
    if deviation(args):
        spelled = "_" + deviation(args).replace(", ", "_").replace(" ", "")
        digest = "_dev" + hashlib.sha256(deviation(args).encode()).hexdigest()[:12]
        fits = len(f"{name}{spelled}_{args.profile}".encode()) <= RUN_NAME_LIMIT
        name += spelled if fits else digest
    if args.part == "opt_ail" and not args.model_based:
        return RUNS / task_slug(args.task) / f"{name}_{args.profile}"
    method = args.part + ("_model_based" if args.model_based else "")
    return RUNS / task_slug(args.task) / method / f"{name}_{args.profile}"


def run_fields(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """What names an online run in its rows: task, method, variant, deviations, profile,
    inputs, precision (and, in ``bf16``, whether this CPU rounds the products: one without
    AMX runs them on oneDNN's float32 kernels), seed, demonstrations and expert."""
    from robot_il.policies.opt_ail.relu_mlp import bf16_rounds_operands

    rounding = {"bf16_rounds": bf16_rounds_operands()} if args.precision == "bf16" else {}
    return {
        "task": args.task, "method": args.part,
        "variant": "model-based" if args.model_based else "model-free",
        "deviation": deviation(args), "profile": args.profile,
        "obs_normalization": None if args.obs_normalization == "raw" else args.obs_normalization,
        "precision": None if args.precision == "fp32" else args.precision, **rounding,
        **frame_field(args), "seed": seed, "demos": args.demos,
        "subsample": args.subsample, "expert_return": expert_return(args.task, args.demos),
        "expert_seed": expert_seed(args.task, args.demos),
    }  # fmt: skip


def frame_field(args: argparse.Namespace) -> dict[str, str]:
    """``{"frame": name}`` for a run in a task frame (``--task-frame``); world-frame rows,
    the older ones among them, carry no such field."""
    return {"frame": args.task_frame} if args.task_frame else {}


def run_final_evaluation(args: argparse.Namespace) -> None:
    """``--final-episodes N``: each seed's run of the part evaluated again at ``--env-steps``
    (its checkpoint there) on N episodes from env seed ``FINAL_EVAL_SEED``, a row per run in
    ``FINAL_RESULTS`` (the in-loop row's fields, ``episodes`` and ``first_seed`` added). An
    in-loop evaluation on DMC is 10 episodes, where one walker fall (return about 10 against
    900) moves a seed's mean by 90; N = 100 narrows that tenfold. ``table --results`` reads
    the file as it reads the in-loop one. The run's directory is the one trained here, so its
    ``bf16_rounds`` is this CPU's."""
    import torch
    from robot_il.policies import load_policy

    from robot_il.train.evaluate import evaluate, make_eval_env

    torch.set_num_threads(1)
    for seed in args.seeds:
        checkpoint = run_directory(args, seed) / "checkpoints" / f"step_{args.env_steps:07d}"
        if not checkpoint.is_dir():
            raise SystemExit(f"{checkpoint}: no checkpoint at {args.env_steps} env steps")
        started = time.perf_counter()
        policy = load_policy(checkpoint)
        env = make_eval_env(policy.spec)
        result = evaluate(policy, env, episodes=args.final_episodes, seed=FINAL_EVAL_SEED)
        env.close()
        row = {
            **run_fields(args, seed), "env_steps": args.env_steps,
            "episodes": args.final_episodes, "first_seed": FINAL_EVAL_SEED,
            "return": float(np.mean(result.returns)),
            **success_fields(args.task, result.success_rate, result.interval),
            "wall_s": round(time.perf_counter() - started, 1),
            "returns": [round(r, 1) for r in result.returns],
            "loadavg": [round(v, 2) for v in os.getloadavg()],
        }  # fmt: skip
        append_row(row, FINAL_RESULTS)
        success = f", {result.line()}" if family(args.task) == "ur5e" else ""
        print(f"{args.part} {args.task} seed {seed} @ {args.env_steps}: return "
              f"{row['return']:.1f} over {args.final_episodes} episodes from seed "
              f"{FINAL_EVAL_SEED}{success}, load {os.getloadavg()[0]:.2f}")  # fmt: skip


def online_config(args: argparse.Namespace, seed: int) -> Any:
    """The training config of one online run (``--seeds``' ``seed``): the part's defaults with
    the run's directory, budget and data, and each deviation flag on its field."""
    from robot_il.train.config import load_config

    config = load_config(args.part, None, [])
    config = dataclasses.replace(
        config, dataset=str(dataset_path(args.task, args.demos, args.task_frame)),
        out=str(run_directory(args, seed)),
        env_steps=args.env_steps, seed=seed, max_episodes=args.demos,
        demo_subsample=args.subsample, save_every=args.save_every, progress=True,
        buffer_size=MAX_ENV_STEPS,  # so that a rerun with a larger budget resumes
    )  # fmt: skip
    config.eval.every = args.eval_every
    config.eval.episodes = EVAL_EPISODES[family(args.task)]
    config.policy.matmul_precision = args.precision
    config.policy.bc_pretrain_steps = args.bc_pretrain_steps
    config.policy.bc_weight = args.bc_weight
    config.policy.bc_decay_updates = args.bc_decay_updates
    config.policy.bc_loss = args.bc_loss
    config.policy.log_std_min = args.log_std_min
    config.policy.action_bounds = args.action_bounds
    config.policy.action_bounds_margin = args.action_bounds_margin
    config.policy.twin_critics = args.twin_critics
    config.policy.bc_reference = args.bc_reference
    config.policy.clone_radius = args.clone_radius
    config.policy.critic_layer_norm = args.critic_layer_norm
    config.policy.hindsight_goal = args.hindsight_goal
    config.policy.hindsight_min_move = args.hindsight_min_move
    config.policy.hindsight_as_expert = args.hindsight_as_expert
    config.policy.learn_temperature = args.learn_temperature
    if args.actor_lr is not None:
        config.policy.actor_lr = args.actor_lr
    if args.part != "iq_learn":  # IQ-Learn has no reward net (run_online refuses these)
        config.policy.reward_input = args.reward_input
        config.policy.reward_obs_keys = tuple(sorted(args.reward_obs_keys))
        config.policy.reward_offsets = tuple(args.reward_offsets)
        config.policy.reward_source = args.reward_source
        config.policy.critic_warmup_updates = args.critic_warmup_updates
        config.policy.critic_updates_per_step = args.critic_updates_per_step
        config.policy.td_clip = args.td_clip
    if args.obs_normalization != "raw":
        config.policy.normalize_observations = True
        config.policy.normalization = args.obs_normalization
    if args.part == "opt_ail":
        config.policy.reward_output = args.reward_output
        config.policy.reward_drift_weight = args.reward_drift_weight
        config.policy.model_based = args.model_based
        if args.profile == "cpu" and not args.model_based:
            config.policy.optimism_states = 128
        if args.profile == "paper" and args.model_based:  # the reference's fit schedule
            config.policy.model_every, config.policy.model_max_steps = 250, 5000
    return config


def run_online(args: argparse.Namespace) -> None:
    """``--seeds`` runs of the part's method in the online loop, a row per evaluation."""
    from robot_il.train.online import train_online

    if args.model_based and args.part != "opt_ail":
        raise SystemExit("--model-based applies to opt_ail only")
    reward_deviations = (args.reward_input != "state_action", args.reward_obs_keys,
                         args.reward_offsets, args.reward_source != "learned",
                         args.critic_warmup_updates, args.critic_updates_per_step > 1,
                         args.td_clip is not None)  # fmt: skip
    if args.part == "iq_learn" and any(reward_deviations):
        # IQ-Learn has no reward net: the run would be named for a deviation it does not have
        raise SystemExit("--reward-input, --reward-obs-keys, --reward-offsets, --reward-source, "
                         "--critic-warmup-updates, --critic-updates-per-step and --td-clip apply "
                         "to opt_ail and dac only (IQ-Learn has no reward net)")  # fmt: skip
    if (args.reward_output != "tanh" or args.reward_drift_weight) and args.part != "opt_ail":
        raise SystemExit("--reward-output and --reward-drift-weight apply to opt_ail only "
                         "(DAC's reward is its logit, IQ-Learn has no reward net)")  # fmt: skip
    expert = expert_return(args.task, args.demos)
    variant = "model-based" if args.model_based else "model-free"
    for seed in args.seeds:
        config = online_config(args, seed)
        fields = run_fields(args, seed)  # once per run: it reads the dataset's attributes

        def record(evaluation: dict[str, Any], seed: int = seed, fields: dict = fields) -> None:
            append_row({
                **fields, "env_steps": evaluation["step"],
                "return": evaluation["eval_return"],
                **success_fields(args.task, evaluation["eval_success"],
                                 (evaluation["eval_low"], evaluation["eval_high"])),
                "wall_s": round(evaluation["wall_s"], 1),
                "returns": [round(r, 1) for r in evaluation["returns"]],
                "loadavg": [round(v, 2) for v in os.getloadavg()],
            })  # fmt: skip
            print(f"{args.part} ({variant}) {args.task} seed {seed} @ {evaluation['step']} env "
                  f"steps: return {evaluation['eval_return']:.1f} (expert {expert}), success "
                  f"{evaluation['eval_success']:.0%}, wall {evaluation['wall_s']:.0f} s, "
                  f"load {os.getloadavg()[0]:.2f}")  # fmt: skip

        result = train_online(config, on_evaluation=record)
        print(f"{args.task} seed {seed}: {result.env_steps} env steps in {result.wall_s:.0f} s "
              f"(one core, load {os.getloadavg()[0]:.2f})")  # fmt: skip


def success_fields(task: str, rate: float, interval: tuple[float, float]) -> dict[str, Any]:
    """A row's success fields: the rate and its 95% interval for UR5e tasks, null for DMC."""
    if family(task) != "ur5e":
        return {"success_rate": None}
    return {"success_rate": rate, "success_ci": [round(v, 3) for v in interval]}


def run_bc(args: argparse.Namespace) -> None:
    """Tuned BC: the grid of ``BC_GRID`` on the same demonstrations, one row per setting;
    settings that already have their row (same training steps) are skipped, so a rerun
    finishes the grid."""
    import torch
    from robot_il.policies import load_policy

    from robot_il.train.config import BCTrainConfig, EvalConfig
    from robot_il.train.evaluate import evaluate, make_eval_env
    from robot_il.train.trainer import train

    expert = expert_return(args.task, args.demos)
    expert_id = expert_seed(args.task, args.demos)
    torch.set_num_threads(1)
    done = {(r["seed"], r["weight_decay"], r["lr"]) for r in existing_rows()
            if r["task"] == args.task and r["method"] == "bc" and r["demos"] == args.demos
            and row_expert_seed(r) == expert_id and r.get("frame") == args.task_frame
            and r["subsample"] == args.subsample and r.get("steps") == args.bc_steps}  # fmt: skip
    grid = (args.bc_weight_decays or BC_GRID["weight_decay"], args.bc_lrs or BC_GRID["lr"])
    for seed, weight_decay, lr in itertools.product(args.seeds, *grid):
        # a different step budget trains anew: a run resumes only on its own schedule
        name = (f"s{seed}_d{args.demos}_k{args.subsample}_wd{weight_decay:g}_lr{lr:g}"
                f"_steps{args.bc_steps}" + (f"_x{expert_id}" if expert_id else "")
                + (f"_frame_{args.task_frame}" if args.task_frame else ""))  # fmt: skip
        if (seed, weight_decay, lr) in done:
            print(f"BC {args.task} {name}: row present, skipped")
            continue
        out = RUNS / task_slug(args.task) / "bc" / name
        config = BCTrainConfig(
            dataset=str(dataset_path(args.task, args.demos, args.task_frame)), out=str(out),
            steps=args.bc_steps, lr=lr, weight_decay=weight_decay, seed=seed,
            max_episodes=args.demos, progress=False, eval=EvalConfig(episodes=0),
        )  # fmt: skip
        config.policy.head = "gaussian"
        config.policy.normalization = "gaussian"
        started = time.perf_counter()
        if args.subsample > 1:
            raise SystemExit("BC on subsampled trajectories is not built yet")
        policy = load_policy(train(config).checkpoint)
        env = make_eval_env(policy.spec)  # the task's own episodes, as the online loop's
        result = evaluate(policy, env, episodes=EVAL_EPISODES[family(args.task)], seed=10_000)
        env.close()
        row = {
            "task": args.task, "method": "bc", "variant": "gaussian", "profile": None,
            **frame_field(args), "seed": seed, "demos": args.demos, "subsample": args.subsample,
            "env_steps": 0, "return": float(np.mean(result.returns)), "expert_return": expert,
            "expert_seed": expert_id,
            **success_fields(args.task, result.success_rate, result.interval),
            "wall_s": round(time.perf_counter() - started, 1),
            "weight_decay": weight_decay, "lr": lr, "steps": args.bc_steps,
            "returns": [round(r, 1) for r in result.returns],
            "loadavg": [round(v, 2) for v in os.getloadavg()],
        }  # fmt: skip
        append_row(row)
        print(f"BC {args.task} wd {weight_decay:g} lr {lr:g} seed {seed}: return "
              f"{row['return']:.1f} (expert {expert}), {result.line()}, "
              f"load {os.getloadavg()[0]:.2f}")  # fmt: skip


def main() -> None:
    from robot_il.provenance import code_provenance

    code_provenance()  # the code this process loaded, for its rows (``append_row``)
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=(*ONLINE_METHODS, "bc"))
    parser.add_argument("--model-based", action="store_true", help="opt_ail: model-based")
    parser.add_argument("--task", default="dmc:walker_walk",
                        choices=(*PAPER_NAMES, *UR5E_TASKS))  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--demos", type=int, default=None, help="1 (DMC), 10 (UR5e)")
    parser.add_argument("--subsample", type=int, default=1)
    parser.add_argument("--task-frame", choices=TASK_FRAMES, default=None,
                        help="UR5e: demonstrations, env and policy in this task frame "
                        "(robot_il.envs.task_frame; a deviation for online runs)")  # fmt: skip
    parser.add_argument("--env-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--save-every", type=int, default=5_000)
    parser.add_argument("--profile", choices=("cpu", "paper"), default="cpu")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="online learners: the hidden layers' matmul precision in updates",
    )
    parser.add_argument(
        "--obs-normalization",
        choices=("raw", "gaussian", "minmax"),
        help="online learners' inputs: raw (DMC default) or the "
        "demonstrations' statistics (UR5e default: gaussian)",
    )
    parser.add_argument(
        "--bc-pretrain-steps",
        type=int,
        default=0,
        help="online learners: BC steps on the actor before the first env "
        "step (a deviation; 0: off)",
    )
    parser.add_argument(
        "--bc-weight",
        type=float,
        default=0.0,
        help="online learners: weight of a BC term in the actor's loss (a deviation; 0: off)",
    )
    parser.add_argument(
        "--bc-decay-updates",
        type=int,
        default=0,
        help="online learners: the BC term's weight falls linearly to 0 over "
        "this many actor updates (0: constant)",
    )
    parser.add_argument(
        "--log-std-min",
        type=float,
        default=LOG_STD_MIN,
        help="online learners: the actor's least log std (a deviation above "
        f"the paper's {LOG_STD_MIN:g})",
    )
    parser.add_argument(
        "--action-bounds",
        choices=("env", "demos"),
        default="env",
        help="online learners: [-1, 1] maps to the env's action box (the papers) or to the "
        "demonstrations' largest |a| times --action-bounds-margin (a deviation)",
    )
    parser.add_argument("--action-bounds-margin", type=float, default=1.5)
    parser.add_argument(
        "--bc-loss",
        choices=("nll", "mse"),
        default="nll",
        help="the BC pretraining's and BC term's loss: the actor's NLL or its mean's squared "
        "error (a deviation)",
    )
    parser.add_argument(
        "--twin-critics",
        action="store_true",
        help="OPT-AIL, DAC: two Q-networks and their minimum (a deviation)",
    )
    parser.add_argument(
        "--bc-reference",
        action="store_true",
        help="OPT-AIL, DAC: the frozen clone's action competes with the actor's by Q in "
        "acting, TD targets and deployment (IBRL; a deviation; needs --bc-pretrain-steps)",
    )
    parser.add_argument(
        "--clone-radius",
        type=float,
        default=0.0,
        help="online learners: the actor's mean stays within this (pre-squash) of the frozen "
        "clone's, a bounded residual (a deviation; needs --bc-pretrain-steps)",
    )
    parser.add_argument(
        "--hindsight-goal",
        default="",
        help="online learners: 'achieved-goal' observation keys (e.g. object_pose-target_pos); "
        "training episodes relabelled to where the achieved position ended join the BC "
        "term's data (a deviation; needs --bc-weight)",
    )
    parser.add_argument(
        "--hindsight-min-move",
        type=float,
        default=0.05,
        help="--hindsight-goal: only episodes whose achieved position moved this far (m)",
    )
    parser.add_argument(
        "--hindsight-as-expert",
        action="store_true",
        help="--hindsight-goal: the relabelled transitions join every expert batch (the "
        "reward's, the critic's and the BC term's), not the BC term's alone",
    )
    parser.add_argument(
        "--learn-temperature",
        action="store_true",
        help="online learners: alpha learned as SAC's, toward -1 nat of entropy per action "
        "dimension (a deviation; the papers fix alpha)",
    )
    parser.add_argument(
        "--critic-layer-norm",
        action="store_true",
        help="online learners: a LayerNorm after each hidden layer of the Q-networks (RLPD's; "
        "a deviation)",
    )
    parser.add_argument(
        "--actor-lr",
        type=float,
        default=None,
        help="online learners: the actor's Adam lr (a deviation; default the paper's 3e-5)",
    )
    parser.add_argument(
        "--reward-input",
        choices=("state_action", "state_next_state"),
        default="state_action",
        help="OPT-AIL, DAC: the reward net's input, [s, a] (the papers) or [s, s'] (a deviation)",
    )
    parser.add_argument(
        "--reward-obs-keys",
        nargs="+",
        default=[],
        help="OPT-AIL, DAC: the observation keys the reward net sees (a deviation; default all)",
    )
    parser.add_argument(
        "--reward-offsets",
        nargs="+",
        default=[],
        help="OPT-AIL, DAC: 'a-b' position offsets the reward net also sees (a deviation)",
    )
    parser.add_argument(
        "--reward-source",
        choices=("learned", "task"),
        default="learned",
        help="OPT-AIL, DAC: the critic's reward, the learned one or the task's own (a diagnostic)",
    )
    parser.add_argument(
        "--critic-warmup-updates",
        type=int,
        default=0,
        help="OPT-AIL, DAC: actor-frozen updates before the first actor step (a deviation; 0: off)",
    )
    parser.add_argument(
        "--critic-updates-per-step",
        type=int,
        default=1,
        help="OPT-AIL, DAC (model-free): updates per env step, the actor in the last only "
        "(RLPD's update-to-data ratio; a deviation)",
    )
    parser.add_argument(
        "--reward-output",
        choices=("tanh", "linear"),
        default="tanh",
        help="OPT-AIL: its reward bounded by a tanh (the paper) or linear, WGAN-GP's critic "
        "(a deviation)",
    )
    parser.add_argument(
        "--reward-drift-weight",
        type=float,
        default=0.0,
        help="OPT-AIL: ProGAN's drift penalty eps_drift E_E[r^2] in the reward's loss, which "
        "holds an unbounded reward's level (a deviation; ProGAN: 0.001)",
    )
    parser.add_argument(
        "--td-clip",
        type=float,
        default=None,
        help="OPT-AIL, DAC: TD targets clipped to +-this (default: the reward's value bound, "
        "the papers' 100 for a tanh reward, none for --reward-output linear)",
    )
    parser.add_argument(
        "--bc-steps",
        type=int,
        default=None,
        help="10000 (DMC), 4000 (UR5e: the BC config's default)",
    )
    parser.add_argument(
        "--bc-weight-decays",
        type=float,
        nargs="+",
        help="bc: run only these of the grid's weight decays (default: all)",
    )
    parser.add_argument(
        "--bc-lrs",
        type=float,
        nargs="+",
        help="bc: run only these of the grid's learning rates (default: all)",
    )
    parser.add_argument(
        "--final-episodes",
        type=int,
        default=0,
        help="online parts: instead of training, evaluate each seed's run at --env-steps on "
        f"this many episodes from seed {FINAL_EVAL_SEED} (rows in {FINAL_RESULTS.name})",
    )
    args = parser.parse_args()
    if args.demos is None:
        args.demos = DEFAULT_DEMOS[family(args.task)]
    if args.bc_steps is None:
        args.bc_steps = DEFAULT_BC_STEPS[family(args.task)]
    if args.obs_normalization is None:
        args.obs_normalization = OBS_NORMALIZATION[family(args.task)]
    online = run_final_evaluation if args.final_episodes else run_online
    {"bc": run_bc}.get(args.part, online)(args)


if __name__ == "__main__":
    main()
