"""How late the first chunk of a deployed policy comes: the inference worker's warm-up.

A fresh process's first prediction sets torch up (allocations, kernel choice) and took many
times as long as the next; the deploy node's first chunk, and the first of every policy that
``policy/switch`` loads, came that late, and its planner took that for its latency. The
worker (``robot_il.deploy.worker``) now predicts once on zeros before it says ready. This
times, for an untrained BC and Diffusion reach checkpoint (the training defaults' sizes, one
torch thread as the node runs them), alternated ``--rounds`` times:

- ``fresh``: the baseline, the worker's way before the warm-up: a new process (forked as the
  worker's are) loads the policy and times its first and its second prediction;
- ``worker``: an ``InferenceWorker`` as shipped: the time to ready, then its first and second
  prediction, through its pipe.

    .venv/bin/python benchmarks/worker_first_chunk.py [--rounds 3]

Each run appends a row to ``--results`` (default ``benchmarks/results/worker_first_chunk.jsonl``)
with the load average and the code. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from json_lines import append_row_with_load

RESULTS = Path(__file__).parent / "results" / "worker_first_chunk.jsonl"


def _fresh_process_times(path: str, connection: Any) -> None:
    """In a new process: load the policy, time its first and second prediction (ms)."""
    import torch
    from robot_il.policies import load_policy

    from robot_il.deploy.worker import zero_history

    torch.set_num_threads(1)
    policy = load_policy(path)
    history = zero_history(policy.spec["observation"], policy.config.n_obs_steps)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        policy.predict_actions(history)
        times.append(1e3 * (time.perf_counter() - start))
    connection.send(times)


def fresh(path: Path) -> dict[str, float]:
    """The baseline: first and second prediction of a fresh process (ms)."""
    parent, child = multiprocessing.get_context("forkserver").Pipe()
    process = multiprocessing.get_context("forkserver").Process(
        target=_fresh_process_times, args=(str(path), child)
    )
    process.start()
    first, second = parent.recv()
    process.join()
    return {"first_ms": round(first, 1), "second_ms": round(second, 1)}


def worker(path: Path) -> dict[str, float]:
    """The worker as shipped: time to ready, then its first and second prediction (ms)."""
    from robot_il.deploy.worker import CheckpointInfo, InferenceWorker, zero_history

    info = CheckpointInfo.read(path)
    start = time.perf_counter()
    inference = InferenceWorker(info)
    ready = 1e3 * (time.perf_counter() - start)
    history = zero_history(info.spec["observation"], info.n_obs_steps)
    times = []
    try:
        for _ in range(2):
            start = time.perf_counter()
            inference.predict(history)
            times.append(1e3 * (time.perf_counter() - start))
    finally:
        inference.close()
    return {"ready_ms": round(ready), "first_ms": round(times[0], 1),
            "second_ms": round(times[1], 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per policy")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    from robot_il.policies.untrained import untrained_reach_checkpoint

    from robot_il.provenance import code_provenance, revision

    code_provenance()
    row: dict[str, Any] = {"code": revision(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as work:
        for policy_type in ("bc", "diffusion"):
            path = untrained_reach_checkpoint(policy_type, Path(work) / policy_type)
            runs: dict[str, list[dict[str, float]]] = {"fresh": [], "worker": []}
            for _ in range(args.rounds):
                for kind, measure in (("fresh", fresh), ("worker", worker)):
                    runs[kind].append(measure(path))
                    print(f"{policy_type:9s} {kind:6s} {runs[kind][-1]}", flush=True)
            firsts = {
                kind: sorted(r["first_ms"] for r in rows)[args.rounds // 2]
                for kind, rows in runs.items()
            }
            ratio = round(firsts["fresh"] / firsts["worker"], 1)
            print(f"{policy_type}: first prediction, fresh process / worker (medians): {ratio}x")
            row[policy_type] = runs | {"first_ms_median_ratio": ratio}
    append_row_with_load(args.results, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
