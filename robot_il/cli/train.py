"""``robot-il train bc|diffusion|opt-ail``: train a policy from a zarr dataset.

``robot-il train bc --dataset demos.zarr --out runs/bc [--config bc.yaml] [--steps 5000]
[--policy.horizon 4] [--eval.episodes 20] ...``: every field of the policy's training config
(``robot_il.train.config``) is a flag (tyro); ``--config`` reads a YAML file first, flags
override it. ``robot-il train bc --help`` lists them all. Under ``torchrun`` it trains
data-parallel.

``robot-il train opt-ail --dataset D --out O --env-steps N [--task T]`` learns online from the
dataset's demonstrations by interacting with the env (``robot_il.train.online``); the task,
backend, rate and action mode are the dataset's unless ``--task``/``--backend`` say otherwise.
"""

from __future__ import annotations

import argparse
import os

from robot_il.errors import ConfigError

POLICY_TYPES = ("bc", "diffusion", "opt-ail")
"""Policy families on the command line; ``opt-ail`` is the policy type ``opt_ail``."""


def configure(parser: argparse.ArgumentParser) -> None:
    """The policy family, then its settings, which tyro parses (``bc --help`` lists them)."""
    parser.add_argument("policy_type", choices=POLICY_TYPES, help="policy family")
    parser.add_argument(
        "settings", nargs=argparse.REMAINDER, help="--config FILE and settings flags"
    )
    parser.set_defaults(run=run)


def split_config_flag(settings: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--config FILE`` (or ``--config=FILE``) out of ``settings``; an empty FILE
    (as a launch file's default gives) means no file."""
    rest, config = [], None
    items = iter(settings)
    for item in items:
        if item == "--config":
            config = next(items, None)
            if config is None:
                raise ConfigError("--config needs a YAML file")
        elif item.startswith("--config="):
            config = item.split("=", 1)[1]
        else:
            rest.append(item)
    return (config or None), rest


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from robot_il.train.config import OnlineTrainConfig, load_config
    from robot_il.train.trainer import train

    config_file, settings = split_config_flag(args.settings)
    config = load_config(args.policy_type.replace("-", "_"), config_file, settings)
    if isinstance(config, OnlineTrainConfig):
        from robot_il.train.online import train_online

        online = train_online(config)
        print(f"checkpoint: {online.checkpoint}")
        if online.evaluations:
            last = online.evaluations[-1]
            print(f"env step {last['step']}: return {last['eval_return']:.1f}, success "
                  f"{last['eval_success']:.0%} in {online.wall_s:.0f} s")  # fmt: skip
        return 0
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {result.checkpoint}")
        if result.evaluation is not None:
            print(result.evaluation.line())
    return 0
