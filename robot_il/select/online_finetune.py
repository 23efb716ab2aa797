"""Online fine-tuning as an option of a deployment: which checkpoint stands for each candidate.

Li et al. (2023) fine-tune the deployed model when supervision arrives. A deployment that
turns this on (it is off unless an :class:`OnlineFinetuner` is made) calls
:meth:`OnlineFinetuner.after_episode` between episodes with the candidate just deployed; once
the corrections dataset holds ``min_new_segments`` segments more than that candidate's last
fine-tuning used, the candidate's current checkpoint is fine-tuned into a new directory
``<out_root>/<name>-<hash>-ft<NNN>``, which :meth:`OnlineFinetuner.checkpoint_for` then
returns in place of the original. ``name`` is the candidate's folder name (a run's ``policy/``
takes its run's) and ``hash`` the first 8 hex digits of the SHA-256 of its resolved path, so
candidates of one name in different folders (``runs/seed0/bc``, ``runs/seed1/bc``) never take
each other's checkpoints; a candidate moved elsewhere starts a new series. A candidate with no
such series yet continues the ``<name>-ftNNN`` series of the earlier naming (folder name alone)
whose lineage starts from its own path, so a deployment restarted across the renaming picks up
its fine-tuned checkpoints and never another candidate's. The bandit arm stays
the same (its statistics carry on across the update, as the deployed model of the paper does);
the original checkpoint is never written.

Nothing else holds state: the latest ``-ftNNN`` directory of a candidate and its ``lineage``
(how many segments it was trained on) are read back from disk, so a restarted deployment
picks up where it stopped, and a fine-tuning killed half-way leaves no directory.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from robot_il.errors import ConfigError
from robot_il.policies import DEPLOY_SUBDIR
from robot_il.train.finetune import (
    FinetuneSettings,
    check_demos_spec,
    finetune_checkpoint,
    read_lineage,
)

_SUFFIX = re.compile(r"-ft(\d{3,})$")


@dataclass
class OnlineFinetuner:
    """Fine-tunes deployed candidates on the corrections at ``corrections`` (see module).

    ``out_root``: where new checkpoints go; ``demos``: the original demonstrations to mix in
    (None: corrections only); ``min_new_segments``: new corrected segments needed to start a
    fine-tuning (each costs seconds of CPU, so not after every intervention).
    """

    corrections: Path
    out_root: Path
    demos: Path | None = None
    settings: FinetuneSettings = field(default_factory=FinetuneSettings)
    min_new_segments: int = 1

    def __post_init__(self) -> None:
        self.corrections, self.out_root = Path(self.corrections), Path(self.out_root)
        if self.min_new_segments < 1:
            raise ConfigError(f"min_new_segments must be >= 1, got {self.min_new_segments}")
        if self.out_root.exists() and not self.out_root.is_dir():
            raise ConfigError(
                f"{self.out_root}: is a file, not a folder for fine-tuned checkpoints"
            )

    def check(self, candidate: str | os.PathLike[str]) -> None:
        """``DatasetError`` unless the corrections recorded so far (none yet is fine: the
        recorder creates them at the first intervention) and the demonstrations fit
        ``candidate``'s checkpoint. A deployment calls it for every candidate before the first
        episode; a misfit found only at the first fine-tuning would leave every candidate
        unchanged, the failure logged once per episode."""
        from robot_il.dataset import Dataset
        from robot_il.policies import read_checkpoint
        from robot_il.select.corrections import check_corrections_spec

        spec = read_checkpoint(candidate)[1]["spec"]
        if self.corrections.exists():
            check_corrections_spec(Dataset.open(self.corrections), spec, str(self.corrections))
        if self.demos is not None:
            check_demos_spec(Dataset.open(self.demos), spec, str(self.demos))

    def checkpoint_for(self, candidate: str | os.PathLike[str]) -> Path:
        """The checkpoint to deploy for ``candidate`` (a checkpoint path): its latest
        fine-tuned version, or itself if it was never fine-tuned."""
        latest = self._latest(Path(candidate))
        return Path(candidate) if latest is None else latest[1]

    def after_episode(self, candidate: str | os.PathLike[str]) -> Path | None:
        """Fine-tune ``candidate``'s current checkpoint if enough new corrections arrived;
        returns the new checkpoint, or None if there was nothing to do."""
        from robot_il.dataset import Dataset

        if not self.corrections.exists():
            return None
        segments = Dataset.open(self.corrections).num_episodes
        candidate = Path(candidate)
        latest = self._latest(candidate)
        used = 0 if latest is None else read_lineage(latest[1])[-1]["corrections_segments"]
        if segments - used < self.min_new_segments:
            return None
        number = 1 if latest is None else latest[0] + 1
        return finetune_checkpoint(
            self.checkpoint_for(candidate),
            self.corrections,
            self.out_root / f"{_stem(candidate)}-ft{number:03d}",
            demos_path=self.demos,
            settings=self.settings,
        )

    def _latest(self, candidate: Path) -> tuple[int, Path] | None:
        """(number, path) of ``candidate``'s newest fine-tuned checkpoint under ``out_root``:
        of its ``<stem>-ftNNN`` series, or while it has none, of the ``<name>-ftNNN`` series
        the old naming (the folder name alone) left for it."""
        run = _run(candidate)
        return self._series(_stem(candidate)) or self._series(run.name, descends_from=run)

    def _series(self, stem: str, descends_from: Path | None = None) -> tuple[int, Path] | None:
        """(number, path) of the newest ``<stem>-ftNNN`` checkpoint under ``out_root``; with
        ``descends_from``, of those whose first fine-tuning started from that checkpoint."""
        if not self.out_root.is_dir():
            return None
        found = []
        for path in self.out_root.iterdir():
            match = _SUFFIX.search(path.name)
            if not (match and path.name[: match.start()] == stem and path.is_dir()):
                continue
            if descends_from is None or _descends_from(path, descends_from):
                found.append((int(match.group(1)), path))
        return max(found) if found else None


def _run(candidate: Path) -> Path:
    """``candidate``'s checkpoint, resolved: a training run and its ``policy/`` are one."""
    return (candidate.parent if candidate.name == DEPLOY_SUBDIR else candidate).resolve()


def _stem(candidate: Path) -> str:
    """The name of ``candidate``'s fine-tuned checkpoints before ``-ftNNN``: its folder name
    and a hash of its resolved path (see the module docstring)."""
    run = _run(candidate)
    return f"{run.name}-{hashlib.sha256(str(run).encode()).hexdigest()[:8]}"


def _descends_from(checkpoint: Path, run: Path) -> bool:
    """Whether the fine-tuned ``checkpoint``'s first fine-tuning started from ``run`` (its
    lineage names the original's resolved path): an old-style ``<name>-ftNNN`` checkpoint
    belongs to the candidate it came from, not to every candidate of that folder name."""
    try:
        lineage = read_lineage(checkpoint)
    except (OSError, ValueError):  # not a checkpoint (no or no readable config.json)
        return False
    return bool(lineage) and _run(Path(lineage[0]["parent"])) == run
