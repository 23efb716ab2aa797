"""PPO training of the two-arm DMP coordinator (``robot_il.policies.dmp.coordinator``).

stable-baselines3's PPO owns the loop (rollouts, GAE, clipped surrogate, value and entropy
terms as in Schulman et al. 2017); the env is ``coordinator_env.coordinator_vec_env``: B
kinematic ``bimanual_cross`` scenes stepped as one vectorised batch at 10 Hz decisions.

Resumable: every ``chunk_steps`` env steps the model is saved to ``<out>/ppo.zip`` and one
JSON row (steps, episodes ended in the chunk and their success / collision / deadlock rates,
seconds, load average) is appended to ``<out>/rows.jsonl``; a rerun with the same ``out``
continues from the last save with the next unseen training scenes, under the PPO settings
and over the coupling it started with (others are refused).

``train_dmp_rl`` (``robot-il train dmp-rl``) trains the coordinator over a DMP checkpoint's
coupling into ``<out>/coordinator`` and exports the DMP+RL checkpoint to ``<out>/policy``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robot_il.errors import CheckpointError, ConfigError
from robot_il.policies.dmp.coordinator import CoordinatorNet
from robot_il.policies.dmp.coupling import CouplingParams

if TYPE_CHECKING:
    from stable_baselines3 import PPO

RESUME_FREE = ("total_steps", "chunk_steps", "threads")
"""``CoordinatorTrainConfig`` fields a continued run may change; any other is refused."""
MODEL_FILE = "ppo.zip"
COORDINATOR_SUBDIR = "coordinator"
"""Where ``train_dmp_rl`` keeps the PPO run (``MODEL_FILE``, ``ROWS_FILE``) under its out."""
ROWS_FILE = "rows.jsonl"
SHIPPED_NET = Path(__file__).parents[2] / "data" / "dmp_coordinator.safetensors"
"""The coordinator trained by ``benchmarks/dmp_multiarm.py --train-coordinator`` as numpy
weights (float32, ~90 kB): what the DMP+RL checkpoints of the benchmark and the slow ROS test
use. Made on each machine by that command (git-ignored: no trained weights in the repository)."""


@dataclasses.dataclass
class CoordinatorTrainConfig:
    """PPO settings (SB3 names) and the budget; ``params``: the DMP layer's coupling."""

    total_steps: int = 300_000
    chunk_steps: int = 8_192
    n_envs: int = 64
    n_steps: int = 64
    batch_size: int = 512
    n_epochs: int = 5
    learning_rate: float = 3e-4
    gamma: float = 0.98
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] = (128, 128)
    seed: int = 0
    threads: int = 1
    initial_std: float = 0.2
    """The policy's action standard deviation when PPO starts (its mean starts near 0: the
    phase law of the DMP layer, see ``coordinator.decode_action``)."""


def read_rows(out: Path) -> list[dict]:
    path = out / ROWS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_coordinator(
    out: str | Path, config: CoordinatorTrainConfig, params: CouplingParams | None = None
) -> Path:
    """Train (or continue training) until ``config.total_steps``; returns the model path."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger

    from robot_il.policies.dmp.coordinator_env import TRAIN_SEED_BASE, coordinator_vec_env

    out = Path(out)
    rows = read_rows(out)
    if rows:
        _refuse_changed_run(out, rows[-1], config, params)
    torch.set_num_threads(config.threads)
    out.mkdir(parents=True, exist_ok=True)
    steps_done = rows[-1]["steps"] if rows else 0
    if steps_done >= config.total_steps:
        print(f"{out}: trained {steps_done} env steps already (--steps {config.total_steps}); "
              "nothing to train")  # fmt: skip
        return out / MODEL_FILE
    next_seed = rows[-1]["next_seed"] if rows else TRAIN_SEED_BASE
    env = coordinator_vec_env(config.n_envs, first_seed=next_seed, params=params)
    model_path = out / MODEL_FILE
    if steps_done and model_path.exists():
        model = PPO.load(model_path, env=env, device="cpu")
    else:
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=config.n_steps,
            batch_size=config.batch_size,
            n_epochs=config.n_epochs,
            learning_rate=config.learning_rate,
            gamma=config.gamma,
            gae_lambda=config.gae_lambda,
            ent_coef=config.ent_coef,
            policy_kwargs={
                "net_arch": list(config.net_arch),
                "log_std_init": float(np.log(config.initial_std)),
            },
            seed=config.seed,
            device="cpu",
            verbose=0,
        )
    # Without a logger of its own, SB3 makes an empty tempdir/SB3-<time> folder at every learn()
    # (one per chunk); this run's record is its rows file.
    model.set_logger(Logger(folder=None, output_formats=[]))

    class Outcomes(BaseCallback):
        """Counts how the training episodes end."""

        def __init__(self) -> None:
            super().__init__()
            self.counts: Counter[str] = Counter()

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode_outcome" in info:
                    self.counts[info["episode_outcome"]] += 1
            return True

    rollout = model.n_steps * model.n_envs
    while steps_done < config.total_steps:
        outcomes = Outcomes()
        begin = time.time()
        chunk = min(config.chunk_steps, config.total_steps - steps_done)
        model.learn(  # whole rollouts, as PPO collects them: the progress bar ends at its total
            -(-chunk // rollout) * rollout,
            callback=outcomes,
            reset_num_timesteps=False,
            progress_bar=True,
        )
        steps_done = int(model.num_timesteps)
        save_model(model, model_path)
        episodes = sum(outcomes.counts.values())
        row = {
            "steps": steps_done,
            "episodes": episodes,
            **{
                f"{kind}_rate": outcomes.counts[kind] / max(episodes, 1)
                for kind in ("success", "collision", "deadlock")
            },
            "seconds": time.time() - begin,
            "next_seed": int(env.next_seed),
            "load_avg": os.getloadavg(),
            "config": dataclasses.asdict(config),
            "params": None if params is None else dataclasses.asdict(params),
        }
        with (out / ROWS_FILE).open("a") as log:
            log.write(json.dumps(row) + "\n")
        print(
            f"coordinator step {steps_done}: episodes {episodes} success "
            f"{row['success_rate']:.3f} collision {row['collision_rate']:.3f} "
            f"deadlock {row['deadlock_rate']:.3f} ({row['seconds']:.0f} s, load "
            f"{np.round(row['load_avg'], 2).tolist()})",
            flush=True,
        )
    return model_path


def save_model(model: PPO, path: Path) -> None:
    """``model.save`` to a file beside ``path`` that then replaces it: SB3 writes its zip in
    place, so a Ctrl-C or kill during a save left a truncated ``ppo.zip`` that the rerun could
    not load (it ended in a traceback, the run's progress lost)."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as file:
        model.save(file)
    os.replace(partial, path)


def trained_net(run: str | Path, params: CouplingParams) -> tuple[CoordinatorNet, int]:
    """The deterministic actor (numpy, as deployed) of the PPO model that ``train_coordinator``
    saved in ``run`` over the coupling ``params``, and its training env steps."""
    from stable_baselines3 import PPO

    run = Path(run)
    model = PPO.load(run / MODEL_FILE, device="cpu")
    return CoordinatorNet.from_sb3(model, params), read_rows(run)[-1]["steps"]


def _refuse_changed_run(
    out: Path, last: dict, config: CoordinatorTrainConfig, params: CouplingParams | None
) -> None:
    """``CheckpointError`` if the run at ``out`` (its ``last`` row) trained under other PPO
    settings or over another coupling than ``config`` and ``params``: ``PPO.load`` keeps the
    saved model's settings whatever ``config`` says (while the rows would record ``config``),
    and a net that went on over another coupling would have learned corrections to two phase
    laws, deployed over one. The budget, chunk and threads may change."""
    from robot_il.train.trainer import field_defaults, refuse_changed_settings

    current = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples as the rows' lists
    defaults = json.loads(json.dumps(field_defaults(CoordinatorTrainConfig)))
    for free in RESUME_FREE:
        for values in (current, defaults):
            values.pop(free)
    refuse_changed_settings(out, "PPO config", last.get("config"), current, defaults)
    coupling = None if params is None else json.loads(json.dumps(dataclasses.asdict(params)))
    if "params" in last and last["params"] != coupling:  # rows before it was kept: not compared
        raise CheckpointError(
            f"{out}: this coordinator trained over coupling {last['params']}; it would go on "
            f"over {coupling} (pass a new out)"
        )


def export_dmp_rl(
    dmp_checkpoint: str | Path,
    net: CoordinatorNet,
    out: str | Path,
    params: CouplingParams | None = None,
    shield_clearance: float | None = None,
    override_coupling: bool = False,
) -> Path:
    """A DMP+RL checkpoint: the DMP checkpoint ``dmp_checkpoint`` (or the run holding it; its
    library) with the coordinator ``net``, the DMP layer's coupling ``params`` (default: the
    coupling the net was trained over) and the shield's clearance (m, None: no shield). The
    net's actions are corrections to its own layer's phase law: ``params`` other than that
    layer are refused unless ``override_coupling`` (deploying it over another layer on
    purpose). Nothing is written where a clearance is not a finite distance > 0, or where
    ``out`` holds a checkpoint other than an earlier DMP+RL export (``refuse_overwrite``)."""
    from robot_il.policies import read_checkpoint
    from robot_il.policies.dmp.library import library_arrays
    from robot_il.policies.dmp.policy import DMPPolicy

    if params is not None and params != net.coupling and not override_coupling:
        raise ConfigError(
            f"export_dmp_rl: coupling {dataclasses.asdict(params)} differs from the one the "
            f"coordinator was trained over {dataclasses.asdict(net.coupling)}; pass "
            "override_coupling=True to deploy it over another layer"
        )
    policy = DMPPolicy.load(read_checkpoint(dmp_checkpoint)[0])
    policy.config = dataclasses.replace(
        policy.config,
        coordinator=True,
        shield_clearance=shield_clearance,
        coupling=dataclasses.asdict(params or net.coupling),
    )
    policy.config.validate()
    refuse_overwrite(Path(out), "out")
    policy.coordinator = net
    return policy.save(out, library_arrays(policy.segments) | policy.episodes | net.to_arrays())


def refuse_overwrite(checkpoint: Path, flag: str) -> None:
    """``ConfigError`` (saying to pass another ``flag``) where ``checkpoint`` holds a
    checkpoint that a DMP+RL export would overwrite: anything but an earlier DMP+RL export,
    which is replaced (a rerun's). Written over in place, a BC checkpoint kept its normalizer
    beside the DMP+RL config and weights."""
    from robot_il.policies.checkpoint_files import CONFIG_FILE, read_checkpoint_config

    if not (checkpoint / CONFIG_FILE).exists():
        return
    saved = read_checkpoint_config(checkpoint)
    if saved["policy_type"] != "dmp" or not saved["config"].get("coordinator"):
        raise ConfigError(
            f"{checkpoint}: a {saved['policy_type']} checkpoint that this run would "
            f"overwrite; pass another {flag}"
        )


@dataclasses.dataclass
class DMPRLTrainResult:
    """What ``train_dmp_rl`` made: the DMP+RL checkpoint directory and how it was trained."""

    checkpoint: Path
    steps: int
    """PPO env steps the coordinator trained (a multiple of one rollout, ``n_envs * n_steps``)."""
    params: CouplingParams
    """The coupling of the DMP layer it trained over (the DMP checkpoint's)."""


def coordinated_dmp(dmp_checkpoint: str | Path) -> tuple[Path, CouplingParams]:
    """The DMP checkpoint ``dmp_checkpoint`` (or the ``robot-il train dmp`` run directory
    holding it) and its coupling, or a ``CheckpointError`` saying why a coordinator cannot
    train over it: the coordinator is a residual on the ``coupled`` two-arm layer and learns on
    ``bimanual_cross`` scenes. The coupling is the hand-set one, or CMA-ES's where the
    checkpoint was made with ``--search cma`` (``DMPConfig.coupling``)."""
    from robot_il.policies import read_checkpoint
    from robot_il.policies.dmp.policy import DMPPolicy

    directory, saved = read_checkpoint(dmp_checkpoint)
    policy = DMPPolicy.load(directory)  # a DMP policy whose library and coupling load
    if policy.config.coordinator:
        raise CheckpointError(
            f"{directory}: already a DMP + RL checkpoint; pass the DMP checkpoint it was made from"
        )
    task = saved["spec"].get("task")
    if task != "bimanual_cross" or policy.config.playback != "coupled":
        raise CheckpointError(
            f"{directory}: a DMP checkpoint for {task!r} ({policy.config.playback} playback); "
            "the coordinator trains over coupled DMPs on bimanual_cross"
        )
    if policy.config.method != "coupled":
        raise CheckpointError(
            f"{directory}: runs method {policy.config.method!r}; the coordinator is a residual "
            "on the 'coupled' layer"
        )
    return directory, policy.params


SHIELD_CHECK_SCENES = 16
"""Training scenes the DMP layer runs under the shield before ``train_dmp_rl`` trains."""


def refuse_holding_shield(shield_clearance: float, params: CouplingParams) -> None:
    """``ConfigError`` for a shield clearance (m) that is not a finite distance > 0, or that
    keeps the ``coupled`` layer (coupling ``params``, the coordinator acting 0) from finishing
    any of ``SHIELD_CHECK_SCENES`` training scenes: where the arms pass closer than the
    clearance the shield holds them for good, and the coordinator, trained without the shield,
    learns nothing that frees them (a 5 m shield made a checkpoint that never moved)."""
    from robot_il.envs import cross_scenes as cs
    from robot_il.policies.dmp.coordinator import (
        ACTION_SIZE,
        check_shield_clearance,
        run_coordinated,
    )
    from robot_il.policies.dmp.coordinator_env import TRAIN_SEED_BASE

    check_shield_clearance(shield_clearance, "--shield-clearance")

    def layer(observations: np.ndarray) -> np.ndarray:
        return np.zeros((len(observations), ACTION_SIZE))

    scenes = cs.sample_scenes(range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + SHIELD_CHECK_SCENES))
    held = ~run_coordinated(scenes, layer, params, shield_clearance).success
    if held.any():
        passing = run_coordinated(scenes.select(held), layer, params).min_separation.min()
        raise ConfigError(
            f"--shield-clearance {shield_clearance} m holds the arms short of their goals in "
            f"{int(held.sum())} of {len(scenes)} bimanual_cross scenes (the DMP layer passes "
            f"them {passing:.3f} m apart there); use a smaller clearance"
        )


def train_dmp_rl(
    dmp_checkpoint: str | Path,
    out: str | Path,
    config: CoordinatorTrainConfig,
    shield_clearance: float | None = None,
) -> DMPRLTrainResult:
    """Train (or continue) the coordinator over ``dmp_checkpoint``'s coupling in
    ``<out>/coordinator`` to ``config.total_steps``, then write the DMP+RL checkpoint (that
    library, the net, the shield's clearance in m or None) to ``<out>/policy``. The checkpoint
    and the shield (``refuse_holding_shield``) are checked before any training; a rerun
    continues as ``train_coordinator`` does, and one given the ``out`` of a run still going
    there is refused (``lock_run``)."""
    from robot_il.policies import DEPLOY_SUBDIR
    from robot_il.train.trainer import lock_run

    dmp, params = coordinated_dmp(dmp_checkpoint)
    if shield_clearance is not None:
        refuse_holding_shield(shield_clearance, params)
    checkpoint = Path(out) / DEPLOY_SUBDIR
    refuse_overwrite(checkpoint, "--out")
    run = Path(out) / COORDINATOR_SUBDIR
    with lock_run(Path(out)):  # one training at a time in ``out`` (their rows interleave)
        train_coordinator(run, config, params)
        net, steps = trained_net(run, params)
        checkpoint = export_dmp_rl(dmp, net, checkpoint, params, shield_clearance)
    return DMPRLTrainResult(checkpoint, steps, params)
