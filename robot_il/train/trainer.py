"""The training loop every policy family shares.

Order of work, so that bad input fails fast: open the dataset (its layout and attributes)
and check it has every key the config needs, build the evaluation env and check it fits the
policy's spec, fit the normalizer (low-dimensional keys, read from the store), build the
policy (an image crop checked against the frames' size), lock ``out`` (``lock_run``: one
training at a time), check a resumed run's save, and only then decode the dataset into RAM
(seconds to minutes for cameras) and train. The loop samples random windows
(``SequenceSampler.batch`` on the RAM-cached dataset), steps AdamW with a warm-up + cosine
schedule, logs to CSV and TensorBoard, evaluates in simulation every ``eval.every`` steps,
and writes checkpoints. Everything needed to continue (raw weights, optimizer, schedule,
step, the EMA, the normalizer, and every RNG of every process: each torchrun process draws
its own batches) is saved in ``train_state/``, so a killed run resumes where its last save
left it, bit-exactly. Each process that trains a stretch of the run is kept beside it
(``robot_il.provenance.run_segment``), and its checkpoints name every resume; a resume under
other code, libraries, device or threads, whose numbers may then differ from an uninterrupted
run's, is warned about. A resumed run must keep the settings of ``RESUME_FIXED``, its policy
config, its data, the normalizer it fitted and its number of processes; anything else is
refused before a step, naming what changed. A run saved before each process's random state
was kept (rank 0's alone) resumes in any number of processes, bit-exactly in one; other
ranks then reseed. A run rerun after its last step has nothing to train; if it was killed
after its final save, before ``summary.json``, the rerun makes its final evaluation and
writes the summary.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import json
import os
import random
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from robot_il.errors import ConfigError, DatasetError
from robot_il.policies import DEPLOY_SUBDIR, policy_class
from robot_il.policies.base import Policy, PolicyConfig
from robot_il.policies.checkpoint_files import CONFIG_FILE, NORMALIZER_FILE
from robot_il.policies.encoders import DEPTH_PREFIX
from robot_il.policies.optimizers import adamw
from robot_il.policies.spec import ACTION_KEY, is_image_key, spec_from_dataset
from robot_il.provenance import (
    code_provenance,
    dataset_record,
    refuse_changed_data,
    run_segment,
    segment_changes,
)
from robot_il.train.config import TRAIN_CONFIGS, EvalConfig, TrainConfig, config_to_dict
from robot_il.train.distributed import Distributed, init_distributed
from robot_il.train.evaluate import EvalResult, evaluate, make_eval_env, torch_seeded

STATE_DIR = "train_state"
CONFIG_YAML = "train_config.yaml"
METRICS_CSV = "metrics.csv"
SUMMARY_JSON = "summary.json"
RUN_LOCK = ".run.lock"
"""Held by the process training in a run directory (``lock_run``); it names that process."""
NOT_OBSERVATIONS = frozenset({ACTION_KEY, "timestamp", "tick"})
"""Dataset keys that are never observations (recorder bookkeeping and the label)."""
CAPTURE_STAMP_PREFIX = "stamp_"
"""``stamp_<camera key>``: a ROS recording's frame capture times (s), bookkeeping too."""
METRIC_FIELDS = (
    "step", "loss", "val_loss", "lr", "steps_per_s", "eval_success", "eval_low", "eval_high",
)  # fmt: skip
RESUME_FIXED = ("steps", "batch_size", "lr", "weight_decay", "warmup_steps", "grad_clip", "seed",
                "val_fraction")  # fmt: skip
"""Settings a resumed run must keep: the schedule (warm-up, then cosine decay to 0 at
``steps``), the optimizer, the batches and the train/validation split are the saved run's,
so another value would be silently overridden or would train the rest of the run under
another one. Evaluation, logging, saving, device and threads may change; the data and the
policy config are compared on their own."""


@dataclasses.dataclass
class TrainResult:
    """What a finished run leaves: the checkpoint directory and the last evaluation."""

    checkpoint: Path
    steps: int
    final_loss: float
    evaluation: EvalResult | None


def policy_type_of(config: TrainConfig) -> str:
    """The policy type whose ``TrainConfig`` subclass ``config`` is."""
    for name, cls in TRAIN_CONFIGS.items():
        if type(config) is cls:
            return name
    raise ConfigError(f"no policy type for config class {type(config).__name__}")


def observation_keys(config_keys: tuple[str, ...], dataset: Any) -> list[str]:
    """The observation keys to train on: the config's, or by default every low-dimensional
    observation the dataset holds (those of the recording env's spec when known; cameras,
    colour or depth, only when named)."""
    if config_keys:
        return list(config_keys)
    env_obs = (dataset.attrs.get("env_spec") or {}).get("observation")
    candidates = [
        k
        for k in dataset.keys
        if k not in NOT_OBSERVATIONS and not k.startswith(CAPTURE_STAMP_PREFIX)
    ]
    if env_obs:
        candidates = [k for k in candidates if k in env_obs]
    keys = [k for k in candidates if not (is_image_key(k) or k.startswith(DEPTH_PREFIX))]
    if not keys:
        raise DatasetError(f"{dataset.where}: no low-dimensional observation keys to train on")
    return keys


def train(config: TrainConfig) -> TrainResult:
    """Train the policy ``config`` describes; see the module docstring."""
    from robot_il.dataset import Dataset, Normalizer, SequenceSampler, split_episodes

    code_provenance()  # the code this run loaded, whatever is committed before its saves
    policy_type = policy_type_of(config)
    config.validate()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    dist, device = init_distributed(config.device)
    held = contextlib.ExitStack()  # the run directory's lock (rank 0's), until the run ends
    progress: RunProgress | None = None  # set once the steps begin, for a Ctrl-C's report
    try:
        dataset = Dataset.open(config.dataset)  # decoded into RAM once every check passed
        obs_keys = observation_keys(tuple(config.policy.obs_keys), dataset)
        spec = spec_from_dataset(dataset, obs_keys, config.dataset)
        policy_config = dataclasses.replace(config.policy, obs_keys=tuple(obs_keys))
        try:
            policy_config.validate()
        except ValueError as error:
            raise ConfigError(f"policy config: {error}") from None
        _check_labels(dataset, policy_config, config.dataset)
        env = None
        if config.eval.episodes > 0 and dist.is_main:
            env = make_eval_env(
                spec,
                task=config.eval.task,
                backend=config.eval.backend,
                max_episode_steps=config.eval.max_episode_steps,
            )
        if config.max_episodes > dataset.num_episodes:
            raise ConfigError(
                f"{config.dataset}: max_episodes {config.max_episodes} > the "
                f"{dataset.num_episodes} episodes it holds"
            )
        episodes = config.max_episodes or dataset.num_episodes
        train_ids, val_ids = split_episodes(episodes, config.val_fraction, config.seed)
        lowdim = [k for k in obs_keys if not is_image_key(k)]
        labels = list(policy_config.aux_state_keys)
        normalizer = Normalizer.fit(
            dataset,
            [*lowdim, *labels, ACTION_KEY],
            mode=policy_config.normalization,
            episodes=train_ids,
        )
        _seed_everything(config.seed + dist.rank)
        try:
            policy = policy_class(policy_type)(policy_config, spec, normalizer).to(device)
        except ValueError as error:  # settings that do not fit the data (an image crop)
            raise ConfigError(f"policy config: {error}") from None
        policy.training_data = [dataset_record(dataset, config.dataset, episodes)]
        policy.begin_training()
        optimizer = adamw(policy.parameters(), config.lr, config.weight_decay)
        schedule = _warmup_cosine(optimizer, config.warmup_steps, config.steps)
        rng = np.random.default_rng(config.seed + dist.rank)
        run_config = {field: getattr(config, field) for field in RESUME_FIXED}
        settings = training_settings(config)
        out = Path(config.out)
        state_dir = out / STATE_DIR
        if dist.is_main:  # one process locks, renames and removes; the others wait for it
            held.enter_context(lock_run(out))
            for saved in (state_dir, out / DEPLOY_SUBDIR):
                recover_dir(saved)
        dist.barrier()
        if state_dir.exists() and not config.resume:
            raise ConfigError(
                f"{out}: holds a training run; resume it (drop --no-resume) or pass a new --out"
            )
        start, resumed = 0, state_dir.exists()
        segments = [run_segment(0, settings)]  # who trained which steps of the run
        if resumed:
            start, earlier = _load_state(state_dir, policy, optimizer, schedule, rng,
                                         policy_type, run_config, dist)  # fmt: skip
            segments = [*earlier, run_segment(start, settings)]
        if start == config.steps:
            return _finish(out, start, policy, env, config.eval, dist.is_main)
        if resumed and dist.is_main:
            warn_changed_resume(out, segments[-2], segments[-1])
        dataset = Dataset.open(config.dataset, cache="ram")  # the same episodes, decoded
        window = {
            "keys": [*obs_keys, *labels, ACTION_KEY],
            "obs_keys": [*obs_keys, *labels],  # labels: the observed steps' values
            "horizon": policy_config.horizon,
            "n_obs_steps": policy_config.n_obs_steps,
        }
        sampler = SequenceSampler(dataset, episodes=train_ids, **window)
        val_sampler = SequenceSampler(dataset, episodes=val_ids, **window) if val_ids else None
        model: torch.nn.Module = policy
        if dist.enabled:
            model = torch.nn.parallel.DistributedDataParallel(policy)
        logger = MetricsLogger(out, dataclasses.replace(config, policy=policy_config),
                               METRIC_FIELDS, enabled=dist.is_main,
                               first_step=start + 1 if resumed else 0)  # fmt: skip
        evaluation, loss_value = None, float("nan")
        bar = tqdm(
            range(start, config.steps),
            initial=start,
            total=config.steps,
            desc=f"train {policy_type}",
            disable=not (config.progress and dist.is_main),
        )
        tick, tick_step = time.perf_counter(), start
        progress = RunProgress(out, config.save_every, trained=start, saved=start)
        for step in bar:
            batch = _to_device(
                policy, sampler.batch(rng.integers(0, len(sampler), config.batch_size))
            )
            loss = model(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            policy.after_optimizer_step()
            loss_value = float(loss.detach())
            done = progress.trained = step + 1
            row: dict[str, Any] = {}
            if done % config.log_every == 0 or done == config.steps:
                now = time.perf_counter()
                row.update(
                    loss=loss_value,
                    lr=schedule.get_last_lr()[0],
                    steps_per_s=(done - tick_step) / max(now - tick, 1e-9),
                )
                tick, tick_step = now, done
                if val_sampler is not None:
                    row["val_loss"] = _validation_loss(policy, val_sampler, config.batch_size,
                                                       config.seed)  # fmt: skip
                bar.set_postfix(loss=f"{loss_value:.4f}")
                if not config.progress and dist.is_main:  # a launch file's log, not a bar
                    tqdm.write(f"step {done} of {config.steps}: loss {loss_value:.4f}, "
                               f"{row['steps_per_s']:.1f} steps/s")  # fmt: skip
            eval_now = config.eval.every > 0 and done % config.eval.every == 0
            if env is not None and (eval_now or done == config.steps):
                evaluation = evaluate(
                    policy, env, episodes=config.eval.episodes, seed=config.eval.seed
                )
                if evaluation.success_test:
                    low, high = evaluation.interval
                    row.update(eval_success=evaluation.success_rate, eval_low=low, eval_high=high)
                bar.write(f"step {done}: {evaluation.line()}")
            if row:
                logger.log(done, row)
            saving = done % config.save_every == 0 or done == config.steps
            if saving:
                generators = dist.all_gather(rng_states(rng, device))
                if dist.is_main:
                    _save(out, done, policy, optimizer, schedule, generators, run_config,
                          settings, segments)  # fmt: skip
                progress.saved = done
            if saving or eval_now:
                dist.barrier()  # other ranks wait while rank 0 evaluates and writes
        bar.close()
        logger.close()
        if env is not None:
            env.close()
        checkpoint = out / DEPLOY_SUBDIR
        if dist.is_main:
            _write_summary(out, config.steps, loss_value, evaluation)
        return TrainResult(checkpoint, config.steps, loss_value, evaluation)
    except KeyboardInterrupt:
        if progress is not None and dist.is_main:
            print(progress.interrupted(), file=sys.stderr)
        raise
    finally:
        held.close()
        dist.close()


@dataclasses.dataclass
class RunProgress:
    """How far a run at ``out`` got in this process: the steps ``trained`` (optimizer steps,
    or env steps for an online learner) and the step of its last save (``saved``; the step it
    resumed from until it saves, 0 for a new run)."""

    out: Path
    save_every: int
    trained: int
    saved: int

    def interrupted(self) -> str:
        """What a Ctrl-C keeps: the save a rerun resumes from, or none yet."""
        stopped = f"{self.out}: interrupted at step {self.trained}"
        if self.saved == 0:
            first = f"before its first save (--save-every {self.save_every})"
            return f"{stopped}, {first}: the same command again starts over"
        return f"{stopped}; saved at step {self.saved}: the same command again resumes from there"


def _check_labels(dataset: Any, policy_config: PolicyConfig, source: str) -> None:
    """Refuse, before training, auxiliary labels the dataset lacks, and labels given without
    a weight (the loss would be off and the labels ignored; a policy without a camera for the
    auxiliary head is refused by ``Policy`` itself, before the first step)."""
    labels = policy_config.aux_state_keys
    if not labels:
        return
    if policy_config.aux_state_weight == 0:
        raise ConfigError(
            f"policy config: aux_state_keys {', '.join(labels)} train nothing at "
            "aux_state_weight 0 (the loss is off): give --policy.aux-state-weight (e.g. 1)"
        )
    missing = [k for k in labels if k not in dataset.keys]
    if missing:
        raise DatasetError(
            f"{source}: dataset lacks aux_state_keys {', '.join(missing)} (it has "
            f"{', '.join(sorted(dataset.keys))})"
        )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    warmup = max(1, min(warmup, total - 1))
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor=1.0 / warmup, total_iters=warmup),
            CosineAnnealingLR(optimizer, T_max=max(1, total - warmup)),
        ],
        milestones=[warmup],
    )


def _to_device(policy: Policy, window: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    device = policy.device
    return {k: torch.from_numpy(v).to(device) for k, v in policy.normalize_window(window).items()}


@torch.no_grad()
def _validation_loss(policy: Policy, sampler: Any, batch_size: int, seed: int) -> float:
    """Loss on the first ``batch_size`` validation windows, Diffusion's noise and noise
    levels drawn from ``seed`` (``torch_seeded``): the same inputs at every step, so it is
    comparable across steps, and the training's random stream is left alone (a run's
    weights do not depend on how often it logs)."""
    indices = np.arange(min(batch_size, len(sampler)))
    policy.eval()
    with policy.inference_weights(), torch_seeded(seed):
        loss = float(policy(_to_device(policy, sampler.batch(indices))))
    policy.train()
    return loss


def rng_states(rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """The state of every random generator this process draws from: numpy's ``rng`` (batches,
    replay samples), torch's CPU generator, the GPU's when ``device`` is one (noise drawn on
    it), and Python's; ``restore_rng_states`` sets them back."""
    states = {"numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
              "python_rng": random.getstate()}  # fmt: skip
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def reseed(rng: np.random.Generator, seed: int, step: int) -> None:
    """Start every generator ``rng_states`` covers on a stream of its own, a function of
    ``seed`` and ``step``: for a process whose saved state a resume lacks (a torchrun
    process other than rank 0 in a run saved before each process's state was kept)."""
    numpy_seed, torch_seed = np.random.SeedSequence([seed, step]).spawn(2)
    rng.bit_generator.state = type(rng.bit_generator)(numpy_seed).state
    _seed_everything(int(torch_seed.generate_state(1, np.uint64)[0]))


def restore_rng_states(
    saved: dict[str, Any], rng: np.random.Generator, device: torch.device
) -> None:
    """Set every generator back to what ``rng_states`` saved (tensors loaded onto any
    device); a run saved on the CPU has no GPU state, and the GPU's generator then keeps its
    seed."""
    rng.bit_generator.state = saved["numpy_rng"]
    torch.set_rng_state(saved["torch_rng"].cpu())
    if device.type == "cuda" and "cuda_rng" in saved:
        torch.cuda.set_rng_state(saved["cuda_rng"].cpu(), device)
    random.setstate(saved["python_rng"])


def _save(
    out: Path,
    step: int,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    generators: list[dict[str, Any]],
    run_config: dict[str, Any],
    settings: dict[str, Any],
    segments: list[dict[str, Any]],
) -> None:
    """Write the checkpoints (``save_checkpoint``) and refresh ``train_state/``, atomically
    (written beside, then renamed), so a kill never leaves a half-written directory.
    ``generators``: ``rng_states`` of every process, by rank; ``segments``: the
    ``run_segment`` of each process that trained the run, this one last."""
    from safetensors.numpy import save as serialize_numpy
    from safetensors.torch import save as serialize

    save_checkpoint(out, step, policy, settings, segments)

    def write_state(tmp: Path) -> None:  # written by Python: a full disk is an OSError
        tmp.mkdir(parents=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
        (tmp / "model.safetensors").write_bytes(serialize(weights))
        (tmp / NORMALIZER_FILE).write_bytes(serialize_numpy(policy.normalizer.state_dict()))
        torch.save(
            {
                "step": step,
                "policy_type": policy.policy_type,
                "policy_config": dataclasses.asdict(policy.config),
                "run_config": run_config,
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "policy_extra": policy.training_state(),
                "training_data": policy.training_data,
                "process_rngs": generators,
                "segments": segments,
            },
            tmp / "state.pt",
        )

    replace_dir(out / STATE_DIR, write_state)


def training_settings(config: Any) -> dict[str, Any]:
    """What a checkpoint records of how it was trained (``save_checkpoint``): the training
    config ``config`` (offline or online) less the policy's, which ``config.json`` holds."""
    return {k: v for k, v in config_to_dict(config).items() if k != "policy"}


def save_checkpoint(
    out: Path,
    step: int,
    policy: Policy,
    settings: dict[str, Any],
    segments: list[dict[str, Any]] | None = None,
) -> None:
    """Write ``checkpoints/step_N`` and refresh ``policy/`` (the deployable checkpoint), each
    atomically. Its provenance gains ``training``: the ``step`` (optimizer steps, or env
    steps for an online run) and the run's ``settings`` (``training_settings``), so that a
    checkpoint copied away from its run still says how it was trained (seed, steps, batch,
    schedule, data), which a ``--config`` file may have given and the recorded command line
    then does not show; a resumed run's adds its ``segments`` (``run_segment``s)."""

    def write_snapshot(tmp: Path) -> None:
        policy.save(tmp)
        saved = json.loads((tmp / CONFIG_FILE).read_text())
        saved["provenance"]["training"] = {"step": step, "config": settings}
        if segments is not None and len(segments) > 1:
            saved["provenance"]["training"]["segments"] = segments
        (tmp / CONFIG_FILE).write_text(json.dumps(saved, indent=2) + "\n")

    snapshot = replace_dir(out / "checkpoints" / f"step_{step:07d}", write_snapshot)
    replace_dir(out / DEPLOY_SUBDIR, lambda tmp: shutil.copytree(snapshot, tmp))


def lock_run(out: Path) -> IO[bytes]:
    """An exclusive ``flock`` on ``<out>/.run.lock`` (``out`` made if absent), held until the
    returned file is closed; a ``ConfigError`` naming the process that holds it instead.
    Taken before a run touches ``out``: a second training there would rewrite
    ``metrics.csv`` under the first (whose rows then go to the deleted file), and each
    would rename ``policy/`` and ``train_state/`` under the other's saves. The kernel drops
    the lock when its process ends, killed too, so a killed run's rerun resumes. An ``out``
    this process cannot write in (a read-only file system, a file on its path) is a
    ``ConfigError`` too, before any work; one on a file system without locks trains
    unlocked, warned."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = open(out / RUN_LOCK, "a+b")  # noqa: SIM115 - held by the caller
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot write the run there ({error.strerror})") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(lock)
        lock.close()
        raise ConfigError(f"{out}: another training runs in this --out ({holder}); wait for it "
                          "to end or pass another --out") from None  # fmt: skip
    except OSError as error:  # a file system without locks (NFSv3 without its lock daemon)
        warnings.warn(
            f"{out}: cannot lock the run ({error.strerror}); a second training there would "
            "not be refused",
            stacklevel=2,
        )
    lock.truncate(0)
    lock.write(f"pid {os.getpid()}".encode())
    lock.flush()
    return lock


def running_training(out: Path) -> str | None:
    """Which process trains in ``out`` now (``pid N``), told by its run lock (:func:`lock_run`)
    held; None when none does (no lock file, or a file system without locks)."""
    try:
        lock = open(out / RUN_LOCK, "rb")  # noqa: SIM115 - probed, then closed
    except OSError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_holder(lock)
        except OSError:
            return None
    return None


def _lock_holder(lock: IO[bytes]) -> str:
    """What the run lock's holder wrote into it (``pid N``)."""
    lock.seek(0)
    return lock.read().decode(errors="replace").strip() or "its pid not yet written"


def replace_dir(target: Path, write: Any) -> Path:
    """Write ``target`` atomically: ``write(tmp)`` fills a directory beside it, which then
    replaces ``target`` (renamed to ``.old``, then ``tmp`` renamed in its place); leftovers
    of a killed earlier call are dealt with first (``recover_dir``)."""
    recover_dir(target)
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    write(tmp)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)
    return target


def recover_dir(target: Path) -> None:
    """Undo what a kill inside ``replace_dir`` left: ``target`` renamed away to ``.old`` (a
    kill between its two renames; ``.old`` is then the whole previous version) is renamed
    back, and a partly written ``.tmp`` or a half-removed ``.old`` beside ``target`` are
    removed. Called before a run looks for its ``train_state/``, which would otherwise seem
    absent and the run start over from step 0."""
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    if old.exists() and not target.exists():
        os.replace(old, target)
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)


def refuse_changed_settings(
    state_dir: Path,
    what: str,
    saved: dict[str, Any] | None,
    current: dict[str, Any],
    defaults: dict[str, Any],
) -> None:
    """``CheckpointError`` naming every setting of ``current`` that differs from what the run
    at ``state_dir`` saved (``what``: e.g. "policy config"). Settings that keep every
    weight's shape (an image crop, its cameras, the normalization, a matmul precision, a
    learning rate, the demonstrations used) would load and train the rest of the run under
    other settings. A setting the save lacks was added after the run started, which then
    trained as its default does (a new setting's default keeps the old behaviour), so it is
    compared with ``defaults``. Runs saved before settings were kept are not compared."""
    from robot_il.errors import CheckpointError

    if saved is None:
        return
    was = {k: saved[k] if k in saved else defaults[k] for k in current
           if k in saved or k in defaults}  # fmt: skip
    changed = sorted(k for k in was if was[k] != current[k])
    if changed:
        raise CheckpointError(
            f"{state_dir}: {what} changed since this run: "
            + "; ".join(
                f"{k} {was[k]!r}{'' if k in saved else ' (its default; not saved)'}"
                f" -> {current[k]!r}"
                for k in changed
            )  # fmt: skip
            + f" (pass a new --out{_resume_hint(state_dir)})"
        )


def _resume_hint(state_dir: Path) -> str:
    """How to resume the run at ``state_dir`` (or its ``out``) under its own settings, where
    it kept them: a resume given only --dataset and --out takes every other flag's default."""
    for run in (state_dir, state_dir.parent):
        if (run / CONFIG_YAML).is_file():
            return f", or resume it with its own settings: --config {run / CONFIG_YAML}"
    return ""


def refuse_changed_normalizer(state_dir: Path, normalizer: Any, causes: str) -> None:
    """``CheckpointError`` unless the normalizer the run at ``state_dir`` saved (fitted when
    it started) equals ``normalizer``, the one this run fitted: the saved weights learned on
    inputs mapped by it. ``causes``: what may have changed, for the message."""
    from safetensors.numpy import load_file as load_numpy

    from robot_il.errors import CheckpointError

    saved = load_numpy(str(state_dir / NORMALIZER_FILE))
    current = normalizer.state_dict()
    changed = sorted({name.rpartition(".")[0] for name in {*saved, *current}
                      if name not in saved or name not in current
                      or not np.array_equal(saved[name], current[name])})  # fmt: skip
    if changed:
        raise CheckpointError(
            f"{state_dir}: the normalizer of {', '.join(changed)} differs from this run's "
            f"({causes}); pass a new --out"
        )


def field_defaults(config_type: type) -> dict[str, Any]:
    """Each field of the dataclass ``config_type`` that has a default, mapped to it as
    ``dataclasses.asdict`` writes it: what a setting was before a save kept it."""
    defaults: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            continue
        is_config = dataclasses.is_dataclass(value)
        defaults[field.name] = dataclasses.asdict(value) if is_config else value
    return defaults


def _load_state(
    state_dir: Path,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    rng: np.random.Generator,
    policy_type: str,
    run_config: dict[str, Any],
    dist: Distributed,
) -> tuple[int, list[dict[str, Any]]]:
    """Restore a run saved by ``_save`` into this process (its own generators); returns the
    step to continue from and the ``run_segment`` of each process that trained it so far (a
    save made before they were kept: one, its step only). Checks come first: nothing is
    loaded from a refused save."""
    from safetensors.torch import load_file

    from robot_il.errors import CheckpointError

    try:
        state = torch.load(state_dir / "state.pt", weights_only=False)
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"{state_dir}: cannot resume: {error}") from None
    if state["policy_type"] != policy_type:  # an online learner's run keeps no model file
        raise CheckpointError(
            f"{state_dir}: resumes a {state['policy_type']!r} run, not {policy_type!r}"
        )
    try:
        weights = load_file(str(state_dir / "model.safetensors"))
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"{state_dir}: cannot resume: {error}") from None
    # the data first: another dataset changes the default observation keys too, and is
    # what to name then
    refuse_changed_data(state_dir, state.get("training_data"), policy.training_data)
    refuse_changed_settings(state_dir, "policy config", state.get("policy_config"),
                            dataclasses.asdict(policy.config),
                            field_defaults(type(policy.config)))  # fmt: skip
    refuse_changed_settings(state_dir, "training config", state.get("run_config"), run_config,
                            field_defaults(TRAIN_CONFIGS[policy_type]))  # fmt: skip
    if (state_dir / NORMALIZER_FILE).exists():  # saves before it was kept are not compared
        causes = "the data, their split or the normalizer's fit changed"
        refuse_changed_normalizer(state_dir, policy.normalizer, causes)
    generators = state.get("process_rngs")
    if generators is not None and len(generators) != dist.world_size:
        raise CheckpointError(
            f"{state_dir}: this run saved the random state of {len(generators)} process(es); "
            f"it would resume in {dist.world_size} (resume it in {len(generators)}, or pass a "
            "new --out)"
        )
    try:
        policy.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{state_dir}: config changed since this run: {first}") from None
    schedule.load_state_dict(state["schedule"])
    policy.load_training_state(state["policy_extra"])
    step = int(state["step"])
    if generators is not None:
        restore_rng_states(generators[dist.rank], rng, policy.device)
    elif dist.is_main:  # saved before each process's was kept: rank 0's alone, flat
        restore_rng_states(state, rng, policy.device)
        if dist.enabled:
            warnings.warn(
                f"{state_dir}: saved with rank 0's random state only; processes 1.."
                f"{dist.world_size - 1} draw new streams (seed + rank, step {step}), so this "
                "resume is not bit-exact",
                stacklevel=2,
            )
    else:
        reseed(rng, run_config["seed"] + dist.rank, step)
    return step, state.get("segments", [{"from_step": 0}])


def warn_changed_resume(
    out: Path, before: dict[str, Any], now: dict[str, Any], stacklevel: int = 3
) -> None:
    """Warn when this process resumes the run at ``out`` under other code, libraries, CPU,
    device or threads than the one before it (``segment_changes``): allowed, but the rest of
    the run may then train to other numbers than one uninterrupted run would. ``stacklevel``
    (``warnings.warn``'s, counted from here) names the line of the training's caller."""
    changes = segment_changes(before, now) if "libraries" in before else []
    if changes:
        warnings.warn(
            f"{out}: resumed at step {now['from_step']} with {', '.join(changes)}: its weights "
            "may differ from an uninterrupted run's (its checkpoints record each part)",
            stacklevel=stacklevel,
        )


class MetricsLogger:
    """CSV and TensorBoard scalars, written by rank 0 only, continued across resumes.
    ``config`` (a config dataclass) is written to ``out/train_config.yaml``, with what the
    run resolved (the observation keys a default took from the dataset) filled in.

    ``first_step``: the first step this run logs (0 for a new run, the saved step + 1 for a
    resumed one). An earlier attempt may have logged past its last save (a run killed
    after it, or an online budget that ended mid-episode, whose episode a larger budget
    plays again from its start): its rows from ``first_step`` on are dropped from the CSV,
    and TensorBoard hides its events from there (``purge_step``), since this run logs those
    steps again; the logs then read as one uninterrupted run's.
    """

    def __init__(
        self,
        out: Path,
        config: Any,
        fields: tuple[str, ...],
        enabled: bool = True,
        first_step: int = 0,
    ) -> None:
        self.enabled = enabled
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_YAML).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(str(out / "tensorboard"), purge_step=first_step)
        path = out / METRICS_CSV
        _keep_rows_before(path, first_step, fields)
        self.file = path.open("a", newline="")
        self.csv = csv.DictWriter(self.file, fieldnames=fields)

    def log(self, step: int, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.csv.writerow({"step": step, **row})
        self.file.flush()
        for name, value in row.items():
            self.tensorboard.add_scalar(name, value, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.tensorboard.close()


def _keep_rows_before(path: Path, first_step: int, fields: tuple[str, ...]) -> None:
    """Rewrite the metrics CSV ``path`` (atomically) with a header of ``fields`` and the rows
    it holds of steps before ``first_step`` (none if it does not exist yet)."""
    rows = []
    if path.exists():
        with path.open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if int(row["step"]) < first_step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as file:
        table = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
        table.writeheader()
        table.writerows(rows)
    tmp.replace(path)


def _finish(
    out: Path, steps: int, policy: Policy, env: Any, eval_config: EvalConfig, is_main: bool
) -> TrainResult:
    """A rerun of the run at ``out``, which trained and saved all its ``steps``. A kill after
    its final save left its final evaluation and ``summary.json`` undone: they are done now
    (the evaluation in ``env``, None on ranks other than 0 or with evaluation off, by
    ``eval_config``; the loss the one logged at the last step), and the saved weights and
    the seeded episodes give the outcomes the run would have written. A run whose summary
    is written has nothing left to do."""
    loss = _logged_loss(out, steps)
    finished = _summary_steps(out) == steps
    outcome = None
    if env is not None:
        if not finished:
            outcome = evaluate(policy, env, episodes=eval_config.episodes, seed=eval_config.seed)
        env.close()
    if is_main:
        if finished:
            print(f"{out}: this run finished at step {steps}; nothing to train")
        else:
            print(f"{out}: this run trained its {steps} steps; writing its summary")
            _write_summary(out, steps, loss, outcome)
    return TrainResult(out / DEPLOY_SUBDIR, steps, loss, outcome)


def _logged_loss(out: Path, step: int) -> float:
    """The loss that the run at ``out`` logged at ``step`` in ``metrics.csv`` (the last step
    always logs, before its save); NaN if absent."""
    try:
        with (out / METRICS_CSV).open(newline="") as file:
            losses = [row["loss"] for row in csv.DictReader(file) if int(row["step"]) == step]
    except OSError:
        return float("nan")
    return float(losses[-1]) if losses else float("nan")


def _summary_steps(out: Path) -> int | None:
    """The steps of the summary the run at ``out`` wrote; None without one (a run killed
    before it, or while writing it)."""
    try:
        return int(json.loads((out / SUMMARY_JSON).read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return None


def _write_summary(out: Path, steps: int, loss: float, evaluation: EvalResult | None) -> None:
    """``summary.json``: the run's steps and final loss, and its last evaluation: success
    rate and outcomes, or, for a task without a success test, the returns alone."""
    summary: dict[str, Any] = {"steps": steps, "final_loss": loss}
    if evaluation is not None:
        outcome = (
            {"success_rate": evaluation.success_rate, "interval95": list(evaluation.interval),
             "successes": evaluation.successes}
            if evaluation.success_test
            else {"returns": evaluation.returns}
        )  # fmt: skip
        summary["eval"] = {**outcome, "seeds": evaluation.seeds}
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
