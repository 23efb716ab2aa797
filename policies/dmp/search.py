"""CMA-ES over the coupling and phase-law parameters, on kinematic ``bimanual_cross`` scenes.

The search space is ``CouplingParams`` scaled to [0, 1] by ``PARAM_BOUNDS``, starting from the
hand-set values. A candidate's cost (lower is better) weighs what the benchmark's goals ask:

    cost = makespan / makespan_independent + 20 collision_rate + 20 deadlock_rate
           + 10 max(0, MIN_SEPARATION_GOAL - min_separation_p5) / MIN_SEPARATION_GOAL
           + 10 max(0, peak_joint_acceleration_p99 / ACCELERATION_LIMIT - 1)

(the last term keeps the commanded motion within the joints' acceleration limits, which a
strong repulsion or an abrupt phase change would break).

The search is resumable: after every generation the CMA-ES state is pickled and each
candidate's parameters, cost and scores are appended as a JSON row to ``search.jsonl`` in the
output directory; a rerun with the same directory continues where it stopped, under the
settings it started with (``settings.json``: scenes, population, step size, seed, tick, the DMPs):
costs on other scenes do not compare, and a pickled state keeps its own population.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
from robot_il.envs.cross_scenes import CrossScenes
from robot_il.envs.ur5e.description import JOINT_ACC_LIMITS
from robot_il.policies.dmp.bimanual import ArmPrimitives
from robot_il.policies.dmp.coupling import PARAM_BOUNDS, CouplingParams
from robot_il.policies.dmp.cross_episodes import EpisodeScores, expert_primitives, run_episodes

from robot_il.errors import ConfigError

MIN_SEPARATION_GOAL = 0.02
"""The 5th-percentile separation (m) the search aims to keep."""
ACCELERATION_LIMIT = float(JOINT_ACC_LIMITS.min())
"""Joint acceleration (rad/s^2) the commanded motion should stay within."""
STATE_FILE = "cma_state.pkl"
LOG_FILE = "search.jsonl"
SETTINGS_FILE = "settings.json"


def cost(summary: dict[str, float], independent_makespan: float) -> float:
    """The search's cost of a benchmark row (see the module docstring)."""
    shortfall = max(0.0, MIN_SEPARATION_GOAL - summary["min_separation_p5"])
    excess = max(0.0, summary["peak_joint_acceleration_p99"] / ACCELERATION_LIMIT - 1.0)
    return (
        summary["makespan"] / independent_makespan
        + 20.0 * summary["collision_rate"]
        + 20.0 * summary["deadlock_rate"]
        + 10.0 * shortfall / MIN_SEPARATION_GOAL
        + 10.0 * excess
    )


def _to_unit(params: CouplingParams) -> np.ndarray:
    low, high = PARAM_BOUNDS
    return (params.to_vector() - low) / (high - low)


def _from_unit(unit: np.ndarray) -> CouplingParams:
    low, high = PARAM_BOUNDS
    return CouplingParams.from_vector(low + np.clip(unit, 0.0, 1.0) * (high - low))


def cma_search(
    scenes: CrossScenes,
    out_dir: str | Path,
    generations: int = 12,
    popsize: int = 8,
    sigma0: float = 0.15,
    seed: int = 0,
    dt: float = 0.02,
    primitives: tuple[ArmPrimitives, ArmPrimitives] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> CouplingParams:
    """Search the coupling parameters on ``scenes`` run at ``dt`` s by ``primitives``
    (default: the expert's DMPs); returns the best candidate seen. ``progress(generation,
    best_cost)`` is called after each generation."""
    import cma

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    primitives = primitives or expert_primitives()

    def evaluate(params: CouplingParams | None, method: str = "coupled") -> EpisodeScores:
        return run_episodes(scenes, method, params, primitives, dt=dt)

    state = out_dir / STATE_FILE
    settings = {
        "scene_seeds": [int(seed) for seed in scenes.seeds],
        "popsize": popsize,
        "sigma0": sigma0,
        "seed": seed,
        "dt": dt,
        "primitives": primitives_digest(primitives),
    }
    _refuse_changed_search(out_dir, settings, resuming=state.exists())
    baseline = evaluate(None, "independent").summary()["makespan"]
    if state.exists():
        es = pickle.loads(state.read_bytes())
    else:
        es = cma.CMAEvolutionStrategy(
            _to_unit(CouplingParams()),
            sigma0,
            {"popsize": popsize, "seed": seed + 1, "bounds": [0.0, 1.0], "verbose": -9},
        )
    with (out_dir / LOG_FILE).open("a") as log:
        while es.countiter < generations:
            candidates = es.ask()
            costs = []
            for index, unit in enumerate(candidates):
                params = _from_unit(unit)
                summary = evaluate(params).summary()
                costs.append(cost(summary, baseline))
                row = {
                    "generation": es.countiter,
                    "candidate": index,
                    "params": params.__dict__,
                    "cost": costs[-1],
                    "independent_makespan": baseline,
                    **summary,
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
            es.tell(candidates, costs)
            state.write_bytes(pickle.dumps(es))
            if progress is not None:
                progress(es.countiter, float(es.result.fbest))
    return best_logged(out_dir)


def primitives_digest(primitives: tuple[ArmPrimitives, ...]) -> str:
    """A short digest of the DMPs' parameters: a search resumed over DMPs fitted from other
    demonstrations or with other ``n_bases`` scores costs that do not compare."""
    digest = hashlib.sha256()
    for arm, pair in enumerate(primitives):
        for name, dmp in (("position", pair.position), ("orientation", pair.orientation)):
            for key, array in sorted(dmp.to_arrays(f"{arm}_{name}_").items()):
                digest.update(key.encode() + np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _refuse_changed_search(out_dir: Path, settings: dict, resuming: bool) -> None:
    """``ConfigError`` if the search being resumed in ``out_dir`` started under other
    ``settings``; a new search records its own. A search from before they were recorded is
    not compared."""
    path = out_dir / SETTINGS_FILE
    if not resuming:
        path.write_text(json.dumps(settings))
        return
    if not path.exists():
        return
    saved = json.loads(path.read_text())

    def shown(key: str, value: object) -> object:
        return f"{len(value)} from seed {value[0]}" if key == "scene_seeds" else value

    changed = [
        f"{key} {shown(key, saved[key])} -> {shown(key, value)}"
        for key, value in settings.items()
        if key in saved and saved[key] != value
    ]
    if changed:
        raise ConfigError(
            f"{out_dir}: this CMA-ES search started with other settings ({', '.join(changed)}); "
            "resume it with its own, or pass a new --out"
        )


def best_logged(out_dir: str | Path) -> CouplingParams:
    """The lowest-cost candidate in a search's log."""
    return CouplingParams(**best_row(out_dir)["params"])


def best_row(out_dir: str | Path) -> dict:
    """The log row (parameters, cost, scores) of the lowest-cost candidate of a search."""
    rows = [json.loads(line) for line in (Path(out_dir) / LOG_FILE).read_text().splitlines()]
    return min(rows, key=lambda row: row["cost"])
