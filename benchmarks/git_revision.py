"""Code of an earlier git revision, run beside today's: the baselines that speed benchmarks
time in the same process."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def source_at(rev: str, path: str) -> str:
    """Text of ``path`` (relative to the repository root) at git revision ``rev``."""
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip


def module_at(rev: str, path: str, name: str) -> types.ModuleType:
    """``path`` at ``rev`` executed as a new module ``name``, registered in ``sys.modules``
    before it runs (dataclasses look their module up)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(source_at(rev, path), f"{rev}:{path}", "exec"), module.__dict__)
    return module
