"""``benchmarks/opt_ail_report.py``: the plots and tables made from the benchmark's rows,
each learner's curve over the seeds that reached its budget, each online run against its
clone, and each push learner against the tuned BC of its own frame."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch, load_benchmark) -> ModuleType:
    """The report module over a fresh copy of the benchmark module it reads its names from."""
    monkeypatch.setitem(sys.modules, "opt_ail", load_benchmark("opt_ail"))
    return load_benchmark("opt_ail_report")


def test_each_expert_gets_its_own_plot(report: ModuleType, tmp_path: Path) -> None:
    """``plot`` draws one expert's rows (``--expert-seed``) into a file named for it, so a new
    expert's curves never overwrite the first expert's plot."""
    row = {"task": "dmc:walker_walk", "method": "opt_ail", "variant": "model-free",
           "profile": "cpu", "seed": 0, "demos": 1, "subsample": 1, "return": 100.0,
           "expert_return": 920.0}  # fmt: skip
    rows = [row | {"expert_seed": 0, "env_steps": 5000},
            row | {"expert_seed": 1, "env_steps": 10_000}]  # fmt: skip
    (tmp_path / "opt_ail.json").write_text(json.dumps({"runs": rows}))
    for seed in (0, 1):
        report.plot(argparse.Namespace(
            task="dmc:walker_walk", demos=1, subsample=1, expert_seed=seed, env_steps=100_000,
            results=tmp_path / "opt_ail.json", anchors=tmp_path / "no_anchors.csv"))  # fmt: skip
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "opt_ail_walker_walk.png", "opt_ail_walker_walk_x1.png"]  # fmt: skip


def test_a_learners_mean_curve_leaves_out_a_seed_stopped_short(report: ModuleType) -> None:
    """The mean and range over seeds are drawn over the seeds that reached the learner's
    furthest evaluation within the budget, at the steps all of them evaluated: a seed killed
    early neither cuts the curve at its last step nor bends it."""

    def row(seed: int, steps: int, value: float) -> dict:
        return {"seed": seed, "env_steps": steps, "return": value}

    rows = [row(0, 5_000, 50.0),  # stopped short
            row(1, 5_000, 10.0), row(1, 10_000, 20.0), row(1, 15_000, 40.0),
            row(2, 5_000, 30.0), row(2, 15_000, 60.0),  # missed the 10k evaluation
            row(1, 20_000, 900.0)]  # beyond the budget  # fmt: skip
    steps, values = report.seed_curves(rows, "return", 15_000)
    assert steps == [5_000, 15_000]
    assert values.tolist() == [[10.0, 40.0], [30.0, 60.0]]
    assert report.seed_curves([], "return", 15_000)[0] == []


def test_the_online_phase_is_measured_against_the_clone_each_run_started_from(
    report: ModuleType,
) -> None:
    """Each online run (learner, seed) with an evaluation at env step 0 and at the budget
    gives (clone, last); a run stopped short, one never cloned first and a ``task-reward``
    diagnostic give none; BC rows are no online run."""
    base = {"task": "ur5e:push", "variant": "model-free", "profile": "cpu"}

    def row(method: str, seed: int, steps: int, success: float, deviation: str = "x") -> dict:
        return base | {"method": method, "seed": seed, "env_steps": steps,
                       "success_rate": success, "deviation": deviation}  # fmt: skip

    rows = [row("opt_ail", 0, 0, 0.08), row("opt_ail", 0, 15_000, 0.2),
            row("opt_ail", 0, 30_000, 0.04), row("opt_ail", 1, 0, 0.02),
            row("opt_ail", 1, 30_000, 0.1),
            row("opt_ail", 2, 0, 0.06), row("opt_ail", 2, 20_000, 0.0),  # stopped short
            row("dac", 0, 5_000, 0.1), row("dac", 0, 30_000, 0.0),  # no clone evaluated
            row("opt_ail", 0, 0, 0.1, "task-reward"), row("opt_ail", 0, 30_000, 0.5, "task-reward"),
            row("iq_learn", 0, 0, 0.1), row("iq_learn", 0, 30_000, 0.1),
            row("bc", 0, 0, 0.3)]  # fmt: skip
    assert sorted(report.clone_and_last(rows, 30_000)) == [(0.02, 0.1), (0.08, 0.04), (0.1, 0.1)]


def test_the_push_plot_draws_the_best_settings_over_two_seeds_and_every_run_against_its_clone(
    report: ModuleType, tmp_path: Path
) -> None:
    """The UR5e plot's curves are the ``SHORTLIST`` best settings by mean success at the
    budget over at least two seeds (a one-seed setting and a ``task-reward`` diagnostic are
    left out, however high); the plot is written beside the results."""
    base = {"task": "ur5e:push", "variant": "model-free", "profile": "cpu", "demos": 10,
            "subsample": 1, "expert_return": None}  # fmt: skip

    def row(seed: int, steps: int, success: float, deviation: str) -> dict:
        return base | {"method": "opt_ail", "seed": seed, "env_steps": steps,
                       "success_rate": success, "success_ci": [0.0, 1.0],
                       "deviation": deviation}  # fmt: skip

    rows = [row(seed, steps, 0.02 * (i + 1), f"setting {i}") for i in range(6)
            for seed in (0, 1) for steps in (0, 30_000)]  # fmt: skip
    rows += [row(0, 30_000, 0.9, "one seed"), row(0, 30_000, 0.8, "task-reward"),
             row(1, 30_000, 0.8, "task-reward")]  # fmt: skip
    best = report.shortlist(rows, 30_000)
    assert [key[-1] for _, key in best] == ["setting 5", "setting 4", "setting 3", "setting 2"]
    assert best[0][0] == pytest.approx(0.12)
    results = tmp_path / "opt_ail.json"
    results.write_text(json.dumps({"runs": rows}))
    report.plot(argparse.Namespace(task="ur5e:push", demos=10, subsample=1, expert_seed=None,
                                    env_steps=30_000, results=results,
                                    anchors=tmp_path / "none.csv"))  # fmt: skip
    assert (tmp_path / "opt_ail_push.png").stat().st_size > 10_000


def test_the_push_table_holds_each_learner_to_the_tuned_bc_of_its_own_frame(
    report: ModuleType, capsys: pytest.CaptureFixture
) -> None:
    """A task-frame learner's gap is to the best BC setting trained in that frame, a world
    learner's to the world's; each frame's tuned BC has its line, its grid counted apart."""
    base = {"task": "ur5e:push", "variant": "model-free", "profile": "cpu",
            "success_ci": [0.0, 1.0]}  # fmt: skip

    def row(method: str, seed: int, success: float, **fields: object) -> dict:
        return base | {"method": method, "seed": seed, "env_steps": 0 if method == "bc"
                       else 30_000, "success_rate": success} | fields  # fmt: skip

    bc = {"weight_decay": 0.01, "lr": 1e-3}
    rows = [row("bc", 0, 0.1, **bc), row("bc", 0, 0.06, weight_decay=1e-6, lr=1e-3),
            row("bc", 0, 0.9, frame="push", **bc), row("bc", 1, 1.0, frame="push", **bc),
            row("opt_ail", 0, 0.2, deviation="world"),
            row("opt_ail", 0, 0.8, frame="push", deviation="push frame")]  # fmt: skip
    report.success_table(argparse.Namespace(task="ur5e:push", demos=10, env_steps=30_000), rows)
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if "(cpu, world)" in line).endswith("| 20% | +10 |")
    assert next(line for line in lines if "(cpu, push frame)" in line).endswith("| 80% | -15 |")
    assert "| tuned BC (best of 2: wd 0.01, lr 0.001) | 0 | s0: 10% (0%-100%) | 10% | 0 |" in lines
    assert any(line.startswith("| tuned BC (best of 1, push frame: wd 0.01") and "| 95% |" in line
               for line in lines)  # fmt: skip


def test_the_default_expert_is_the_newest_with_rows_not_a_dataset_on_this_disk(
    report: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh checkout has no DMC expert dataset (git-ignored): the table shows the newest
    expert's rows there too, as on the machine that recorded them, and names the expert; a
    plot without the paper's anchors CSV says it left their curves out."""
    row = {"task": "dmc:cartpole_swingup", "method": "opt_ail", "variant": "model-free",
           "profile": "cpu", "seed": 0, "demos": 1, "subsample": 1, "env_steps": 5000}  # fmt: skip
    rows = [row | {"expert_seed": 0, "return": 100.0, "expert_return": 800.0},
            row | {"expert_seed": 1, "return": 700.0, "expert_return": 850.0}]  # fmt: skip
    (tmp_path / "opt_ail.json").write_text(json.dumps({"runs": rows}))
    args = argparse.Namespace(task="dmc:cartpole_swingup", demos=1, subsample=1,
                              expert_seed=None, env_steps=100_000,
                              results=tmp_path / "opt_ail.json",
                              anchors=tmp_path / "no_anchors.csv")  # fmt: skip
    report.table(args)
    shown = capsys.readouterr().out
    assert "SAC expert seed 1" in shown and "s0: 700" in shown and "| 850 |" in shown
    report.plot(args)
    assert f"the paper's curves are left out: {tmp_path / 'no_anchors.csv'} not found" in (
        capsys.readouterr().err)  # fmt: skip
