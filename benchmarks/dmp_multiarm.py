"""Two UR5e arms on DMPs in ``bimanual_cross`` (kinematic, capsules): who collides, who waits.

Every method runs the same 500 seeded scenes (seeds 0..499) at 100 Hz; ``coupled_cma`` uses
the parameters CMA-ES found on 100 other scenes (seeds 100000..100099, 50 Hz). Writes
``dmp_multiarm.json`` in ``--results`` (default ``benchmarks/results/``, the committed figures:
give a scratch folder to check a checkout; every file below goes there too)::

    {"methods": {NAME: {"scenes", "collision_rate", "success_rate", "deadlock_rate",
                        "makespan", "min_separation_p5", ...}}, "tick_us": {...}, ...}

Goals (issue 11): ``independent`` collides in 40-70 % of the scenes, ``sequential`` never;
``coupled_cma``: collisions <= 2 %, success >= 97 %, deadlocks <= 1 %, makespan <= 1.35 x
independent, min_separation p5 >= 2 cm; a full two-arm control tick (both DMPs, coupling,
IK; batch of one) p99 <= 1 ms on one core.

Resumable: scenes run in chunks of 50 and each chunk's per-scene scores go to
``dmp_multiarm_rows.jsonl`` as they finish; the CMA-ES search keeps its state in
``dmp_multiarm_cma/``. A rerun skips what is there (``--fresh`` starts over). Every row and
summary written names its load average, the code (commit, ``+changes`` if it differed) and the
UTC time; a plot carries the code and time in its PNG metadata.

    nice -n 19 .venv/bin/python benchmarks/dmp_multiarm.py [--scenes 500] [--skip-timing]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import importlib.abc
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
from robot_il.envs import cross_scenes as cs
from robot_il.policies.dmp import cross_episodes
from robot_il.policies.dmp.coordinator import CoordinatorNet, run_coordinated
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.cross_episodes import (
    CONTROL_DT,
    EpisodeScores,
    end_summary,
    expert_library,
)
from robot_il.policies.dmp.library import library_arrays
from robot_il.policies.dmp.scene_kinds import run_scenes, sample_scenes
from robot_il.policies.dmp.search import cma_search
from robot_il.policies.dmp.selection import (
    PairChooser,
    nearest_choices,
    pair_rewards,
    run_choices,
    scene_features,
    selection_library,
)
from tqdm import tqdm

from robot_il.provenance import code_provenance, revision

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "dmp_multiarm.json"
ROWS = RESULTS / "dmp_multiarm_rows.jsonl"
CMA_DIR = RESULTS / "dmp_multiarm_cma"
CHUNK = 50
TRAIN_SEEDS = range(100_000, 100_100)
METHODS = (
    "independent",
    "sequential",
    "oncol",
    "coupled",
    "coupled_cma",
    "dmp_rl",
    "dmp_rl_shield",
    "selection_nn",
    "selection_learned",
)
LEARNED = ("dmp_rl", "dmp_rl_shield")
"""Methods run by the PPO coordinator (``robot_il.policies.dmp.coordinator``): a residual on
the ``coupled`` DMP layer with the parameters CMA-ES found (an action of 0 is ``coupled_cma``);
``dmp_rl_shield`` adds the hard distance shield."""
COORDINATOR_DIR = Path(__file__).parents[1] / "outputs" / "dmp_coordinator_residual"
SHIELD_CLEARANCE = 0.02
"""The shield's clearance (m): the min_separation goal."""
SELECTION = ("selection_nn", "selection_learned")
"""Which library demonstration each arm replays (``robot_il.policies.dmp.selection``), under
independent DMPs so that the choice alone decides whether the arms meet."""
SELECTION_TRAIN_SEEDS = range(300_000, 300_200)
SELECTION_FILE = RESULTS / "dmp_multiarm_selection.json"
"""The learned chooser's training data: every pair's reward on every training scene."""
SCORE_FIELDS = (
    "collision",
    "success",
    "deadlock",
    "makespan",
    "min_separation",
    "peak_joint_acceleration",
    "end_distance",
)


def use_results(folder: Path) -> None:
    """Read and write every results file in ``folder`` (``--results``) instead of
    ``RESULTS``."""
    global RESULTS, OUT, ROWS, CMA_DIR, SELECTION_FILE, PHYSICS_ROWS, VIDEO, RECHECK_ROWS
    RESULTS = folder
    OUT, ROWS, CMA_DIR = folder / OUT.name, folder / ROWS.name, folder / CMA_DIR.name
    SELECTION_FILE, PHYSICS_ROWS = folder / SELECTION_FILE.name, folder / PHYSICS_ROWS.name
    VIDEO, RECHECK_ROWS = folder / VIDEO.name, folder / RECHECK_ROWS.name
    folder.mkdir(parents=True, exist_ok=True)


def stamp() -> dict[str, str]:
    """What a row or summary written now names besides its load: the code that computed it
    (``revision``: the commit this process loaded) and the UTC time."""
    return {"code": revision(), "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def done_rows() -> dict[tuple[str, int], dict]:
    if not ROWS.exists():
        return {}
    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()]
    return {(row["method"], row["first_seed"]): row for row in rows}


def cma_params() -> CouplingParams:
    """The coupling CMA-ES found (the results' ``cma``; run ``coupled_cma`` first)."""
    return CouplingParams(**json.loads(OUT.read_text())["cma"]["params"])


def coordinator() -> tuple[CoordinatorNet, int]:
    """The trained PPO coordinator's deterministic actor (numpy, as deployed) and its
    training steps; the actor is also written to ``SHIPPED_NET``. Rows record the actor's
    ``digest()``: rows of another net (an older training) are run again."""
    from robot_il.train.coordinator import SHIPPED_NET, trained_net

    net, steps = trained_net(COORDINATOR_DIR, cma_params())
    net.save(SHIPPED_NET)
    return net, steps


def pair_chooser(library: list) -> PairChooser:
    """The learned chooser, fitted on every pair's reward on the training scenes (computed
    once, kept in ``SELECTION_FILE``)."""
    scenes = cs.sample_scenes(SELECTION_TRAIN_SEEDS)
    if SELECTION_FILE.exists():
        saved = json.loads(SELECTION_FILE.read_text())
        pairs, rewards = np.asarray(saved["pairs"]), np.asarray(saved["rewards"])
    else:
        pairs, rewards = pair_rewards(library, scenes, "independent", None, 0.02)
        SELECTION_FILE.write_text(
            json.dumps(
                {
                    "train_seeds": [SELECTION_TRAIN_SEEDS.start, SELECTION_TRAIN_SEEDS.stop - 1],
                    "dt": 0.02,
                    "low_level": "independent",
                    "pairs": pairs.tolist(),
                    "rewards": np.round(rewards, 5).tolist(),
                    "load_avg": os.getloadavg(),
                    **stamp(),
                }
            )
            + "\n"
        )
    return PairChooser.fit(scene_features(scenes), pairs, rewards)


def run_method(
    method: str, seeds: np.ndarray, params: CouplingParams | None, kind: str = "bimanual_cross"
) -> EpisodeScores:
    """Scores of ``method`` on ``seeds`` of scene ``kind``, chunk by chunk, reusing chunks
    already on disk (for the learned methods only chunks of the same coordinator)."""
    label = method if kind == "bimanual_cross" else f"{kind}/{method}"
    rows = done_rows()
    net, steps = coordinator() if method in LEARNED else (None, None)
    library = selection_library() if method in SELECTION else None
    chooser = pair_chooser(library) if method == "selection_learned" else None
    parts = []
    # Selection runs every scene at once: its scenes run in batches by chosen pair, and small
    # batches cost nearly as much per tick as large ones.
    size = len(seeds) if method in SELECTION else CHUNK
    for first in tqdm(range(0, len(seeds), size), desc=label, unit="chunk"):
        chunk = seeds[first : first + size]
        key = (label, int(chunk[0]))
        row = rows.get(key)
        stale = net is not None and row is not None and row.get("coordinator") != net.digest()
        if row is None or row["scenes"] != len(chunk) or stale:
            scenes = sample_scenes(kind, chunk)
            if method in LEARNED:
                shield = SHIELD_CLEARANCE if method == "dmp_rl_shield" else None
                scores = run_coordinated(scenes, net, params, shield, kind=kind)
            elif method in SELECTION:
                choices = chooser.choose(scenes) if chooser else nearest_choices(library, scenes)
                scores = run_choices(library, scenes, choices, "independent", None, CONTROL_DT)
            else:
                base = "coupled" if method == "coupled_cma" else method
                scores = run_scenes(kind, scenes, base, params)
            rows[key] = {
                "method": label,
                "first_seed": int(chunk[0]),
                "scenes": len(chunk),
                "params": None if params is None else params.__dict__,
                "coordinator_steps": steps,
                "coordinator": None if net is None else net.digest(),
                "load_avg": os.getloadavg(),
                **stamp(),
                **{f: np.asarray(getattr(scores, f), float).tolist() for f in SCORE_FIELDS},
            }
            with ROWS.open("a") as log:
                log.write(json.dumps(rows[key]) + "\n")
        parts.append(rows[key])
    # Rows written before ``end_distance`` was measured lack it: then it stays unmeasured.
    fields = [f for f in SCORE_FIELDS if all(f in p for p in parts)]
    columns = {f: np.concatenate([np.asarray(p[f]) for p in parts]) for f in fields}
    for flag in ("collision", "success", "deadlock"):
        columns[flag] = columns[flag].astype(bool)
    return EpisodeScores(**columns)


def tune(generations: int, popsize: int) -> CouplingParams:
    scenes = cs.sample_scenes(TRAIN_SEEDS)
    bar = tqdm(total=generations, desc="CMA-ES", unit="gen")

    def progress(generation: int, best: float) -> None:
        bar.n = generation
        bar.set_postfix(best_cost=f"{best:.3f}")
        bar.refresh()

    params = cma_search(scenes, CMA_DIR, generations, popsize, progress=progress)
    bar.close()
    return params


def baseline_modules(revision: str, names: tuple[str, ...]) -> list[ModuleType]:
    """The modules ``names`` (``robot_il...``) as of git ``revision``, imported beside the
    current ones in this process (from a ``git archive`` of the package folders), so that the
    tick of a revision and the current one are timed on the same load, episode by episode.
    ``sys.modules`` holds the current modules again afterwards; the old ones live on in what
    they built."""
    root = Path(__file__).parents[1]
    folders = {"robot_il": "robot_il", "robot_il.envs": "envs", "robot_il.policies": "policies"}
    tree = Path(tempfile.mkdtemp(prefix="robot_il_baseline_"))
    archive = subprocess.run(
        ["git", "archive", revision, *folders.values()], cwd=root, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)

    class OldTree(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            top = max((p for p in folders if fullname == p or fullname.startswith(p + ".")),
                      key=len, default=None)  # fmt: skip
            if top is None:
                return None
            place = tree / folders[top] / Path(*fullname[len(top) :].split(".")[1:])
            init = place / "__init__.py"
            file = init if init.exists() else place.with_suffix(".py")
            return importlib.util.spec_from_file_location(fullname, file)

    current = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "robot_il"}
    finder = OldTree()
    sys.meta_path.insert(0, finder)
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        sys.meta_path.remove(finder)
        for name in [k for k in sys.modules if k.split(".")[0] == "robot_il"]:
            del sys.modules[name]
        sys.modules.update(current)
        shutil.rmtree(tree)


def _tick_episode(controllers: dict, ticks: int) -> dict[str, tuple[list, list, list]]:
    """Wall and CPU microseconds of each tick of each of ``controllers`` (label: controller)
    at 500 Hz after the first 100 (first calls), and whether it measured the separation. The
    controllers tick in turn, tick by tick (who goes first alternates), so that each tick of
    one runs under the same load as the other's."""
    times = {label: ([], [], []) for label in controllers}
    order = list(controllers.items())
    for tick in range(ticks):
        for label, controller in order[:: 1 - 2 * (tick % 2)]:
            wall, cpu, measured = times[label]
            last = controller._measured
            begin, begin_cpu = time.perf_counter_ns(), time.thread_time_ns()
            controller.tick(0.002)
            end_cpu, end = time.thread_time_ns(), time.perf_counter_ns()
            if tick >= 100:
                cpu.append((end_cpu - begin_cpu) / 1e3)
                wall.append((end - begin) / 1e3)
                measured.append(controller._measured is not last)
    return times


def _tick_stats(wall: list, cpu: list, measured: list, episodes: int) -> dict[str, float]:
    wall, cpu, measured = np.asarray(wall), np.asarray(cpu), np.asarray(measured)
    best = cpu.reshape(episodes, -1).min(axis=0)
    return {
        "median_us": float(np.median(wall)),
        "p99_us": float(np.percentile(wall, 99)),
        "cpu_median_us": float(np.median(cpu)),
        "cpu_p99_us": float(np.percentile(cpu, 99)),
        "cpu_max_us": float(cpu.max()),
        "cpu_over_1ms": float(np.mean(cpu > 1000.0)),
        "measured_share": float(measured.mean()),
        "cpu_measured_median_us": float(np.median(cpu[measured])),
        "cpu_skipped_median_us": float(np.median(cpu[~measured])),
        "best_of_episodes_median_us": float(np.median(best)),
        "best_of_episodes_p99_us": float(np.percentile(best, 99)),
        "best_of_episodes_max_us": float(best.max()),
        "ticks": len(wall),
    }


def tick_timing(
    ticks: int = 2000, episodes: int = 5, baseline: str | None = None
) -> dict[str, float]:
    """Microseconds per full two-arm control tick (batch of one scene, ``coupled``, 500 Hz),
    over ``episodes`` runs of ``ticks`` ticks of scene 0 (both arms start at once, so they
    meet and one yields), the first 100 ticks of each left out (first calls): wall clock, and
    this thread's CPU time (what the tick costs when it is not preempted by other processes
    on a shared machine), with the share of ticks over 1 ms CPU and of ticks that measured
    the separation (the others were proven apart by the distance bound). Every episode runs
    the same ticks (deterministic), so each tick's least CPU time over the episodes
    (``best_of_episodes``) strips most of what other processes add (caches, a shared core).

    Objects alive before the timing are frozen out of the garbage collector's reach, as the
    deployed policy's process does once the policy is loaded (``robot_il.deploy.worker``).
    ``baseline``: a git revision whose tick runs in the same process, its controller ticking
    in turn with the current code's, tick by tick (same load; each goes first every other
    tick: on a loaded machine, alternating whole episodes gave ratios that moved by 0.3 from
    run to run), timed the same way (``baseline``)."""
    runs = {"current": (cs, cross_episodes)}
    if baseline is not None:
        names = ("robot_il.envs.cross_scenes", "robot_il.policies.dmp.cross_episodes")
        runs["baseline"] = tuple(baseline_modules(baseline, names))
    primitives = {
        label: episodes_of.expert_primitives() for label, (_, episodes_of) in runs.items()
    }
    times = {label: ([], [], []) for label in runs}
    gc.collect()
    gc.freeze()
    for _ in tqdm(range(episodes), desc="tick timing", unit="episode"):
        controllers = {
            label: episodes_of.scene_controller(
                scenes_of.sample_scenes([0]),
                primitives[label],
                delay=np.zeros((1, 2)),
                method="coupled",
            )  # fmt: skip
            for label, (scenes_of, episodes_of) in runs.items()
        }
        for label, parts in _tick_episode(controllers, ticks).items():
            for total, part in zip(times[label], parts, strict=True):
                total.extend(part)
    timing = {**_tick_stats(*times["current"], episodes), "load_avg": os.getloadavg(),
              "episodes": episodes, "ticks_per_episode": ticks, **stamp()}  # fmt: skip
    if baseline is not None:
        timing["baseline"] = {"revision": baseline, **_tick_stats(*times["baseline"], episodes)}
    return timing


def timing_line(timing: dict[str, float]) -> str:
    """The tick timing in one line (CPU time per tick; goal: p99 <= 1 ms), and the
    baseline's where it ran."""
    lines = []
    for label, row in (("tick", timing), ("baseline", timing.get("baseline"))):
        if row is None:
            continue
        name = label if label == "tick" else f"baseline {row['revision']}"
        lines.append(
            f"{name} CPU: median {row['cpu_median_us'] / 1e3:.3f} ms, p99 "
            f"{row['cpu_p99_us'] / 1e3:.3f} ms, max {row['cpu_max_us'] / 1e3:.3f} ms, "
            f"{100 * row['cpu_over_1ms']:.2f} % of {row['ticks']} ticks over 1 ms; ticks that "
            f"measure the separation ({100 * row['measured_share']:.0f} %) median "
            f"{row['cpu_measured_median_us'] / 1e3:.3f} ms, the others "
            f"{row['cpu_skipped_median_us'] / 1e3:.3f} ms; each tick's least over the "
            f"episodes: median {row['best_of_episodes_median_us'] / 1e3:.3f} ms, p99 "
            f"{row['best_of_episodes_p99_us'] / 1e3:.3f} ms, max "
            f"{row['best_of_episodes_max_us'] / 1e3:.3f} ms"
        )
    if "baseline" in timing:
        base = timing["baseline"]
        ratios = ", ".join(
            f"{key.removesuffix('_us')} {timing[key] / base[key]:.2f}"
            for key in ("cpu_median_us", "cpu_p99_us", "best_of_episodes_p99_us")
        )
        lines.append(f"current / baseline: {ratios}")
    load = ", ".join(f"{x:.1f}" for x in timing["load_avg"])
    return "\n".join(lines) + f"\nload average {load}"


PHYSICS_SCENES = {"mujoco": 100, "pybullet": 50}
"""Scenes (seeds 0..N-1 of the kinematic 500) per engine."""
PHYSICS_METHODS = ("independent", "coupled_cma", "dmp_rl", "dmp_rl_shield")
PHYSICS_DIR = Path(__file__).parents[1] / "outputs" / "dmp_physics"
PHYSICS_ROWS = RESULTS / "dmp_multiarm_physics_rows.jsonl"


def physics_policies(demos: int, methods: tuple[str, ...] = PHYSICS_METHODS) -> dict[str, Path]:
    """A checkpoint per physics method, from ``demos`` recorded expert episodes (kept under
    ``PHYSICS_DIR`` between runs; their library replaced by ``expert_library``): the DMP
    policy with the CMA-ES or no coupling, and with the shipped coordinator
    (``robot_il.train.coordinator.SHIPPED_NET``) over the CMA-ES coupling, with and without
    shield. Each runs on the scene's goals, delays and move durations (its observation)."""
    from robot_il.policies import DEPLOY_SUBDIR, load_policy

    from robot_il.train.coordinator import SHIPPED_NET, export_dmp_rl
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.dmp import train_dmp

    dmp = PHYSICS_DIR / "dmp" / DEPLOY_SUBDIR
    if not (dmp / "config.json").exists():
        dataset = record_expert_demos("bimanual_cross", PHYSICS_DIR / "demos", episodes=demos)
        dmp = train_dmp(str(dataset), PHYSICS_DIR / "dmp").checkpoint
    expert = load_policy(dmp)
    expert.segments = expert_library(expert.segments)
    dmp = expert.save(PHYSICS_DIR / "expert", library_arrays(expert.segments) | expert.episodes)
    cma = json.loads(OUT.read_text())["cma"]["params"]
    out = {}
    for method in methods:
        path = PHYSICS_DIR / method
        if method in LEARNED:
            shield = SHIELD_CLEARANCE if method == "dmp_rl_shield" else None
            net = CoordinatorNet.load(SHIPPED_NET)
            out[method] = export_dmp_rl(dmp, net, path, CouplingParams(**cma), shield)
            continue
        policy = load_policy(dmp)
        policy.config = dataclasses.replace(
            policy.config,
            method="coupled" if method == "coupled_cma" else method,
            coupling=cma if method == "coupled_cma" else policy.config.coupling,
        )
        arrays = library_arrays(policy.segments) | policy.episodes
        out[method] = policy.save(path, arrays)
    return out


def physics_episode(env, policy, seed: int) -> dict[str, float]:
    """One seeded episode: success, collision (capsules of the measured joints overlapped at
    some control step), arm-to-arm contact points summed over the control steps, smallest
    separation (m); and the same separation of the commanded joints (the policy's actions:
    where the two differ, the physical arms did not follow the kinematic path); the farther
    tool's distance (m) from its goal at the episode's end (the env ends an episode at
    success, so this shows drift only in episodes that never succeeded; the kinematic rows
    run every scene to the time limit)."""
    from robot_il.envs.separation import arm_separation

    obs, info = env.reset(seed=seed)
    policy.reset()
    bases = [cs.world_from_base(arm) for arm in cs.ARMS]
    contacts, separation, success = 0, float(obs["arm_separation"][0]), False
    commanded = np.inf
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy.act(obs)
        commanded = min(commanded, arm_separation(action[:6], bases[0], action[7:13], bases[1]))
        obs, _, terminated, truncated, info = env.step(action)
        contacts += env.unwrapped.backend.arm_contacts()
        separation = min(separation, float(obs["arm_separation"][0]))
        success = success or bool(info.get("is_success", False))
    collided = bool(env.unwrapped.task.collided)
    tools = np.stack([np.asarray(obs[f"{arm}_eef_pose"][:3]) for arm in cs.ARMS])
    end = np.linalg.norm(tools - np.asarray(obs["tool_goals"]).reshape(2, 3), axis=-1).max()
    return {
        "seed": seed,
        "success": success and not collided,
        "collision": collided,
        "contact": contacts > 0,
        "contact_points": contacts,
        "min_separation": separation,
        "commanded_min_separation": float(commanded),
        "end_distance": float(end),
    }


def kinematic_collisions(method: str, count: int) -> np.ndarray | None:
    """The kinematic collision flags of ``method`` on seeds 0..count-1 (from its rows)."""
    rows = sorted(
        (r for (m, _), r in done_rows().items() if m == method), key=lambda r: r["first_seed"]
    )
    flags = [c for r in rows for c in r["collision"]][:count]
    return np.asarray(flags, dtype=bool) if len(flags) == count else None


def physics(
    demos: int = 6,
    scenes: dict[str, int] = PHYSICS_SCENES,
    methods: tuple[str, ...] = PHYSICS_METHODS,
) -> dict[str, dict[str, dict]]:
    """``methods`` on ``scenes`` seeded scenes per engine (seeds 0..N-1); resumable (one row
    per episode in ``PHYSICS_ROWS``)."""
    from robot_il.envs import make_env
    from robot_il.policies import load_policy

    checkpoints = physics_policies(demos, methods)
    done = {}
    if PHYSICS_ROWS.exists():
        for line in PHYSICS_ROWS.read_text().splitlines():
            row = json.loads(line)
            done[row["backend"], row["method"], row["seed"]] = row
    out: dict[str, dict[str, dict]] = {}
    for backend, count in scenes.items():
        if not count:
            continue
        env = make_env("bimanual_cross", backend)
        for method in methods:
            policy = load_policy(checkpoints[method])
            net = policy.coordinator.digest() if policy.coordinator is not None else None
            rows = []
            for seed in tqdm(range(count), desc=f"{backend} {method}", unit="episode"):
                key = (backend, method, seed)
                if key not in done or done[key].get("coordinator") != net:
                    done[key] = {
                        "backend": backend,
                        "method": method,
                        "coordinator": net,
                        **physics_episode(env, policy, seed),
                        "load_avg": os.getloadavg(),
                        **stamp(),
                    }
                    with PHYSICS_ROWS.open("a") as log:
                        log.write(json.dumps(done[key]) + "\n")
                rows.append(done[key])
            collided = np.array([r["collision"] for r in rows])
            measured = all("end_distance" in r for r in rows)
            ends = np.array([r["end_distance"] for r in rows]) if measured else None
            kinematic = kinematic_collisions(method, count)
            summary = {
                "scenes": count,
                "collision_rate": float(np.mean(collided)),
                "commanded_collision_rate": float(
                    np.mean([r["commanded_min_separation"] < 0.0 for r in rows])
                ),
                "contact_rate": float(np.mean([r["contact"] for r in rows])),
                "contact_points": int(sum(r["contact_points"] for r in rows)),
                "success_rate": float(np.mean([r["success"] for r in rows])),
                "deadlock_rate": float(
                    np.mean([not (r["success"] or r["collision"]) for r in rows])
                ),
                "min_separation_p5": float(np.percentile([r["min_separation"] for r in rows], 5)),
                **end_summary(ends),
                "kinematic_collision_rate": None if kinematic is None else float(kinematic.mean()),
                "kinematic_disagreements": None
                if kinematic is None
                else int(np.sum(kinematic != collided)),
                "demos": demos,
                "load_avg": os.getloadavg(),
                **stamp(),
            }
            out.setdefault(backend, {})[method] = summary
            print(backend, method, json.dumps(summary), flush=True)
            update_results(
                lambda r, b=backend, m=method, s=summary: (
                    r["physics"].setdefault(b, {}).update({m: s})
                )
            )
        env.close()
    return out


VIDEO = RESULTS / "dmp_rl_vs_independent.mp4"


def video(seed: int, size: tuple[int, int] = (240, 320)) -> Path:
    """MuJoCo episode ``seed`` side by side: ``dmp_rl_shield`` (left) and ``independent``
    (right), the front camera, 20 fps, the arms' smallest separation written on each frame."""
    import cv2
    import imageio.v3 as iio
    from robot_il.envs import make_env
    from robot_il.policies import load_policy

    checkpoints = physics_policies(6, ("dmp_rl_shield", "independent"))
    films = []
    for method in ("dmp_rl_shield", "independent"):
        env = make_env("bimanual_cross", "mujoco", render_mode="rgb_array", render_size=size)
        policy = load_policy(checkpoints[method])
        obs, _ = env.reset(seed=seed)
        frames, closest, done = [], np.inf, False
        while not done:
            obs, _, terminated, truncated, _ = env.step(policy.act(obs))
            closest = min(closest, float(obs["arm_separation"][0]))
            frame = np.ascontiguousarray(env.render())
            label = f"{method}  min sep {100 * closest:+.1f} cm"
            cv2.putText(frame, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
            frames.append(frame)
            done = terminated or truncated
        films.append(frames)
        env.close()
    length = max(len(f) for f in films)
    padded = [f + [f[-1]] * (length - len(f)) for f in films]
    joined = np.stack([np.concatenate(pair, axis=1) for pair in zip(*padded, strict=True)])
    iio.imwrite(VIDEO, joined, fps=20, codec="libx264", quality=6)
    return VIDEO


def plot(result: dict) -> Path:
    """Rates and makespan ratio per method, side by side (``dmp_multiarm.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if m in result["methods"]]
    rows = [result["methods"][m] for m in methods]
    figure, (rates, times) = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(methods))
    for offset, field in zip(
        (-0.27, 0.0, 0.27), ("collision_rate", "success_rate", "deadlock_rate"), strict=True
    ):
        rates.bar(x + offset, [r[field] for r in rows], 0.27, label=field.removesuffix("_rate"))
    rates.set_xticks(x, methods, rotation=30, ha="right")
    rates.set_ylabel(f"fraction of {rows[0]['scenes']} scenes")
    rates.legend()
    base = result["methods"].get("independent", rows[0])["makespan"]
    times.bar(x, [r["makespan"] / base for r in rows], 0.5, color="tab:gray")
    times.axhline(1.35, color="tab:red", linestyle="--", label="goal for coupled_cma (1.35)")
    times.axhline(1.25, color="tab:purple", linestyle=":", label="goal for dmp_rl (1.25)")
    if "sequential" in result["methods"]:
        limit = 0.7 * result["methods"]["sequential"]["makespan"] / base
        times.axhline(limit, color="tab:green", linestyle="-.", label="0.7 x sequential")
    times.set_xticks(x, methods, rotation=30, ha="right")
    times.set_ylabel("makespan / independent")
    times.legend()
    figure.suptitle(f"bimanual_cross, kinematic, seeded scenes 0..{rows[0]['scenes'] - 1}")
    figure.tight_layout()
    path = OUT.with_suffix(".png")
    drawn = stamp()
    figure.savefig(path, dpi=110, metadata={"Software": f"robot_il {drawn['code']}",
                                            "Creation Time": drawn["utc"]})  # fmt: skip
    return path


SHARED_BIN_SCENES = 200
SHARED_BIN_METHODS = ("independent", "sequential", "coupled_cma", "dmp_rl", "dmp_rl_shield")


def shared_bin() -> None:
    """``bimanual_shared_bin`` rows (seeds 0..199) into the results' ``shared_bin``; the
    learned methods use the coordinator trained on ``bimanual_cross``, here over the hand-set
    coupling layer on purpose (CMA-ES's 0.32 m repulsion keeps both tools off the one bin:
    coupled_cma deadlocks in two thirds of the scenes): the one place the net runs over a
    layer other than its own (a checkpoint of it takes ``export_dmp_rl(...,
    override_coupling=True)``)."""
    cma = CouplingParams(**json.loads(OUT.read_text())["cma"]["params"])
    for method in SHARED_BIN_METHODS:
        params = cma if method == "coupled_cma" else CouplingParams() if method in LEARNED else None
        summary = run_method(
            method, np.arange(SHARED_BIN_SCENES), params, "bimanual_shared_bin"
        ).summary() | {"load_avg": os.getloadavg(), **stamp()}
        print("bimanual_shared_bin", method, json.dumps(summary), flush=True)
        update_results(lambda r, m=method, s=summary: r.setdefault("shared_bin", {}).update({m: s}))


RECHECK_ROWS = RESULTS / "dmp_multiarm_recheck.jsonl"
RECHECK_METHODS = ("coupled_cma", "coupled", "oncol", "sequential", "independent")


def recheck(methods: tuple[str, ...] = RECHECK_METHODS, scenes: int = 500) -> None:
    """Run the kinematic ``methods`` again on the stored rows' scenes (chunk by chunk, with
    the rows' own coupling) and compare each scene's collision, success, deadlock and makespan
    with the rows', to the bit, and min_separation (the largest difference, m): whether a
    change of the tick (code that should move nothing but rounding) moved the benchmark.
    Resumable: one row per method and chunk in ``RECHECK_ROWS``; run a method's rows first."""
    rows = done_rows()
    done = set()
    if RECHECK_ROWS.exists():
        for line in RECHECK_ROWS.read_text().splitlines():
            row = json.loads(line)
            done.add((row["method"], row["first_seed"], row["revision"]))
    code = revision()
    for first in tqdm(range(0, scenes, CHUNK), desc="recheck", unit="chunk"):
        for method in methods:
            row = rows.get((method, first))
            if row is None or (method, first, code) in done:
                continue
            params = None if row["params"] is None else CouplingParams(**row["params"])
            base = "coupled" if method == "coupled_cma" else method
            chunk = np.arange(first, first + row["scenes"])
            scores = run_scenes(
                "bimanual_cross", sample_scenes("bimanual_cross", chunk), base, params
            )
            check = {"method": method, "first_seed": first, "revision": code}
            for flag in ("collision", "success", "deadlock", "makespan"):
                same = np.array_equal(np.asarray(getattr(scores, flag), float), row[flag])
                check[f"{flag}_same"] = bool(same)
            moved = np.abs(scores.min_separation - np.asarray(row["min_separation"]))
            check["min_separation_max_diff_m"] = float(moved.max())
            check |= {"load_avg": os.getloadavg(), "utc": stamp()["utc"]}  # its code: revision
            with RECHECK_ROWS.open("a") as log:
                log.write(json.dumps(check) + "\n")
            print(json.dumps(check), flush=True)


def update_results(change: Callable[[dict], None]) -> dict:
    """Read ``OUT``, apply ``change``, write it back (so that runs of different methods at
    the same time keep each other's rows)."""
    result = json.loads(OUT.read_text()) if OUT.exists() else {"methods": {}}
    change(result)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=500)
    parser.add_argument("--generations", type=int, default=12)
    parser.add_argument("--popsize", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="delete earlier rows and search")
    parser.add_argument("--plot-only", action="store_true", help="plot the results JSON")
    parser.add_argument("--timing-only", action="store_true", help="time the tick, keep rows")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time the tick of git revision REV, ticking in turn with the current",
    )
    parser.add_argument("--timing-episodes", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of the results files (the JSON, rows, plot)")  # fmt: skip
    parser.add_argument(
        "--recheck",
        nargs="*",
        metavar="METHOD",
        choices=RECHECK_METHODS,
        help="rerun these kinematic methods (default: all five) and compare every scene's "
        "outcome with the stored rows (after a change of the tick)",
    )
    parser.add_argument(
        "--physics",
        action="store_true",
        help="run the physics methods on 100 (MuJoCo) and 50 (PyBullet) scenes: the kinematic "
        "rows' DMPs in a checkpoint made from 6 recorded demos; collisions and arm-arm contacts",
    )
    parser.add_argument(
        "--train-coordinator",
        type=int,
        default=0,
        metavar="STEPS",
        help="first train (or go on training) the PPO coordinator to STEPS env steps",
    )
    parser.add_argument(
        "--video", type=int, metavar="SEED", help="write the dmp_rl/independent video of SEED"
    )
    parser.add_argument(
        "--physics-scenes",
        type=int,
        nargs=2,
        default=list(PHYSICS_SCENES.values()),
        metavar=("MUJOCO", "PYBULLET"),
    )
    parser.add_argument(
        "--physics-methods", nargs="+", default=list(PHYSICS_METHODS), choices=PHYSICS_METHODS
    )
    parser.add_argument(
        "--shared-bin",
        action="store_true",
        help=f"run {', '.join(SHARED_BIN_METHODS)} on {SHARED_BIN_SCENES} bimanual_shared_bin "
        "scenes",
    )
    args = parser.parse_args()
    code_provenance()  # the code this process loaded, for its rows
    use_results(args.results)
    if args.shared_bin:
        shared_bin()
        return
    if args.video is not None:
        print(video(args.video))
        return
    if args.train_coordinator:
        from robot_il.train.coordinator import CoordinatorTrainConfig, train_coordinator

        config = CoordinatorTrainConfig(total_steps=args.train_coordinator)
        train_coordinator(COORDINATOR_DIR, config, cma_params())
    if args.plot_only:
        print(plot(json.loads(OUT.read_text())))
        return
    if args.recheck is not None:
        recheck(tuple(args.recheck) or RECHECK_METHODS, args.scenes)
        return
    if args.timing_only:
        timing = tick_timing(episodes=args.timing_episodes, baseline=args.baseline)
        print(timing_line(timing), flush=True)
        update_results(lambda result: result.update(tick_us=timing))
        return
    if args.physics:
        counts = dict(zip(PHYSICS_SCENES, args.physics_scenes, strict=True))

        def drop_old(result: dict) -> None:
            old = result.get("physics", {})  # issue 11's "engine/method" rows, other seeds
            result["physics"] = {k: v for k, v in old.items() if "/" not in k}

        update_results(drop_old)
        physics(scenes=counts, methods=tuple(args.physics_methods))
        return
    if args.fresh:
        ROWS.unlink(missing_ok=True)
        shutil.rmtree(CMA_DIR, ignore_errors=True)
    seeds = np.arange(args.scenes)
    for method in args.methods:
        params, cma_row = None, None
        if method == "coupled":
            params = CouplingParams()
        elif method in LEARNED:
            params = cma_params()
        elif method == "coupled_cma":
            params = tune(args.generations, args.popsize)
            cma_row = {
                "params": params.__dict__,
                "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1],
                "generations": args.generations,
                "popsize": args.popsize,
            }
        summary = run_method(method, seeds, params).summary()
        summary |= {"load_avg": os.getloadavg(), **stamp()}
        print(method, json.dumps(summary), flush=True)

        def record(result: dict, method=method, summary=summary, cma_row=cma_row) -> None:
            result["methods"][method] = summary
            if cma_row is not None:
                result["cma"] = cma_row

        update_results(record)
    timing = (
        None
        if args.skip_timing
        else tick_timing(episodes=args.timing_episodes, baseline=args.baseline)
    )
    if timing is not None:
        print(timing_line(timing), flush=True)

    def finish(result: dict) -> None:
        independent = result["methods"].get("independent")
        if independent:
            for summary in result["methods"].values():
                summary["makespan_ratio"] = summary["makespan"] / independent["makespan"]
        if timing is not None:
            result["tick_us"] = timing
        result["setup"] = {
            "control_hz": 100,
            "seeds": [0, args.scenes - 1],
            "cpu_count": os.cpu_count(),
        }

    result = update_results(finish)
    print(plot(result))


if __name__ == "__main__":
    main()
