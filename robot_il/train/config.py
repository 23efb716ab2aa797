"""Training configuration: dataclasses, filled from defaults, then a YAML file, then the
command line (tyro), in that order of precedence.

One ``TrainConfig`` subclass per policy family carries that family's defaults (a diffusion
model wants a smaller learning rate and more steps than an MLP); ``TRAIN_CONFIGS`` maps a
policy type to it. YAML files mirror the dataclasses::

    steps: 5000
    policy: {horizon: 16, n_action_steps: 8}
    eval: {every: 1000, episodes: 20}
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from robot_il.errors import ConfigError
from robot_il.policies.base import PolicyConfig
from robot_il.policies.bc.policy import BCConfig
from robot_il.policies.dac.policy import DACConfig
from robot_il.policies.diffusion.policy import DiffusionConfig
from robot_il.policies.iq_learn.policy import IQLearnConfig
from robot_il.policies.opt_ail.policy import OPTAILConfig


@dataclasses.dataclass
class EvalConfig:
    """Evaluation rollouts in simulation. Episode ``i`` uses env seed ``seed + i``, so two
    policies meet the same initial states."""

    every: int = 0
    """steps (env steps online) between evaluations (0: only after the last step)"""
    episodes: int = 10
    """episodes per evaluation (0: no evaluation)"""
    seed: int = 10_000
    """env seed of the first episode"""
    task: str | None = None
    """task to evaluate on (None: the dataset's)"""
    backend: str | None = None
    """mujoco or pybullet (None: the dataset's)"""
    max_episode_steps: int | None = None
    """episode step limit (None: the task's)"""

    def validate(self) -> None:
        """``ConfigError`` for a count out of range (see ``check_run``)."""
        _at_least(self, {"every": 0, "episodes": 0, "seed": 0, "max_episode_steps": 1}, "eval.")
        if self.episodes:  # before training, not at its first evaluation
            from robot_il.train.evaluate import check_seeds

            check_seeds(self.seed, self.episodes)


@dataclasses.dataclass
class TrainConfig:
    """Settings shared by every policy family; each field's one line is its ``--help``.

    ``out`` receives ``policy/`` (the latest deployable checkpoint), ``checkpoints/step_N/``,
    ``train_state/`` (to resume), ``metrics.csv``, ``tensorboard/`` and
    ``train_config.yaml``. A resumed run keeps its ``steps``, batch size, optimizer and
    schedule settings, seed and split (another value is refused, ``trainer.RESUME_FIXED``: a
    longer run is a new ``out``). Small policies train fastest on one thread, and more
    threads than free cores slows every step many times over. ``max_episodes`` shows how
    success grows with demonstrations, from one recording.
    """

    dataset: str = ""
    """zarr dataset to train on (path or fsspec URL)"""
    out: str = ""
    """run directory (checkpoints, logs, state); an existing run there is resumed"""
    steps: int = 2000
    """optimizer steps of the whole run"""
    batch_size: int = 256
    """training windows per step (per process under torchrun)"""
    lr: float = 1e-3
    """peak AdamW learning rate (linear warm-up, then cosine decay to 0)"""
    weight_decay: float = 1e-6
    """AdamW weight decay"""
    warmup_steps: int = 100
    """steps of linear learning-rate warm-up"""
    grad_clip: float = 10.0
    """largest gradient norm; larger ones are scaled down to it"""
    seed: int = 0
    """seed of the weights, batches and validation split"""
    val_fraction: float = 0.0
    """fraction of episodes held out for a validation loss (0: none)"""
    max_episodes: int = 0
    """train on the dataset's first N episodes (0: all)"""
    log_every: int = 100
    """steps between rows of metrics.csv and TensorBoard"""
    save_every: int = 1000
    """steps between checkpoints (the last step always saves)"""
    device: str = "cpu"
    """torch device: cpu, cuda or cuda:N"""
    threads: int = 1
    """torch CPU threads per process (0: torch's default)"""
    resume: bool = True
    """resume a run found in --out (--no-resume: refuse it)"""
    progress: bool = True
    """show a progress bar"""
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)

    def validate(self) -> None:
        """``ConfigError`` for a setting no run can take (see ``check_run``)."""
        minimums = {"steps": 1, "batch_size": 1, "warmup_steps": 0, "seed": 0,
                    "max_episodes": 0, "log_every": 1, "save_every": 1, "threads": 0}  # fmt: skip
        check_run(self, minimums)
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got "
                                  f"{getattr(self, name)}")  # fmt: skip


@dataclasses.dataclass
class BCTrainConfig(TrainConfig):
    policy: BCConfig = dataclasses.field(default_factory=BCConfig)


@dataclasses.dataclass
class DiffusionTrainConfig(TrainConfig):
    steps: int = 4000
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 200
    policy: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)


@dataclasses.dataclass
class OnlineTrainConfig:
    """Settings of the online loop (``robot_il.train.online``), shared by every algorithm that
    learns by interacting with an env; each field's one line is its ``--help``.

    The demonstrations are whole trajectories, and the env runs at the dataset's rate. A
    save waits for the end of the episode under way, so a resumed run restarts at an episode
    boundary and continues bit-exactly, also when rerun with a larger ``env_steps`` (a
    budget that ended mid-episode plays that episode again; ``robot_il.train.online``).
    ``out`` receives what ``TrainConfig`` describes plus ``train_state/replay.npz``. The
    ``device`` holds the learner's networks and runs its updates; acting, the env, the
    replay buffer and evaluation stay on the CPU side as they are.
    """

    dataset: str = ""
    """zarr dataset of the expert's demonstrations (path or fsspec URL)"""
    out: str = ""
    """run directory (checkpoints, logs, state); an existing run there is resumed"""
    env_steps: int = 100_000
    """interaction budget: env steps of the whole run"""
    task: str | None = None
    """task to interact with (None: the dataset's)"""
    backend: str | None = None
    """mujoco or pybullet (None: the dataset's)"""
    seed: int = 0
    """seed of the networks, exploration and training episodes"""
    max_episodes: int = 0
    """imitate the dataset's first N episodes (0: all)"""
    demo_subsample: int = 1
    """keep every N-th demonstrated transition"""
    learning_starts: int = 2000
    """env steps of the initial policy before the first update"""
    buffer_size: int = 0
    """replay buffer capacity in transitions (0: keep every one)"""
    log_every: int = 1000
    """env steps between rows of metrics.csv and TensorBoard"""
    save_every: int = 10_000
    """env steps between saves (each at an episode's end)"""
    threads: int = 1
    """torch CPU threads (0: torch's default)"""
    device: str = "cpu"
    """the learner's torch device: cpu, cuda or cuda:N"""
    resume: bool = True
    """resume a run found in --out (--no-resume: refuse it)"""
    progress: bool = True
    """show a progress bar (--no-progress: a line every log_every env steps instead)"""
    eval: EvalConfig = dataclasses.field(
        default_factory=lambda: EvalConfig(every=10_000, episodes=10)
    )
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)

    def validate(self) -> None:
        """``ConfigError`` for a setting no run can take (see ``check_run``)."""
        check_run(self, {"env_steps": 1, "learning_starts": 0, "seed": 0, "max_episodes": 0,
                         "buffer_size": 0, "log_every": 1,
                         "save_every": 0, "threads": 0})  # fmt: skip


@dataclasses.dataclass
class OPTAILTrainConfig(OnlineTrainConfig):
    policy: OPTAILConfig = dataclasses.field(default_factory=OPTAILConfig)


@dataclasses.dataclass
class DACTrainConfig(OnlineTrainConfig):
    policy: DACConfig = dataclasses.field(default_factory=DACConfig)


@dataclasses.dataclass
class IQLearnTrainConfig(OnlineTrainConfig):
    policy: IQLearnConfig = dataclasses.field(default_factory=IQLearnConfig)


TRAIN_CONFIGS: dict[str, type[TrainConfig] | type[OnlineTrainConfig]] = {
    "bc": BCTrainConfig,
    "diffusion": DiffusionTrainConfig,
    "opt_ail": OPTAILTrainConfig,
    "dac": DACTrainConfig,
    "iq_learn": IQLearnTrainConfig,
}


def check_run(config: TrainConfig | OnlineTrainConfig, minimums: dict[str, int]) -> None:
    """``ConfigError`` before any work for a run that cannot start: no ``--dataset`` or
    ``--out``, an ``out`` that is a file, lies inside the dataset or another one (the run's
    folders would sit among its arrays) or is a checkpoint (a run's ``policy/``: its run
    replaces that folder, and the run inside it, at its next save), a count of ``config``
    below its minimum in ``minimums`` (a step count of 0 would end "trained" with no
    checkpoint; an interval of 0 divides by zero mid-run), or a bad evaluation count."""
    from robot_il.dataset.durability import is_zarr_store
    from robot_il.policies.checkpoint_files import CONFIG_FILE

    if not config.dataset or not config.out:
        raise ConfigError("training needs --dataset and --out")
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {config.out}: is a file, not a run directory")
    dataset = next((f for f in (out, *out.absolute().parents) if is_zarr_store(f)), None)
    if dataset is not None:
        raise ConfigError(f"--out {config.out}: is inside the dataset {dataset}; pass a run "
                          "directory beside it")  # fmt: skip
    if (out / CONFIG_FILE).is_file():
        raise ConfigError(f"--out {config.out}: is a checkpoint, not a run directory; pass a "
                          "new --out (a run resumes in its folder, not in policy/)")  # fmt: skip
    _at_least(config, minimums)
    config.eval.validate()


def _at_least(config: Any, minimums: dict[str, int], prefix: str = "") -> None:
    """``ConfigError`` naming, as its flag, the first field of ``config`` below its minimum in
    ``minimums`` (a field that is None is unset and passes)."""
    for name, minimum in minimums.items():
        value = getattr(config, name)
        if value is not None and value < minimum:
            flag = f"--{prefix}{name.replace('_', '-')}"
            raise ConfigError(f"{flag} must be >= {minimum}, got {value}")


def default_config(policy_type: str) -> TrainConfig | OnlineTrainConfig:
    """The defaults of ``policy_type``'s training config."""
    if policy_type not in TRAIN_CONFIGS:
        raise ConfigError(f"unknown policy {policy_type!r}; known: {', '.join(TRAIN_CONFIGS)}")
    return TRAIN_CONFIGS[policy_type]()


def load_config(
    policy_type: str, yaml_file: str | Path | None = None, args: Sequence[str] = ()
) -> TrainConfig | OnlineTrainConfig:
    """Defaults, updated by ``yaml_file`` (if any), then by command-line ``args`` (tyro)."""
    import tyro

    config = default_config(policy_type)
    if yaml_file:
        path = Path(yaml_file)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: unreadable config: {error}") from None
        if not isinstance(values, Mapping):
            raise ConfigError(f"{path}: a config file must hold a mapping")
        config = update_dataclass(config, values, str(path))
    command = f"robot-il train {policy_type.replace('_', '-')}"
    usage = (f"{command} --dataset D --out O [--config FILE.yaml] [flags]: --config reads a "
             "YAML file of these settings first (nested as policy: {horizon: 16}), the flags "
             "override it; an existing --out is resumed.")  # fmt: skip
    if policy_type == "opt_ail":
        usage += " --model-based is short for --policy.model-based."
    if "-h" in args or "--help" in args:
        return tyro.cli(type(config), args=list(args), default=config, prog=command,
                        description=usage)  # fmt: skip
    boxed = io.StringIO()  # tyro draws a usage error as a box of many lines
    try:
        with contextlib.redirect_stdout(boxed), contextlib.redirect_stderr(boxed):
            return tyro.cli(type(config), args=list(args), default=config, prog=command,
                            description=usage)  # fmt: skip
    except SystemExit:
        raise ConfigError(_one_line(boxed.getvalue())) from None


def _one_line(box: str) -> str:
    """tyro's boxed usage error as one line: its message, the first flag it suggests, and
    where the help is. The box's sections are separated by rules; the first is its title."""
    sections: list[list[str]] = [[]]
    for line in (line.strip() for line in box.splitlines()):
        if line and set(line) <= set("-─"):
            sections.append([])
        elif line:
            sections[-1].append(line)
    message, *details = [section for section in sections[1:] if section] or [[box.strip()]]
    text = " ".join(message)
    for section in details:
        if section[0] == "Perhaps you meant:" and len(section) > 1:
            text += f"; perhaps {section[1].split()[0]}"
        elif section[0].startswith("For full helptext"):
            text += f" ({section[0].split(', ', 1)[-1]})"
    return text


def update_dataclass(instance: Any, values: Mapping[str, Any], where: str) -> Any:
    """A copy of dataclass ``instance`` with ``values`` (nested mappings for nested
    dataclasses) applied; unknown fields or wrongly typed values raise ``ConfigError``."""
    fields = {f.name: f for f in dataclasses.fields(instance)}
    hints = typing.get_type_hints(type(instance))
    changes = {}
    for name, value in values.items():
        if name not in fields:
            raise ConfigError(f"{where}: unknown setting {name!r} (known: {', '.join(fields)})")
        current = getattr(instance, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: {name} must be a mapping")
            changes[name] = update_dataclass(current, value, f"{where}: {name}")
        else:
            changes[name] = _coerce(value, hints[name], f"{where}: {name}")
    return dataclasses.replace(instance, **changes)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint`` (YAML gives lists for tuples and ints for floats)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        return _coerce(value, next(o for o in options if o is not type(None)), where)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where} must be one of {typing.get_args(hint)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_coerce(v, item, where) for v in value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is not hint:
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a (nested) config dataclass, tuples as lists, for YAML and JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))
