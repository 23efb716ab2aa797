"""``robot-il train bc|diffusion|opt-ail|iq-learn|dac|dmp|dmp-rl``: train a policy.

``robot-il train bc --dataset demos.zarr --out runs/bc [--config bc.yaml] [--steps 5000]
[--policy.horizon 4] [--eval.episodes 20] ...``: every field of the policy's training config
(``robot_il.train.config``) is a flag (tyro); ``--config`` reads a YAML file first, flags
override it. ``robot-il train bc --help`` lists them all. Under ``torchrun`` it trains
data-parallel.

``robot-il train opt-ail --dataset D --out O --env-steps N [--task T]`` learns online from the
dataset's demonstrations by interacting with the env (``robot_il.train.online``); the task,
backend, rate and action mode are the dataset's unless ``--task``/``--backend`` say otherwise.
``--model-based`` (short for ``--policy.model-based``) trains model-based OPT-AIL;
``iq-learn`` and ``dac`` take the same flags and train in the same loop.

``robot-il train dmp --dataset D --out O [--search cma] [--eval-episodes N]``: a two-arm DMP
controller (``robot_il.train.dmp``); without ``--search`` it keeps the hand-set coupling.

``robot-il train dmp-rl --dmp DMP_CHECKPOINT --out O --steps N [--shield-clearance M]``: the
PPO coordinator over that DMP checkpoint's coupling (``robot_il.train.coordinator``), its run
in ``O/coordinator`` (the same command again continues to a larger ``--steps``), the DMP+RL
checkpoint in ``O/policy``.
"""

from __future__ import annotations

import argparse
import os

from robot_il.cli.flags import refuse_file_out
from robot_il.errors import ConfigError

POLICY_TYPES = ("bc", "diffusion", "opt-ail", "iq-learn", "dac", "dmp", "dmp-rl")
"""Policy families on the command line; ``opt-ail`` is the policy type ``opt_ail``."""
DATA_PARALLEL = ("bc", "diffusion")
"""The families ``torchrun`` trains data-parallel; the others train in one process."""


def configure(parser: argparse.ArgumentParser) -> None:
    """The policy family, then its settings, which tyro parses (``bc --help`` lists them)."""
    parser.add_argument("policy_type", choices=POLICY_TYPES, help="policy family")
    parser.add_argument(
        "settings", nargs=argparse.REMAINDER, help="--config FILE and settings flags"
    )
    parser.set_defaults(run=run)


def split_config_flag(settings: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--config FILE`` (or ``--config=FILE``) out of ``settings``. A ``--flag=`` with
    an empty value (a launch file's empty default) is not given: the config file's value, or
    the family's default, holds; an empty FILE means no file."""
    rest, config = [], None
    items = iter(settings)
    for item in items:
        if item == "--config":
            config = next(items, None)
            if config is None:
                raise ConfigError("--config needs a YAML file")
        elif item.startswith("--config="):
            config = item.split("=", 1)[1]
        elif not (item.startswith("--") and item.endswith("=")):
            rest.append(item)
    return (config or None), rest


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.policy_type not in DATA_PARALLEL:
        # each torchrun process would run the whole training into the same --out
        raise ConfigError(f"{args.policy_type} trains in one process; run it without torchrun "
                          f"(torchrun trains {' and '.join(DATA_PARALLEL)})")  # fmt: skip
    if args.policy_type == "dmp":
        return run_dmp(args.settings)
    if args.policy_type == "dmp-rl":
        return run_dmp_rl(args.settings)
    from robot_il.train.config import OnlineTrainConfig, load_config
    from robot_il.train.trainer import train

    config_file, settings = split_config_flag(args.settings)
    if args.policy_type == "opt-ail":
        settings = ["--policy.model-based" if s == "--model-based" else s for s in settings]
    config = load_config(args.policy_type.replace("-", "_"), config_file, settings)
    if isinstance(config, OnlineTrainConfig):
        from robot_il.train.online import train_online

        online = train_online(config)
        print(f"checkpoint: {online.checkpoint}")
        if online.evaluations:
            last = online.evaluations[-1]
            success = f", success {last['eval_success']:.0%}" if online.success_test else ""
            print(f"env step {last['step']}: return {last['eval_return']:.1f}{success} in "
                  f"{online.wall_s:.0f} s")  # fmt: skip
        return 0
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {result.checkpoint}")
        if result.evaluation is not None:
            print(result.evaluation.line())
    return 0


def run_dmp(settings: list[str]) -> int:
    """``robot-il train dmp``: build the library, tune or not, save, optionally evaluate."""
    parser = argparse.ArgumentParser(
        prog="robot-il train dmp",
        description="Two-arm DMP controller from two-arm demonstrations (robot-il record --task "
        "bimanual_cross|bimanual_handover), its checkpoint in OUT/policy, for robot-il eval "
        "--checkpoint OUT and robot-il train dmp-rl --dmp OUT.",
    )
    parser.add_argument("--dataset", required=True, help="zarr dataset of two-arm demos")
    parser.add_argument(
        "--out", required=True, help="output directory; a rerun continues its CMA-ES search"
    )
    parser.add_argument(
        "--search",
        default="none",
        choices=("none", "cma"),
        help="none: the hand-set coupling; cma: CMA-ES tunes it on kinematic bimanual_cross "
        "scenes, a line per generation (default none)",
    )
    parser.add_argument("--n-bases", type=int, default=50, help="basis functions per DMP")
    parser.add_argument("--generations", type=int, default=6, help="CMA-ES generations")
    parser.add_argument("--popsize", type=int, default=6, help="CMA-ES population")
    parser.add_argument("--search-scenes", type=int, default=64, help="CMA-ES scenes")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=0,
        help="episodes to evaluate after training, in the data's simulator, seeds from 10000 "
        "(default 0: none)",
    )
    args = parser.parse_args(settings)
    refuse_file_out(args.out, "the checkpoint")
    if args.n_bases < 2:
        raise ConfigError(f"--n-bases must be at least 2, got {args.n_bases}")
    for name in ("generations", "popsize", "search_scenes"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be at least 1, got {getattr(args, name)}")
    from robot_il.train.dmp import train_dmp

    result = train_dmp(
        args.dataset,
        args.out,
        args.search,
        args.n_bases,
        args.generations,
        args.popsize,
        args.search_scenes,
    )
    print(f"checkpoint: {result.checkpoint} ({result.segments} DMP segments)")
    if args.eval_episodes > 0:
        from robot_il.policies import load_policy
        from robot_il.train.evaluate import evaluate, make_eval_env

        policy = load_policy(result.checkpoint)
        env = make_eval_env(policy.spec)
        try:
            outcome = evaluate(policy, env, episodes=args.eval_episodes, seed=10_000)
        finally:
            env.close()
        print(outcome.line())
    return 0


def run_dmp_rl(settings: list[str]) -> int:
    """``robot-il train dmp-rl``: check the flags and the DMP checkpoint, train the coordinator
    (or continue it), export the DMP+RL checkpoint."""
    from robot_il.cli.flags import COUNT, SEED
    from robot_il.train.coordinator import CoordinatorTrainConfig as Config

    parser = argparse.ArgumentParser(
        prog="robot-il train dmp-rl",
        description="PPO coordinator over a bimanual_cross DMP checkpoint's coupling (run in "
        "OUT/coordinator), exported as a DMP+RL checkpoint to OUT/policy.",
    )
    parser.add_argument(
        "--dmp", required=True, help="bimanual_cross DMP checkpoint or run (robot-il train dmp)"
    )
    parser.add_argument("--out", required=True, help="output directory; resumed if it exists")
    parser.add_argument(
        "--steps",
        type=COUNT,
        required=True,
        help="PPO env steps in all, rounded up to whole rollouts (a rerun goes on to it)",
    )
    parser.add_argument(
        "--shield-clearance", type=float, default=None, help="distance shield, m (default none)"
    )
    parser.add_argument(
        "--seed", type=SEED, default=Config.seed, help="PPO's seed (net init, action sampling)"
    )
    parser.add_argument("--threads", type=COUNT, default=Config.threads, help="torch threads")
    parser.add_argument("--n-envs", type=COUNT, default=Config.n_envs, help="scenes per batch")
    parser.add_argument("--n-steps", type=COUNT, default=Config.n_steps, help="steps per rollout")
    parser.add_argument("--batch-size", type=COUNT, default=Config.batch_size, help="minibatch")
    parser.add_argument(
        "--chunk-steps", type=COUNT, default=Config.chunk_steps, help="env steps between saves"
    )
    args = parser.parse_args(settings)
    refuse_file_out(args.out, "the run")
    rollout = args.n_envs * args.n_steps
    if not 2 <= args.batch_size <= rollout:
        raise ConfigError(
            f"--batch-size must be in 2..{rollout} (one rollout: --n-envs {args.n_envs} x "
            f"--n-steps {args.n_steps}), got {args.batch_size}"
        )
    from robot_il.train.coordinator import train_dmp_rl

    config = Config(
        total_steps=args.steps,
        chunk_steps=args.chunk_steps,
        n_envs=args.n_envs,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        threads=args.threads,
    )
    result = train_dmp_rl(args.dmp, args.out, config, args.shield_clearance)
    shield = "no" if args.shield_clearance is None else f"{args.shield_clearance} m"
    print(f"checkpoint: {result.checkpoint} (coordinator {result.steps} env steps, {shield} "
          "shield)")  # fmt: skip
    return 0
