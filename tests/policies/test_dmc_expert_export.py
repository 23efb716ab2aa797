"""``benchmarks/dmc_experts.py``'s exported expert actor: the committed weights that let a
new machine rebuild the DMC demonstrations without retraining SAC."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest


@pytest.fixture
def dmc_experts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, load_benchmark) -> ModuleType:
    """The benchmark module, keeping exported experts in ``tmp_path``."""
    module = load_benchmark("dmc_experts")
    monkeypatch.setattr(module, "EXPERTS", tmp_path)
    return module


def test_the_exported_actor_acts_as_sb3_predicts(dmc_experts: ModuleType, tmp_path: Path) -> None:
    """Pendulum's actions span [-2, 2], so the export's rescaling from tanh's [-1, 1] counts;
    the untrained actor's weights are random, so every layer's transpose and order count."""
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), seed=3, device="cpu",
                policy_kwargs={"net_arch": [64, 32, 16]})  # three hidden layers  # fmt: skip
    path = tmp_path / "pendulum_sac3.npz"
    dmc_experts.ExpertActor.export(model, repeat=2, path=path)
    actor = dmc_experts.ExpertActor(path)
    states = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32) * 30
    expected, _ = model.predict(states, deterministic=True)
    np.testing.assert_allclose(actor(states), expected, atol=1e-5)
    assert np.ptp(expected) > 0.5  # the test would see a wrong scale or layer
    assert (actor.seed, actor.repeat, actor.env_steps) == (3, 2, 0)


def test_export_refuses_an_actor_it_would_roll_out_wrongly(
    dmc_experts: ModuleType, tmp_path: Path
) -> None:
    import torch.nn as nn
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), device="cpu",
                policy_kwargs={"net_arch": [32, 32, 32], "activation_fn": nn.Tanh})  # fmt: skip
    with pytest.raises(ValueError, match="must be Linear and ReLU"):
        dmc_experts.ExpertActor.export(model, repeat=1, path=tmp_path / "tanh.npz")
    assert not (tmp_path / "tanh.npz").exists()


def test_record_without_an_exported_expert_names_the_file(dmc_experts: ModuleType) -> None:
    args = argparse.Namespace(task="dmc:walker_walk", expert_seed=7, episodes=1, seed=0)
    with pytest.raises(SystemExit, match=r"dmc_walker_walk_sac7\.npz: missing; run dmc_experts"):
        dmc_experts.record(args)
