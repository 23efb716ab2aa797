"""Learning tests on real scripted reach demonstrations (MuJoCo, zarr, torch): BC reaches the
target on >= 90% of unseen evaluation seeds, and BC and Diffusion each beat an untrained policy
of the same architecture on the same seeds (one-sided permutation test, p < 0.05)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from robot_il.policies import load_policy

from robot_il.train.config import load_config
from robot_il.train.evaluate import EvalResult, evaluate, make_eval_env
from robot_il.train.stats import permutation_test
from robot_il.train.trainer import train

EVAL_EPISODES = 30
EVAL_SEED = 10_000
"""Evaluation seeds are disjoint from the demonstrations' (0, 1, ...)."""
OBS = ["--policy.obs-keys", "eef_pose", "target_pos"]


def _train(dataset: Path, out: Path, policy_type: str, *settings: str):
    config = load_config(
        policy_type,
        None,
        ["--dataset", str(dataset), "--out", str(out), "--eval.episodes", "0",
         "--no-progress", *OBS, *settings],
    )  # fmt: skip
    return train(config)


def _untrained_result(trained_dir: Path, episodes: int) -> EvalResult:
    """Same architecture and normalizer, freshly initialised weights, same seeds."""
    trained = load_policy(trained_dir)
    torch.manual_seed(1)
    untrained = type(trained)(trained.config, trained.spec, trained.normalizer).eval()
    env = make_eval_env(trained.spec)
    try:
        return evaluate(untrained, env, episodes=episodes, seed=EVAL_SEED)
    finally:
        env.close()


@pytest.fixture(scope="module")
def bc_run(reach_demos: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bc")
    result = _train(reach_demos, out / "run", "bc", "--steps", "1500")
    policy = load_policy(result.checkpoint)
    env = make_eval_env(policy.spec)
    try:
        evaluation = evaluate(policy, env, episodes=EVAL_EPISODES, seed=EVAL_SEED)
    finally:
        env.close()
    return result.checkpoint, evaluation


def test_bc_reaches_on_90_percent_of_unseen_seeds(bc_run) -> None:
    _, evaluation = bc_run
    assert evaluation.success_rate >= 0.9, evaluation.line()


def test_bc_beats_untrained_policy(bc_run) -> None:
    checkpoint, evaluation = bc_run
    baseline = _untrained_result(checkpoint, EVAL_EPISODES)
    p = permutation_test(evaluation.successes, baseline.successes)
    assert p < 0.05, f"trained {evaluation.line()} vs untrained {baseline.line()}: p={p:.3f}"


def test_diffusion_beats_untrained_policy(reach_demos: Path, tmp_path: Path) -> None:
    small = [
        "--steps", "300", "--batch-size", "64", "--warmup-steps", "30",
        "--policy.down-dims", "32", "64", "--policy.step-embed-dim", "32",
        "--policy.horizon", "8", "--policy.n-action-steps", "4",
        "--policy.num-inference-steps", "5",
    ]  # fmt: skip
    result = _train(reach_demos, tmp_path / "run", "diffusion", *small)
    policy = load_policy(result.checkpoint)
    env = make_eval_env(policy.spec)
    try:
        torch.manual_seed(0)
        trained = evaluate(policy, env, episodes=20, seed=EVAL_SEED)
    finally:
        env.close()
    baseline = _untrained_result(result.checkpoint, 20)
    p = permutation_test(trained.successes, baseline.successes)
    assert p < 0.05, f"trained {trained.line()} vs untrained {baseline.line()}: p={p:.3f}"
