"""Online fine-tuning on a simulated person's corrections: success over rounds of deployment.

A deliberately weak BC policy (``--demos`` reach demonstrations, trained to a plateau) is
deployed for ``--rounds`` rounds of ``--episodes`` episodes on new seeds. A simulated person
(``robot_il.select.correcting_person``) takes over with the scripted expert whenever the
policy drifts; the corrected segments accumulate in one corrections dataset, and after each
round the deployed checkpoint is fine-tuned on them (mixed with the demonstrations) into a
new checkpoint, which is deployed next round. Every checkpoint is evaluated without the
person on the same ``--eval-episodes`` seeds. A control runs the same fine-tuning rounds on
expert episodes at the demonstration seeds (no state the policy visited), to separate the
corrections' effect from that of extra training steps.

Prints success per round as a ratio to the pre-fine-tuning success (run in the same process),
the person's takeovers per round, a one-sided permutation p-value of the last round against
the start, and saves a plot.

    .venv/bin/python benchmarks/finetune.py [--rounds 5] [--episodes 10] [--eval-episodes 40]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from robot_il.policies import load_policy
from robot_il.policies.spec import spec_from_env
from tqdm import tqdm

from robot_il.select.correcting_person import (
    SimulatedCorrectingPerson,
    record_expert_segments,
    run_supervised_episode,
)
from robot_il.select.corrections import CorrectionsRecorder
from robot_il.train.config import BCTrainConfig, EvalConfig
from robot_il.train.demos import record_expert_demos
from robot_il.train.evaluate import evaluate, make_eval_env
from robot_il.train.finetune import FinetuneSettings, finetune_checkpoint
from robot_il.train.stats import permutation_test, wilson_interval

EVAL_SEED = 1000
"""Evaluation episode i uses env seed EVAL_SEED + i (the demonstrations use seeds from 0)."""
DEPLOY_SEED = 500


def train_weak_policy(work: Path, demos: int, steps: int) -> tuple[Path, Path]:
    """(checkpoint, demonstrations) of a BC MLP on ``demos`` expert reach episodes."""
    dataset = record_expert_demos("reach", work / "demos", episodes=demos, seed=0)
    config = BCTrainConfig(
        dataset=str(dataset), out=str(work / "run"), steps=steps, batch_size=256,
        warmup_steps=10, progress=False, eval=EvalConfig(episodes=0),
    )  # fmt: skip
    config.policy.obs_keys = ("joint_pos", "target_pos")
    config.policy.hidden_dims = (128, 128)
    from robot_il.train.trainer import train

    return train(config).checkpoint, dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=10, help="deployed episodes per round")
    parser.add_argument("--eval-episodes", type=int, default=40)
    parser.add_argument("--demos", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps per round")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--plot", type=Path, default=Path("outputs/finetune.png"))
    args = parser.parse_args()

    settings = FinetuneSettings(steps=args.steps, lr=args.lr)
    with tempfile.TemporaryDirectory(prefix="robot_il_finetune_") as tmp:
        work = Path(tmp)
        original, demos = train_weak_policy(work, args.demos, args.train_steps)
        env = make_eval_env(load_policy(original).spec)
        spec = spec_from_env(env)
        person = SimulatedCorrectingPerson(env)

        def success(checkpoint: Path) -> list[bool]:
            policy = load_policy(checkpoint)
            return evaluate(policy, env, episodes=args.eval_episodes, seed=EVAL_SEED).successes

        control_data = work / "control.zarr"
        with CorrectionsRecorder.open(control_data, spec, fsync=False) as recorder:
            record_expert_segments(env, recorder, range(args.demos))
        start = success(original)
        rows = [(0, None, sum(start), sum(start))]
        deployed, control = original, original
        last, last_control = start, start
        corrections = work / "corrections.zarr"
        for round_ in tqdm(range(1, args.rounds + 1), desc="rounds", unit="round"):
            policy = load_policy(deployed)
            seeds = range(
                DEPLOY_SEED + (round_ - 1) * args.episodes, DEPLOY_SEED + round_ * args.episodes
            )
            with CorrectionsRecorder.open(corrections, spec, fsync=False) as recorder:
                episodes = [
                    run_supervised_episode(env, policy, person, recorder, seed=seed)
                    for seed in seeds
                ]
            takeovers = sum(e.takeover_step is not None for e in episodes)
            deployed = finetune_checkpoint(
                deployed, corrections, work / f"finetuned_{round_}", demos_path=demos,
                settings=settings,
            )  # fmt: skip
            control = finetune_checkpoint(
                control, control_data, work / f"control_{round_}", demos_path=demos,
                settings=settings,
            )  # fmt: skip
            last, last_control = success(deployed), success(control)
            rows.append((round_, takeovers, sum(last), sum(last_control)))
        env.close()

    n = args.eval_episodes

    def ratio(successes: int) -> str:  # no ratio to a baseline of zero successes
        return f"{successes / sum(start):.2f}" if sum(start) else "n/a"

    print(
        f"\nweak BC ({args.demos} demos) on reach; {args.episodes} supervised episodes per "
        f"round; evaluation on {n} fixed seeds; success ratio = success / pre-fine-tuning"
    )
    print(
        f"{'round':>5} {'takeovers':>10} {'corrected':>12} {'ratio':>6} "
        f"{'control':>12} {'ratio':>6}"
    )
    for round_, takeovers, ok, ok_control in rows:
        print(
            f"{round_:>5} {'-' if takeovers is None else f'{takeovers}/{args.episodes}':>10} "
            f"{f'{ok}/{n}':>12} {ratio(ok):>6} {f'{ok_control}/{n}':>12} {ratio(ok_control):>6}"
        )
    print(
        f"last round vs start: p = {permutation_test(last, start):.4f} (corrections), "
        f"p = {permutation_test(last_control, start):.4f} (control); corrections vs control: "
        f"p = {permutation_test(last, last_control):.4f}"
    )
    plot(rows, n, args.episodes, args.plot)
    print(f"plot: {args.plot}")


def plot(rows: list[tuple], n: int, episodes: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r[0] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(3, 1))
    for column, label, colour in ((2, "fine-tuned on corrections", "C0"), (3, "control", "C7")):
        rates = [r[column] / n for r in rows]
        intervals = [wilson_interval(r[column], n) for r in rows]
        top.plot(rounds, rates, "o-", color=colour, label=label)
        top.fill_between(
            rounds, [i[0] for i in intervals], [i[1] for i in intervals], color=colour, alpha=0.15
        )
    top.set_ylabel(f"success rate ({n} eval seeds, 95% CI)")
    top.set_ylim(0, 1)
    top.legend()
    top.set_title("Online fine-tuning of a weak reach BC policy on a person's corrections")
    bottom.bar(rounds[1:], [r[1] for r in rows[1:]], color="C3")
    bottom.set_ylabel(f"takeovers / {episodes}")
    bottom.set_xlabel("round (0 = before fine-tuning)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
