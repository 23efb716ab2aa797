"""SAC experts for the DeepMind Control tasks, and their demonstrations as robot_il datasets.

    python benchmarks/dmc_experts.py train --task dmc:walker_walk --seed 1 --stop-return 920
    python benchmarks/dmc_experts.py export --task dmc:walker_walk
    python benchmarks/dmc_experts.py record --task dmc:walker_walk --episodes 10

``train`` runs stable-baselines3's SAC (its defaults: 2x256 networks, learned temperature,
batch 256, lr 3e-4) with *action repeat* (each chosen action is held for ``action_repeat``
env steps and their rewards summed), the usual trick that makes DMC cheap: one gradient
step per decision, so walker_walk at repeat 2 costs half the updates per env step. It is
resumable: every ``--save-minutes`` (checked at each evaluation) and on SIGTERM or SIGINT
the model and its replay buffer go to ``outputs/dmc_experts/<task>/`` (ignored by git), and
a rerun continues from there. After every ``--eval-every`` env steps it evaluates
``--eval-episodes`` deterministic episodes (seeds 10000+i) and appends a row to ``--results``
(default ``benchmarks/results/dmc_experts.json``, the committed rows: give a scratch file to
check a checkout) with the return, env steps, wall time, load average, the code (commit) and
the UTC time; ``--stop-return R`` saves and stops at the first evaluation whose mean return
reaches R (``--env-steps`` is then only the cap).

``export`` writes the trained actor's weights to ``data/experts/<task>_sac<seed>.npz``
(committed, 300 KB; ``ExpertActor``), so that a machine without the SAC run rebuilds the
demonstrations in seconds. ``record`` rolls out that actor deterministically (the action held
for the repeat, as it was trained) through robot_il's recorder into
``data/dmc_<task>_expert/env.zarr``: one stream at the task's control rate, every env step's
observation and action, the episode's return in its meta, and in the dataset's attrs the mean
expert return (``expert_return``) and the seed SAC was trained with (``expert_seed``: results on
different experts are kept apart; the first experts, seed 0, were lost with their machine and
their rows remain). Datasets are made on each machine and kept out of git; ``train`` refuses
seed 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dmc_experts.json"
RUNS = ROOT / "outputs" / "dmc_experts"
EXPERTS = ROOT / "data" / "experts"
EVAL_SEED = 10_000
ACTION_REPEAT = {"dmc:walker_walk": 2, "dmc:walker_stand": 2, "dmc:cartpole_swingup": 4}
"""Action repeat per task (as in DrQ/CURL's DMC settings, cartpole's halved)."""


class ActionRepeat(gym.Wrapper):
    """Hold each action for ``repeat`` env steps; the reward is their sum."""

    def __init__(self, env: gym.Env, repeat: int) -> None:
        super().__init__(env)
        self.repeat = repeat

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += reward
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def make_sac_env(task: str, repeat: int) -> gym.Env:
    from robot_il.envs import make_env

    return ActionRepeat(gym.wrappers.FlattenObservation(make_env(task)), repeat)


def run_dir(task: str) -> Path:
    return RUNS / task.replace(":", "_")


def append_row(row: dict[str, Any], results: Path) -> None:
    """Add ``row`` to ``results`` with the code that computed it (``revision``: the commit
    this process loaded) and the UTC time."""
    from robot_il.provenance import revision

    row = {**row, "code": revision(), "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    results.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(results.read_text()) if results.exists() else {"runs": []}
    data["runs"].append(row)
    tmp = results.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, results)


def evaluate_expert(model: Any, task: str, repeat: int, episodes: int) -> list[float]:
    """Undiscounted returns (env-step rewards summed) of deterministic episodes."""
    env = make_sac_env(task, repeat)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def stop_on_signal_callback() -> Any:
    """An SB3 callback that ends ``learn`` at the next env step once SIGTERM or SIGINT came,
    so that a killed run saves its model and replay buffer first (``requested`` tells)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class StopOnSignal(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.requested = False
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, self.request)

        def request(self, number: int, frame: Any) -> None:
            self.requested = True

        def _on_step(self) -> bool:
            return not self.requested

    return StopOnSignal()


def reached_stop_return(
    task: str, env_steps: int, stop_return: float | None, results: Path
) -> bool:
    """Whether the saved model (at ``env_steps``) is the one whose evaluation, a row of
    ``results``, reached ``stop_return``: training it further could only replace an expert
    that is done."""
    if stop_return is None or not results.exists():
        return False
    rows = json.loads(results.read_text())["runs"]
    return any(r["task"] == task and r["env_steps"] == env_steps and r["return"] >= stop_return
               for r in rows)  # fmt: skip


def train(args: argparse.Namespace) -> None:
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    torch.set_num_threads(1)
    repeat = args.action_repeat or ACTION_REPEAT[args.task]
    directory = run_dir(args.task)
    directory.mkdir(parents=True, exist_ok=True)
    env = make_sac_env(args.task, repeat)
    decisions = args.env_steps // repeat
    model_file, buffer_file = directory / "sac.zip", directory / "replay_buffer.pkl"
    if model_file.exists() and buffer_file.exists():
        model = SAC.load(model_file, env=env, device="cpu")
        model.load_replay_buffer(buffer_file)
        if reached_stop_return(
            args.task, model.num_timesteps * repeat, args.stop_return, args.results
        ):
            print(
                f"{args.task}: the saved expert already reached --stop-return "
                f"{args.stop_return:g}; nothing to train (delete {directory} to start over)"
            )
            return
        print(f"resumed {args.task} at {model.num_timesteps * repeat} env steps")
    else:
        model = SAC(
            "MlpPolicy", env, buffer_size=decisions, learning_starts=5000 // repeat,
            seed=args.seed, device="cpu", verbose=0,
        )  # fmt: skip
    # Without a logger of its own, SB3 makes an empty tempdir/SB3-<time> folder at every learn().
    model.set_logger(Logger(folder=None, output_formats=[]))
    decisions_per_eval = args.eval_every // repeat
    started, saved = time.time(), time.time()
    stop = stop_on_signal_callback()
    from tqdm import tqdm

    bar = tqdm(total=args.env_steps, initial=model.num_timesteps * repeat, unit="env step",
               desc=f"SAC {args.task}")  # fmt: skip
    while model.num_timesteps < decisions:
        before = model.num_timesteps
        # up to the next multiple of --eval-every, so a resumed run evaluates where it would have
        chunk = decisions_per_eval - model.num_timesteps % decisions_per_eval
        model.learn(min(chunk, decisions - model.num_timesteps), callback=stop,
                    reset_num_timesteps=False, progress_bar=False)  # fmt: skip
        bar.update((model.num_timesteps - before) * repeat)
        if stop.requested:
            model.save(model_file)
            model.save_replay_buffer(buffer_file)
            print(f"{args.task}: stopped by a signal at {model.num_timesteps * repeat} env steps; "
                  "saved (rerun to resume)")  # fmt: skip
            return
        returns = evaluate_expert(model, args.task, repeat, args.eval_episodes)
        reached = args.stop_return is not None and np.mean(returns) >= args.stop_return
        done = model.num_timesteps >= decisions or reached
        if done or time.time() - saved > args.save_minutes * 60:
            model.save(model_file)
            model.save_replay_buffer(buffer_file)
            saved = time.time()
        row = {
            "task": args.task, "seed": args.seed, "action_repeat": repeat,
            "env_steps": model.num_timesteps * repeat, "return": float(np.mean(returns)),
            "returns": [round(r, 1) for r in returns],
            "session_wall_s": round(time.time() - started),
            "loadavg": [round(v, 2) for v in os.getloadavg()],
            "checkpointed": saved > time.time() - 1,
        }  # fmt: skip
        append_row(row, args.results)
        bar.set_postfix(ret=f"{row['return']:.0f}")
        if reached:
            print(f"{args.task}: return {row['return']:.1f} >= {args.stop_return:g} at "
                  f"{row['env_steps']} env steps; stopped (saved)")  # fmt: skip
            return
    model.save(model_file)
    model.save_replay_buffer(buffer_file)


class ExpertActor:
    """SAC's deterministic actor, ``tanh(mu(s))`` after ReLU hidden layers, scaled to the action
    bounds, held as float32 arrays ``w0, b0, ...`` in ``data/experts/<task>_sac<seed>.npz``
    (git keeps it: walker's 24-256-256-6 is 300 KB).

    ``record`` always rolls out this file, so a new machine rebuilds the demonstrations in
    seconds from the committed weights instead of retraining SAC for hours (walker_walk: about
    600k env steps), and every machine imitates the same expert (rows are keyed by its seed).
    """

    def __init__(self, path: Path) -> None:
        with np.load(path) as saved:
            layers = sum(name.startswith("w") for name in saved.files)
            self.weights = [(saved[f"w{i}"], saved[f"b{i}"]) for i in range(layers)]
            self.low, self.high = saved["low"], saved["high"]
            self.seed, self.env_steps = int(saved["seed"]), int(saved["env_steps"])
            self.repeat = int(saved["repeat"])

    @staticmethod
    def export(model: Any, repeat: int, path: Path) -> None:
        """Write the SB3 SAC ``model``'s actor: its hidden layers, which must be ReLU (SB3's
        SAC default; another activation would be rolled out wrongly), then the mean head."""
        import torch.nn as nn

        actor = model.policy.actor
        if any(not isinstance(m, (nn.Linear, nn.ReLU)) for m in actor.latent_pi):
            raise ValueError(f"{path.name}: the SAC actor's hidden layers must be Linear and "
                             f"ReLU to export, got {actor.latent_pi}")  # fmt: skip
        layers = [m for m in actor.latent_pi if isinstance(m, nn.Linear)] + [actor.mu]
        arrays = {}
        for i, layer in enumerate(layers):
            arrays[f"w{i}"] = layer.weight.detach().numpy().astype(np.float32)
            arrays[f"b{i}"] = layer.bias.detach().numpy().astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, **arrays, low=model.action_space.low, high=model.action_space.high,
            seed=model.seed, env_steps=model.num_timesteps * repeat, repeat=repeat,
        )  # fmt: skip

    def __call__(self, state: np.ndarray) -> np.ndarray:
        x = np.asarray(state, np.float32)
        for i, (w, b) in enumerate(self.weights):
            x = x @ w.T + b
            x = np.maximum(x, 0) if i < len(self.weights) - 1 else np.tanh(x)
        return self.low + (x + 1) * 0.5 * (self.high - self.low)


class HeldExpert:
    """The expert actor as a robot_il expert (``reset(obs)``/``act(obs)``): it decides every
    ``repeat`` env steps and holds the action in between, as in training."""

    def __init__(self, actor: ExpertActor) -> None:
        self.actor, self.repeat = actor, actor.repeat
        self.step, self.action = 0, None

    def reset(self, obs: dict[str, np.ndarray]) -> None:
        self.step, self.action = 0, None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.step % self.repeat == 0:
            self.action = self.actor(obs["state"])
        self.step += 1
        return np.asarray(self.action, dtype=np.float32)


class ReturnCounter(gym.Wrapper):
    """Keeps each finished episode's return (``record_expert`` does not keep rewards)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.returns: list[float] = []
        self.episode_return = 0.0

    def reset(self, **kwargs: Any) -> Any:
        self.episode_return = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        result = self.env.step(action)
        self.episode_return += result[1]
        if result[2] or result[3]:
            self.returns.append(self.episode_return)
        return result


def expert_file(task: str, seed: int) -> Path:
    return EXPERTS / f"{task.replace(':', '_')}_sac{seed}.npz"


def export(args: argparse.Namespace) -> Path:
    """The saved SAC model's actor into ``data/experts/`` (``ExpertActor``)."""
    from stable_baselines3 import SAC

    repeat = args.action_repeat or ACTION_REPEAT[args.task]
    model_file = run_dir(args.task) / "sac.zip"
    if not model_file.exists():
        raise SystemExit(f"{model_file}: missing; train the expert first (dmc_experts.py train)")
    model = SAC.load(model_file, device="cpu")
    path = expert_file(args.task, model.seed)
    ExpertActor.export(model, repeat, path)
    print(f"{path}: SAC seed {model.seed}, {model.num_timesteps * repeat} env steps")
    return path


def record(args: argparse.Namespace) -> None:
    import zarr
    from robot_il.envs import make_env

    from robot_il.record import Recorder
    from robot_il.record.demos import ENV_STREAM, env_stream, record_expert

    path = expert_file(args.task, args.expert_seed)
    if not path.exists():
        raise SystemExit(f"{path}: missing; run dmc_experts.py export --task {args.task} "
                         "after training, or pass --expert-seed")  # fmt: skip
    actor = ExpertActor(path)
    env = ReturnCounter(make_env(args.task))
    spec = env.unwrapped.spec_dict()
    root = ROOT / "data" / f"dmc_{args.task.removeprefix('dmc:')}_expert"
    attrs = {"task": args.task, "backend": "dm_control", "action_mode": spec["action_mode"],
             "env_spec": spec, "expert": f"stable-baselines3 SAC, action repeat {actor.repeat}, "
             f"{actor.env_steps} env steps; {path.relative_to(ROOT)}"}  # fmt: skip
    expert = HeldExpert(actor)
    streams = [env_stream(env.unwrapped.control_hz)]
    with Recorder.to_directory(root, streams, robot=spec["robot"], attrs=attrs, overwrite=True,
                               fsync=False) as recorder:  # fmt: skip
        record_expert(env, expert, recorder, episodes=args.episodes, seed=args.seed,
                      keep_failures=True)  # fmt: skip
    returns = env.returns
    dataset = root / f"{ENV_STREAM}.zarr"
    group = zarr.open_group(str(dataset), mode="r+")
    group.attrs["expert_return"] = float(np.mean(returns))
    group.attrs["expert_seed"] = actor.seed
    group.attrs["expert_returns"] = [round(r, 2) for r in returns]
    print(f"{dataset}: {args.episodes} episodes, expert return {np.mean(returns):.1f} "
          f"(min {np.min(returns):.1f})")  # fmt: skip


def main() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "export", "record"):
        p = sub.add_parser(name)
        p.add_argument("--task", required=True)
        if name != "record":  # record holds each action for the repeat saved with the actor
            p.add_argument("--action-repeat", type=int, default=0, help="0: the task's default")
    sub.choices["train"].add_argument(
        "--seed", type=int, default=1,
        help="SAC's seed, >= 1: results rows are kept apart by it, and 0 names the first "
             "experts, lost with their machine")  # fmt: skip
    sub.choices["record"].add_argument("--seed", type=int, default=0,
                                       help="the first recorded episode's seed")  # fmt: skip
    sub.choices["train"].add_argument("--env-steps", type=int, default=500_000)
    sub.choices["train"].add_argument("--eval-every", type=int, default=20_000)
    sub.choices["train"].add_argument("--eval-episodes", type=int, default=5)
    sub.choices["train"].add_argument("--save-minutes", type=float, default=10.0)
    sub.choices["train"].add_argument("--results", type=Path, default=RESULTS,
                                      help="the rows' JSON (and --stop-return's)")  # fmt: skip
    sub.choices["train"].add_argument(
        "--stop-return",
        type=float,
        default=None,
        help="stop (and save) once an evaluation's mean return reaches this",
    )
    sub.choices["record"].add_argument("--episodes", type=int, default=10)
    sub.choices["record"].add_argument(
        "--expert-seed", type=int, default=1, help="SAC's seed: data/experts/<task>_sac<seed>.npz"
    )
    args = parser.parse_args()
    if args.command == "train" and args.seed < 1:
        parser.error("--seed must be >= 1: seed 0 names the first experts, whose rows remain")
    from robot_il.provenance import code_provenance

    code_provenance()  # the code this process loaded, for its rows
    {"train": train, "export": export, "record": record}[args.command](args)


if __name__ == "__main__":
    main()
