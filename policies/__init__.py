"""Trainable policies (BC, Diffusion Policy, the actor of OPT-AIL, DAC and IQ-Learn, two-arm
DMPs) and the one way to load a checkpoint.

``POLICIES`` maps a ``policy_type`` (as written in a checkpoint's ``config.json``) to its class,
imported only when asked for, so ``import robot_il.policies`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robot_il.errors import CheckpointError

if TYPE_CHECKING:
    from robot_il.policies.base import Policy

POLICIES: dict[str, str] = {
    "bc": "robot_il.policies.bc:BCPolicy",
    "dac": "robot_il.policies.dac:DACPolicy",
    "diffusion": "robot_il.policies.diffusion:DiffusionPolicy",
    "dmp": "robot_il.policies.dmp.policy:DMPPolicy",
    "iq_learn": "robot_il.policies.iq_learn:IQLearnPolicy",
    "opt_ail": "robot_il.policies.opt_ail:OPTAILPolicy",
}

DEPLOY_SUBDIR = "policy"
"""A training run's output directory keeps its latest deployable checkpoint here."""


def policy_class(policy_type: str) -> type[Policy]:
    """The class registered for ``policy_type``; ``CheckpointError`` for an unknown name."""
    if policy_type not in POLICIES:
        raise CheckpointError(
            f"unknown policy type {policy_type!r} (known: {', '.join(sorted(POLICIES))})"
        )
    module, name = POLICIES[policy_type].split(":")
    return getattr(import_module(module), name)


def load_policy(
    directory: str | Path, expected_spec: dict[str, Any] | None = None, device: str = "cpu"
) -> Policy:
    """Load a checkpoint directory (or a training run's output directory).

    With ``expected_spec`` (e.g. ``robot_il.policies.spec.spec_from_env(env)``) it raises
    ``CheckpointError`` before building the model if the checkpoint was trained for another
    robot, control rate, action mode or observation keys/shapes.
    """
    directory, saved = read_checkpoint(directory)
    return policy_class(saved["policy_type"]).load(directory, expected_spec, device=device)


def read_checkpoint(directory: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint directory that ``directory`` names (itself, or a training run's
    ``DEPLOY_SUBDIR``) and its saved config (``policy_type``, ``config``, ``spec``), read
    without building the model; ``CheckpointError`` if there is none."""
    from robot_il.policies.checkpoint_files import CONFIG_FILE, read_checkpoint_config

    directory = Path(directory)
    if not (directory / CONFIG_FILE).exists() and (directory / DEPLOY_SUBDIR).is_dir():
        directory = directory / DEPLOY_SUBDIR
    if not directory.is_dir():
        where = "" if directory.is_absolute() else f" (relative to {Path.cwd()})"
        raise CheckpointError(f"{directory}: no such checkpoint directory{where}")
    if not (directory / CONFIG_FILE).exists():
        from robot_il.train.trainer import CONFIG_YAML  # only on this path: it imports torch

        if (directory / CONFIG_YAML).exists():  # a run stopped before its first save
            raise CheckpointError(
                f"{directory}: a training run that has saved no checkpoint yet (its "
                "robot-il train command, run again, trains one)"
            )
    return directory, read_checkpoint_config(directory)
