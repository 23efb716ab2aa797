"""The benchmark scripts as a user re-running the published numbers meets them: ``--help``
answers without running anything, a check run can write to a scratch file instead of the
committed ``benchmarks/results/``, and each row names its code, load and budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *arguments],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_dmp_comparison_help_runs_nothing_and_a_check_run_writes_only_its_out(
    tmp_path: Path,
) -> None:
    pytest.importorskip("movement_primitives.dmp", reason="the 'compare' extra is not installed")
    committed = BENCHMARKS / "results" / "dmp_vs_movement_primitives.json"
    before = committed.read_bytes()
    shown = run_script("dmp_vs_movement_primitives", "--help")
    assert shown.returncode == 0 and "--out" in shown.stdout, shown.stderr
    out = tmp_path / "check.json"
    run = run_script("dmp_vs_movement_primitives", "--steps", "50", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert committed.read_bytes() == before  # --help and a scratch run leave it alone
    row = json.loads(out.read_text())
    assert row["steps"] == 50 and len(row["load_avg"]) == 3 and row["code"] and row["cpu"]
    assert row["reproduction"]["ours_vs_theirs_max_m"] < 0.005
