"""Online candidate selection against a simulated person: regret and unsafe episodes.

Five synthetic candidates (a known-safe default, a better one, a mediocre one and two unsafe
ones) are deployed for ``--episodes`` episodes by each selection rule, through the same
:class:`robot_il.select.Selector` a deployment uses (in memory), over ``--seeds`` seeds.
Prints cumulative pseudo-regret (sum over episodes of best mean rating minus the deployed
candidate's mean rating) and failed (unsafe, intervened) episodes, each as mean, spread and
ratio to the uniform baseline run in the same process, and how often each rule broke the
conservative constraint (expected cumulative rating below (1 - alpha) x the default's); saves
a plot.

    .venv/bin/python benchmarks/selection.py [--episodes 200] [--seeds 200] [--alpha 0.1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robot_il.select import (
    UCB1,
    CandidateProfile,
    ConservativeUCB,
    EpsilonGreedy,
    SelectionRule,
    Selector,
    SimulatedPerson,
    Uniform,
    simulate_feedback,
)

PROFILES = [
    CandidateProfile("safe_default", success=0.6),
    CandidateProfile("best", success=0.9, unsafe=0.02),
    CandidateProfile("mediocre", success=0.5, unsafe=0.05),
    CandidateProfile("reckless", success=0.3, unsafe=0.5),
    CandidateProfile("broken", success=0.0, unsafe=0.8),
]


def run(rule: SelectionRule, person: SimulatedPerson, episodes: int, seed: int) -> tuple:
    """(candidate deployed in each episode, number of failed episodes) of one deployment."""
    selector = Selector.create([p.name for p in PROFILES], rule, seed=seed)
    world = np.random.default_rng([seed, 1])
    for _ in range(episodes):
        choice = selector.choose()
        rating, intervened = simulate_feedback(PROFILES, np.asarray(choice.arm), person, world)
        selector.feedback(choice.episode, float(rating), intervened=bool(intervened))
    arms = np.array([record.arm for record in selector.log])
    return arms, sum(record.intervened for record in selector.log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.1, help="conservative UCB's alpha")
    parser.add_argument("--plot", type=Path, default=Path("outputs/selection.png"))
    args = parser.parse_args()

    person = SimulatedPerson(noise_std=0.15)
    mu0 = PROFILES[0].expected_rating(person)
    rules: dict[str, SelectionRule] = {
        "uniform": Uniform(),
        "ucb1": UCB1(),
        f"conservative_ucb(alpha={args.alpha})": ConservativeUCB(0, mu0, args.alpha, 0.05),
        "epsilon_greedy(0.1)": EpsilonGreedy(0.1),
    }
    means = np.array([p.expected_rating(person) for p in PROFILES])
    budget = (1 - args.alpha) * mu0 * np.arange(1, args.episodes + 1)
    regret: dict[str, np.ndarray] = {}
    failed: dict[str, np.ndarray] = {}
    below_budget: dict[str, float] = {}
    for label, rule in rules.items():
        results = [
            run(rule, person, args.episodes, seed) for seed in tqdm(range(args.seeds), label)
        ]
        arms = np.stack([a for a, _ in results])
        regret[label] = (means.max() - means[arms]).cumsum(axis=1)
        failed[label] = np.array([f for _, f in results])
        below_budget[label] = (means[arms].cumsum(axis=1) < budget).any(axis=1).mean()

    base_regret = regret["uniform"][:, -1].mean()
    base_failed = failed["uniform"].mean()
    print(
        f"\n{args.episodes} episodes x {args.seeds} seeds; candidates (mean rating, unsafe prob):"
    )
    for profile in PROFILES:
        print(f"  {profile.name:13s} {profile.expected_rating(person):.3f}  {profile.unsafe:.2f}")
    print(
        f"\n{'rule':28s} {'regret mean±std [p10,p90]':>30s} {'vs unif':>8s}"
        f" {'failed mean±std':>16s} {'vs unif':>8s} {'runs below budget':>18s}"
    )
    for label in rules:
        final = regret[label][:, -1]
        p10, p90 = np.percentile(final, [10, 90])
        fails = failed[label]
        print(
            f"{label:28s} {final.mean():9.2f} ±{final.std():6.2f} [{p10:6.1f},{p90:6.1f}]"
            f" {final.mean() / base_regret:8.3f} {fails.mean():8.2f} ±{fails.std():5.2f}"
            f" {fails.mean() / base_failed:8.3f} {below_budget[label]:17.1%}"
        )
    print(
        "runs below budget: share of runs whose expected cumulative rating fell below "
        f"(1 - alpha) x default's ({1 - args.alpha:.2f} x {mu0:.3f}) x t at some episode t"
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_regret, ax_failed) = plt.subplots(1, 2, figsize=(12, 4.5))
    episodes = np.arange(1, args.episodes + 1)
    for label in rules:
        curves = regret[label]
        (line,) = ax_regret.plot(episodes, curves.mean(axis=0), label=label)
        low, high = np.percentile(curves, [10, 90], axis=0)
        ax_regret.fill_between(episodes, low, high, color=line.get_color(), alpha=0.15)
    ax_regret.set(
        xlabel="episode",
        ylabel="cumulative pseudo-regret (rating)",
        title="regret, mean and 10-90% over seeds",
    )
    ax_regret.legend()
    labels = list(rules)
    ax_failed.bar(
        range(len(labels)),
        [failed[k].mean() for k in labels],
        yerr=[failed[k].std() for k in labels],
        capsize=4,
    )
    ax_failed.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
    ax_failed.set(ylabel="failed (unsafe) episodes", title=f"failed episodes in {args.episodes}")
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
