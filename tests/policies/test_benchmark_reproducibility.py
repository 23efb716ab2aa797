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


@pytest.mark.parametrize(
    ("name", "arguments"),
    [("lock_step_rate", ()), ("deploy_latency", ()), ("control_tick_cost", ()),
     ("deploy_parity", ("checkpoint",))],
)  # fmt: skip
def test_a_ros_domain_out_of_range_is_one_line_before_any_node(
    name: str, arguments: tuple[str, ...]
) -> None:
    run = run_script(name, *arguments, "--domain", "173", timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"{name}.py: error: --domain 173: ROS domain id 173 is outside 0..101" in run.stderr


def test_lock_step_rate_appends_its_rows_with_code_and_load_to_results(tmp_path: Path) -> None:
    committed = BENCHMARKS / "results" / "lock_step_rate.jsonl"
    before = committed.read_bytes()
    results = tmp_path / "lock_step_rate.jsonl"
    run = run_script("lock_step_rate", "--seconds", "0.5", "--rounds", "1", "--results",
                     str(results))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert committed.read_bytes() == before
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["condition"] for r in rows] == ["idle", "busy core"]
    assert all(r["code"] and r["utc"] and r["seconds"] == 0.5 and r["load_avg"] > 0 for r in rows)


def test_deploy_latency_rows_go_to_results_with_code_and_time(
    tmp_path: Path, load_benchmark
) -> None:
    deploy_latency = load_benchmark("deploy_latency")
    results = tmp_path / "rows.jsonl"
    deploy_latency._append_row(results, {"policy": "bc", "rate_hz": 500.0}, 2.0)
    (row,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert row["policy"] == "bc" and row["seconds"] == 2.0 and row["load_avg"] > 0
    assert row["code"] and row["utc"].endswith("Z")
