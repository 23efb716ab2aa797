"""The benchmark scripts as a user re-running the published numbers meets them: ``--help``
answers without running anything, a check run can write to a scratch file instead of the
committed ``benchmarks/results/``, and each row names its code, load and budget."""

from __future__ import annotations

import ast
import json
import os
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
    assert f"{name}.py: error: argument --domain: must be in 0..101, got 173" in run.stderr


def test_lock_step_rate_appends_its_rows_with_code_and_load_to_results(tmp_path: Path) -> None:
    committed = BENCHMARKS / "results" / "lock_step_rate.jsonl"
    before = committed.read_bytes()
    results = tmp_path / "lock_step_rate.jsonl"
    run = run_script("lock_step_rate", "--seconds", "0.5", "--rounds", "1", "--results",
                     str(results))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert committed.read_bytes() == before
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    # the kept-awake condition needs the PM QoS device (root); without it the row is left out
    awake = ["kept awake"] if os.access("/dev/cpu_dma_latency", os.W_OK) else []
    assert [r["condition"] for r in rows] == ["idle", *awake, "busy core"]
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


@pytest.mark.parametrize(
    ("name", "arguments"),
    [("vision", ()), ("dmp_multiarm", ()), ("opt_ail_speed", ()), ("opt_ail_audit", ()),
     ("dmc_experts", ("train",)), ("control_tick_cost", ()), ("deploy_parity", ()),
     ("dataset_io", ()), ("handover_cell_limits", ()), ("node_start", ())],
)  # fmt: skip
def test_each_row_writing_benchmark_takes_a_results_path(
    name: str, arguments: tuple[str, ...]
) -> None:
    """A check run of any of them can write to scratch instead of ``benchmarks/results/``."""
    shown = run_script(name, *arguments, "--help", timeout=60)
    assert shown.returncode == 0 and "--results" in shown.stdout, shown.stderr


def test_the_rows_the_benchmarks_write_name_their_code_and_utc_time(
    tmp_path: Path, load_benchmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robot_il.provenance import revision

    dmc_experts = load_benchmark("dmc_experts")
    dmc_experts.append_row({"task": "dmc:walker_walk", "seed": 1, "env_steps": 20_000,
                            "return": 10.0}, tmp_path / "dmc.json")  # fmt: skip
    audit = load_benchmark("opt_ail_audit")
    audit.save("critic", tmp_path / "run", [{"group": "down", "q": 1.0}], tmp_path / "audit.json")
    monkeypatch.setitem(sys.modules, "policies", load_benchmark("policies"))
    vision = load_benchmark("vision")
    cells = tmp_path / "new" / "vision.json"
    vision.save_cell({"task": "push", "seed": 0, "steps": 10}, cells)
    rows = [json.loads((tmp_path / "dmc.json").read_text())["runs"][0],
            json.loads((tmp_path / "audit.json").read_text())["rows"][0],
            vision.load_cells(cells)[0]]  # fmt: skip
    assert [(row["code"], row["utc"][-1]) for row in rows] == [(revision(), "Z")] * 3


def test_a_success_cell_of_the_policies_grid_names_its_seeds_load_code_and_time(
    tmp_path: Path, load_benchmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training and evaluation (minutes) are left out: the row is what is checked."""
    from robot_il.train.evaluate import EvalResult

    policies = load_benchmark("policies")
    monkeypatch.setattr(policies, "demos", lambda work, *_: work / "demos" / "d" / "env.zarr")

    def trained(_dataset: Path, out: Path, *_args) -> Path:
        out.mkdir(parents=True)
        return out / "checkpoint"

    monkeypatch.setattr(policies, "train_run", trained)
    evaluated = EvalResult([10_000, 10_001], [True, False], [5, 9])
    monkeypatch.setattr(policies, "evaluate_checkpoint", lambda *_args: evaluated)
    cell = policies.grid_cell(tmp_path, "push", "mujoco", 2, "bc", (10, ()), 2, 2)
    assert cell["eval_seeds"] == [10_000, 10_001] and cell["recipe"]["steps"] == 10
    assert len(cell["load_avg"]) == 2 and cell["code"] and cell["utc"].endswith("Z")


def test_dmp_multiarm_timing_and_plot_go_to_results_and_name_their_code(tmp_path: Path) -> None:
    committed = BENCHMARKS / "results"
    before = {name: (committed / name).read_bytes()
              for name in ("dmp_multiarm.json", "dmp_multiarm.png")}  # fmt: skip
    timed = run_script("dmp_multiarm", "--timing-only", "--timing-episodes", "1", "--results",
                       str(tmp_path))  # fmt: skip
    assert timed.returncode == 0, timed.stderr
    timing = json.loads((tmp_path / "dmp_multiarm.json").read_text())["tick_us"]
    assert timing["episodes"] == 1 and len(timing["load_avg"]) == 3
    assert timing["code"] and timing["utc"].endswith("Z")
    (tmp_path / "dmp_multiarm.json").write_bytes(before["dmp_multiarm.json"])
    plotted = run_script("dmp_multiarm", "--plot-only", "--results", str(tmp_path))
    assert plotted.returncode == 0, plotted.stderr
    assert json.loads((tmp_path / "dmp_multiarm.json").read_text())["tick_us"]  # read, kept
    png = (tmp_path / "dmp_multiarm.png").read_bytes()
    assert b"Software" in png and timing["code"].encode() in png  # the PNG's text chunk
    assert {name: (committed / name).read_bytes() for name in before} == before


def test_control_tick_cost_refuses_ticks_within_the_untimed_ramp_before_any_work() -> None:
    run = run_script("control_tick_cost", "--ticks", "200", timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert "--ticks 200: the first 500 ticks (the safe start's 1 s ramp) are not timed" in (
        run.stderr)  # fmt: skip


def test_every_benchmark_help_describes_it_in_whole_sentences() -> None:
    """Each script's ``--help`` description (a part of its docstring) is a whole paragraph,
    not a first line cut mid-sentence."""
    for script in sorted(BENCHMARKS.glob("*.py")):
        tree = ast.parse(script.read_text())
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "attr", None) == "ArgumentParser"]  # fmt: skip
        for call in calls:
            (description,) = [k.value for k in call.keywords if k.arg == "description"]
            shown = eval(ast.unparse(description), {"__doc__": ast.get_docstring(tree, False)})
            assert shown.rstrip().endswith((".", "?", ".)")), f"{script.name}: {shown!r}"
