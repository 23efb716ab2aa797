"""The results of ``benchmarks/opt_ail.py`` as the README shows them: a markdown table and a
plot per task, read from its rows (``benchmarks/results/opt_ail.json``).

    python benchmarks/opt_ail_report.py table --task dmc:walker_walk --env-steps 100000
    python benchmarks/opt_ail_report.py plot --task dmc:walker_walk
    python benchmarks/opt_ail_report.py table --task ur5e:push --env-steps 30000
    python benchmarks/opt_ail_report.py table --results benchmarks/results/opt_ail_final.json

Both show one expert's rows (``--expert-seed``, default the newest DMC expert, the highest seed
with rows in ``--results``: the committed rows alone decide, not a dataset on this disk) for
one number of demonstrations and subsampling. ``table`` prints each learner's last evaluation
per seed within ``--env-steps`` and their mean (DMC: as a fraction of the expert's return; UR5e:
success with its 95% interval, in points above the tuned BC of the learner's frame), and the
tuned BC (the grid setting with the best mean over its seeds). ``plot`` draws return against
env steps in two panels, each learner's mean and range over its seeds (those that reached its
furthest evaluation) and every run (a run cut short shows the evaluations it made), with the
paper's OPT-AIL and BC curves (``/work/shared/anchors`` or ``--anchors``), the expert and
tuned BC as lines; on UR5e tasks, each run's success against its clone's and the best
settings over env steps. The plot is written beside ``--results``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from opt_ail import (
    DEFAULT_DEMOS,
    EVAL_EPISODES,
    MAX_ENV_STEPS,
    ONLINE_METHODS,
    PAPER_NAMES,
    RESULTS,
    UR5E_TASKS,
    family,
    row_expert_seed,
    task_slug,
)

ANCHORS = Path("/work/shared/anchors/optail_paper_figures.csv")
SUCCESS_GOAL_POINTS = 0.20
"""UR5e tasks' goal: OPT-AIL's success this far above tuned BC's (the issue's, on push)."""
LEGEND_LINE_CHARS = 150
"""Characters per line of a plot's legend entry (fontsize 7 across a 10-inch figure)."""
AXES_HEIGHT_IN = 4.0
"""The plot's axes height (inches), whatever the legend's length."""
TITLE_IN, XLABEL_IN = 0.45, 0.7
"""Inches above the axes (title) and below them (tick labels and x label)."""
SHORTLIST = 4
"""How many settings the UR5e plot draws over env steps (those with the best mean)."""
COLORS = ("tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
          "tab:olive", "tab:cyan", "navy", "teal", "maroon", "gold", "darkviolet",
          "lime")  # fmt: skip
LABELS = {("opt_ail", "model-free"): "OPT-AIL", ("opt_ail", "model-based"): "OPT-AIL model-based",
          ("iq_learn", "model-free"): "IQ-Learn", ("dac", "model-free"): "DAC"}  # fmt: skip
LearnerKey = tuple[str, str, str, str, str, str]
"""(method, variant, profile, observation inputs, precision, deviations): what tells one
learner's rows from another's (:func:`learner_key`)."""


def paper_curve(task: str, method: str, anchors: Path) -> tuple[np.ndarray, np.ndarray]:
    """The paper's one-trajectory curve of ``method`` (``OPT``, ``BC``, ``EXP``) on ``task``
    from the anchors CSV: env steps (NaN for a level drawn at every step) and returns."""
    xs, ys = [], []
    with anchors.open() as file:
        for row in csv.DictReader(file):
            if (row["figure"] == "interaction_1traj" and row["task"] == PAPER_NAMES[task]
                    and row["method"] == method):  # fmt: skip
                # env steps as "100k"; the expert's level as "all" (one value for every x)
                xs.append(np.nan if row["x"] == "all" else float(row["x"].rstrip("k")) * 1000)
                ys.append(float(row["return"]))
    return np.array(xs), np.array(ys)


def wanted_expert_seed(args: argparse.Namespace) -> int | None:
    """``--expert-seed``; on DMC tasks by default the newest expert's, the highest seed among
    the task's rows (its second expert's on the walker tasks), so that a checkout without the
    (git-ignored) expert dataset shows the same rows as the machine that recorded it."""
    if args.expert_seed is None and family(args.task) == "dmc":
        return max((row_expert_seed(r) for r in setting_rows(args)), default=0)
    return args.expert_seed


def setting_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows of ``--results`` for this task, number of demonstrations and subsampling."""
    if not args.results.exists():
        raise SystemExit(f"{args.results}: no results yet; run a part first")
    return [r for r in json.loads(args.results.read_text())["runs"] if r["task"] == args.task
            and r["demos"] == args.demos and r["subsample"] == args.subsample]  # fmt: skip


def task_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``setting_rows`` of one expert (``wanted_expert_seed``)."""
    wanted = wanted_expert_seed(args)
    return [r for r in setting_rows(args) if row_expert_seed(r) == wanted]


def best_bc(
    rows: list[dict[str, Any]], metric: str = "return", frame: str | None = None
) -> tuple[dict[str, Any], float, list[float]] | None:
    """The tuned BC baseline in the task ``frame`` (None: the world's): the grid setting with
    the best mean ``metric`` over its seeds; returns one of its rows (for the setting), that
    mean and the seeds' values."""
    settings: dict[tuple[float, float], list[dict[str, Any]]] = {}
    for r in rows:
        if r["method"] == "bc" and r.get("frame") == frame:
            settings.setdefault((r["weight_decay"], r["lr"]), []).append(r)
    if not settings:
        return None
    best = max(settings.values(), key=lambda group: np.mean([r[metric] for r in group]))
    values = [r[metric] for r in sorted(best, key=lambda r: r["seed"])]
    return best[0], float(np.mean(values)), values


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, expert = task_rows(args), wanted_expert_seed(args)
    if family(args.task) == "ur5e":
        return plot_success(args, rows)
    metric = "return"
    fig, (curves_ax, runs_ax) = plt.subplots(1, 2, sharey=True, dpi=120)
    if args.task in PAPER_NAMES and not args.anchors.exists():
        print(f"the paper's curves are left out: {args.anchors} not found (the anchors CSV, "
              "--anchors)", file=sys.stderr)  # fmt: skip
    elif args.task in PAPER_NAMES:
        x, y = paper_curve(args.task, "OPT", args.anchors)
        curves_ax.plot(x, y, color="tab:gray", lw=2, label="OPT-AIL, paper (5 seeds, 1 traj)")
        x, y = paper_curve(args.task, "BC", args.anchors)
        curves_ax.plot(x, y, color="tab:gray", lw=1, ls="--", label="BC, paper")
        x, y = paper_curve(args.task, "EXP", args.anchors)
        if len(y):
            curves_ax.axhline(float(np.mean(y)), color="tab:gray", ls=":", label="expert, paper")
    ours_steps = [r["env_steps"] for r in rows if r["method"] in ONLINE_METHODS]
    budget = max([MAX_ENV_STEPS, *ours_steps])  # the budget the goals name, or a longer run
    for key, color in zip(learner_keys(rows), itertools.cycle(COLORS)):
        steps, values = seed_curves(learner_rows(rows, key), metric, budget)
        if len(steps):
            curves_ax.plot(steps, values.mean(axis=0), marker="o", ms=3, lw=1.5, color=color,
                           label=f"{learner_name(key)}: {values[:, -1].mean():.0f} at "
                           f"{steps[-1] / 1000:g}k ({len(values)} seed"
                           + "s" * (len(values) > 1) + ")")  # fmt: skip
            curves_ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=color,
                                   alpha=0.12)  # fmt: skip
        runs: dict[int, list[dict[str, Any]]] = {}
        for r in sorted(learner_rows(rows, key), key=lambda r: r["env_steps"]):
            runs.setdefault(r["seed"], []).append(r)
        for group in runs.values():
            runs_ax.plot([r["env_steps"] for r in group], [r[metric] for r in group],
                         lw=0.9, color=color, alpha=0.7)  # fmt: skip
    if rows and rows[0]["expert_return"] is not None:
        level = rows[0]["expert_return"]
        for ax in (curves_ax, runs_ax):
            ax.axhline(
                level,
                color="black",
                ls="--",
                label=f"expert imitated, ours ({level:.0f})" if ax is curves_ax else None,
            )
    bc = best_bc(rows, metric)
    if bc:
        setting, mean, values = bc
        label = (f"tuned BC, ours (wd {setting['weight_decay']:g}, lr {setting['lr']:g}; "
                 f"{len(values)} seed{'s' * (len(values) > 1)})")  # fmt: skip
        for ax in (curves_ax, runs_ax):
            ax.axhline(mean, color="tab:red", ls="-.", label=label if ax is curves_ax else None)
    episodes = EVAL_EPISODES[family(args.task)]
    name = (f"{args.task}, {args.demos} expert trajectories, subsample {args.subsample}"
            + ("" if expert is None else f", SAC expert seed {expert}"))  # fmt: skip
    curves_ax.set(xlim=(0, budget * 1.02), xlabel="env steps",
                  ylabel=f"{metric.replace('_', ' ')} ({episodes} episodes)",
                  title=f"{name}:\neach learner's mean and range over its seeds")  # fmt: skip
    runs_ax.set(xlim=(0, budget * 1.02), xlabel="env steps",
                title="every run (learner and seed), colours as left")  # fmt: skip
    legend_below(fig, *curves_ax.get_legend_handles_labels(), width_in=14)
    suffix = f"_k{args.subsample}" if args.subsample > 1 else ""
    suffix += f"_x{expert}" if expert else ""  # one plot per expert, as run directories
    save_plot(fig, args.results.with_name(f"opt_ail_{task_slug(args.task)}{suffix}.png"))


def seed_curves(
    rows: list[dict[str, Any]], metric: str, env_steps: int
) -> tuple[list[int], np.ndarray]:
    """One learner's evaluations up to ``env_steps`` as (env steps, a seeds x steps array of
    ``metric``) over the seeds that reached its furthest evaluation, at the steps all of
    them evaluated: a seed stopped short is left out of the mean and range (each run is
    drawn on its own elsewhere) rather than cutting the curve short or bending it."""
    seeds: dict[int, dict[int, float]] = {}
    for r in rows:
        if r["env_steps"] <= env_steps:
            seeds.setdefault(r["seed"], {})[r["env_steps"]] = r[metric]
    if not seeds:
        return [], np.empty((0, 0))
    furthest = max(max(by_step) for by_step in seeds.values())
    reached = [by_step for by_step in seeds.values() if furthest in by_step]
    steps = sorted(set.intersection(*(set(by_step) for by_step in reached)))
    return steps, np.array([[by_step[t] for t in steps] for by_step in reached])


def legend_below(fig: Any, handles: list, labels: list[str], width_in: float) -> None:
    """The legend below the axes, the figure growing with it: with a dozen curves and learner
    names of a line each, any place inside or beside the axes hides curves or squeezes the
    axes; names longer than the figure is wide are wrapped. The axes keep their height in
    inches (``AXES_HEIGHT_IN``) however many entries the legend lists."""
    labels = [textwrap.fill(label, LEGEND_LINE_CHARS) for label in labels]
    legend = fig.legend(handles, labels, fontsize=7, loc="upper left", borderaxespad=0)
    fig.canvas.draw()  # the legend's drawn height, then the figure around it
    legend_in = legend.get_window_extent().height / fig.dpi
    height = TITLE_IN + AXES_HEIGHT_IN + XLABEL_IN + legend_in
    fig.set_size_inches(width_in, height)
    left = 0.8 / width_in  # the y tick labels' and y label's room, in inches
    fig.subplots_adjust(left=left, right=0.98, top=1 - TITLE_IN / height,
                        bottom=1 - (TITLE_IN + AXES_HEIGHT_IN) / height, wspace=0.2)  # fmt: skip
    legend.set_bbox_to_anchor((left, legend_in / height), transform=fig.transFigure)


def save_plot(fig: Any, path: Path) -> None:
    fig.savefig(path)
    print(f"wrote {path}")


def shortlist(rows: list[dict[str, Any]], env_steps: int) -> list[tuple[float, LearnerKey]]:
    """The ``SHORTLIST`` imitation learners (``task-reward`` diagnostics left out) with the
    best mean success at ``env_steps`` over the seeds evaluated there, at least two; best
    first, each with that mean."""
    ranked = []
    for key in learner_keys(rows):
        reached = [r["success_rate"] for r in learner_rows(rows, key)
                   if r["env_steps"] == env_steps]  # fmt: skip
        if "task-reward" not in key[-1] and len(reached) >= 2:
            ranked.append((float(np.mean(reached)), key))
    return sorted(ranked, reverse=True)[:SHORTLIST]


def plot_success(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The UR5e plot, two panels. Left: every imitation run (learner and seed) evaluated at
    env step 0 and at ``--env-steps``, its clone's success against its last: a point below
    the diagonal is an online phase that lost what cloning had. Right: over env steps, the
    ``SHORTLIST`` settings (learners, ``task-reward`` diagnostics left out) with the best
    mean at ``--env-steps`` over at least two seeds, each as the mean of its seeds and their
    range. Both against tuned BC's mean over its seeds and the goal (BC + 20 points).
    Dozens of settings were tried on push: one curve per run and seed would be a wall."""
    import matplotlib.pyplot as plt

    fig, (runs_ax, curves_ax) = plt.subplots(1, 2, dpi=120)
    families = sorted({key[:2] for key in learner_keys(rows)})
    colors = dict(zip(families, itertools.cycle(COLORS), strict=False))
    jitter = np.random.default_rng(0)  # overlapping points (steps of 1/50) drawn apart
    for family_key in families:
        pairs = [pair for key, key_pairs in clone_and_last_by_learner(rows, args.env_steps)
                 if key[:2] == family_key for pair in key_pairs]  # fmt: skip
        if pairs:
            clone, last = (np.array(v) + jitter.uniform(-0.004, 0.004, len(pairs))
                           for v in zip(*pairs, strict=True))  # fmt: skip
            runs_ax.scatter(clone, last, s=18, alpha=0.7, color=colors[family_key],
                            label=f"{LABELS[family_key]}: {len(pairs)} run"
                            + "s" * (len(pairs) > 1))  # fmt: skip
    for rank, (mean, key) in enumerate(shortlist(rows, args.env_steps)):
        steps, values = seed_curves(learner_rows(rows, key), "success_rate", args.env_steps)
        color = COLORS[rank % len(COLORS)]
        curves_ax.plot(steps, values.mean(axis=0), marker="o", ms=3, color=color,
                       label=f"{learner_name(key)}: {mean:.0%} at {args.env_steps} "
                       f"({len(values)} seeds)")  # fmt: skip
        curves_ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=color,
                               alpha=0.15)  # fmt: skip
    top = max([r["success_rate"] for r in rows if r["success_rate"] is not None], default=0.3)
    bc = best_bc(rows, "success_rate")
    if bc:
        setting, mean, values = bc
        goal = mean + SUCCESS_GOAL_POINTS
        top = max(top, goal)
        for ax in (runs_ax, curves_ax):
            ax.axhline(mean, color="tab:red", ls="-.", label=(
                f"tuned BC (wd {setting['weight_decay']:g}, lr {setting['lr']:g}; mean of "
                f"{len(values)} seeds)") if ax is curves_ax else None)  # fmt: skip
            ax.axhline(goal, color="tab:red", ls=":", label=(
                f"goal: tuned BC + {SUCCESS_GOAL_POINTS * 100:.0f} points ({goal:.0%})")
                if ax is curves_ax else None)  # fmt: skip
    for frame in sorted({r["frame"] for r in rows if r["method"] == "bc" and r.get("frame")}):
        setting, mean, values = best_bc(rows, "success_rate", frame)
        top = max(top, mean)
        label = (f"tuned BC in the {frame} frame (wd {setting['weight_decay']:g}, lr "
                 f"{setting['lr']:g}; mean of {len(values)} seeds)")  # fmt: skip
        for ax in (runs_ax, curves_ax):
            ax.axhline(mean, color="tab:gray", ls="-.", label=label if ax is curves_ax else None)
    limit = min(1.02, top + 0.05)
    runs_ax.plot([0, limit], [0, limit], color="black", lw=0.8, label="no change")
    runs_ax.set(xlim=(-0.02, limit), ylim=(-0.02, limit), xlabel="clone's success (env step 0)",
                ylabel=f"success at {args.env_steps} env steps (50 episodes)",
                title=f"{args.task}, {args.demos} demos: each run against its clone")  # fmt: skip
    runs_ax.legend(fontsize=7, loc="upper left")
    curves_ax.set(xlim=(0, args.env_steps * 1.02), ylim=(-0.02, limit), xlabel="env steps",
                  ylabel="success (50 episodes)", title=f"the {SHORTLIST} best settings at "
                  f"{args.env_steps}: mean and range of their seeds")  # fmt: skip
    legend_below(fig, *curves_ax.get_legend_handles_labels(), width_in=14)
    save_plot(fig, args.results.with_name(f"opt_ail_{task_slug(args.task)}.png"))


def learner_key(row: dict[str, Any]) -> LearnerKey:
    """What tells online learners apart: method, variant, profile, observation inputs, matmul
    precision and deviations (rows from before ``obs_normalization``, ``precision`` or
    ``deviation`` existed fed raw observations, computed in float32, had no deviation;
    ``bf16`` rows whose CPU kept float32 products, ``bf16_rounds`` false, are ``bf16 mode,
    fp32 products``)."""
    precision = row.get("precision") or "fp32"
    if precision == "bf16" and row.get("bf16_rounds") is False:
        precision = "bf16 mode, fp32 products"
    return (row["method"], row["variant"], row["profile"], row.get("obs_normalization") or "raw",
            precision, row.get("deviation") or "")  # fmt: skip


def learner_keys(rows: list[dict[str, Any]]) -> list[LearnerKey]:
    """The ``learner_key`` of every online learner among ``rows``, sorted."""
    return sorted({learner_key(r) for r in rows if r["method"] in ONLINE_METHODS})


def learner_rows(rows: list[dict[str, Any]], key: LearnerKey) -> list:
    return [r for r in rows if r["method"] in ONLINE_METHODS and learner_key(r) == key]


def learner_name(key: LearnerKey) -> str:
    """E.g. ``OPT-AIL (cpu, obs gaussian, bf16)``: the profile for OPT-AIL, the inputs if not
    raw, the matmul precision if not float32, the deviations if any."""
    method, variant, profile, normalization, precision, deviations = key
    settings = [profile] if method == "opt_ail" else []
    settings += [f"obs {normalization}"] if normalization != "raw" else []
    settings += [precision] if precision != "fp32" else []
    settings += [deviations] if deviations else []
    return LABELS[method, variant] + (f" ({', '.join(settings)})" if settings else "")


def table(args: argparse.Namespace) -> None:
    """A markdown table: each learner's last evaluation per seed at or before ``--env-steps``,
    their mean as a fraction of the expert's return, and the best tuned BC."""
    rows = task_rows(args)
    if not rows:
        raise SystemExit(f"no rows for {args.task}")
    if family(args.task) == "ur5e":
        return success_table(args, rows)
    expert = rows[0]["expert_return"]
    print(f"| {args.task} ({args.demos} demo, SAC expert seed {wanted_expert_seed(args)}) | "
          "env steps | seeds: return | mean | × expert |")  # fmt: skip
    print("|---|---|---|---|---|")
    for key in learner_keys(rows):
        last = last_evaluations(learner_rows(rows, key), args.env_steps)
        if not last:
            continue
        steps = sorted({r["env_steps"] for r in last.values()})
        mean = float(np.mean([r["return"] for r in last.values()]))
        seeds = ", ".join(f"s{s}: {r['return']:.0f}" for s, r in sorted(last.items()))
        name = learner_name(key)
        print(f"| {name} | {'/'.join(map(str, steps))} | "
              f"{seeds} | {mean:.0f} | {mean / expert:.2f} |")  # fmt: skip
    bc = best_bc(rows)
    if bc:
        setting, mean, returns = bc
        grid = len({(r["weight_decay"], r["lr"]) for r in rows if r["method"] == "bc"})
        seeds = ", ".join(f"{r:.0f}" for r in returns)
        print(f"| tuned BC (best of {grid} settings: wd {setting['weight_decay']:g}, lr "
              f"{setting['lr']:g}) | 0 | {seeds} | {mean:.0f} | {mean / expert:.2f} |")  # fmt: skip
    print(f"| expert (SAC, imitated trajectories) | | | {expert:.0f} | 1.00 |")


def last_evaluations(rows: list[dict[str, Any]], env_steps: int) -> dict[int, dict[str, Any]]:
    """Each seed's last row at or before ``env_steps``."""
    last: dict[int, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["env_steps"]):
        if r["env_steps"] <= env_steps:
            last[r["seed"]] = r
    return last


def success_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The UR5e markdown table: success over 50 seeded episodes (95% interval), each
    learner's last evaluation per seed within ``--env-steps``, against the best tuned BC in
    its task frame (or the world's); then how the runs that reached ``--env-steps`` ended
    against their clones."""
    frames = sorted({r.get("frame") or "" for r in rows if r["method"] == "bc"})
    baselines = {frame or None: best_bc(rows, "success_rate", frame or None) for frame in frames}

    def cell(r: dict[str, Any]) -> str:
        low, high = r["success_ci"]
        return f"s{r['seed']}: {r['success_rate']:.0%} ({low:.0%}-{high:.0%})"

    print(f"| {args.task} ({args.demos} demos) | env steps | seeds: success (95% CI) | mean "
          "| − best BC (points) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for key in learner_keys(rows):
        last = last_evaluations(learner_rows(rows, key), args.env_steps)
        if not last:
            continue
        steps = "/".join(map(str, sorted({r["env_steps"] for r in last.values()})))
        mean = float(np.mean([r["success_rate"] for r in last.values()]))
        bc = baselines.get(next(iter(last.values())).get("frame"))
        gap = f"{100 * (mean - bc[1]):+.0f}" if bc else ""
        seeds = ", ".join(cell(r) for _, r in sorted(last.items()))
        name = learner_name(key)
        print(f"| {name} | {steps} | {seeds} | {mean:.0%} | {gap} |")
    for frame, (best, best_mean, _) in baselines.items():
        bc_rows = [r for r in rows if r["method"] == "bc" and r.get("frame") == frame]
        grid = len({(r["weight_decay"], r["lr"]) for r in bc_rows})
        chosen = (best["weight_decay"], best["lr"])
        setting = [r for r in bc_rows if (r["weight_decay"], r["lr"]) == chosen]
        seeds = ", ".join(cell(r) for r in sorted(setting, key=lambda r: r["seed"]))
        where = f", {frame} frame" if frame else ""
        print(f"| tuned BC (best of {grid}{where}: wd {best['weight_decay']:g}, lr "
              f"{best['lr']:g}) | 0 | {seeds} | {best_mean:.0%} | 0 |")  # fmt: skip
    pairs = clone_and_last(rows, args.env_steps)
    if pairs:
        clones, lasts = np.mean(pairs, axis=0)
        below = sum(last < clone for clone, last in pairs)
        above = sum(last > clone for clone, last in pairs)
        print(f"\nImitation runs from a clone to {args.env_steps} env steps: {len(pairs)}; "
              f"their clones (env step 0) {clones:.1%} on average, their last evaluations "
              f"{lasts:.1%}; {below} ended below their clone, {above} above, "
              f"{len(pairs) - below - above} level.")  # fmt: skip


def clone_and_last(rows: list[dict[str, Any]], env_steps: int) -> list[tuple[float, float]]:
    """(success at env step 0, success at ``env_steps``) of every online run (learner and
    seed) evaluated at both: how the online phase ended against the clone it started from.
    Runs on the task's own reward (``task-reward``, a diagnostic) are left out."""
    return [pair for _, pairs in clone_and_last_by_learner(rows, env_steps) for pair in pairs]


def clone_and_last_by_learner(
    rows: list[dict[str, Any]], env_steps: int
) -> list[tuple[LearnerKey, list[tuple[float, float]]]]:
    """``clone_and_last``'s pairs, grouped by learner (those with any)."""
    grouped = []
    for key in learner_keys(rows):
        if "task-reward" in key[-1]:
            continue
        by_seed: dict[int, dict[int, float]] = {}
        for r in learner_rows(rows, key):
            by_seed.setdefault(r["seed"], {})[r["env_steps"]] = r["success_rate"]
        pairs = [(steps[0], steps[env_steps]) for steps in by_seed.values()
                 if 0 in steps and env_steps in steps]  # fmt: skip
        if pairs:
            grouped.append((key, pairs))
    return grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("table", "plot"))
    parser.add_argument("--task", default="dmc:walker_walk",
                        choices=(*PAPER_NAMES, *UR5E_TASKS))  # fmt: skip
    parser.add_argument("--demos", type=int, default=None, help="1 (DMC), 10 (UR5e)")
    parser.add_argument("--subsample", type=int, default=1)
    parser.add_argument("--env-steps", type=int, default=100_000,
                        help="each seed's last evaluation at or before this")  # fmt: skip
    parser.add_argument("--expert-seed", type=int, default=None,
                        help="the rows of this SAC expert (default: the highest seed with "
                        "rows, the newest expert)")  # fmt: skip
    parser.add_argument("--anchors", type=Path, default=ANCHORS)
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="the results file to read (the plot goes beside it)")  # fmt: skip
    args = parser.parse_args()
    if args.demos is None:
        args.demos = DEFAULT_DEMOS[family(args.task)]
    {"table": table, "plot": plot}[args.part](args)


if __name__ == "__main__":
    main()
