"""The slow handover test's BC recipe over training seeds: how much its success depends on the
seed, and whether a change of recipe makes it robust.

For one recipe and each training seed: record the slow test's demonstrations once per recipe
(400 expert episodes of ``bimanual_handover``, ``eef_delta``, DART noise 0.005, recorded past
success), train BC (horizon 8, 4 executed, 2 observation steps, 30,000 steps) with ``robot-il
train``, evaluate 20 episodes (seeds 10000-10019) with ``robot-il eval``, and append one row
per (recipe, seed) to ``results/handover_recipe_seeds.jsonl`` with the load average, commit and
UTC time. A step already done (demonstrations, a finished training run, an eval) is reused,
so a stopped run goes on where it stopped, and a run trained elsewhere can be linked in as
``ROOT/NAME/seedN``.

``--drop-clearance`` sets the handover expert's ``DROP_CLEARANCE`` (m) for the recording. At
0.05 (before 41d2fa6) the expert's drop pose lay 2 cm below the lowest TCP height the right arm
reaches in its sideways attitude (its wrist rests on the table at 0.147 m), so the expert stood
still for its waypoint's 4 s timeout and then opened: a clock event that no observation shows,
which a deterministic BC policy imitates at the rest pose or never, by its training seed.

    python benchmarks/handover_recipe.py --name baseline --drop-clearance 0.05
    python benchmarks/handover_recipe.py --name drop08 --drop-clearance 0.08
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import robot_il.envs.experts.bimanual_handover as handover_expert
from json_lines import append_json_line

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "handover_recipe_seeds.jsonl"
ROBOT_IL = str(Path(sys.executable).with_name("robot-il"))
EVAL_SEED, EVAL_EPISODES = 10_000, 20
TRAIN_FLAGS = ["--steps", "30000", "--policy.horizon", "8", "--policy.n-action-steps", "4",
               "--policy.n-obs-steps", "2", "--eval.episodes", "0"]  # fmt: skip


def record(demos: Path) -> Path:
    """The slow test's demonstrations under ``demos`` (reused when complete)."""
    from robot_il.train.demos import record_expert_demos

    return record_expert_demos("bimanual_handover", demos, episodes=400, action_noise=0.005,
                               action_mode="eef_delta", terminate_on_success=False,
                               resume=True, progress=True)  # fmt: skip


def commit() -> str:
    """Short hash of HEAD, with ``+dirty`` when tracked files differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode
    return head + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="recipe name in the rows and the folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--drop-clearance", type=float, default=handover_expert.DROP_CLEARANCE,
                        help="the expert's DROP_CLEARANCE (m) the demonstrations were (or are "
                        "to be) recorded with; default the expert's")  # fmt: skip
    parser.add_argument("--demos", type=Path, help="existing demonstrations (env.zarr)")
    parser.add_argument("--train-flag", action="append", default=[],
                        help="extra robot-il train flag, e.g. --train-flag=--policy.head=gaussian",
                        )  # fmt: skip
    parser.add_argument("--root", type=Path, default=Path("/tmp/handover_recipe"))
    args = parser.parse_args()

    folder = args.root / args.name
    handover_expert.DROP_CLEARANCE = args.drop_clearance
    dataset = args.demos or record(folder / "demos")
    for seed in args.seeds:
        run, evaluation = folder / f"seed{seed}", folder / f"seed{seed}_eval"
        load_before = os.getloadavg()
        start = time.monotonic()
        trained = not (run / "summary.json").exists()
        if trained:
            subprocess.run([ROBOT_IL, "train", "bc", "--dataset", str(dataset), "--out", str(run),
                            "--seed", str(seed), *TRAIN_FLAGS, *args.train_flag],
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        if not (evaluation / "eval.json").exists():
            subprocess.run([ROBOT_IL, "eval", "--checkpoint", str(run), "--episodes",
                            str(EVAL_EPISODES), "--seed", str(EVAL_SEED), "--out",
                            str(evaluation)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        result = json.loads((evaluation / "eval.json").read_text())
        row = {
            "task": "bimanual_handover",
            "recipe": args.name,
            "demos": f"{dataset}: 400 expert episodes, eef_delta, DART 0.005, recorded past "
            f"success, expert DROP_CLEARANCE {args.drop_clearance} m",
            "train": "bc " + " ".join(TRAIN_FLAGS + args.train_flag),
            "training_seed": seed,
            "eval_seeds": [EVAL_SEED, EVAL_SEED + EVAL_EPISODES - 1],
            "successes": sum(result["successes"]),
            "episodes": EVAL_EPISODES,
            "per_seed": result["successes"],
            "lengths": result["lengths"],
            "run": str(run.resolve()),
            "trained_now": trained,
            "wall_s": round(time.monotonic() - start),
            "load_avg": [round(v, 1) for v in (load_before[0], os.getloadavg()[0])],
            "code": commit(),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        append_json_line(RESULTS, row)
        print(f"{args.name} seed {seed}: {row['successes']} of {EVAL_EPISODES}", flush=True)


if __name__ == "__main__":
    main()
