"""Stop ``robot-il record --expert`` at random moments and count what each stop left behind.

    python benchmarks/stop_record.py --runs 80 --after 0.4 1.6
    python benchmarks/stop_record.py --runs 70 --after 0.8 2.6 --second-within 0.3

Each run records 3 push episodes into a fresh folder and gets SIGINT or SIGTERM (drawn) a
uniform ``--after`` seconds in, and with ``--second-within`` the same signal again up to that
many seconds later (a person pressing twice). A run is *clean* when it ends by itself within
60 s with exit code 0 (done first), 130 or 143 (or -2/-15: a second signal after the command
returned), prints no traceback, leaves no hidden entry (a ``.<store>.tmp-*``) in its folder,
and leaves either no dataset or one that opens. Prints each unclean run; appends one JSON line
per call to ``benchmarks/results/stop_record.jsonl``: settings, runs, clean, the outcomes
counted by (exit code, episodes kept), code, UTC time and load average. Session 48 found 4
hidden folders in 160 single stops and a traceback in 120 double stops here, none after.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "stop_record.jsonl"
ROBOT_IL = str(Path(sys.executable).parent / "robot-il")


def episodes_in(dataset: Path) -> str:
    """The dataset's committed episodes, 'absent', or 'unreadable: <why>'."""
    from robot_il.dataset import Dataset
    from robot_il.errors import RobotILError

    if not dataset.exists():
        return "absent"
    try:
        return str(Dataset.open(dataset).num_episodes)
    except (RobotILError, OSError) as error:
        return f"unreadable: {error}"


def stop_once(folder: Path, rng: random.Random, after: tuple[float, float], second: float):
    """One stopped recording in ``folder``: (exit code, episodes kept, problems)."""
    dataset = folder / "push.zarr"
    stop = rng.choice([signal.SIGINT, signal.SIGTERM])
    command = [ROBOT_IL, "record", "--task", "push", "--expert", "--episodes", "3",
               "--out", str(dataset)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    time.sleep(rng.uniform(*after))
    process.send_signal(stop)
    if second:
        time.sleep(rng.uniform(0.01, second))
        process.send_signal(stop)
    try:
        _, stderr = process.communicate(timeout=60)
        code: int | str = process.returncode
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        code = "hung"
    kept = episodes_in(dataset)
    problems = [f"left {entry.name}" for entry in folder.iterdir() if entry.name.startswith(".")]
    if code not in (0, 130, 143, -2, -15):
        problems.append(f"exit code {code}")
    if "Traceback" in stderr:
        problems.append("traceback: " + stderr.strip().splitlines()[-1])
    if kept.startswith("unreadable"):
        problems.append(kept)
    return code, kept, problems


def main() -> None:
    from json_lines import append_json_line
    from task_frames import code

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=80)
    parser.add_argument("--after", type=float, nargs=2, default=(0.4, 1.6), metavar=("MIN", "MAX"))
    parser.add_argument("--second-within", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng, outcomes, clean = random.Random(args.seed), collections.Counter(), 0
    revision, load_before = code(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stop_record-") as scratch:
        for run in range(args.runs):
            folder = Path(scratch) / f"run{run}"
            folder.mkdir()
            exit_code, kept, problems = stop_once(folder, rng, args.after, args.second_within)
            outcomes[f"{exit_code} {kept}"] += 1
            clean += not problems
            if problems:
                print(f"run {run}: {'; '.join(problems)}", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{clean} of {args.runs} stops clean; outcomes (exit code, episodes): {dict(outcomes)}")
    append_json_line(RESULTS, {
        "runs": args.runs, "clean": clean, "after_s": list(args.after),
        "second_within_s": args.second_within, "seed": args.seed, "outcomes": dict(outcomes),
        "code": revision, "utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_before": load_before, "load_after": os.getloadavg(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
