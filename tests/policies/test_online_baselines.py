"""IQ-Learn's and DAC's losses on hand-made batches, their updates on real networks, and the
soft actor's behaviour-cloning loss through which the selector fine-tunes any online
checkpoint on a person's corrections."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from robot_il.policies.dac import DAC, DACConfig, DACPolicy
from robot_il.policies.dac.learner import discriminator_loss
from robot_il.policies.iq_learn import IQLearn, IQLearnConfig, IQLearnPolicy
from robot_il.policies.iq_learn.learner import iq_learn_loss
from robot_il.policies.opt_ail import OPTAILConfig, OPTAILPolicy
from robot_il.policies.opt_ail.policy import identity_observation_normalizer
from test_opt_ail import ACT, OBS, SPEC, batch

from robot_il.train.replay import Batch


def normalizer():
    return identity_observation_normalizer(SPEC, -np.ones(ACT), np.ones(ACT))


def dac(**settings) -> DAC:
    torch.manual_seed(0)
    config = DACConfig(obs_keys=("state",), hidden_dims=(32, 32), batch_size=16, **settings)
    return DAC(DACPolicy(config, SPEC, normalizer()), "dmc:cartpole_swingup")


def iq_learn(**settings) -> IQLearn:
    torch.manual_seed(0)
    config = IQLearnConfig(obs_keys=("state",), hidden_dims=(32, 32), batch_size=16, **settings)
    return IQLearn(IQLearnPolicy(config, SPEC, normalizer()), "dmc:cartpole_swingup")


def pairs_of(data) -> torch.Tensor:
    return torch.cat([torch.as_tensor(data.obs), torch.as_tensor(data.action)], dim=-1)


def test_iq_learn_loss_on_a_hand_made_batch() -> None:
    """Two transitions, the first an expert's, the second terminal; gamma 0.9, chi2_alpha 0.5:
    implied rewards 1 - 0.9 * 1 = 0.1 and 2 - 0 = 2; expert reward 0.1; value loss
    mean(0.5 - 0.9, 1 - 0) = 0.3; chi2 = mean(0.01, 4) / 2 = 1.0025."""
    terms = iq_learn_loss(
        q=torch.tensor([1.0, 2.0]), v=torch.tensor([0.5, 1.0]), v_next=torch.tensor([1.0, 3.0]),
        done=torch.tensor([0.0, 1.0]), expert=torch.tensor([True, False]), gamma=0.9,
        chi2_alpha=0.5,
    )  # fmt: skip
    assert float(terms["expert_reward"]) == pytest.approx(0.1)
    assert float(terms["value_loss"]) == pytest.approx(0.3)
    assert float(terms["chi2"]) == pytest.approx(1.0025)
    assert float(terms["iq_loss"]) == pytest.approx(-0.1 + 0.3 + 1.0025)


def test_dac_discriminator_loss_on_hand_made_logits() -> None:
    """Logit 0 is D = 1/2: log 2 for each half; confident right answers cost almost nothing,
    confident wrong ones about their logit."""
    zero = torch.zeros(3)
    assert float(discriminator_loss(zero, zero)) == pytest.approx(2 * math.log(2))
    assert float(discriminator_loss(torch.full((3,), 20.0), torch.full((3,), -20.0))) < 1e-8
    wrong = discriminator_loss(torch.full((3,), -20.0), torch.full((3,), 20.0))
    assert float(wrong) == pytest.approx(40.0, rel=1e-6)


def test_dac_reward_scores_expert_pairs_above_policy_pairs() -> None:
    """Expert acts +0.8, the buffer -0.8: DAC's reward (the logit) ranks fresh expert-like
    pairs above policy-like ones after training; the critic learns from that logit."""
    agent = dac(reward_lr=1e-3)
    for i in range(150):
        metrics = agent.update(batch(i, action=-0.8), batch(10_000 + i, action=0.8))
    assert set(metrics) == set(DAC.METRICS)
    with torch.no_grad():
        expert_like = agent.reward_of(pairs_of(batch(99_999, action=0.8))).mean()
        policy_like = agent.reward_of(pairs_of(batch(99_999, action=-0.8))).mean()
    assert float(expert_like) > float(policy_like) + 1.0  # |grad| ~ 1: at most ~2.3 apart


def test_dac_on_transitions_scores_where_they_end_and_trains_its_critic_on_it() -> None:
    """Expert and buffer share every state and action, not where the transition ends (s'
    shifted by +0.5 against -0.5): DAC's discriminator on ``[s, s']`` (``reward_input``)
    ranks fresh expert-like transitions above policy-like ones, and with gamma 0 the
    critic's TD target is its logit of ``[s, s']``, as the reward step trained it."""

    def moved(seed: int, shift: float) -> Batch:
        data = batch(seed, action=0.3)
        return Batch(data.obs, data.action, data.obs + shift, data.terminated)

    agent = dac(reward_lr=1e-3, reward_input="state_next_state", gamma=0.0)
    for i in range(150):
        agent.update(moved(i, -0.5), moved(i, +0.5))
    targets = {}
    for name, shift in (("expert_like", +0.5), ("policy_like", -0.5)):
        data = moved(99_999, shift)
        next_obs = torch.as_tensor(data.next_obs)
        targets[name] = agent.td_target(pairs_of(data), next_obs, torch.zeros(len(next_obs)))
        with torch.no_grad():
            logit = agent.reward.logit(torch.cat([torch.as_tensor(data.obs), next_obs], dim=-1))
        torch.testing.assert_close(targets[name], logit)
    assert float(targets["expert_like"].mean()) > float(targets["policy_like"].mean()) + 1.0


def test_dac_takes_no_optimism_step(monkeypatch) -> None:
    agent = dac()
    monkeypatch.setattr(agent, "optimism", lambda *a: pytest.fail("DAC has no optimism term"),
                        raising=False)  # fmt: skip
    agent.update(batch(1), batch(2))


def test_iq_learn_critic_implies_a_higher_reward_for_expert_pairs() -> None:
    """IQ-Learn has no reward net: after its updates the reward its critic implies,
    Q(s, a) - gamma V(s'), is higher on expert-like pairs than on policy-like ones."""
    agent = iq_learn(critic_lr=1e-3)
    for i in range(150):
        metrics = agent.update(batch(i, action=-0.8), batch(10_000 + i, action=0.8))
    assert set(metrics) == set(IQLearn.METRICS)
    expert_like, policy_like = batch(99_999, action=0.8), batch(99_999, action=-0.8)
    with torch.no_grad():
        torch.manual_seed(1)
        v_next = agent.soft_value(agent.critic, torch.as_tensor(expert_like.next_obs))

        def implied(data) -> float:
            q = agent.critic(torch.as_tensor(data.obs), torch.as_tensor(data.action))
            return float((q - 0.99 * v_next).mean())

        assert implied(expert_like) > implied(policy_like) + 0.5


def test_every_online_config_is_a_train_config() -> None:
    from robot_il.train.config import default_config

    for name, config_class in (("dac", DACConfig), ("iq_learn", IQLearnConfig),
                               ("opt_ail", OPTAILConfig)):  # fmt: skip
        assert isinstance(default_config(name).policy, config_class)


@pytest.mark.parametrize("policy_class", [OPTAILPolicy, DACPolicy, IQLearnPolicy])
def test_selection_fine_tunes_an_online_checkpoint_on_corrections(policy_class, tmp_path) -> None:
    """The selector's fine-tuning (``finetune_checkpoint``) takes an online learner's
    checkpoint as any other: the new checkpoint acts as the person corrected it to."""
    from robot_il.policies import load_policy

    from robot_il.select.corrections import CorrectionsRecorder
    from robot_il.train.finetune import FinetuneSettings, finetune_checkpoint

    torch.manual_seed(0)
    config = policy_class.config_class(obs_keys=("state",), hidden_dims=(32,))
    checkpoint = policy_class(config, SPEC, normalizer()).save(tmp_path / "deployed")
    recorder = CorrectionsRecorder.open(tmp_path / "corrections.zarr", SPEC, fsync=False)
    rng = np.random.default_rng(0)
    recorder.begin(seed=0)
    for _ in range(40):
        recorder.append({"state": rng.standard_normal(OBS).astype(np.float32)}, [0.6, -0.3])
    recorder.commit()
    settings = FinetuneSettings(steps=150, lr=3e-3, batch_size=32)
    out = finetune_checkpoint(checkpoint, tmp_path / "corrections.zarr", tmp_path / "tuned",
                              settings=settings)  # fmt: skip
    tuned = load_policy(out)
    assert tuned.policy_type == policy_class.policy_type
    obs = {"state": rng.standard_normal(OBS).astype(np.float32)}
    np.testing.assert_allclose(tuned.act(obs), [0.6, -0.3], atol=0.1)
    assert np.abs(load_policy(checkpoint).act(obs) - [0.6, -0.3]).max() > 0.1
