"""Image-based BC and Diffusion from cameras plus proprioception, and state-based Diffusion at
BC's level (not run in CI).

Parts, each behind a flag:

- ``--speed``: training steps per second of image BC (two 96x96 cameras, batch 64) with the
  ResNet and with the conv + spatial-softmax encoder, on each of ``--speed-devices`` (e.g.
  ``cpu cuda``), in one process, with the load average.
- ``--cells``: train and evaluate the cells the grid flags select (``--tasks``,
  ``--backends``, ``--policies``, ``--observations``, ``--counts``; ``--steps`` overrides the
  recipe's), 50 seeded episodes each. Every finished cell is appended at once, with the
  load average, the code (commit) and the UTC time, to ``--results`` (default
  ``benchmarks/results/vision.json``, the committed cells: give a scratch file to check a
  checkout); a cell already there (same recipe) is skipped, so the grid runs in parts and
  resumes after a kill. ``--action-steps K`` evaluates the cells
  executing K actions of each predicted chunk instead of the trained 4 (a finished cell's
  checkpoint is reused: only the evaluation runs). ``--train-only`` trains the cells without
  evaluating them (on a GPU machine without the simulator, with ``--extra='--device cuda'``);
  ``--partial`` then evaluates their saved checkpoints where the simulator runs.
- ``--plot``: success against demonstrations from ``--results`` into the PNG beside it
  (``benchmarks/results/vision.png``).
- ``--probe CHECKPOINT``: how well an image BC checkpoint's features (keypoints, camera
  features, last hidden layer; proprioception for comparison) locate the cube and the push
  target, by linear and MLP probes scored on held-out demonstrations, into
  ``vision_probe.json`` beside ``--results``.

Image cells observe the ``--cameras`` (default ``front``, 96x96; the tasks have ``front``,
``top`` and ``side`` fixed, and ``wrist`` on the gripper), ``joint_pos``, ``gripper`` and
``eef_pose`` (no object state); state cells observe everything low-dimensional the env
offers, the cube's pose included. Demonstrations are the scripted expert's
(``benchmarks/policies.py``: eef deltas, held past success, DART noise), recorded once per
(task, backend, cameras) under ``--work``.
Run: ``nice -n 19 .venv/bin/python benchmarks/vision.py --cells --tasks push
--policies bc --observations image --counts 100 --steps 10000 --aux-weight 1
--extra='--policy.image-crop 46 20 40 56 --save-every 1000'`` (the best image recipe so far:
34/50 on MuJoCo push, 37/50 evaluated with ``--action-steps 1``; the crop is the push
workspace in the 96x96 ``front`` frame). On pick_place the front camera reached 70% at best;
what reaches 92% (46/50 re-planning every step; 38.3 min of training at load 5-9) adds the
``wrist`` camera, whole frames, the crop on ``front`` only: ``--tasks pick_place --cameras
front wrist --counts 200 --steps 10000 --aux-weight 1 --action-steps 1
--extra='--policy.image-crop 46 20 40 56 --policy.image-crop-keys rgb_front --save-every
1000'`` (the wrist camera alone: 80%, ``--cameras wrist --recorded-cameras front wrist``:
``--recorded-cameras`` names the recording a cell reads). Camera recordings take minutes to
hours on a loaded CPU; a killed one resumes when the same command runs again.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch
from robot_il.envs.ur5e.scene_geometry import MARKER_RADIUS
from robot_il.policies.base import executing

from policies import demos, evaluate_checkpoint, train_run
from robot_il.errors import ConfigError
from robot_il.provenance import code_provenance, revision
from robot_il.train.config import load_config
from robot_il.train.evaluate import EvalResult
from robot_il.train.trainer import train

RESULTS = Path(__file__).parent / "results" / "vision.json"
CAMERAS = ("front",)
"""Image cells' default camera: ``front`` sees cube and target clear of the arm; ``top`` looks
down past the arm, which hides the cube while pushing."""
PROPRIOCEPTION = ("joint_pos", "gripper", "eef_pose")
EPISODES = 50
SPEED_WARMUP_STEPS = 5
"""Training steps of ``--speed``'s untimed and reference runs."""

IMAGE_ENCODER = "conv"
IMAGE_SETTINGS = ("--policy.image-encoder", IMAGE_ENCODER, "--batch-size", "32")
"""Image cells: the conv + spatial-softmax encoder (see ``--speed``), batches of 32 (twice the
steps of 64 for the same CPU time)."""

RECIPES: dict[tuple[str, str], tuple[int, tuple[str, ...]]] = {
    ("bc", "state"): (20_000, ("--policy.horizon", "8", "--policy.n-action-steps", "4")),
    ("diffusion", "state"): (4_000, ("--policy.n-action-steps", "4")),
    ("bc", "image"): (
        3_000,
        ("--policy.horizon", "8", "--policy.n-action-steps", "4", *IMAGE_SETTINGS),
    ),
    ("diffusion", "image"): (3_000, ("--policy.n-action-steps", "4", *IMAGE_SETTINGS)),
}
"""Gradient steps and training flags per (policy, observation): the recipes tried first, not
yet ones that reach the goals. State BC is ``benchmarks/policies.py``'s (98% on push).
State Diffusion keeps the defaults (To 2, Tp 16, DDIM 10, EMA) but executes 4 actions per
chunk instead of 8, as BC's chunks do: the one change tried against the 80% of 4,000 steps
with 8. Image cells train 2-9 steps/s here at load 11-14 (3,000 steps: about 15 min), and
their 50 evaluation episodes take 8-10 min (a failed push episode runs 200 steps, each
rendered)."""


def load_cells(results: Path) -> list[dict]:
    return json.loads(results.read_text())["cells"] if results.exists() else []


def save_cell(cell: dict, results: Path) -> None:
    """Append ``cell`` to ``results`` (rewritten whole, atomically, under a lock: cells run in
    several processes at once), with the code that computed it (``revision``: the commit
    this process loaded) and the UTC time."""
    import fcntl

    cell = {**cell, "code": revision(), "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    results.parent.mkdir(parents=True, exist_ok=True)
    with (Path(tempfile.gettempdir()) / "robot_il_vision.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cells = [*load_cells(results), cell]
        tmp = results.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"cells": cells}, indent=1) + "\n")
        os.replace(tmp, results)


def run_cell(
    work: Path, task: str, backend: str, policy_type: str, observation: str, count: int,
    steps: int, settings: tuple[str, ...], recording: int, grid_cameras: list[str],
    goal_keys: tuple[str, ...] = (), episodes: int = EPISODES, action_steps: int | None = None,
    recorded_cameras: tuple[str, ...] = (),
) -> dict:  # fmt: skip
    """Train on the first ``count`` of ``recording`` demonstrations, evaluate ``episodes``
    (executing ``action_steps`` actions per chunk if given, see ``evaluated``). Image cells
    read the recording of ``recorded_cameras`` (default: the cameras they observe; e.g.
    ``front wrist`` for a cell observing ``wrist`` alone: the same episodes, no new
    recording; state cells read the recording without cameras, and an image row names the
    recording it read when it holds other cameras)."""
    cameras = tuple(grid_cameras) if observation == "image" else ()
    recorded = (recorded_cameras or cameras) if cameras else ()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    checkpoint = train_cell(work, task, backend, policy_type, observation, count, steps,
                            settings, recording, grid_cameras, goal_keys,
                            recorded_cameras)  # fmt: skip
    train_s = time.perf_counter() - start
    cell = evaluated(checkpoint, task, backend, policy_type, observation, cameras, count, steps,
                     settings, start, train_s, load_before, episodes, action_steps)  # fmt: skip
    cell |= {"recorded_cameras": list(recorded)} if recorded != cameras else {}
    return {**cell, "goal_keys": list(goal_keys)} if goal_keys else cell


def train_cell(
    work: Path, task: str, backend: str, policy_type: str, observation: str, count: int,
    steps: int, settings: tuple[str, ...], recording: int, grid_cameras: list[str],
    goal_keys: tuple[str, ...] = (), recorded_cameras: tuple[str, ...] = (),
) -> Path:  # fmt: skip
    """Train a cell (``run_cell``'s arguments) and return its checkpoint; a killed run of the
    cell resumes. Alone (``--train-only``) it trains where no simulator runs, e.g. on a GPU
    machine, and ``--partial`` evaluates the saved checkpoint later, elsewhere."""
    cameras = tuple(grid_cameras) if observation == "image" else ()
    recorded = (recorded_cameras or cameras) if cameras else ()
    dataset = demos(work, task, backend, recording, cameras=recorded)
    obs_keys = [f"rgb_{c}" for c in cameras] + list(PROPRIOCEPTION) if cameras else []
    obs_keys += list(goal_keys) if cameras else []
    out = run_dir(work, task, backend, policy_type, observation, cameras, count, steps, goal_keys,
                  settings)  # fmt: skip
    config = load_config(policy_type, None, [
        "--dataset", str(dataset), "--out", str(out), "--steps", str(steps),
        "--eval.episodes", "0", "--max-episodes", str(count), *settings,
        *(["--policy.obs-keys", *obs_keys] if obs_keys else []),
    ])  # fmt: skip
    return train(config).checkpoint


def run_dir(
    work: Path, task: str, backend: str, policy_type: str, observation: str,
    cameras: tuple[str, ...], count: int, steps: int, goal_keys: tuple[str, ...] = (),
    settings: tuple[str, ...] = (),
) -> Path:  # fmt: skip
    """Where a cell trains; image cells of different cameras, goal keys, target markers,
    auxiliary loss weights or image crops, and cells trained on another device than the CPU
    (``--device`` in ``settings``) or with another image encoder than the recipes' conv one,
    train apart."""
    marker = f"marker{MARKER_RADIUS}"
    seen = "_".join(["rgb", *cameras, *goal_keys, marker]) if cameras else observation
    aux = f"_aux{_aux_weight(settings)}" if _aux_weight(settings) else ""
    crop = "-".join(_setting(settings, "--policy.image-crop", 4))
    crop += "".join(f"-{key}" for key in _crop_keys(settings))
    seen += aux + (f"_crop{crop}" if crop else "")
    encoder = "".join(_setting(settings, "--policy.image-encoder", 1))
    seen += f"_{encoder}" if encoder not in ("", IMAGE_ENCODER) else ""
    device = "".join(_setting(settings, "--device", 1)).replace(":", "")
    seen += f"_{device}" if device not in ("", "cpu") else ""
    return work / "runs" / f"{task}_{backend}_{policy_type}_{seen}_{count}_{steps}"


AUX_LABELS = ("object_pose", "target_pos")
"""The auxiliary state loss's labels (``--aux-weight``): where the cube is and where it must
go, read from the demonstrations at training time only."""


def _setting(settings: tuple[str, ...] | list[str], flag: str, values: int) -> list[str]:
    """The ``values`` values that follow ``flag``'s last occurrence in ``settings`` (none
    without it): a later flag overrides an earlier one, as in the training config."""
    if flag not in settings:
        return []
    start = len(settings) - list(reversed(settings)).index(flag)
    return list(settings[start : start + values])


def _crop_keys(settings: tuple[str, ...] | list[str]) -> list[str]:
    """The cameras ``--policy.image-crop-keys`` names in ``settings`` (none: the crop, if
    any, cuts every camera)."""
    if "--policy.image-crop-keys" not in settings:
        return []
    rest = list(settings)[list(settings).index("--policy.image-crop-keys") + 1 :]
    end = next((i for i, value in enumerate(rest) if value.startswith("--")), len(rest))
    return rest[:end]


def _aux_weight(settings: tuple[str, ...] | list[str]) -> float:
    """The auxiliary state loss weight ``settings`` train with (0: off)."""
    return float(next(iter(_setting(settings, "--policy.aux-state-weight", 1)), 0.0))


def evaluated(
    checkpoint: Path, task: str, backend: str, policy_type: str, observation: str,
    cameras: tuple[str, ...], count: int, steps: int, settings: tuple[str, ...], start: float,
    train_s: float | None, load_before: float, episodes: int = EPISODES,
    action_steps: int | None = None,
) -> dict:  # fmt: skip
    """The row of ``checkpoint`` evaluated on ``episodes`` seeded episodes (50 for a reported
    cell; fewer screen a recipe); image rows name the target marker's radius their frames
    showed (cells without it saw the first one, 0.015 m). ``action_steps``: actions executed
    per predicted chunk at evaluation instead of the trained ``n_action_steps`` (the row
    names it; the training is the same)."""
    result = evaluate_checkpoint(checkpoint, episodes, action_steps=action_steps)
    marker = {"target_marker_m": MARKER_RADIUS} if cameras else {}
    marker |= {"action_steps": action_steps} if action_steps is not None else {}
    return {**marker,
        "task": task, "backend": backend, "policy": policy_type, "observation": observation,
        "cameras": list(cameras), "demos": count, "steps": steps,
        "success_rate": result.success_rate, "episodes": result.episodes,
        "wall_s": round(time.perf_counter() - start, 1),
        "train_s": None if train_s is None else round(train_s, 1),
        "settings": list(settings), "seed": 0, "eval_seeds": [result.seeds[0], result.seeds[-1]],
        "successes": [int(s) for s in result.successes],
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip


def bench_cells(work: Path, grid: argparse.Namespace) -> None:
    counts = sorted(grid.counts, reverse=True)  # the goal's cell first
    check_action_steps(grid)
    for task in grid.tasks:
        for backend in grid.backends:
            for observation in grid.observations:
                for policy_type in grid.policies:
                    default_steps, settings = RECIPES[policy_type, observation]
                    steps = grid.steps or default_steps
                    settings = (*settings, *grid.extra)
                    if grid.aux_weight > 0 and observation == "image":
                        settings = (*settings, "--policy.aux-state-keys", *AUX_LABELS,
                                    "--policy.aux-state-weight", str(grid.aux_weight))  # fmt: skip
                    for count in counts:
                        cameras = grid.cameras if observation == "image" else []
                        goals = grid.goal_keys if observation == "image" else []
                        marker = MARKER_RADIUS if observation == "image" else None
                        key = (task, backend, policy_type, observation, cameras, count, steps,
                               list(settings), goals, marker, grid.episodes,
                               grid.action_steps)  # fmt: skip
                        if any(_key(cell) == key for cell in load_cells(grid.results)):
                            print(f"kept: {key}")
                            continue
                        if grid.partial:
                            partial_cell(work, key, grid.cameras, steps, grid.results)
                            continue
                        if grid.train_only:
                            train_cell(work, task, backend, policy_type, observation, count,
                                       steps, settings, grid.recording or max(counts),
                                       grid.cameras, tuple(goals),
                                       tuple(grid.recorded_cameras))  # fmt: skip
                            continue
                        cell = run_cell(work, task, backend, policy_type, observation, count,
                                        steps, settings, grid.recording or max(counts),
                                        grid.cameras, tuple(goals),
                                        grid.episodes, grid.action_steps,
                                        tuple(grid.recorded_cameras))  # fmt: skip
                        save_cell(cell, grid.results)
                        print(
                            f"{task} {backend} {policy_type} {observation} {count} demos "
                            f"{steps} steps: {EvalResult(successes=cell['successes']).line()} "
                            f"({cell['wall_s'] / 60:.1f} min, load {cell['load_avg']})",
                            flush=True,
                        )


def check_action_steps(grid: argparse.Namespace) -> None:
    """Refuse ``--action-steps`` for every (policy, observation) recipe of the grid before its
    first cell trains (a ``ConfigError`` naming the recipe's chunk length)."""
    if grid.action_steps is None:
        return
    for observation in grid.observations:
        for policy_type in grid.policies:
            settings = [*RECIPES[policy_type, observation][1], *grid.extra]
            try:
                executing(load_config(policy_type, None, settings).policy, grid.action_steps)
            except ConfigError as error:
                raise ConfigError(
                    f"--action-steps for the {policy_type} {observation} recipe: {error}"
                ) from None


def partial_cell(
    work: Path, key: tuple, cameras: list[str], schedule_steps: int, results: Path
) -> None:
    """Evaluate the latest saved checkpoint of an unfinished cell (its run still training, or
    stopped for lack of time) and record it in ``results`` with the steps it had and
    ``schedule_steps`` (the length of its learning-rate schedule), marked ``partial``."""
    task, backend, policy_type, observation, _, count, _, settings, goals = key[:9]
    episodes, action_steps = key[10:]
    used = tuple(cameras) if observation == "image" else ()
    out = run_dir(work, task, backend, policy_type, observation, used, count, schedule_steps,
                  tuple(goals), tuple(settings))  # fmt: skip
    saved = sorted((out / "checkpoints").glob("step_???????"))
    if not saved:
        print(f"no checkpoint yet: {out}")
        return
    steps = int(saved[-1].name.removeprefix("step_"))
    if any(
        _key(c) == key[:6] + (steps, *key[7:]) and c.get("schedule_steps") == schedule_steps
        for c in load_cells(results)
    ):
        print(f"kept: {key} at {steps} steps")
        return
    cell = evaluated(saved[-1], task, backend, policy_type, observation, used, count, steps,
                     tuple(settings), time.perf_counter(), None, os.getloadavg()[0],
                     episodes, action_steps)  # fmt: skip
    if steps < schedule_steps:
        cell.update(partial=True, schedule_steps=schedule_steps)
    if goals:
        cell["goal_keys"] = list(goals)
    save_cell(cell, results)
    print(f"{key} at {steps} of {schedule_steps} steps: "
          f"{EvalResult(successes=cell['successes']).line()}", flush=True)  # fmt: skip


def _seen(cell: dict) -> str:
    """`` (front, 1.5 cm target)`` for a cell that saw camera ``front`` and the first target
    marker (`` (front + target_pos, ...)`` with a goal key; ``, aux loss 1`` with the
    auxiliary state loss; ``, crop 40x56`` with a fixed crop; ``, resnet encoder`` with
    another encoder than the recipes' conv one; ``, executes 1`` evaluated
    executing 1 action per chunk, a state cell too: `` (executes 1)``; ``, trained on cuda``
    trained on another device than the CPU), nothing for a state cell evaluated as trained
    on the CPU."""
    seen = " + ".join(["+".join(cell["cameras"]), *cell.get("goal_keys", [])])
    marker = 100 * cell.get("target_marker_m", 0.015)
    weight = _aux_weight(cell["settings"])
    aux = f", aux loss {weight:g}" if weight else ""
    crop = _setting(cell["settings"], "--policy.image-crop", 4)
    aux += f", crop {crop[2]}x{crop[3]}" if crop else ""
    cropped = [key.removeprefix("rgb_") for key in _crop_keys(cell["settings"])]
    aux += f" of {'+'.join(cropped)}" if crop and cropped else ""
    encoder = "".join(_setting(cell["settings"], "--policy.image-encoder", 1))
    aux += f", {encoder} encoder" if encoder not in ("", IMAGE_ENCODER) else ""
    details = [f"{seen}, {marker:g} cm target{aux}"] if cell["cameras"] else []
    details += [f"executes {cell['action_steps']}"] if "action_steps" in cell else []
    device = "".join(_setting(cell["settings"], "--device", 1))
    details += [f"trained on {device}"] if device not in ("", "cpu") else []
    return f" ({', '.join(details)})" if details else ""


def _key(cell: dict) -> tuple:
    """What makes two cells the same experiment (image cells: the target marker too; cells
    recorded before the marker was named saw the first, 1.5 cm one; a screening row of fewer
    episodes is not the 50-episode cell; nor is one evaluated executing other ``action_steps``)."""
    marker = cell.get("target_marker_m", 0.015) if cell["observation"] == "image" else None
    return (cell["task"], cell["backend"], cell["policy"], cell["observation"], cell["cameras"],
            cell["demos"], cell["steps"], cell["settings"], cell.get("goal_keys", []),
            marker, cell["episodes"], cell.get("action_steps"))  # fmt: skip


PROBE_TRAIN_SHARE = 0.8
"""The probes fit on the first 80% of the demonstrations and are scored on the rest."""


def probe_features(policy, frames: np.ndarray, lowdim: dict[str, np.ndarray]) -> dict:
    """Per-frame features of an image policy: the first camera's spatial-softmax keypoints,
    its encoder output and the BC network's last hidden layer (256), plus proprioception."""
    camera = policy.encoder.cameras[policy.encoder.image_keys[0]]
    parts: dict[str, list[np.ndarray]] = {"keypoints": [], "camera features": [],
                                          "last hidden layer": []}  # fmt: skip
    with torch.inference_mode():
        for start in range(0, len(frames), 512):
            x = camera.prepare(torch.as_tensor(np.array(frames[start : start + 512])))
            keypoints = camera.network.keypoints(camera.network.convs(x))
            parts["keypoints"].append(keypoints.numpy())
            parts["camera features"].append(camera.network.head(keypoints).numpy())
            window = {k: v[start : start + 512, None] for k, v in lowdim.items()}
            window[policy.encoder.image_keys[0]] = frames[start : start + 512, None]
            batch = {k: torch.as_tensor(v) for k, v in policy.normalize_window(window).items()}
            parts["last hidden layer"].append(policy.mlp[:-1](policy.encoder(batch)).numpy())
    features = {k: np.concatenate(v) for k, v in parts.items()}
    features["proprioception"] = np.concatenate([lowdim[k] for k in PROPRIOCEPTION], axis=1)
    return features


def fit_probe(kind: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Predictions for ``x_test`` of a ``linear`` (ridge, 1e-3) or ``mlp`` (2x256, 3,000 Adam
    steps of 256) regression from standardized ``x`` to ``y``."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, x_test = (x - mean) / std, (x_test - mean) / std
    if kind == "linear":
        a = np.c_[x, np.ones(len(x))]
        weights = np.linalg.solve(a.T @ a + 1e-3 * len(x) * np.eye(a.shape[1]), a.T @ y)
        return np.c_[x_test, np.ones(len(x_test))] @ weights
    y_mean, y_std = y.mean(0), y.std(0)
    inputs = torch.tensor(x, dtype=torch.float32)
    targets = torch.tensor((y - y_mean) / y_std, dtype=torch.float32)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, y.shape[1]))  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(3000):
        rows = torch.randint(0, len(inputs), (256,))
        loss = ((net(inputs[rows]) - targets[rows]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return net(torch.tensor(x_test, dtype=torch.float32)).numpy() * y_std + y_mean


def bench_probe(checkpoint: Path, probes: Path) -> None:
    """How well an image policy's features locate the cube and the push target: probes from
    each feature to both xy positions (cm), fit on the first 80% of the demonstrations' frames and
    scored on the rest, on all their frames and on their first (before the arm has moved, so
    proprioception says nothing of either). Rows go to ``probes`` with the load average, the
    code (commit) and the UTC time."""
    import yaml
    from robot_il.policies import load_policy

    from robot_il.dataset import Dataset

    policy = load_policy(checkpoint)
    trained_on = yaml.safe_load((checkpoint.parents[1] / "train_config.yaml").read_text())
    dataset = Dataset.open(trained_on["dataset"], cache="ram")
    n = dataset.num_steps
    episode = np.searchsorted(dataset.episode_ends, np.arange(n), side="right")
    first = np.r_[0, dataset.episode_ends[:-1]]
    is_first = np.arange(n) == first[episode]
    lowdim = {k: dataset.read(k, 0, n) for k in policy.obs_keys if k in PROPRIOCEPTION}
    frames = dataset.read(policy.encoder.image_keys[0], 0, n)
    features = probe_features(policy, frames, lowdim)
    y = (
        100
        * np.c_[dataset.read("object_pose", 0, n)[:, :2], dataset.read("target_pos", 0, n)[:, :2]]
    )
    split = int(PROBE_TRAIN_SHARE * dataset.num_episodes)
    train, test = episode < split, episode >= split

    def errors(prediction: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        truth = y[test][rows]
        return {f"{name}_cm": round(float(np.linalg.norm(prediction[rows][:, i : i + 2]
                - truth[:, i : i + 2], axis=1).mean()), 2)
                for i, name in ((0, "cube"), (2, "target"))}  # fmt: skip

    all_rows, first_rows = np.ones(test.sum(), bool), is_first[test]
    baseline = np.tile(y[train].mean(0), (test.sum(), 1))
    rows = [{"feature": "none (training mean)", "probe": "-", "dim": 0,
             "all_frames": errors(baseline, all_rows),
             "first_frames": errors(baseline, first_rows)}]  # fmt: skip
    for name, x in features.items():
        for kind in ("linear", "mlp"):
            prediction = fit_probe(kind, x[train], y[train], x[test])
            rows.append({"feature": name, "probe": kind, "dim": int(x.shape[1]),
                         "all_frames": errors(prediction, all_rows),
                         "first_frames": errors(prediction, first_rows)})  # fmt: skip
            print(rows[-1], flush=True)
    record = {"checkpoint": str(checkpoint), "dataset": dataset.where,
              "train_episodes": split, "test_episodes": int(dataset.num_episodes - split),
              "rows": rows, "load_avg": round(os.getloadavg()[0], 2), "code": revision(),
              "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    kept = json.loads(probes.read_text())["probes"] if probes.exists() else []
    probes.parent.mkdir(parents=True, exist_ok=True)
    probes.write_text(json.dumps({"probes": [*kept, record]}, indent=1) + "\n")
    print(f"probe rows: {probes}")


def bench_speed(work: Path, steps: int, devices: list[str], threads: int) -> None:
    """Steps/s of image BC with each encoder on each of ``devices``, on the same camera dataset
    in one process, as ratios to the ResNet on the first device. ``threads``: torch's CPU
    threads in every run. A rate is ``steps`` over the time a run of ``SPEED_WARMUP_STEPS`` +
    ``steps`` steps takes beyond one of ``SPEED_WARMUP_STEPS``: both open the dataset and save
    a checkpoint, so what is left is training steps alone; an untimed run before them keeps
    one-off costs (a CUDA context, cuDNN choosing its kernels) out."""
    cameras = ("front", "top")
    dataset = demos(work, "push", "mujoco", 10, cameras=cameras)
    obs_keys = [f"rgb_{c}" for c in cameras] + list(PROPRIOCEPTION)
    rates = {}
    for device in devices:
        for encoder in ("resnet", "conv"):
            flags = ("--batch-size", "64", "--policy.image-encoder", encoder,
                     "--policy.obs-keys", *obs_keys, "--no-progress", "--device", device,
                     "--threads", str(threads))  # fmt: skip
            out = work / f"speed_{encoder}_{device.replace(':', '')}"
            train_run(dataset, out, "bc", SPEED_WARMUP_STEPS, *flags)
            seconds = []
            for run_steps in (SPEED_WARMUP_STEPS, SPEED_WARMUP_STEPS + steps):
                start = time.perf_counter()
                train_run(dataset, out, "bc", run_steps, *flags)
                seconds.append(time.perf_counter() - start)
            rates[(encoder, device)] = steps / (seconds[1] - seconds[0])
    baseline = rates[("resnet", devices[0])]
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"\n== image BC training speed (2 cameras 96x96, batch 64, {steps} steps, torch "
          f"threads {threads}, load avg {os.getloadavg()[0]:.1f}{gpu}) ==")  # fmt: skip
    for (encoder, device), rate in rates.items():
        print(f"{encoder:<8}{device:<8}{rate:>8.2f} steps/s{rate / baseline:>8.1f} x resnet "
              f"on {devices[0]}")  # fmt: skip


def plotted_cells(cells: list[dict]) -> list[dict]:
    """The cells :func:`plot` draws: the 50-episode ones (no screening rows), each recipe's
    latest run only (rows are appended as they finish: a rerun replaces the run before it,
    where both drew a point at the same demonstrations)."""
    latest = {}
    for cell in cells:
        if cell["episodes"] == EPISODES:
            latest[repr(_key(cell))] = cell
    return list(latest.values())


def plot(results: Path) -> None:
    """Success against demonstrations of the cells of ``results``, one panel per task, a line
    per (policy, observation, backend, steps), with 95% Wilson intervals, into the PNG beside
    it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = plotted_cells(load_cells(results))
    if not cells:
        print(f"nothing to plot: {results} holds no cell yet")
        return
    tasks = sorted({c["task"] for c in cells})
    figure, axes = plt.subplots(len(tasks), 1, figsize=(11, 4.2 * len(tasks)), squeeze=False)
    for axis, task in zip(axes[:, 0], tasks, strict=True):
        lines = sorted({(c["policy"], c["observation"], _seen(c), c["backend"], c["steps"])
                        for c in cells if c["task"] == task})  # fmt: skip
        axis.set_prop_cycle(color=plt.cm.tab20.colors)  # up to 20 lines, each its own colour
        for policy_type, observation, seen, backend, steps in lines:
            row = sorted((c for c in cells if (c["task"], c["policy"], c["observation"], _seen(c),
                          c["backend"], c["steps"]) == (task, policy_type, observation, seen,
                          backend, steps)), key=lambda c: c["demos"])  # fmt: skip
            evaluated = [EvalResult(successes=c["successes"]) for c in row]
            rates = np.array([r.success_rate for r in evaluated])
            bounds = np.array([r.interval for r in evaluated]).T
            axis.errorbar([c["demos"] for c in row], rates, yerr=np.abs(bounds - rates),
                          marker="o" if observation == "image" else "s", capsize=3,
                          linestyle="-" if observation == "image" else "--",
                          label=f"{policy_type} {observation}{seen}, {backend}, "
                          f"{steps} steps"
                          + (f" of {row[0]['schedule_steps']}" if row[0].get("partial") else ""),
                          )  # fmt: skip
        axis.axhline(0.8, color="grey", linestyle=":", linewidth=1)
        axis.set(title=task, xlabel="demonstrations", ylabel="success rate", ylim=(0, 1.02))
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    path = results.with_suffix(".png")
    figure.savefig(path, dpi=100)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", action="store_true", help="encoder training speed")
    parser.add_argument("--cells", action="store_true", help="train and evaluate grid cells")
    parser.add_argument("--plot", action="store_true", help="plot --results")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="the cells' JSON (probe rows and plot go beside it)")  # fmt: skip
    parser.add_argument(
        "--probe",
        type=Path,
        metavar="CHECKPOINT",
        help="probe an image BC checkpoint's features for the cube and target positions",
    )
    parser.add_argument("--work", default="/tmp/robot_il_bench", help="datasets and runs")
    parser.add_argument("--speed-steps", type=int, default=20, help="steps per encoder (--speed)")
    parser.add_argument(
        "--speed-devices",
        nargs="+",
        default=["cpu"],
        help="torch devices --speed times, the first the baseline (e.g. cpu cuda)",
    )
    parser.add_argument(
        "--speed-threads", type=int, default=1, help="torch CPU threads in --speed's runs"
    )
    grid = parser.add_argument_group("grid cells")
    grid.add_argument("--tasks", nargs="+", default=["push"])
    grid.add_argument("--backends", nargs="+", default=["mujoco"])
    grid.add_argument("--policies", nargs="+", default=["bc"], help="bc and/or diffusion")
    grid.add_argument("--observations", nargs="+", default=["image"], help="image and/or state")
    grid.add_argument("--cameras", nargs="+", default=list(CAMERAS), help="image cells' cameras")
    grid.add_argument("--counts", nargs="+", type=int, default=[200], help="demonstrations")
    grid.add_argument(
        "--recorded-cameras",
        nargs="+",
        default=[],
        help="image cells: the cameras of the recording to train on (default: --cameras); "
        "it must hold every one of --cameras",
    )
    grid.add_argument(
        "--recording",
        type=int,
        default=None,
        help="demonstrations recorded (default: the largest count); cells train on the first "
        "--counts of them",
    )
    grid.add_argument(
        "--goal-keys",
        nargs="+",
        default=[],
        help="low-dimensional goal keys image cells also observe (e.g. target_pos: where the "
        "cube must go, given as a coordinate instead of seen; a diagnosis, not the goal's cells)",
    )
    grid.add_argument(
        "--aux-weight",
        type=float,
        default=0.0,
        help="image cells: weight of the auxiliary state loss (camera features predict "
        "object_pose and target_pos at training time; never observed); 0: off",
    )
    grid.add_argument(
        "--episodes",
        type=int,
        default=EPISODES,
        help="evaluation episodes (fewer than 50: a screening row, marked as such)",
    )
    grid.add_argument("--steps", type=int, default=None, help="gradient steps (default: recipe)")
    grid.add_argument(
        "--action-steps",
        type=int,
        default=None,
        help="actions executed per predicted chunk at evaluation (default: the trained "
        "n_action_steps; fewer re-plan more often); the row names it",
    )
    grid.add_argument(
        "--train-only",
        action="store_true",
        help="train the grid's cells without evaluating them (a machine without the "
        "simulator, e.g. a GPU one; --partial evaluates them later)",
    )
    grid.add_argument(
        "--partial",
        action="store_true",
        help="evaluate the latest checkpoint of each selected unfinished cell instead of "
        "training (a cell still running, or stopped for lack of time)",
    )
    grid.add_argument(
        "--extra",
        type=shlex.split,
        default=[],
        help="extra training flags in one string, e.g. --extra='--save-every 250'",
    )
    args = parser.parse_args()
    if not (args.speed or args.cells or args.plot or args.probe):
        parser.error("choose --speed, --cells, --plot and/or --probe")
    missing = set(args.cameras) - set(args.recorded_cameras or args.cameras)
    if missing:
        parser.error(f"--recorded-cameras lacks {', '.join(sorted(missing))} of --cameras")
    code_provenance()  # the code this process loaded, for its rows
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.speed:
        bench_speed(work, args.speed_steps, args.speed_devices, args.speed_threads)
    if args.cells:
        bench_cells(work, args)
    if args.probe:
        bench_probe(args.probe, args.results.with_name("vision_probe.json"))
    if args.plot:
        plot(args.results)


if __name__ == "__main__":
    main()
