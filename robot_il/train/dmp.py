"""``robot-il train dmp``: a two-arm DMP controller from a zarr dataset.

No gradient steps: the demonstration library is fit by locally weighted regression
(``robot_il.policies.dmp.library``); with ``search="cma"`` the coupling parameters are then
tuned by CMA-ES on kinematic ``bimanual_cross`` scenes driven by the library's DMPs
(``robot_il.policies.dmp.search``), else the hand-set ones are kept. The checkpoint goes to
``<out>/policy`` (``robot_il.policies.DEPLOY_SUBDIR``), where ``robot-il eval`` finds it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from robot_il.errors import ConfigError, DatasetError

SEARCHES = ("none", "cma")
SEARCH_SEED = 200_000
"""First seed of the kinematic scenes the training-time search runs on (the benchmark's are
0..499 and 100000..100099)."""


@dataclasses.dataclass
class DMPTrainResult:
    checkpoint: Path
    segments: int
    search_cost: float | None


def train_dmp(
    dataset_path: str,
    out: str | Path,
    search: str = "none",
    n_bases: int = 50,
    generations: int = 6,
    popsize: int = 6,
    search_scenes: int = 64,
) -> DMPTrainResult:
    """Build the library, optionally tune the coupling on ``search_scenes`` kinematic scenes
    (resuming a search found in ``<out>/cma`` under the settings it started with; a line per
    generation), save the checkpoint. An ``out`` whose checkpoint learned from other data, or
    is not a plain DMP checkpoint (a BC run's, a ``robot-il train dmp-rl`` run's), or whose
    coupling CMA-ES tuned while this run has no ``search`` (a rerun that forgot the flag), is
    refused before any work (its search would go on over another library, or its checkpoint
    be replaced without a word)."""
    from robot_il.dataset import Dataset
    from robot_il.policies import DEPLOY_SUBDIR
    from robot_il.policies.checkpoint_files import CONFIG_FILE, read_checkpoint_config
    from robot_il.policies.dmp.library import (
        TIMING_KEYS,
        build_library,
        check_two_arms,
        episode_arrays,
        library_arrays,
        nearest,
        scene_keys,
    )
    from robot_il.policies.dmp.policy import DMPConfig, DMPPolicy
    from robot_il.policies.spec import spec_from_dataset
    from robot_il.provenance import (
        code_provenance,
        dataset_record,
        refuse_changed_data,
        saved_training_data,
    )
    from robot_il.train.trainer import lock_run

    code_provenance()  # the code this run loaded (a CMA search runs for hours)
    if search not in SEARCHES:
        raise ConfigError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    try:
        dataset = Dataset.open(dataset_path)
    except (OSError, FileNotFoundError) as error:
        raise DatasetError(f"{dataset_path}: cannot open dataset: {error}") from None
    check_two_arms(dataset, dataset_path)
    training_data = [dataset_record(dataset, dataset_path, dataset.num_episodes)]
    previous = Path(out) / DEPLOY_SUBDIR
    if (previous / CONFIG_FILE).is_file():  # a run to replace, or whose CMA-ES search goes on
        saved = read_checkpoint_config(previous)
        if saved["policy_type"] != "dmp" or saved["config"].get("coordinator"):
            kind = "DMP + RL" if saved["policy_type"] == "dmp" else saved["policy_type"]
            raise ConfigError(
                f"{previous}: a {kind} checkpoint that this run would overwrite; pass another --out"
            )
        if saved["config"].get("search") == "cma" and search != "cma":
            raise ConfigError(
                f"{previous}: its coupling was tuned by CMA-ES; this run would replace it by "
                "the hand-set one (pass --search cma, which keeps the search, or another --out)"
            )
        refuse_changed_data(Path(out), saved_training_data(saved) or None, training_data)
    keys = scene_keys(dataset)
    per_arm = [f"{arm}_{k}" for arm in ("left", "right") for k in ("joint_pos", "eef_pose")]
    sequence = "object_pose" in dataset.keys  # a task with an object: replay, adapted
    extra = ["object_pose"] if sequence else []
    timing = [k for k in TIMING_KEYS if k in dataset.keys]
    spec = spec_from_dataset(dataset, [*per_arm, *keys, *timing, *extra], dataset_path)
    if spec.get("action_mode") not in (None, "joint"):
        raise ConfigError(
            f"{dataset_path}: a DMP controller commands joints; data recorded in "
            f"{spec['action_mode']!r} mode"
        )
    segments = build_library(dataset, dataset_path, n_bases)
    config = DMPConfig(
        scene_keys=tuple(keys), search=search, playback="sequence" if sequence else "coupled"
    )
    episodes = episode_arrays(dataset) if sequence else {}
    if search == "cma" and (spec.get("task") != "bimanual_cross" or sequence):
        raise ConfigError(
            f"--search cma tunes on bimanual_cross scenes; {dataset_path} holds "
            f"{spec.get('task')!r}"
        )
    with lock_run(Path(out)):  # one training at a time in ``out`` (a search runs for hours)
        cost = None
        if search == "cma":
            from robot_il.envs import cross_scenes as cs
            from robot_il.policies.dmp.bimanual import ArmPrimitives
            from robot_il.policies.dmp.search import best_row, cma_search

            primitives = []
            for arm in cs.ARMS:
                start, _, goal = cs.nominal_path(arm)
                segment = nearest(segments, arm, np.concatenate([start, goal]))
                primitives.append(ArmPrimitives(segment.position, segment.orientation))
            search_dir = Path(out) / "cma"
            scenes = cs.sample_scenes(range(SEARCH_SEED, SEARCH_SEED + search_scenes))

            def progress(generation: int, best: float) -> None:  # a generation can take minutes
                print(
                    f"CMA-ES generation {generation}/{generations}: best cost {best:.3f}",
                    flush=True,
                )

            params = cma_search(
                scenes, search_dir, generations, popsize, primitives=tuple(primitives),
                progress=progress,
            )  # fmt: skip
            config.coupling = dataclasses.asdict(params)
            cost = float(best_row(search_dir)["cost"])
        policy = DMPPolicy(config, spec, segments, episodes)
        policy.training_data = training_data
        checkpoint = policy.save(Path(out) / DEPLOY_SUBDIR, library_arrays(segments) | episodes)
    return DMPTrainResult(checkpoint, len(segments), cost)
