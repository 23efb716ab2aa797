"""Fine-tuning a deployed checkpoint on a person's corrections, between episodes.

Li et al. (2023) fine-tune the deployed model whenever supervision arrives. Here the
supervision is the corrected segments a person teleoperated (``robot_il.select.corrections``),
and the update is behaviour cloning on them: the policy's own loss on its own normalizer (the
network was trained in that normalized space, so it is kept, not refitted), few steps, a small
constant learning rate, and optionally half of every batch from the original demonstrations
so the policy does not forget what already worked.

The result is always a NEW checkpoint directory: the deployed one is only read, so it stays
the known fallback (and a bandit candidate) whatever the fine-tuning does. Its ``config.json``
carries ``lineage``, the chain of fine-tunings from the original training run (oldest first),
each naming its parent checkpoint with a hash of the parent's weights, the parent's own
provenance (the code, command, data and training settings that made it: the new
checkpoint's provenance is the fine-tuning's, and the parent may be gone when the result is
traced), the corrections used and the settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from robot_il.errors import ConfigError, DatasetError
from robot_il.policies import DEPLOY_SUBDIR, load_policy
from robot_il.policies.base import Policy
from robot_il.policies.checkpoint_files import CONFIG_FILE, WEIGHTS_FILE
from robot_il.policies.optimizers import adamw
from robot_il.policies.spec import ACTION_KEY, spec_from_dataset, spec_mismatches
from robot_il.provenance import code_provenance, dataset_record

LINEAGE_KEY = "lineage"
"""``config.json`` entry listing the fine-tunings that led to a checkpoint."""


@dataclass(frozen=True)
class FinetuneSettings:
    """How hard to fine-tune.

    ``steps``: optimizer steps; ``lr``: constant AdamW learning rate (small: the policy is
    already trained, the corrections nudge it); ``batch_size``: windows per step;
    ``demo_fraction``: share of each batch drawn from the original demonstrations when they
    are given (0 < f < 1); ``threads``: torch CPU threads while fine-tuning (0: leave as is).
    """

    steps: int = 300
    lr: float = 3e-4
    batch_size: int = 128
    demo_fraction: float = 0.5
    weight_decay: float = 1e-6
    grad_clip: float = 10.0
    seed: int = 0
    threads: int = 1

    def check(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError(f"finetune: steps must be >= 1 and batch_size >= 2, got {self}")
        if not 0.0 < self.lr < 1.0:
            raise ConfigError(f"finetune: lr {self.lr} is not in (0, 1)")
        if not 0.0 < self.demo_fraction < 1.0:
            raise ConfigError(f"finetune: demo_fraction {self.demo_fraction} is not in (0, 1)")


def finetune_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    corrections_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    demos_path: str | os.PathLike[str] | None = None,
    settings: FinetuneSettings | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> Path:
    """Fine-tune the checkpoint at ``checkpoint_dir`` on the corrections dataset at
    ``corrections_path`` (mixed with ``demos_path`` if given) into the new ``out_dir``.

    Refuses (``ConfigError``) an ``out_dir`` that exists or is the checkpoint itself, and
    (``DatasetError``) corrections or demos recorded for another robot or observation spec,
    before any training. Returns ``out_dir``, written atomically (a kill leaves no half
    checkpoint there).
    """
    from robot_il.dataset import Dataset
    from robot_il.select.corrections import check_corrections_spec

    code_provenance()  # the code this fine-tuning loaded (see robot_il.provenance)
    settings = settings or FinetuneSettings()
    settings.check()
    checkpoint = _checkpoint_dir(Path(checkpoint_dir))
    out = Path(out_dir)
    if out.resolve() == checkpoint.resolve() or out.exists():
        raise ConfigError(
            f"{out}: fine-tuning writes a new checkpoint; pick a directory that does not exist "
            f"(the deployed {checkpoint} is never overwritten)"
        )
    policy = load_policy(checkpoint, device=device)
    parent = json.loads((checkpoint / CONFIG_FILE).read_text())  # its provenance and lineage
    corrections = Dataset.open(corrections_path, cache="ram")
    check_corrections_spec(corrections, policy.spec, str(corrections_path))
    if corrections.num_episodes == 0:
        raise DatasetError(f"{corrections_path}: holds no corrected segment yet")
    samplers = [_sampler(policy, corrections)]
    # what it learns from now, after what its parent learned from (its load's own list)
    policy.training_data.append(
        dataset_record(corrections, corrections_path, corrections.num_episodes)
    )
    if demos_path is not None:
        demos = Dataset.open(demos_path, cache="ram")
        check_demos_spec(demos, policy.spec, str(demos_path))
        samplers.append(_sampler(policy, demos))
        policy.training_data.append(dataset_record(demos, demos_path, demos.num_episodes))

    threads = torch.get_num_threads()
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    try:
        loss = _train(policy, samplers, settings, progress)
    finally:
        torch.set_num_threads(threads)
    entry = {
        "parent": str(checkpoint.resolve()),
        "parent_weights_sha256": _sha256(checkpoint / WEIGHTS_FILE),
        "parent_provenance": parent.get("provenance"),
        "corrections": str(Path(corrections_path).resolve()),
        "corrections_segments": corrections.num_episodes,
        "corrections_steps": corrections.num_steps,
        "demos": None if demos_path is None else str(Path(demos_path).resolve()),
        "settings": asdict(settings),
        "final_loss": loss,
        "created_unix": time.time(),
    }
    return _save_new(policy, out, [*parent.get(LINEAGE_KEY, []), entry])


def check_demos_spec(demos: Any, spec: dict[str, Any], where: str) -> None:
    """``DatasetError`` naming ``where`` unless the demonstrations ``demos`` (a Dataset) fit a
    checkpoint trained for ``spec``: robot, control rate, action mode and dimension,
    observation keys and shapes."""
    recorded = spec_from_dataset(demos, sorted(spec["observation"]), where)
    problems = spec_mismatches(spec, recorded)
    if problems:
        raise DatasetError(
            f"{where}: demonstrations do not fit the checkpoint: {'; '.join(problems)}"
        )


def read_lineage(checkpoint_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The fine-tunings behind a checkpoint, oldest first (empty for a trained one)."""
    config = json.loads((_checkpoint_dir(Path(checkpoint_dir)) / CONFIG_FILE).read_text())
    return list(config.get(LINEAGE_KEY, []))


def _checkpoint_dir(directory: Path) -> Path:
    """A checkpoint directory, or a training run's ``policy/`` (as ``load_policy`` accepts)."""
    if not (directory / CONFIG_FILE).exists() and (directory / DEPLOY_SUBDIR).is_dir():
        return directory / DEPLOY_SUBDIR
    return directory


def _sampler(policy: Policy, dataset: Any) -> Any:
    from robot_il.dataset import SequenceSampler

    return SequenceSampler(
        dataset,
        keys=[*policy.obs_keys, ACTION_KEY],
        obs_keys=policy.obs_keys,
        horizon=policy.config.horizon,
        n_obs_steps=policy.config.n_obs_steps,
    )


def _train(
    policy: Policy, samplers: list[Any], settings: FinetuneSettings, progress: bool
) -> float:
    """BC steps on batches split between corrections and (if present) demonstrations."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    n_demo = round(settings.batch_size * settings.demo_fraction) if len(samplers) > 1 else 0
    counts = [settings.batch_size - n_demo, n_demo][: len(samplers)]
    policy.train()
    policy.begin_training()
    optimizer = adamw(policy.parameters(), settings.lr, settings.weight_decay)
    loss_value = float("nan")
    bar = tqdm(range(settings.steps), desc="finetune", disable=not progress, leave=False)
    for _ in bar:
        parts = [
            s.batch(rng.integers(0, len(s), n)) for s, n in zip(samplers, counts, strict=True) if n
        ]
        window = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        batch = {
            key: torch.from_numpy(value).to(policy.device)
            for key, value in policy.normalize_window(window).items()
        }
        loss = policy(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.grad_clip)
        optimizer.step()
        policy.after_optimizer_step()
        loss_value = float(loss.detach())
        bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
    policy.eval()
    return loss_value


def _save_new(policy: Policy, out: Path, lineage: list[dict[str, Any]]) -> Path:
    """Write the checkpoint beside ``out`` and rename it into place."""
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    policy.save(tmp)
    config_path = tmp / CONFIG_FILE
    config = json.loads(config_path.read_text())
    config[LINEAGE_KEY] = lineage
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    os.rename(tmp, out)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
