"""Model-based OPT-AIL: the dynamics ensemble against a constant model on held-out data,
rollouts from real states, rewards computed fresh at every update, and its schedule."""

from __future__ import annotations

import numpy as np
import torch
from robot_il.policies.opt_ail import OPTAILConfig, OPTAILPolicy, opt_ail_learner
from robot_il.policies.opt_ail.dynamics import DynamicsEnsemble
from robot_il.policies.opt_ail.model_based import ModelBasedOPTAIL
from robot_il.policies.opt_ail.policy import identity_observation_normalizer
from test_opt_ail import ACT, OBS, SPEC, batch

from robot_il.train.replay import ReplayBuffer

SMALL_MODEL = {"ensemble_size": 3, "elites": 2, "model_hidden_dims": (64, 64),
               "model_batch_size": 64, "model_max_steps": 60, "rollout_states": 50,
               "model_buffer_rollouts": 4}  # fmt: skip


def dynamics(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """A smooth, nonlinear, action-dependent step in 5-D."""
    change = np.stack([action[:, 0], action[:, 1], np.sin(2 * obs[:, 0]), obs[:, 1] * action[:, 0],
                       -0.5 * obs[:, 4]], axis=1)  # fmt: skip
    return (obs + 0.2 * change).astype(np.float32)


def transitions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs = rng.uniform(-1, 1, (n, OBS)).astype(np.float32)
    action = rng.uniform(-1, 1, (n, ACT)).astype(np.float32)
    noise = 0.005 * rng.standard_normal((n, OBS)).astype(np.float32)
    return obs, action, dynamics(obs, action) + noise


def model_based(**settings) -> ModelBasedOPTAIL:
    torch.manual_seed(0)
    config = OPTAILConfig(obs_keys=("state",), hidden_dims=(32, 32), batch_size=16,
                          model_based=True, **{**SMALL_MODEL, **settings})  # fmt: skip
    normalizer = identity_observation_normalizer(SPEC, -np.ones(ACT), np.ones(ACT))
    learner = opt_ail_learner(OPTAILPolicy(config, SPEC, normalizer), "dmc:cartpole_swingup")
    assert isinstance(learner, ModelBasedOPTAIL)
    return learner


def real_buffer(n: int = 300) -> ReplayBuffer:
    buffer = ReplayBuffer(n, OBS, ACT)
    buffer.extend(*transitions(np.random.default_rng(1), n), np.zeros(n, np.float32))
    return buffer


def test_ensemble_fits_held_out_transitions_better_than_a_constant_model() -> None:
    """On fresh transitions of the same dynamics, the elites' predictions are less than a
    third as far (L1) from the true next states as ``s + mean(Δs)`` is."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = DynamicsEnsemble(OBS, ACT, members=3, elites=2, hidden=(64, 64))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    obs, action, next_obs = transitions(rng, 2000)
    report = model.fit(optimizer, (obs, action, next_obs), rng, holdout=0.1, batch_size=128,
                       max_steps=400)  # fmt: skip
    assert report.elites == list(np.argsort(report.holdout_l1)[:2])
    test_obs, test_action, test_next = transitions(np.random.default_rng(99), 500)
    constant = np.abs(test_obs + (next_obs - obs).mean(0) - test_next).mean()
    for elite in report.elites:
        member = torch.full((500,), elite)
        predicted = model.predict(torch.as_tensor(test_obs), torch.as_tensor(test_action), member)
        error = np.abs(predicted.numpy() - test_next).mean()
        assert error < constant / 3, (elite, error, constant)


def test_rollouts_start_from_real_states_and_store_no_reward() -> None:
    """Every model transition's state is a state of the real buffer, its action the policy's,
    its next state an elite's prediction, never terminal; the buffer has no reward column."""
    agent = model_based()
    real = real_buffer()
    rng = np.random.default_rng(2)
    agent.fit_model(real, rng)
    agent.rollout(real, rng)
    stored = agent.model_buffer
    assert len(stored) == 50 and not hasattr(stored, "reward")
    real_states = {row.tobytes() for row in real.obs}
    assert all(row.tobytes() in real_states for row in stored.obs[:50])
    assert stored.terminated[:50].sum() == 0
    obs, action = torch.as_tensor(stored.obs[:50]), torch.as_tensor(stored.action[:50])
    by_elite = [agent.model.predict(obs, action, torch.full((50,), int(e))).numpy()
                for e in agent.model.elites]  # fmt: skip
    matches = [np.isclose(stored.next_obs[:50], p, atol=1e-6).all(axis=1) for p in by_elite]
    assert np.logical_or.reduce(matches).all(), "a next state no elite predicts"


def test_the_critic_scores_model_pairs_with_the_reward_of_this_update() -> None:
    """The TD target's rewards for model transitions come from the reward net just after
    this update's reward step (never a stored or older reward)."""
    agent = model_based()
    first = next(agent.reward.parameters())
    seen: list[tuple[int, torch.Tensor]] = []
    reward_of = agent.reward_of

    def recording(pairs: torch.Tensor) -> torch.Tensor:
        step = agent.reward_optimizer.state.get(first, {}).get("step", 0)
        seen.append((int(step), pairs.clone()))
        return reward_of(pairs)

    agent.reward_of = recording
    model = batch(30, n=2)
    for update in (1, 2):
        seen.clear()
        agent.update(batch(31 + update), batch(40 + update), model)
        steps, pairs = seen[-1]  # the TD target's call (the gradient penalty's come first)
        assert steps == update
        model_pairs = np.concatenate([model.obs, model.action], axis=1)
        np.testing.assert_array_equal(pairs[14:16].numpy(), model_pairs)


def test_learn_refits_rolls_out_and_updates_on_schedule(monkeypatch) -> None:
    agent = model_based(model_every=2, rollout_every=1, updates_per_step=3, real_ratio=0.75)
    counts = {"fit": 0, "update": 0}
    fit, update = agent.fit_model, agent.update

    def counted_fit(*args):
        counts["fit"] += 1
        return fit(*args)

    def counted_update(online, expert, model):
        counts["update"] += 1
        assert len(online.obs) == 16 and len(model.obs) == 4  # 75% of 16 real
        return update(online, expert, model)

    monkeypatch.setattr(agent, "fit_model", counted_fit)
    monkeypatch.setattr(agent, "update", counted_update)
    real, rng = real_buffer(), np.random.default_rng(3)
    for _ in range(3):
        metrics = agent.learn(real, real, rng)
    assert counts == {"fit": 2, "update": 9} and len(agent.model_buffer) == 150
    assert set(metrics) == set(ModelBasedOPTAIL.METRICS)
    assert metrics["model_holdout_l1"] < 1.0


def test_no_model_before_enough_real_data(monkeypatch) -> None:
    """With fewer than ``MIN_MODEL_DATA`` real transitions nothing is fitted or imagined and
    the update sees real data only."""
    agent = model_based()
    seen = []
    update = agent.update
    monkeypatch.setattr(agent, "update", lambda o, e, m: seen.append(m) or update(o, e, m))
    small = real_buffer(50)
    agent.learn(small, small, np.random.default_rng(4))
    assert agent.model_fits == 0 and len(agent.model_buffer) == 0 and seen == [None] * 3
