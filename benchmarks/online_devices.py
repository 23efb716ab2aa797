"""Updates per second of the online learners (OPT-AIL, DAC, IQ-Learn) on the CPU against a
GPU, in one process: is a 100k-env-step run worth a GPU?

    python benchmarks/online_devices.py --devices cpu cuda --threads 1 16

Each learner has walker_walk's sizes (24-D states, 6-D actions, 2x256 networks, batches of
256 online + 256 expert transitions) and learns from random replay and expert buffers (an
update's cost does not depend on the values). Per (learner, device, threads) it takes
``--warmup`` updates (allocator, kernel selection, first-call costs), then ``--updates``
timed ones, in ``--rounds`` rounds that alternate between the settings so that the load of
a shared machine falls on all alike; CUDA work is waited for before each clock read. It
prints updates per second, the ratio to the first setting (the baseline, by default the CPU
at the first thread count), and the update time of a 100k-env-step run (98k updates) in
minutes, and appends a row per setting to ``--results`` (default
``benchmarks/results/online_devices.json``) with the load average, the code (commit), the
CPU's model and the GPU's name. OPT-AIL runs both profiles: ``cpu`` (the optimism term on 128
states of each batch, the benchmark's runs) and ``paper`` (on all 512, the reference's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from opt_ail_speed import random_buffer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "online_devices.json"
OBS, ACT = 24, 6
"""walker_walk's state and action sizes."""
SPEC = {"robot": "dmc_walker", "control_hz": 40.0, "observation": {"state": [OBS]},
        "action_dim": ACT}  # fmt: skip
UPDATES_PER_RUN = 98_000
"""A 100k-env-step run's updates (learning starts after 2000 transitions)."""
LEARNERS = ("opt_ail/cpu", "opt_ail/paper", "dac", "iq_learn")


def build(name: str, device: torch.device) -> Any:
    """Learner ``name`` with fresh weights (seed 0) on ``device``."""
    from robot_il.policies.dac import DAC, DACConfig, DACPolicy
    from robot_il.policies.iq_learn import IQLearn, IQLearnConfig, IQLearnPolicy
    from robot_il.policies.opt_ail import OPTAIL, OPTAILConfig, OPTAILPolicy
    from robot_il.policies.opt_ail.policy import identity_observation_normalizer

    from robot_il.train.online import tensors_made_on

    normalizer = identity_observation_normalizer(SPEC, -np.ones(ACT), np.ones(ACT))
    torch.manual_seed(0)
    with tensors_made_on(device):
        if name.startswith("opt_ail"):
            profile = {"optimism_states": 128} if name.endswith("cpu") else {}
            config = OPTAILConfig(obs_keys=("state",), **profile)
            return OPTAIL(OPTAILPolicy(config, SPEC, normalizer), "dmc:walker_walk")
        if name == "dac":
            return DAC(DACPolicy(DACConfig(obs_keys=("state",)), SPEC, normalizer),
                       "dmc:walker_walk")  # fmt: skip
        return IQLearn(IQLearnPolicy(IQLearnConfig(obs_keys=("state",)), SPEC, normalizer),
                       "dmc:walker_walk")  # fmt: skip


def learn(learner: Any, device: torch.device, threads: int, updates: int,
          buffers: tuple[Any, Any], rng: np.random.Generator) -> float:  # fmt: skip
    """Seconds for ``updates`` of ``learner.learn`` on ``device`` with ``threads`` CPU
    threads, the GPU's queue drained before the clock stops."""
    from robot_il.train.online import denormals_flushed, tensors_made_on

    torch.set_num_threads(threads)
    start = time.perf_counter()
    with tensors_made_on(device), denormals_flushed():
        for _ in range(updates):
            learner.learn(*buffers, rng)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1],
                        help="CPU thread counts to time each device at")  # fmt: skip
    parser.add_argument("--learners", nargs="+", choices=LEARNERS, default=list(LEARNERS))
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--updates", type=int, default=100, help="timed updates per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    devices = [torch.device(name) for name in args.devices]
    if any(d.type == "cuda" for d in devices) and not torch.cuda.is_available():
        parser.error("--devices: cuda named, but no CUDA device is visible here")
    from robot_il.provenance import code_provenance, revision

    code_provenance()  # the code this process loaded, for its rows
    settings = [(learner, device, threads) for learner in args.learners for device in devices
                for threads in args.threads]  # fmt: skip
    buffers = {d: (random_buffer(10_000, OBS, ACT, 1), random_buffer(1000, OBS, ACT, 2))
               for d in devices}  # fmt: skip
    learners = {s: build(s[0], s[1]) for s in settings}
    load_before = os.getloadavg()[0]
    for (_, device, threads), learner in learners.items():
        learn(learner, device, threads, args.warmup, buffers[device], np.random.default_rng(0))
    seconds = dict.fromkeys(settings, 0.0)
    for round_ in range(args.rounds):
        for setting, learner in learners.items():
            rng = np.random.default_rng(round_)
            seconds[setting] += learn(learner, setting[1], setting[2], args.updates,
                                      buffers[setting[1]], rng)  # fmt: skip
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo
                   if line.startswith("model name"))  # fmt: skip
    load = [round(v, 2) for v in os.getloadavg()]
    print(f"== online learners' updates, walker_walk sizes; {args.rounds} x {args.updates} "
          f"timed after {args.warmup}; {cpu}, {os.cpu_count()} cores; GPU {gpu}; torch "
          f"{torch.__version__}; load avg {load_before:.2f} before, {load} after ==")  # fmt: skip
    rows = []
    for name in args.learners:
        base = None
        for device in devices:
            for threads in args.threads:
                per_s = args.rounds * args.updates / seconds[(name, device, threads)]
                base = base or per_s
                run_min = UPDATES_PER_RUN / per_s / 60
                print(f"{name:14s} {device!s:6s} threads {threads:2d}: {per_s:7.1f} updates/s "
                      f"({per_s / base:4.2f}x the first), 98k in {run_min:5.1f} min")  # fmt: skip
                rows.append({"learner": name, "device": str(device), "threads": threads,
                             "updates_per_s": round(per_s, 2), "ratio": round(per_s / base, 3),
                             "run_update_min": round(run_min, 1), "cpu": cpu, "gpu": gpu,
                             "cores": os.cpu_count(), "torch": torch.__version__,
                             "warmup": args.warmup, "updates": args.updates,
                             "rounds": args.rounds, "load_avg": [round(load_before, 2), *load],
                             "date": time.strftime("%Y-%m-%d"), "code": revision()})  # fmt: skip
    args.results.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(args.results.read_text()) if args.results.exists() else {"runs": []}
    data["runs"].extend(rows)
    args.results.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
