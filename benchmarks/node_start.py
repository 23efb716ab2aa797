"""How long a policy node takes from its start to ready, its policy loaded.

A launch file, a policy switch and every deployment test wait for it. The node's main process
imported torch to read its checkpoint's ``config.json``, 2.6-3.9 s of CPU on a 2-core AMD
EPYC, before its inference process imported torch again. It now reads the
checkpoint without torch (``robot_il.policies.checkpoint_files``). This times, alternated
``--rounds`` times, for an untrained BC and Diffusion reach checkpoint, from the process's
start to the node's "... policy from ..." line:

- ``torch_first``: the baseline, the node's way before: its process imports torch, then runs
  the node;
- ``shipped``: the ``policy`` node as installed.

    .venv/bin/python benchmarks/node_start.py [--rounds 5]

Each run appends a row to ``--results`` (default ``benchmarks/results/node_start.jsonl``) with
the load average and the code. Run it on a quiet machine: no DDS peer is needed, the node
waits for joint states once ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from json_lines import append_row_with_load

RESULTS = Path(__file__).parent / "results" / "node_start.jsonl"
READY = " policy from "
"""In the node's log line once its policy is loaded."""
NODE = "from robot_il.ros.policy_node import main; raise SystemExit(main())"


def seconds_to_ready(checkpoint: Path, torch_first: bool, env: dict[str, str]) -> float:
    """Start a policy node on ``checkpoint`` (importing torch first if ``torch_first``), stop
    it once ready; returns the seconds from its start to its ready line."""
    code = ("import torch; " if torch_first else "") + NODE
    argv = [sys.executable, "-c", code, "--ros-args", "-p", f"checkpoint:={checkpoint}"]
    start = time.perf_counter()
    node = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for line in node.stderr:
            if READY in line:
                return time.perf_counter() - start
        raise RuntimeError(f"the policy node exited ({node.wait()}) before it was ready")
    finally:
        node.send_signal(signal.SIGINT)
        node.communicate(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds per policy")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines to append to")
    args = parser.parse_args()

    from robot_il.policies.untrained import untrained_reach_checkpoint

    from robot_il.provenance import code_provenance, revision
    from robot_il.ros.dds import claim_free_domain, loopback_env

    code_provenance()
    domain_id, _claim = claim_free_domain("benchmarks/node_start.py")
    env = {**os.environ, **loopback_env(domain_id)}
    row: dict[str, Any] = {"code": revision(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as work:
        for policy_type in ("bc", "diffusion"):
            path = untrained_reach_checkpoint(policy_type, Path(work) / policy_type)
            runs: dict[str, list[float]] = {"torch_first": [], "shipped": []}
            for _ in range(args.rounds):
                for kind in runs:
                    runs[kind].append(round(seconds_to_ready(path, kind == "torch_first", env), 2))
                    print(f"{policy_type:9s} {kind:11s} {runs[kind][-1]:.2f} s", flush=True)
            medians = {kind: sorted(times)[args.rounds // 2] for kind, times in runs.items()}
            ratio = round(medians["torch_first"] / medians["shipped"], 2)
            both = f"{medians['torch_first']:.2f} / {medians['shipped']:.2f} s"
            print(f"{policy_type}: start to ready, torch first / shipped ({both}): {ratio}x")
            row[policy_type] = {"seconds": runs, "median_ratio": ratio}
    append_row_with_load(args.results, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
