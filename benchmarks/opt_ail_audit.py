"""Why a walker_walk imitation run falls late: its reward and critic by the walker's height.

Every walker_walk episode starts with the walker low, its joints at random angles: it must
get up before it can walk, and the one expert trajectory shows one get-up. A learner that
forgets how scores about 20 for the episode instead of about 900 (``opt_ail.py``'s rows).
Three audits of finished ``opt_ail.py`` runs (their ``train_state``, checkpoints and data):

    python benchmarks/opt_ail_audit.py critic outputs/opt_ail/walker_walk/s4_d1_k1_bf16_x1_cpu \
        outputs/opt_ail/walker_walk/dac/s4_d1_k1_bf16_x1_cpu
    python benchmarks/opt_ail_audit.py reward outputs/opt_ail/walker_walk/s4_d1_k1_bf16_x1_cpu
    python benchmarks/opt_ail_audit.py starts outputs/opt_ail/walker_walk/s4_d1_k1_bf16_x1_cpu \
        --before 90000

- ``critic``: the run's replay buffer grouped by torso height (``HEIGHT_GROUPS``), first and
  second half of the run apart; per group the run's final reward ``r(s, a)`` (the one its
  critic learns from), its final critic's ``Q(s, a)`` and ``r / (1 - gamma)``, the value of
  that reward held forever.
- ``reward``: fresh reward nets trained on that buffer (the policy's side) against the
  run's expert transitions by OPT-AIL's loss (lambda_gp 1 and 10; lambda_gp 1 without the
  tanh, ``reward_output`` "linear") and by DAC's, each with
  its learner's own ``reward_step``: what each loss makes of the same three groups.
- ``starts``: the run's last saved actor and an earlier checkpoint (``--before``) from the
  in-loop evaluation's env seeds: each episode's return, and the final critic's ``Q`` of
  each actor's mean action on the states of the last actor's first ``START_STEPS`` steps.

"Final" is the run's last save, ``train_state/`` (:func:`trained_learner`): actor, critic,
reward and replay buffer of one moment, whose env step each row names (``state_step``).
When the run's budget ended mid-episode, that is the cut episode's start, and ``policy/``
holds a later actor (at the budget's end), which the audits do not use.

Rows go, with the load average, the code (commit) and the UTC time, to ``--results``
(default ``benchmarks/results/opt_ail_audit.json``, the committed rows: give a scratch file to
check a checkout; a rerun replaces a run's rows of that audit). One torch thread; seconds to
a few minutes each.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from robot_il.envs import make_env
from robot_il.policies import load_policy
from tqdm import tqdm

from robot_il.dataset import Dataset
from robot_il.train.online import ONLINE_ALGORITHMS
from robot_il.train.replay import expert_buffer, flatten_observation

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "opt_ail_audit.json"
TASK = "dmc:walker_walk"
HEIGHT_GROUPS = {"down": (-np.inf, 0.5), "rising": (0.5, 1.0), "upright": (1.0, np.inf)}
"""Torso height bands, m: the expert walks at 1.0-1.4 m and starts near 0.2 m."""
REWARD_LOSSES = {"opt_ail lambda_gp 1": ("opt_ail", 1.0, "tanh"),
                 "opt_ail lambda_gp 10": ("opt_ail", 10.0, "tanh"),
                 "opt_ail linear lambda_gp 1": ("opt_ail", 1.0, "linear"),
                 "dac lambda_gp 1": ("dac", 1.0, "tanh")}  # fmt: skip
"""``reward`` audit: name -> (learner whose ``reward_step`` trains the net, lambda_gp, its
``reward_output``)."""
BATCH = 256
"""``reward`` audit: transitions per side of a batch, as the learners draw (256 + 256)."""
START_STEPS = 60
"""``starts``: how many first steps of an episode the critic is read on (1.5 s at 40 Hz)."""


def learner_for(policy: Any, method: str) -> Any:
    """A fresh learner of ``method`` (``ONLINE_ALGORITHMS``) around ``policy``."""
    module, name = ONLINE_ALGORITHMS[method].split(":")
    return getattr(import_module(module), name)(policy, TASK)


def trained_learner(run: Path) -> tuple[Any, Any, int]:
    """A run's policy and learner as its last save (``train_state/``) holds them, and that
    save's env step. ``policy/`` gives only the policy's structure and normalizer, fixed for
    a run: the actor's weights are the save's, as are the critic's and the reward's."""
    policy = load_policy(run / "policy")
    learner = learner_for(policy, policy.policy_type)
    state = torch.load(run / "train_state" / "state.pt", weights_only=False)
    learner.load_state_dict(state["algorithm"])  # the actor's weights with the rest
    return policy, learner, int(state["step"])


def replay(run: Path) -> dict[str, torch.Tensor]:
    """A run's saved replay buffer, oldest transition first."""
    with np.load(run / "train_state" / "replay.npz") as saved:
        size, cursor = int(saved["size"]), int(saved["cursor"])
        order = (np.arange(size) + (cursor if size == int(saved["capacity"]) else 0)) % size
        return {key: torch.as_tensor(saved[key][:size][order]) for key in ("obs", "action")}


def expert_pairs(run: Path, policy: Any) -> torch.Tensor:
    """``[s, a]`` of the expert transitions the run imitated (its dataset, demos, seed)."""
    config = yaml.safe_load((run / "train_config.yaml").read_text())
    dataset = Dataset.open(config["dataset"])
    expert = expert_buffer(dataset, sorted(policy.obs_keys),
                           episodes=config["max_episodes"] or dataset.num_episodes,
                           subsample=config["demo_subsample"], seed=config["seed"])  # fmt: skip
    return torch.as_tensor(np.concatenate([expert.obs[: expert.size],
                                           expert.action[: expert.size]], 1))  # fmt: skip


def height_masks(obs: torch.Tensor) -> dict[str, torch.Tensor]:
    column = make_env(TASK).unwrapped.state_columns("height").start
    height = obs[:, column]
    return {name: (height >= low) & (height < high) for name, (low, high) in
            HEIGHT_GROUPS.items()}  # fmt: skip


def audit_critic(run: Path) -> list[dict[str, Any]]:
    policy, learner, state_step = trained_learner(run)
    data = replay(run)
    pairs = torch.cat([data["obs"], data["action"]], 1)
    with torch.no_grad():
        reward = learner.reward_of(pairs)
        q = learner.critic(data["obs"], data["action"]).reshape(-1)
    half = torch.arange(len(pairs)) >= len(pairs) // 2
    rows = []
    for group, mask in height_masks(data["obs"]).items():
        for part, in_part in (("first half", ~half), ("second half", half)):
            chosen = mask & in_part
            mean_reward = float(reward[chosen].mean())
            rows.append({"state_step": state_step, "group": group, "buffer": part,
                         "transitions": int(chosen.sum()), "reward": mean_reward,
                         "q": float(q[chosen].mean()),
                         "reward_value": mean_reward / (1 - learner.config.gamma)})  # fmt: skip
    return rows


def audit_reward(run: Path, steps: int, seed: int) -> list[dict[str, Any]]:
    policy = load_policy(run / "policy")
    data = replay(run)
    online = torch.cat([data["obs"], data["action"]], 1)
    expert = expert_pairs(run, policy)
    masks = height_masks(data["obs"])
    rows = []
    for name, (method, gp_weight, output) in REWARD_LOSSES.items():
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        policy.config.reward_output = output
        learner = learner_for(policy, method)
        learner.gp_weight = gp_weight
        for _ in tqdm(range(steps), desc=name, leave=False):
            batch = torch.cat([online[rng.integers(len(online), size=BATCH)],
                               expert[rng.integers(len(expert), size=BATCH)]])  # fmt: skip
            loss, _ = learner.reward_step(batch, BATCH)
        with torch.no_grad():
            reward, expert_reward = learner.reward_of(online), learner.reward_of(expert)
        by_group = {group: float(reward[mask].mean()) for group, mask in masks.items()}
        rows.append({"loss": name, "steps": steps, "seed": seed, "final_loss": float(loss),
                     "expert": float(expert_reward.mean()), **by_group})  # fmt: skip
    return rows


def rollout(policy: Any, env: Any, seed: int) -> tuple[float, np.ndarray]:
    """One deterministic episode: its return and its flat states."""
    obs, _ = env.reset(seed=seed)
    policy.reset()
    total, states, done = 0.0, [], False
    while not done:
        states.append(flatten_observation(obs, policy.obs_keys, None))  # sorted, as trained
        obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
        total += float(reward)
        done = terminated or truncated
    return total, np.stack(states)


def audit_starts(run: Path, before: int, episodes: int) -> list[dict[str, Any]]:
    late, learner, state_step = trained_learner(run)
    early = load_policy(run / "checkpoints" / f"step_{before:07d}")
    config = yaml.safe_load((run / "train_config.yaml").read_text())
    env = make_env(TASK)
    rows = []
    for seed in tqdm(range(config["eval"]["seed"], config["eval"]["seed"] + episodes),
                     desc="starts", leave=False):  # fmt: skip
        late_return, states = rollout(late, env, seed)
        early_return, _ = rollout(early, env, seed)
        start = torch.as_tensor(states[:START_STEPS])
        with torch.no_grad():
            late_action, early_action = late.mean_action(start), early.mean_action(start)
            q_late = learner.critic(start, late_action).reshape(-1)
            q_early = learner.critic(start, early_action).reshape(-1)
        rows.append({"state_step": state_step, "env_seed": seed, "return_last": late_return,
                     "return_before": early_return,
                     "before": before, "q_last_actions": float(q_late.mean()),
                     "q_before_actions": float(q_early.mean()),
                     "action_gap": float((late_action - early_action).abs().mean())})  # fmt: skip
    return rows


def missing_part(run: Path, audit: str, before: int) -> str | None:
    """What ``audit`` needs of ``run`` and it lacks, in one line (None: nothing), checked
    for every run before the first audit starts."""
    if not (run / "train_state" / "state.pt").exists():
        return f"{run}: no train_state/state.pt (not an opt_ail.py run directory)"
    earlier = run / "checkpoints" / f"step_{before:07d}"
    if audit == "starts" and not earlier.is_dir():
        return f"{run}: no checkpoint at env step {before} ({earlier}); pick one with --before"
    return None


def save(audit: str, run: Path, rows: list[dict[str, Any]], results: Path) -> None:
    """Replace ``run``'s rows of ``audit`` in ``results``; each names the load average, the
    code that computed it (``revision``: the commit this process loaded) and the UTC time."""
    from robot_il.provenance import revision

    name = str(run.resolve().relative_to(ROOT)) if run.resolve().is_relative_to(ROOT) else str(run)
    data = json.loads(results.read_text()) if results.exists() else {"rows": []}
    kept = [r for r in data["rows"] if (r["audit"], r["run"]) != (audit, name)]
    utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    extra = {"audit": audit, "run": name, "loadavg": [round(v, 2) for v in os.getloadavg()],
             "code": revision(), "utc": utc}  # fmt: skip
    data["rows"] = kept + [{**extra, **row} for row in rows]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1) + "\n")


def show(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audit", choices=("critic", "reward", "starts"))
    parser.add_argument("runs", nargs="+", type=Path, help="opt_ail.py run directories")
    parser.add_argument("--steps", type=int, default=20_000, help="reward: Adam steps per net")
    parser.add_argument("--seed", type=int, default=0, help="reward: init and batch seed")
    parser.add_argument("--before", type=int, default=90_000, help="starts: earlier checkpoint")
    parser.add_argument("--episodes", type=int, default=10, help="starts: episodes")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the rows' JSON")
    args = parser.parse_args()
    from robot_il.provenance import code_provenance

    code_provenance()  # the code this process loaded, for its rows
    torch.set_num_threads(1)
    for run in args.runs:
        if problem := missing_part(run, args.audit, args.before):
            parser.error(problem)
    for run in args.runs:
        if args.audit == "critic":
            rows = audit_critic(run)
        elif args.audit == "reward":
            rows = audit_reward(run, args.steps, args.seed)
        else:
            rows = audit_starts(run, args.before, args.episodes)
        print(f"{args.audit}: {run} (load average {os.getloadavg()[0]:.1f})")
        show(rows)
        save(args.audit, run, rows, args.results)


if __name__ == "__main__":
    main()
