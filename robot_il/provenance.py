"""Where a checkpoint came from, so that a result can be traced to the code and libraries
that made it and run again: robot_il's version and git commit (and whether the code had
changed since that commit), the versions of the libraries that shape its numbers, the Python,
the machine and its CPU (float rounding differs between CPUs: bfloat16 products on AMX,
float32 elsewhere), the command and the folder it ran in, the UTC time of the save, and the
datasets it learned from (path, episodes used, and a fingerprint of their content:
``dataset_record``); a checkpoint of
``robot-il train`` (bc, diffusion and the online learners) adds ``training``, its step (env
steps for an online learner) and the run's settings (seed, steps or env steps, batch size,
schedule), which a ``--config`` file may have given and the command line then does not
show. A run resumed after a kill adds ``segments``, one per process that trained it (the step
it started from, its code, libraries, CPU, command, device and threads: ``run_segment``): the
top-level record is the last process's, and a resume under other code or threads trains the
rest otherwise than one uninterrupted run would.

Every checkpoint's ``config.json`` carries this record as ``provenance``
(``robot_il.policies.base.write_policy_config``); ``robot-il eval`` prints it in one line
(``describe``) and keeps it in ``eval.json``. Checkpoints saved before it existed have none.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

LIBRARIES = ("torch", "numpy", "diffusers", "stable-baselines3", "mujoco", "pybullet",
             "dm-control", "zarr", "gymnasium")  # fmt: skip
"""Libraries whose versions a checkpoint records (those installed): diffusers' EMA trains
Diffusion (its schedulers did until session 50), stable-baselines3's PPO trains the DMP+RL
coordinator."""
REPOSITORY = Path(__file__).resolve().parents[1]
"""The checkout robot_il runs from, when it is one (an editable install)."""
RESULTS_FOLDER = "benchmarks/results"
"""What the benchmarks write into the checkout as they run: not a change of the code."""


def checkpoint_provenance(training_data: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The record a checkpoint saved now carries: ``code_provenance``, the save's UTC time and
    ``training_data`` (``dataset_record``s; left out when empty)."""
    saved = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {**code_provenance(), "saved_utc": saved}
    if training_data:
        record["training_data"] = training_data
    return record


def saved_training_data(saved: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``training_data`` of a checkpoint's parsed ``config.json`` (empty for one saved
    before provenance was recorded), for the policy a load builds: a re-save keeps it."""
    return list((saved.get("provenance") or {}).get("training_data", []))


def dataset_record(dataset: Any, path: str | Path, episodes: int) -> dict[str, Any]:
    """What a policy learned from ``dataset`` (a ``robot_il.dataset.Dataset`` opened from
    ``path``; a local path is made absolute), its first ``episodes`` episodes: the path, the
    episodes used and held, and a fingerprint (16 hex digits of SHA-256) of the attributes
    and of the used episodes' ends and low-dimensional keys (observations, actions; camera
    frames are left out, at hundreds of MB they would cost a run's start-up more than they
    tell): two recordings of the same layout with other motions or other readings differ in
    it; a copy of a dataset, or the same one with episodes appended after the used ones,
    keeps it."""
    ends = np.ascontiguousarray(dataset.episode_ends[:episodes], np.int64)
    steps = int(ends[-1]) if len(ends) else 0
    digest = hashlib.sha256(ends.tobytes())
    digest.update(json.dumps(dict(dataset.attrs), sort_keys=True, default=str).encode())
    for key in sorted(k for k, spec in dataset.specs.items() if not spec.is_image):
        digest.update(np.ascontiguousarray(dataset.read(key, 0, steps)).tobytes())
    where = str(path) if "://" in str(path) else str(Path(path).resolve())
    return {"path": where, "episodes_used": int(episodes),
            "episodes": dataset.num_episodes, "fingerprint": digest.hexdigest()[:16]}  # fmt: skip


def refuse_changed_data(
    state_dir: Path, saved: list[dict[str, Any]] | None, current: list[dict[str, Any]]
) -> None:
    """``CheckpointError`` if the run at ``state_dir`` started on other data than it would
    resume on (``robot_il.provenance.dataset_record``: a dataset re-recorded or edited at its
    path, or other episodes used: a dataset grown since, trained on all its episodes); a
    dataset moved, or grown after a run's ``max_episodes``, is the same data: a dataset
    grown since a run that used all its episodes started (recorded into while it trained) is
    resumed with ``max_episodes`` set to what the run used, which the message names. Runs
    saved before the record was kept are not compared."""
    from robot_il.errors import CheckpointError

    def used(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return [(record["fingerprint"], record["episodes_used"]) for record in records]

    if saved is not None and used(saved) != used(current):
        then = ", ".join(f"{r['path']} (data {r['fingerprint']}, {r['episodes_used']} episodes)"
                         for r in saved)  # fmt: skip
        now = ", ".join(f"data {r['fingerprint']}, {r['episodes_used']} episodes" for r in current)
        how = "resume on the data it started on"
        if len(saved) == len(current) == 1:
            before, after = saved[0]["episodes_used"], current[0]["episodes_used"]
            if before < after:  # recorded into since the run started?
                how = f"if episodes were only added since, resume with --max-episodes {before}"
        raise CheckpointError(
            f"{state_dir}: this run started on {then}; it would resume on {now} ({how}, or "
            "pass a new --out)"
        )


@functools.cache
def code_provenance() -> dict[str, Any]:
    """What stays the same for this process's saves, read on the first call (the git calls
    cost about 10 ms), which runs make as they start (``train``, ``train_online``,
    ``finetune_checkpoint``, the benchmarks), so that a save hours later names the code the
    process loaded, not a commit made since: ``robot_il`` version, ``git`` (``git_state``),
    ``python``, ``libraries`` (name -> version), ``machine``, ``cpu``, ``command`` (quoted as a
    shell reads it back) and ``cwd``, the folder its relative paths start from."""
    libraries = {}
    for name in LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "robot_il": metadata.version("robot_il"),
        "git": git_state(),
        "python": platform.python_version(),
        "libraries": libraries,
        "machine": platform.platform(),
        "cpu": _cpu_model(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "cwd": os.getcwd(),
    }


RESUME_SENSITIVE = ("device", "threads")
"""Training settings a resumed run may change (``robot_il.train.trainer.RESUME_FIXED`` holds
the others) that still change its numbers: float sums run in another order."""


def run_segment(from_step: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """What trains a run from ``from_step`` on in this process: its ``code_provenance`` and
    the ``RESUME_SENSITIVE`` entries of the run's ``settings``."""
    sensitive = {key: settings[key] for key in RESUME_SENSITIVE if key in settings}
    return {"from_step": from_step, **code_provenance(), **sensitive}


def segment_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What changed between two stretches of one run (``run_segment``s) that can change its
    numbers, each as ``name before -> after``: the code (``revision``), a library's version,
    Python, the CPU, the device, the threads."""
    changes = []
    if revision(before) != revision(after):
        changes.append(f"code {revision(before)} -> {revision(after)}")
    then, now = before.get("libraries", {}), after.get("libraries", {})
    changes += [f"{name} {then.get(name)} -> {now.get(name)}"
                for name in sorted({*then, *now}) if then.get(name) != now.get(name)]  # fmt: skip
    changes += [f"{key} {before.get(key)} -> {after.get(key)}"
                for key in ("python", "cpu", *RESUME_SENSITIVE)
                if before.get(key) != after.get(key)]  # fmt: skip
    return changes


def describe_resumes(segments: list[Mapping[str, Any]]) -> str:
    """Each resume of a run trained in ``segments`` (``run_segment``s, oldest first), for
    ``describe``: the step it resumed at and what changed then (``segment_changes``); a
    segment saved before segments kept their code is named as not recorded."""
    parts = []
    for before, after in zip(segments, segments[1:], strict=False):
        if "libraries" not in before:
            how = "; what trained the steps before it is not recorded"
        else:
            changes = segment_changes(before, after)
            how = f" with {', '.join(changes)}" if changes else " under the same code and settings"
        parts.append(f"; resumed at step {after['from_step']}{how}")
    return "".join(parts)


def revision(record: Mapping[str, Any] | None = None) -> str:
    """The code of ``record`` (default this process's ``code_provenance``) in a few
    characters, for result rows: the commit's first 10 hex digits, ``+changes`` if the code
    had changed since it; ``robot_il <version>`` outside a checkout."""
    record = code_provenance() if record is None else record
    git = record.get("git")
    if not git:
        return f"robot_il {record.get('robot_il', '?')}"
    return git["commit"][:10] + ("+changes" if git["dirty"] else "")


def describe(record: Mapping[str, Any] | None) -> str:
    """One line for a checkpoint's ``provenance`` record (or for its absence)."""
    if not record:
        return "provenance unknown (saved before checkpoints recorded it)"
    code = f"robot_il {record.get('robot_il', '?')}"
    if git := record.get("git"):
        changes = " with uncommitted changes" if git["dirty"] else ""
        code += f" at git {git['commit'][:10]}{changes}"
    libraries = record.get("libraries", {})
    torch = f", torch {libraries['torch']}" if "torch" in libraries else ""
    where = record.get("cpu") or record.get("machine", "?")
    saved = record.get("saved_utc", "?")
    line = f"saved {saved} by {code}{torch}, Python {record.get('python', '?')}, on {where}"
    data = [f"{d['path']} ({d['episodes_used']} of {d['episodes']} episodes, data "
            f"{d['fingerprint']})" for d in record.get("training_data", [])]  # fmt: skip
    line += f"; trained on {', '.join(data)}" if data else ""
    if training := record.get("training"):
        settings = training["config"]
        if "env_steps" in settings:  # an online run: its batch and rates are the policy's
            line += (f"; env step {training['step']} of {settings['env_steps']}, seed "
                     f"{settings['seed']}")  # fmt: skip
        else:
            line += (f"; step {training['step']} of {settings['steps']}, seed "
                     f"{settings['seed']}, batch {settings['batch_size']}, lr "
                     f"{settings['lr']:g}")  # fmt: skip
        line += describe_resumes(training.get("segments", []))
    return line


def git_state(repository: Path = REPOSITORY) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the checkout ``repository`` (dirty: files
    changed or added since the commit, git's ignored ones, ``RESULTS_FOLDER`` and markdown
    pages aside), or None outside one."""
    if not (repository / ".git").exists():
        return None
    try:
        commit = _git(repository, "rev-parse", "HEAD")
        changes = _git(repository, "status", "--porcelain", "--", ".",
                       f":(exclude){RESULTS_FOLDER}", ":(exclude)*.md")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(changes)}


def _git(repository: Path, *arguments: str) -> str:
    done = subprocess.run(["git", "-C", str(repository), *arguments], capture_output=True,
                          text=True, timeout=10, check=True)  # fmt: skip
    return done.stdout.strip()


def _cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()
