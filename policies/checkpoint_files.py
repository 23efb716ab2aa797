"""A checkpoint's files and its ``config.json``, read and written without torch.

Whoever only needs to know what a checkpoint holds (a policy node's main process, the
simulator or a teleop reading a checkpoint's spec, ``robot-il`` checking its arguments) reads
it here: importing torch costs 2-4 s of CPU per process, and a node's inference process
imports it already.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robot_il.policies.spec import Spec, check_spec

from robot_il.errors import CheckpointError

CHECKPOINT_FORMAT = 1
SPEC_FIELDS = ("robot", "control_hz", "observation", "action_dim")
"""What a checkpoint's spec always holds (``robot_il.policies.spec``): what it runs on, at
which rate, on which inputs, with how many action values."""
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
NORMALIZER_FILE = "normalizer.safetensors"


def read_checkpoint_config(directory: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint, or a ``CheckpointError`` saying why not."""
    path = directory / CONFIG_FILE
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        from robot_il.dataset.durability import is_zarr_store

        if is_zarr_store(directory):  # the usual mix-up: say what it is and what takes it
            raise CheckpointError(
                f"{directory}: a dataset, not a checkpoint (robot-il train ... --dataset "
                f"{directory} trains one)"
            ) from None
        raise CheckpointError(f"{directory}: not a checkpoint (no {CONFIG_FILE})") from None
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: unreadable: {error}") from None
    for field in ("policy_type", "config", "spec"):
        if field not in saved:
            raise CheckpointError(f"{path}: lacks {field!r}")
    version = saved.get("format_version", 1)  # none: saved before the format had versions
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: format version {version!r} is newer than this robot_il reads "
            f"({CHECKPOINT_FORMAT}); upgrade robot_il"
        )
    spec = saved["spec"]
    lacking = [f for f in SPEC_FIELDS if not isinstance(spec, dict) or f not in spec]
    if lacking:  # every reader of a checkpoint takes these for given
        raise CheckpointError(f"{path}: its spec lacks {', '.join(map(repr, lacking))}")
    return saved


def write_policy_config(
    directory: Path,
    policy_type: str,
    config: Any,
    spec: Spec,
    training_data: list[dict[str, Any]] | None = None,
) -> None:
    """Write a checkpoint's ``config.json``: format, policy type, the config dataclass, spec,
    and where it came from (``robot_il.provenance``, with ``training_data``)."""
    from robot_il.provenance import checkpoint_provenance

    saved = {
        "format_version": CHECKPOINT_FORMAT,
        "policy_type": policy_type,
        "config": dataclasses.asdict(config),
        "spec": spec,
        "provenance": checkpoint_provenance(training_data),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(saved, indent=2) + "\n")


def read_policy_config(
    directory: Path, policy_type: str, expected_spec: Spec | None
) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint that holds a ``policy_type`` policy trained
    for ``expected_spec`` (None: any robot), or a ``CheckpointError`` saying why not."""
    saved = read_checkpoint_config(directory)
    if saved["policy_type"] != policy_type:
        raise CheckpointError(
            f"{directory}: holds a {saved['policy_type']!r} policy, not {policy_type!r}"
        )
    if expected_spec is not None:
        check_spec(saved["spec"], expected_spec, str(directory))
    return saved


def config_from_dict(config_class: type, values: Mapping[str, Any], where: str) -> Any:
    """Build a (flat) policy config dataclass from JSON values; lists become tuples."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise CheckpointError(f"{where}: unknown policy config field(s) {', '.join(unknown)}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_class(**converted)
