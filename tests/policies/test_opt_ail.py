"""OPT-AIL's loss terms, each checked on real networks against what the paper defines."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from robot_il.policies.opt_ail import OPTAIL, OPTAILConfig, OPTAILPolicy
from robot_il.policies.opt_ail.policy import identity_observation_normalizer
from robot_il.policies.opt_ail.relu_mlp import bf16_products_supported

from robot_il.train.replay import Batch, ReplayBuffer

OBS, ACT = 5, 2
SPEC = {"robot": "dmc_cartpole", "control_hz": 100.0, "observation": {"state": [OBS]},
        "action_dim": ACT}  # fmt: skip

NEEDS_BF16 = pytest.mark.skipif(not bf16_products_supported(),
                                reason="this CPU computes no bfloat16 products")  # fmt: skip


def learner(**settings) -> OPTAIL:
    torch.manual_seed(0)
    config = OPTAILConfig(
        **{"obs_keys": ("state",), "hidden_dims": (32, 32), "batch_size": 16, **settings}
    )
    normalizer = identity_observation_normalizer(SPEC, -np.ones(ACT), np.ones(ACT))
    return OPTAIL(OPTAILPolicy(config, SPEC, normalizer), "dmc:cartpole_swingup")


def batch(seed: int, n: int = 16, action: float | None = None, terminated: float = 0.0) -> Batch:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (n, ACT)) if action is None else np.full((n, ACT), action)
    return Batch(
        rng.standard_normal((n, OBS)).astype(np.float32),
        actions.astype(np.float32),
        rng.standard_normal((n, OBS)).astype(np.float32),
        np.full(n, terminated, np.float32),
    )


def filled_buffers() -> tuple[ReplayBuffer, ReplayBuffer]:
    """A replay and an expert buffer of 64 random transitions each (seeds 1 and 2)."""
    buffer, expert = ReplayBuffer(64, OBS, ACT), ReplayBuffer(64, OBS, ACT)
    for target, seed in ((buffer, 1), (expert, 2)):
        data = batch(seed, n=64)
        target.extend(data.obs, data.action, data.next_obs, data.terminated)
    return buffer, expert


def reward_of(agent: OPTAIL, data: Batch) -> float:
    with torch.no_grad():
        pairs = torch.cat([torch.as_tensor(data.obs), torch.as_tensor(data.action)], dim=-1)
        return float(agent.reward(pairs).mean())


def reward_of_transitions(agent: OPTAIL, data: Batch) -> float:
    """The mean reward of ``data``'s transitions as the learner's TD targets score them."""
    with torch.no_grad():
        pairs = torch.cat([torch.as_tensor(data.obs), torch.as_tensor(data.action)], dim=-1)
        return float(agent.reward(agent.reward_input(pairs, torch.as_tensor(data.next_obs))).mean())


def test_reward_loss_scores_expert_pairs_above_policy_pairs() -> None:
    """Expert acts +0.8, the policy's buffer holds -0.8: after updates the reward ranks
    fresh expert-like pairs above fresh policy-like pairs (the reverse sign would not)."""
    agent = learner(reward_lr=1e-3)
    for i in range(150):
        agent.update(batch(i, action=-0.8), batch(10_000 + i, action=0.8))
    expert_like, policy_like = batch(99_999, action=0.8), batch(99_999, action=-0.8)
    assert reward_of(agent, expert_like) > reward_of(agent, policy_like) + 0.5


def test_a_linear_reward_output_is_the_unbounded_logit_and_dac_refuses_it() -> None:
    """``reward_output`` "linear": r is the reward net's logit itself, beyond (-1, 1) where
    the logit is; the paper's r is its tanh. DAC, whose reward is the logit already, refuses
    the setting in one line."""
    from robot_il.policies.dac import DACConfig

    bounded, linear = learner(), learner(reward_output="linear")
    for agent in (bounded, linear):
        with torch.no_grad():
            agent.reward.mlp[-1].weight.mul_(50.0)  # a logit well outside (-1, 1)
    data = batch(3)
    pairs = torch.cat([torch.as_tensor(data.obs), torch.as_tensor(data.action)], dim=-1)
    with torch.no_grad():
        logit = linear.reward.logit(pairs)
        assert float(logit.abs().max()) > 2.0
        assert torch.equal(linear.reward_of(pairs), logit)
        assert torch.equal(bounded.reward_of(pairs), torch.tanh(bounded.reward.logit(pairs)))
    with pytest.raises(ValueError, match="reward_output 'linear': DAC's reward is its"):
        DACConfig(obs_keys=("state",), reward_output="linear").validate()
    with pytest.raises(ValueError, match="reward_output must be 'tanh' or 'linear'"):
        OPTAILConfig(obs_keys=("state",), reward_output="relu").validate()


def test_the_drift_penalty_pulls_a_shifted_linear_reward_back_and_nothing_else_does() -> None:
    """A linear reward shifted by +20 (its last bias): ``reward_loss`` and the gradient
    penalty do not see a constant, so 50 updates leave the shift where it is, bit for bit;
    with ``reward_drift_weight`` the expert's pairs are pulled back toward 0."""
    expert_rewards = []
    for drift_weight in (0.0, 1e-3):
        agent = learner(reward_output="linear", reward_lr=1e-3, reward_drift_weight=drift_weight)
        bias = agent.reward.mlp[-1].bias
        torch.nn.init.constant_(bias, 20.0)
        for i in range(50):
            agent.update(batch(i, action=-0.8), batch(10_000 + i, action=0.8))
        assert (float(bias.detach()) == 20.0) == (drift_weight == 0.0)
        expert_rewards.append(reward_of(agent, batch(99_999, action=0.8)))
    assert expert_rewards[1] < expert_rewards[0] - 0.05
    with pytest.raises(ValueError, match="reward_drift_weight must be >= 0, got -1"):
        OPTAILConfig(obs_keys=("state",), reward_drift_weight=-1.0).validate()


def test_gradient_penalty_is_the_squared_gap_of_the_gradient_norm_to_one() -> None:
    agent = learner()
    expert, policy = batch(1), batch(2)
    e = torch.cat([torch.as_tensor(expert.obs), torch.as_tensor(expert.action)], dim=-1)
    p = torch.cat([torch.as_tensor(policy.obs), torch.as_tensor(policy.action)], dim=-1)
    torch.manual_seed(5)
    penalty = float(agent.gradient_penalty(e, p).detach())
    torch.manual_seed(5)  # the same u, computed independently, one sample at a time
    u = torch.rand(len(e), 1)
    norms = []
    for x in u * e + (1 - u) * p:
        jacobian = torch.autograd.functional.jacobian(lambda y: agent.reward(y[None])[0], x)
        norms.append(float(jacobian.norm()))
    assert penalty == pytest.approx(float(np.mean((np.array(norms) - 1) ** 2)), rel=1e-5)
    for parameter in agent.reward.parameters():  # a constant reward: gradient 0, penalty 1
        torch.nn.init.zeros_(parameter)
    assert float(agent.gradient_penalty(e, p).detach()) == pytest.approx(1.0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_td_target_is_clipped(sign: float) -> None:
    """A target critic of +-1e4 would give targets near +-9900; they are clipped to +-100."""
    agent = learner(td_clip=100.0)
    torch.nn.init.constant_(agent.critic_target.mlp[-1].bias, sign * 1e4)
    online, expert = batch(3), batch(4)
    with torch.no_grad():
        obs = torch.as_tensor(np.concatenate([online.obs, expert.obs]))
        q = agent.critic(obs, torch.as_tensor(np.concatenate([online.action, expert.action])))
    td_loss = agent.update(online, expert)["td_loss"]
    assert td_loss == pytest.approx(float(((q - sign * 100.0) ** 2).mean()), rel=1e-4)


@pytest.mark.parametrize(
    ("settings", "bound"),
    [({}, 100.0), ({"td_clip": 30.0}, 30.0), ({"reward_output": "linear"}, None),
     ({"reward_output": "linear", "td_clip": 100.0}, 100.0)],
)  # fmt: skip
def test_td_targets_are_clipped_to_the_rewards_value_bound_unless_told(
    settings: dict, bound: float | None
) -> None:
    """Unset, the clip is the reward's value bound: the paper's 100 for the tanh reward,
    none for the linear one (whose values have no bound); a ``td_clip`` set holds for
    either. A target critic of +-1e4 gives targets near +-9900 before the clip."""
    agent = learner(**settings)
    data = batch(6)
    pairs = torch.cat([torch.as_tensor(data.obs), torch.as_tensor(data.action)], dim=-1)
    for sign in (1.0, -1.0):
        torch.nn.init.constant_(agent.critic_target.mlp[-1].bias, sign * 1e4)
        with torch.no_grad():
            target = agent.td_target(pairs, torch.as_tensor(data.next_obs), torch.zeros(16))
        if bound is None:
            assert (sign * target > 9000).all()
        else:
            torch.testing.assert_close(target, torch.full_like(target, sign * bound))


def test_td_clip_must_be_positive() -> None:
    """A clip of 0 or less would pin every target: refused before any network is built."""
    with pytest.raises(ValueError, match="td_clip must be > 0"):
        OPTAILConfig(obs_keys=("state",), td_clip=0.0).validate()


def test_terminated_transitions_do_not_bootstrap_and_others_do() -> None:
    """With a target critic of 50 everywhere: a terminated transition's target is its reward
    r in (-1, 1); a non-terminated one's is r + 0.99 (50 - alpha log pi(a'|s'))."""
    agent = learner(td_clip=1e6)
    for parameter in agent.critic_target.parameters():
        torch.nn.init.zeros_(parameter)
    torch.nn.init.constant_(agent.critic_target.mlp[-1].bias, 50.0)
    data = batch(5)
    pairs = torch.cat([torch.as_tensor(data.obs), torch.as_tensor(data.action)], dim=-1)
    next_obs = torch.as_tensor(data.next_obs)
    with torch.no_grad():
        reward = agent.reward(pairs)
    terminal = agent.td_target(pairs, next_obs, torch.ones(len(pairs)))
    torch.testing.assert_close(terminal, reward)
    torch.manual_seed(3)
    bootstrapped = agent.td_target(pairs, next_obs, torch.zeros(len(pairs)))
    torch.manual_seed(3)
    _, log_pi = agent.policy.sample(next_obs)
    torch.testing.assert_close(bootstrapped, reward + 0.99 * (50.0 - 0.01 * log_pi))


def test_eta_zero_leaves_the_critic_untouched_by_the_optimism_term(monkeypatch) -> None:
    """At eta = 0 (folded) the term is never computed; the reference's separate Adam step at
    eta = 0 still moves the critic (momentum), which the flag reproduces."""
    online, expert = batch(7), batch(8)
    folded = learner(eta=0.0)
    monkeypatch.setattr(folded, "optimism", lambda *a: pytest.fail("optimism computed at eta 0"))
    folded.update(online, expert)
    separate = learner(eta=0.0, optimism_update="separate_step")
    separate.update(online, expert)
    pairs = zip(folded.critic.parameters(), separate.critic.parameters(), strict=True)
    moved = [not torch.equal(a, b) for a, b in pairs]
    assert any(moved)


def test_optimism_raises_q_of_the_policy_action_against_the_soft_maximum() -> None:
    """Minimizing V_lse(s) - Q(s, a_tilde) with a large eta drives the term down."""
    agent = learner(eta=1.0, critic_lr=1e-3)
    online, expert = batch(9), batch(10)
    obs = torch.as_tensor(np.concatenate([online.obs, expert.obs]))
    action = torch.as_tensor(np.concatenate([online.action, expert.action]))
    torch.manual_seed(1)
    before = float(agent.optimism(obs, action, len(online.obs)).detach())
    for _ in range(60):
        agent.update(online, expert)
    torch.manual_seed(1)
    after = float(agent.optimism(obs, action, len(online.obs)).detach())
    assert after < before - 0.01


def test_optimism_on_a_sub_batch_uses_that_many_states() -> None:
    agent = learner(optimism_states=8)
    online, expert = batch(11), batch(12)
    seen = []
    critic = agent.critic.forward
    agent.critic.forward = lambda obs, action: seen.append(len(obs)) or critic(obs, action)
    obs = torch.as_tensor(np.concatenate([online.obs, expert.obs]))
    action = torch.as_tensor(np.concatenate([online.action, expert.action]))
    agent.optimism(obs, action, len(online.obs))
    # one pass: the batch's 32 pairs, each term state's 10 uniform and 10 policy actions, and
    # the 4 online term states' a_tilde (an expert state's a_tilde is its batch pair)
    assert seen == [32 + 8 * 10 + 8 * 10 + 4]


def test_one_critic_pass_gives_the_terms_computed_pass_by_pass() -> None:
    """``q_and_optimism`` (one critic pass, one actor pass per term state) equals Q(s, a) and
    the optimism term computed from their definitions with separate passes, on the same
    random actions."""
    agent = learner(optimism_states=8)
    online, expert = batch(13), batch(14)
    obs = torch.as_tensor(np.concatenate([online.obs, expert.obs]))
    action = torch.as_tensor(np.concatenate([online.action, expert.action]))
    torch.manual_seed(5)
    (q,), optimism = agent.q_and_optimism(obs, action, len(online.obs))

    torch.manual_seed(5)
    states = torch.cat([obs[:4], obs[16:20]])  # 4 online and 4 expert states
    repeated = states.repeat_interleave(10, dim=0)
    uniform = torch.rand(80, ACT) * 2 - 1
    with torch.no_grad():
        policy_actions, log_q = agent.policy.sample(repeated)
        a_tilde = torch.cat([agent.policy.mean_action(obs[:4]), action[16:20]])
    soft_uniform = (agent.critic(repeated, uniform) - 0.01 * ACT * np.log(0.5)).view(8, 10)
    soft_policy = (agent.critic(repeated, policy_actions) - 0.01 * log_q).view(8, 10)
    v_lse = 0.01 * torch.logsumexp(torch.cat([soft_uniform, soft_policy], 1) / 0.01, dim=1)
    expected = (v_lse - agent.critic(states, a_tilde)).mean()
    torch.testing.assert_close(optimism, expected)
    torch.testing.assert_close(q, agent.critic(obs, action))
    assert abs(float(optimism)) > 1e-4  # a term that is not trivially zero


def test_actor_acts_in_env_units_through_the_checkpoint(tmp_path) -> None:
    """The deployable policy maps tanh(mu) in [-1, 1] to the env's action box."""
    low, high = np.array([0.0, -4.0]), np.array([2.0, 4.0])
    config = OPTAILConfig(obs_keys=("state",), hidden_dims=(8,))
    policy = OPTAILPolicy(config, SPEC, identity_observation_normalizer(SPEC, low, high))
    obs = {"state": np.linspace(-1, 1, OBS).astype(np.float32)}
    with torch.no_grad():
        unit = policy.mean_action(torch.as_tensor(obs["state"])[None])[0].numpy()
    expected = low + (unit + 1) / 2 * (high - low)
    np.testing.assert_allclose(policy.act(obs), expected, rtol=1e-5, atol=1e-6)
    from robot_il.policies import load_policy

    loaded = load_policy(policy.save(tmp_path / "ckpt"))
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))


def test_denormals_flushed_flushes_inside_and_keeps_them_after() -> None:
    from robot_il.train.online import denormals_flushed

    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's normal range
    assert float(tiny * 1.0) != 0.0
    with denormals_flushed():
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) != 0.0


def test_updates_with_denormals_flushed_change_no_weight_beyond_float_rounding() -> None:
    """The loop's speed setting: from Adam states holding denormal second moments (as a
    long run's do), updates with them flushed give the same weights to float tolerance."""
    from robot_il.train.online import denormals_flushed

    agents = [learner(), learner()]
    for agent in agents:
        torch.manual_seed(1)
        agent.update(batch(1), batch(2))
        for optimizer in (agent.critic_optimizer, agent.actor_optimizer):
            for state in optimizer.state.values():
                state["exp_avg_sq"][..., ::3] = 1e-39
    results = []
    for agent, flushed in zip(agents, (False, True), strict=True):
        torch.manual_seed(3)
        for i in range(5):
            if flushed:
                with denormals_flushed():
                    agent.update(batch(10 + i), batch(20 + i))
            else:
                agent.update(batch(10 + i), batch(20 + i))
        results.append(agent.state_dict())
    worst = max(float((results[0][net][k] - results[1][net][k]).abs().max())
                for net in ("actor", "reward", "critic", "critic_target")
                for k in results[0][net])  # fmt: skip
    assert worst < 1e-5


@NEEDS_BF16
def test_bf16_updates_agree_with_float32_ones() -> None:
    """``matmul_precision="bf16"`` (2x256 networks, as on walker_walk): from the same weights,
    batches and random stream, five updates give losses within 2% of the float32 ones and
    weight changes pointing the same way (cosine over every weight of each network > 0.95;
    Adam's early steps are about lr x sign(gradient), so a near-zero gradient component may
    flip), and not identical changes (the bfloat16 products did run)."""
    agents = {precision: learner(hidden_dims=(256, 256), batch_size=64, optimism_states=16,
                                 matmul_precision=precision)
              for precision in ("fp32", "bf16")}  # fmt: skip
    agents["bf16"].load_state_dict(agents["fp32"].state_dict())
    start = {net: torch.cat([t.flatten() for t in agents["fp32"].state_dict()[net].values()])
             for net in ("actor", "reward", "critic")}  # fmt: skip
    metrics, moved = {}, {}
    for precision, agent in agents.items():
        torch.manual_seed(4)
        buffer, expert = filled_buffers()
        rng = np.random.default_rng(0)
        metrics[precision] = [agent.learn(buffer, expert, rng) for _ in range(5)]
        moved[precision] = {net: torch.cat([t.flatten() for t in agent.state_dict()[net].values()])
                            - start[net] for net in start}  # fmt: skip
    for fp32, bf16 in zip(metrics["fp32"], metrics["bf16"], strict=True):
        for name, value in fp32.items():
            assert abs(bf16[name] - value) <= 0.02 * abs(value) + 1e-4, (name, value, bf16[name])
    for net in start:
        a, b = moved["fp32"][net], moved["bf16"][net]
        assert not torch.equal(a, b), net
        assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) > 0.95, net


def test_adam_step_is_the_optimizer_step_bit_for_bit() -> None:
    """``adam_step`` (Adam's fused kernel called directly once the state exists) moves the
    weights and Adam's moments and step counts exactly as ``optimizer.step()``, from the
    first step (which initializes the state) on, with a parameter left without a gradient."""
    from robot_il.policies.optimizers import adam, adam_step

    torch.manual_seed(6)
    nets = [torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)]
    nets[1].load_state_dict(nets[0].state_dict())
    optimizers = [adam(net.parameters(), 3e-4) for net in nets]
    steps_through_the_optimizer = []
    optimizer_step = optimizers[1].step
    optimizers[1].step = lambda: steps_through_the_optimizer.append(optimizer_step())
    for step in range(6):
        grad = torch.randn(4, 8)
        for net, optimizer, by_kernel in zip(nets, optimizers, (False, True), strict=True):
            optimizer.zero_grad(set_to_none=True)
            net.weight.grad = grad.clone()
            if step % 3 == 0:
                net.bias.grad = grad[:, 0].clone()
            adam_step(optimizer) if by_kernel else optimizer.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
    states = [optimizer.state_dict()["state"] for optimizer in optimizers]
    for key in states[0]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(states[0][key][name], states[1][key][name])
    assert float(states[1][0]["step"]) == 6 and float(states[1][1]["step"]) == 2
    assert len(steps_through_the_optimizer) == 1  # the first (it makes the state); then the kernel


def assert_same_learner_state(a: dict, b: dict) -> None:
    """Every network's weights and every optimizer's state of two ``OPTAIL.state_dict()``s
    are equal bit for bit."""
    for net in ("actor", "reward", "critic", "critic_target"):
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), (net, key)
    for name in ("reward_optimizer", "critic_optimizer", "actor_optimizer"):
        for key, state in a[name]["state"].items():
            for field, value in state.items():
                assert torch.equal(value, b[name]["state"][key][field]), (name, field)


@NEEDS_BF16
def test_bf16_updates_are_those_of_the_plain_path_bit_for_bit(monkeypatch) -> None:
    """The speed path of a bf16 update (oneDNN's fused linear for the wide layers, Adam's
    kernel called directly) against the plain one (``addmm``, ``optimizer.step``): the same
    losses, weights and Adam states after 5 updates from the same state and random stream."""
    from robot_il.policies.opt_ail import actor_critic, relu_mlp
    from robot_il.policies.opt_ail import learner as learner_module

    def run() -> tuple[list[dict[str, float]], dict]:
        agent = learner(hidden_dims=(256, 256), batch_size=64, optimism_states=16,
                        matmul_precision="bf16")  # fmt: skip
        torch.manual_seed(4)
        buffer, expert = filled_buffers()
        rng = np.random.default_rng(0)
        return [agent.learn(buffer, expert, rng) for _ in range(5)], agent.state_dict()

    fast = run()
    for module in (actor_critic, learner_module):
        monkeypatch.setattr(module, "adam_step", lambda optimizer: optimizer.step())
    monkeypatch.setattr(relu_mlp, "_LINEAR", None)
    plain = run()
    assert fast[0] == plain[0]
    assert_same_learner_state(fast[1], plain[1])


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=NEEDS_BF16)])
@pytest.mark.parametrize("sizes", [(24, 6), (5, 1)], ids=["walker", "cartpole"])
def test_update_speed_paths_are_the_plain_path_bit_for_bit(sizes, precision, monkeypatch) -> None:
    """An update's speed paths against the plain ones, at walker's and cartpole's sizes (2x256
    networks, batch 64 + 64, optimism on 16 states): the optimism term's actor rows taken from
    the actor step's pass (against a pass of its own), the thin first layers' oneDNN linear
    and transposed gradient products (against ``addmm``, ``g^T h``, ``g W``), the gradient
    penalty's last backward without a node per product, gradients cleared directly (against
    ``zero_grad``); and exploring by ``sample_action`` (against
    ``sample``). The same losses, weights, Adam states and explored actions after 5 updates
    from the same state and random stream."""
    from robot_il.policies.opt_ail import actor_critic, relu_mlp
    from robot_il.policies.opt_ail import learner as learner_module

    obs_dim, act_dim = sizes
    spec = {**SPEC, "observation": {"state": [obs_dim]}, "action_dim": act_dim}

    def run() -> tuple[list[dict[str, float]], dict, np.ndarray]:
        torch.manual_seed(0)
        config = OPTAILConfig(obs_keys=("state",), batch_size=64, optimism_states=16,
                              matmul_precision=precision)  # fmt: skip
        normalizer = identity_observation_normalizer(spec, -np.ones(act_dim), np.ones(act_dim))
        agent = OPTAIL(OPTAILPolicy(config, spec, normalizer), "dmc:walker_walk")
        torch.manual_seed(4)
        rng = np.random.default_rng(0)
        buffer, expert = ReplayBuffer(256, obs_dim, act_dim), ReplayBuffer(256, obs_dim, act_dim)
        for target in (buffer, expert):
            target.extend(rng.standard_normal((256, obs_dim), np.float32),
                          rng.uniform(-1, 1, (256, act_dim)).astype(np.float32),
                          rng.standard_normal((256, obs_dim), np.float32),
                          (rng.random(256) < 0.05).astype(np.float32))  # fmt: skip
        metrics = [agent.learn(buffer, expert, rng) for _ in range(5)]
        explored = np.stack([agent.explore(buffer.obs[i]) for i in range(3)])
        return metrics, agent.state_dict(), explored

    fast = run()
    q_and_optimism = learner_module.OPTAIL.q_and_optimism
    monkeypatch.setattr(learner_module.OPTAIL, "q_and_optimism",
                        lambda self, obs, action, n_online, distribution=None:
                        q_and_optimism(self, obs, action, n_online))  # fmt: skip
    monkeypatch.setattr(relu_mlp, "_fast_forms_agree", lambda *shape: False)
    monkeypatch.setattr(relu_mlp, "_bf16_mm", relu_mlp._BF16MatMul.apply)
    for module in (actor_critic, learner_module):
        monkeypatch.setattr(module, "clear_gradients",
                            lambda optimizer: optimizer.zero_grad(set_to_none=True))  # fmt: skip
    monkeypatch.setattr(OPTAILPolicy, "sample_action", lambda self, obs: self.sample(obs)[0])
    plain = run()
    assert fast[0] == plain[0]
    assert np.array_equal(fast[2], plain[2])
    assert_same_learner_state(fast[1], plain[1])


def expert_like(seed: int = 3, n: int = 256) -> ReplayBuffer:
    """Transitions whose actions are a fixed smooth function of the state, inside (-1, 1)."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n, OBS)).astype(np.float32)
    action = np.tanh(obs[:, :ACT] - 0.5 * obs[:, ACT : 2 * ACT]).astype(np.float32) * 0.9
    buffer = ReplayBuffer(n, OBS, ACT)
    buffer.extend(obs, action, obs, np.zeros(n, np.float32))
    return buffer


def mean_action_error(agent: OPTAIL, data: ReplayBuffer) -> float:
    with torch.no_grad():
        mean = agent.policy.mean_action(torch.as_tensor(data.obs))
    return float((mean - torch.as_tensor(data.action)).abs().mean())


def test_bc_pretraining_clones_the_demonstrated_actions_and_leaves_the_actors_adam() -> None:
    expert = expert_like()
    agent = learner(bc_pretrain_steps=300)
    before = mean_action_error(agent, expert)
    loss = agent.pretrain_actor(expert, np.random.default_rng(0))
    after = mean_action_error(agent, expert)
    assert after < 0.2 * before, (before, after)
    assert np.isfinite(loss) and loss < 0  # a log-density above 1 in (-1, 1)^2: fitted
    assert not agent.actor_optimizer.state  # the paper's actor optimizer starts afresh


def test_mse_cloning_fits_the_mean_action_and_leaves_the_spread_to_the_critic() -> None:
    """Cloned from deterministic demonstrations, the NLL pulls the actor's spread down (toward
    the ``log_std_min`` floor); the MSE fits the mean action as well and does not: after
    300 steps the spread is more than twice the NLL clone's."""
    expert = expert_like()
    obs = torch.as_tensor(expert.obs)
    spreads, errors = {}, {}
    for kind in ("nll", "mse"):
        agent = learner(bc_pretrain_steps=300, bc_loss=kind)
        with torch.no_grad():
            spread_before = float(agent.policy.distribution(obs)[1].exp().mean())
        error_before = mean_action_error(agent, expert)
        agent.pretrain_actor(expert, np.random.default_rng(0))
        with torch.no_grad():
            spreads[kind] = float(agent.policy.distribution(obs)[1].exp().mean())
        errors[kind] = mean_action_error(agent, expert)
    assert max(errors.values()) < 0.2 * error_before, (error_before, errors)
    assert spreads["nll"] < 0.8 * spread_before, (spread_before, spreads)
    assert spreads["mse"] > 2 * spreads["nll"], spreads


def test_an_unknown_bc_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="bc_loss must be 'nll' or 'mse', got 'l1'"):
        learner(bc_loss="l1")


def test_bc_term_weight_falls_linearly_to_zero_and_pulls_the_actor_to_the_expert() -> None:
    decaying = learner(bc_weight=2.0, bc_decay_updates=10)
    obs = torch.as_tensor(batch(1).obs)
    expert_action = torch.full((8, ACT), 0.5)
    weights = []
    for _ in range(12):
        weights.append(decaying.current_bc_weight())
        decaying.actor_step(obs, expert_action=expert_action)
    assert weights[0] == 2.0 and weights[5] == pytest.approx(1.0) and weights[10:] == [0.0, 0.0]
    assert decaying.actor_metrics(torch.zeros(()))["bc_loss"] == decaying.last_bc_loss

    expert = expert_like(n=64)
    errors = {}
    for weight in (0.0, 1.0):  # the same networks and samples, with and without the term
        agent = learner(bc_weight=weight, actor_lr=1e-3)
        torch.manual_seed(1)
        for _ in range(300):
            obs, action = torch.as_tensor(expert.obs), torch.as_tensor(expert.action)
            agent.actor_step(obs, expert_action=action)
        errors[weight] = mean_action_error(agent, expert)
    assert errors[1.0] < 0.5 * errors[0.0], errors


def test_log_std_min_is_the_actors_least_spread() -> None:
    obs = torch.as_tensor(batch(1).obs)
    for floor in (-5.0, -3.0):  # the paper's floor, and a raised one
        agent = learner(log_std_min=floor)
        last = agent.policy.actor[-1]
        with torch.no_grad():  # drive the log-std outputs to their lowest
            last.weight[ACT:] = 0.0
            last.bias[ACT:] = -100.0
            _, log_std = agent.policy.distribution(obs)
        assert torch.all(log_std == floor)
        actions = torch.stack([agent.policy.sample(obs)[0] for _ in range(200)])
        spread = float(torch.atanh(actions.clamp(-0.999, 0.999)).std(0).mean())
        assert spread == pytest.approx(np.exp(floor), rel=0.15)


def test_one_critic_pass_gives_each_twin_head_and_the_term_on_their_minimum() -> None:
    """With twin critics the folded update's one wide pass yields both heads' Q(s, a) for
    their TD losses, and the optimism term is the one of the heads' minimum."""
    agent = learner(twin_critics=True, optimism_states=8)
    online, expert = batch(13), batch(14)
    obs = torch.as_tensor(np.concatenate([online.obs, expert.obs]))
    action = torch.as_tensor(np.concatenate([online.action, expert.action]))
    with torch.no_grad():  # the heads differ by more than a last bit: q2 = q1 - 3
        agent.critic.q2.load_state_dict(agent.critic.q1.state_dict())
        agent.critic.q2.mlp[-1].bias -= 3.0
    torch.manual_seed(5)
    heads, optimism = agent.q_and_optimism(obs, action, len(online.obs))
    for got, expected in zip(heads, agent.critic.heads(obs, action), strict=True):
        torch.testing.assert_close(got, expected)
    single = learner(optimism_states=8)  # one critic: q2, the minimum everywhere
    single.critic = agent.critic.q2
    single.policy.actor.load_state_dict(agent.policy.actor.state_dict())
    torch.manual_seed(5)
    _, expected = single.q_and_optimism(obs, action, len(online.obs))
    torch.testing.assert_close(optimism, expected)


def test_twin_critics_bootstrap_from_the_lower_head_and_train_both() -> None:
    agent = learner(twin_critics=True)
    obs, action = torch.as_tensor(batch(1).obs), torch.as_tensor(batch(1).action)
    with torch.no_grad():  # make the second head the first one plus 5: the minimum is q1
        for target in (agent.critic, agent.critic_target):
            target.q2.load_state_dict(target.q1.state_dict())
            target.q2.mlp[-1].bias += 5.0
        assert torch.equal(agent.critic(obs, action), agent.critic.q1(obs, action))
        heads = agent.critic.heads(obs, action)
        expected = sum(float(((q - 1.0) ** 2).mean()) for q in heads)
        assert float(agent.td_loss(obs, action, torch.ones(len(obs)))) == pytest.approx(expected)
        soft_next = agent.soft_value(agent.critic_target, obs)
        gap = soft_next - agent.critic_target.q1(obs, agent.policy.mean_action(obs))
        assert float(gap.abs().max()) < 2.5  # bootstraps from q1, not from q1 + 5
    before = [p.clone() for p in agent.critic.parameters()]
    agent.update(batch(1), batch(2))
    moved = [not torch.equal(a, b) for a, b in zip(before, agent.critic.parameters(), strict=True)]
    half = len(moved) // 2
    assert any(moved[:half]) and any(moved[half:])  # q1's and q2's weights both trained


def test_an_update_with_the_bc_term_raises_no_warning() -> None:
    """The BC loss kept as a metric is read without its graph: torch warns on every run
    otherwise (a tensor that requires grad converted to a float)."""
    import warnings

    agent = learner(bc_weight=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = agent.update(batch(1), batch(2))
    assert np.isfinite(metrics["bc_loss"])


def test_a_state_transition_reward_tells_apart_what_a_state_action_reward_cannot() -> None:
    """Expert and policy share every state and action but not where the transition ended
    (the policy's s' is shifted by -0.5, the expert's by +0.5): an (s, a) reward sees the
    same inputs on both sides and must score them alike; an (s, s') reward, trained as
    long, scores the expert's transitions above the policy's on fresh states."""

    def transitions(seed: int, shift: float) -> Batch:
        data = batch(seed, action=0.3)
        return Batch(data.obs, data.action, data.obs + shift, data.terminated)

    gaps = {}
    for reward_input in ("state_action", "state_next_state"):
        agent = learner(reward_lr=1e-3, reward_input=reward_input)
        for i in range(150):
            agent.update(transitions(i, -0.5), transitions(i, +0.5))
        expert_like, policy_like = transitions(99_999, +0.5), transitions(99_999, -0.5)
        gaps[reward_input] = (reward_of_transitions(agent, expert_like)
                              - reward_of_transitions(agent, policy_like))  # fmt: skip
    assert gaps["state_action"] == 0.0
    assert gaps["state_next_state"] > 0.5


def test_reward_obs_keys_hide_the_other_keys_from_the_reward() -> None:
    """States of two keys, ``cue`` (2 features) and ``jerk`` (3): expert and policy pairs
    differ only in ``jerk`` (+0.5 against -0.5). The full-state reward learns to tell them
    apart; one restricted to ``cue`` sees the same inputs on both sides and cannot."""
    spec = {**SPEC, "observation": {"cue": [2], "jerk": [3]}}
    normalizer = identity_observation_normalizer(spec, -np.ones(ACT), np.ones(ACT))

    def pairs(seed: int, jerk: float) -> Batch:
        data = batch(seed, action=0.3)
        data.obs[:, 2:] = jerk  # the encoder's columns: cue 0-1, jerk 2-4 (sorted keys)
        return data

    gaps = {}
    for keys in ((), ("cue",)):
        torch.manual_seed(0)
        config = OPTAILConfig(obs_keys=("cue", "jerk"), hidden_dims=(32, 32), batch_size=16,
                              reward_lr=1e-3, reward_obs_keys=keys)  # fmt: skip
        agent = OPTAIL(OPTAILPolicy(config, spec, normalizer), "dmc:cartpole_swingup")
        for i in range(150):
            agent.update(pairs(i, -0.5), pairs(i, +0.5))
        gaps[keys] = (reward_of_transitions(agent, pairs(99_999, +0.5))
                      - reward_of_transitions(agent, pairs(99_999, -0.5)))  # fmt: skip
        if keys:
            assert agent.reward.norm.normalized_shape == (2 + ACT,)
    assert gaps[("cue",)] == 0.0
    assert gaps[()] > 0.5


def test_an_unknown_reward_obs_key_is_refused_with_the_keys_there_are() -> None:
    with pytest.raises(ValueError, match=r"reward_obs_keys gripper: not among the obs_keys"):
        learner(reward_obs_keys=("gripper",))


POSITIONS_SPEC = {**SPEC, "observation": {"arm": [2], "cube": [7], "goal": [3]}}
"""States of an arm (2 features) and two positions: a cube pose (position first) and a goal."""


def positions_learner(normalizer, **settings) -> OPTAIL:
    torch.manual_seed(0)
    config = OPTAILConfig(obs_keys=("arm", "cube", "goal"), hidden_dims=(32, 32),
                          batch_size=16, **settings)  # fmt: skip
    return OPTAIL(OPTAILPolicy(config, POSITIONS_SPEC, normalizer), "ur5e:push")


def test_reward_offsets_are_raw_position_differences_in_decimetres() -> None:
    """The reward sees its keys' columns, then cube minus goal position (m, un-normalized:
    the observations are mapped by their mean and std) in units of 0.1 m."""
    from robot_il.dataset import Normalizer

    rng = np.random.default_rng(0)
    raw = {"arm": rng.normal(0.0, 2.0, (100, 2)), "cube": rng.normal(0.5, 0.1, (100, 7)),
           "goal": rng.normal(-0.2, 0.3, (100, 3)),
           "action": rng.uniform(-1, 1, (100, ACT))}  # fmt: skip
    normalizer = Normalizer.fit_arrays(raw, mode="gaussian")
    agent = positions_learner(normalizer, reward_obs_keys=("arm",),
                              reward_offsets=("cube-goal",))  # fmt: skip
    obs = torch.as_tensor(np.concatenate(
        [normalizer.normalize(k, raw[k][:8]) for k in ("arm", "cube", "goal")], axis=-1
    ), dtype=torch.float32)  # fmt: skip
    expected = np.concatenate(
        [obs[:, :2].numpy(), (raw["cube"][:8, :3] - raw["goal"][:8]) / 0.1], axis=-1
    )
    np.testing.assert_allclose(agent.reward_state(obs).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert agent.reward.norm.normalized_shape == (2 + 3 + ACT,)


def test_a_reward_with_offsets_tells_apart_what_it_sees_only_in_the_offset() -> None:
    """Expert and policy states share the arm; cube and goal lie anywhere (uniform over
    ±0.5 m) but the expert's cube is 2 cm from its goal and the policy's 10 cm. A reward
    on the arm alone sees the same inputs on both sides and scores them alike; with the
    cube-goal offset it scores fresh expert states above fresh policy states (by about as
    much as the gradient penalty lets a 0.8-unit input difference move it)."""
    normalizer = identity_observation_normalizer(POSITIONS_SPEC, -np.ones(ACT), np.ones(ACT))

    def states(seed: int, gap: float) -> Batch:
        data = batch(seed, action=0.3)
        rng = np.random.default_rng(seed)
        goal = rng.uniform(-0.5, 0.5, (len(data.obs), 3))
        cube = goal + gap * np.array([1.0, 0.0, 0.0])
        obs = np.concatenate([np.zeros((len(goal), 2)), cube, np.zeros((len(goal), 4)), goal], 1)
        return Batch(obs.astype(np.float32), data.action, obs.astype(np.float32), data.terminated)

    gaps = {}
    for offsets in ((), ("cube-goal",)):
        agent = positions_learner(normalizer, reward_lr=1e-3, reward_obs_keys=("arm",),
                                  reward_offsets=offsets)  # fmt: skip
        for i in range(150):
            agent.update(states(i, 0.10), states(i, 0.02))
        gaps[offsets] = (reward_of_transitions(agent, states(99_999, 0.02))
                         - reward_of_transitions(agent, states(99_999, 0.10)))  # fmt: skip
    assert gaps[()] == 0.0
    assert gaps[("cube-goal",)] > 0.3  # of a reward in (-1, 1), its inputs 0.8 units apart


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        (("cube",), r"reward_offsets 'cube': expected two different observation keys as 'a-b'"),
        (("cube-cube",), r"reward_offsets 'cube-cube': expected two different"),
        (("cube-table",), r"reward_offsets 'cube-table': table not among the obs_keys"),
        (("goal-arm",), r"reward_offsets 'goal-arm': arm has 2 entries, not a position"),
    ],
)
def test_a_bad_reward_offset_is_refused_in_one_line(offsets: tuple, message: str) -> None:
    normalizer = identity_observation_normalizer(POSITIONS_SPEC, -np.ones(ACT), np.ones(ACT))
    with pytest.raises(ValueError, match=message):
        positions_learner(normalizer, reward_offsets=offsets)


def positions_episode(start: np.ndarray, end: np.ndarray, goal: np.ndarray, steps: int = 6):
    """Raw (arm, cube, goal) states of an episode whose cube slides from ``start`` to ``end``
    (m) under a fixed ``goal``, its next states and actions (0.1 * step index)."""
    slide = np.linspace(start, end, steps + 1)
    states = np.zeros((steps + 1, 12))
    states[:, 2:5], states[:, 9:12] = slide, goal
    actions = np.tile(0.1 * np.arange(steps)[:, None], (1, ACT))
    return states[:-1], actions.astype(np.float32), states[1:]


def hindsight_buffers(agent, normalizer, episodes) -> tuple[ReplayBuffer, ReplayBuffer]:
    """An online buffer holding ``episodes`` (raw, mapped by ``normalizer``) and 10 expert
    transitions; each episode handed to ``agent.end_episode`` as the loop does."""

    def encoded(states: np.ndarray) -> np.ndarray:
        keys = {"arm": states[:, :2], "cube": states[:, 2:9], "goal": states[:, 9:]}
        return np.concatenate([normalizer.normalize(k, v) for k, v in keys.items()], -1)

    online, expert = ReplayBuffer(100, 12, ACT), ReplayBuffer(10, 12, ACT)
    expert.extend(*(np.zeros((10, n), np.float32) for n in (12, ACT, 12)), np.zeros(10))
    for obs, action, next_obs in episodes:
        online.extend(encoded(obs).astype(np.float32), action,
                      encoded(next_obs).astype(np.float32), np.zeros(len(obs)))  # fmt: skip
        agent.end_episode(online, expert, len(obs))
    return online, expert


def test_hindsight_relabels_an_episode_to_where_its_cube_ended() -> None:
    """An episode whose cube slid 10 cm joins the BC term's data with every state's goal set
    to the cube's end (m, through the observations' mean/std mapping) and its own actions;
    one whose cube moved 1 cm, less than ``hindsight_min_move``, does not."""
    from robot_il.dataset import Normalizer

    rng = np.random.default_rng(0)
    raw = {"arm": rng.normal(0.0, 2.0, (100, 2)), "cube": rng.normal(0.5, 0.1, (100, 7)),
           "goal": rng.normal(-0.2, 0.3, (100, 3)),
           "action": rng.uniform(-1, 1, (100, ACT))}  # fmt: skip
    normalizer = Normalizer.fit_arrays(raw, mode="gaussian")
    agent = positions_learner(normalizer, bc_weight=1.0, hindsight_goal="cube-goal",
                              hindsight_min_move=0.05)  # fmt: skip
    goal = np.array([0.6, 0.1, 0.0])
    moved = positions_episode(np.array([0.4, 0.0, 0.02]), np.array([0.5, 0.0, 0.02]), goal)
    still = positions_episode(np.array([0.4, 0.0, 0.02]), np.array([0.41, 0.0, 0.02]), goal)
    hindsight_buffers(agent, normalizer, [still, moved])
    assert agent.hindsight_obs.shape == (6, 12) and agent.expert_transitions == 10
    goals = normalizer.unnormalize("goal", agent.hindsight_obs[:, 9:].numpy())
    np.testing.assert_allclose(goals, np.tile([0.5, 0.0, 0.02], (6, 1)), atol=1e-5)
    cubes = normalizer.unnormalize("cube", agent.hindsight_obs[:, 2:9].numpy())
    np.testing.assert_allclose(cubes[:, :3], moved[0][:, 2:5], atol=1e-5)  # states kept
    np.testing.assert_array_equal(agent.hindsight_action.numpy(), moved[1])
    next_goals = normalizer.unnormalize("goal", agent.hindsight_next_obs[:, 9:].numpy())
    np.testing.assert_allclose(next_goals, goals, atol=1e-6)  # the next states' goal too
    next_cubes = normalizer.unnormalize("cube", agent.hindsight_next_obs[:, 2:9].numpy())
    np.testing.assert_allclose(next_cubes[:, :3], moved[2][:, 2:5], atol=1e-5)


def test_the_bc_term_draws_relabelled_and_expert_rows_by_their_numbers() -> None:
    """With 10 expert transitions and 60 relabelled ones, about 6 in 7 of the BC term's rows
    are relabelled (actions 0.7 here, the expert's -0.5), the rest the batch's own."""
    normalizer = identity_observation_normalizer(POSITIONS_SPEC, -np.ones(ACT), np.ones(ACT))
    agent = positions_learner(normalizer, bc_weight=1.0, hindsight_goal="cube-goal")
    goal = np.array([0.6, 0.1, 0.0])
    episodes = [positions_episode(np.array([0.4, 0.0, 0.02]), np.array([0.5, 0.0, 0.02]), goal)
                for _ in range(10)]  # fmt: skip
    for _, action, _ in episodes:
        action[:] = 0.7
    hindsight_buffers(agent, normalizer, episodes)
    expert_action = torch.full((256, ACT), -0.5)
    mu, log_std = torch.zeros(256, ACT), torch.zeros(256, ACT)
    torch.manual_seed(0)
    rows_mu, rows_log_std, actions = agent.with_hindsight_rows(mu, log_std, expert_action)
    relabelled = float((actions[:, 0] == 0.7).float().mean())
    assert actions.shape == rows_mu.shape == rows_log_std.shape == (256, ACT)
    assert 0.78 < relabelled < 0.93  # 6/7 = 0.857, 4 standard deviations either side
    assert bool(((actions == 0.7) | (actions == -0.5)).all())


def test_every_expert_batch_draws_relabelled_and_expert_transitions_as_expert() -> None:
    """``hindsight_as_expert``: with 10 expert transitions (actions -0.5) and 60 relabelled
    ones (0.7), about 6 in 7 rows of every expert batch are relabelled, whole transitions
    (the next state's goal relabelled too, not terminal); the BC term then draws no more of
    them. Without it the expert batch is the expert buffer's draw, the same rng state's."""
    normalizer = identity_observation_normalizer(POSITIONS_SPEC, -np.ones(ACT), np.ones(ACT))
    goal, end = np.array([0.6, 0.1, 0.0]), np.array([0.5, 0.0, 0.02])
    episodes = [positions_episode(np.array([0.4, 0.0, 0.02]), end, goal) for _ in range(10)]
    for _, action, _ in episodes:
        action[:] = 0.7
    batches = {}
    for as_expert in (False, True):
        agent = positions_learner(normalizer, bc_weight=1.0, hindsight_goal="cube-goal",
                                  hindsight_as_expert=as_expert)  # fmt: skip
        _, expert = hindsight_buffers(agent, normalizer, episodes)
        expert.action[:] = -0.5
        batches[as_expert] = agent.expert_batch(expert, np.random.default_rng(3), 256)
    plain = expert.sample(np.random.default_rng(3), 256)
    assert all(np.array_equal(getattr(batches[False], f), getattr(plain, f))
               for f in ("obs", "action", "next_obs", "terminated"))  # fmt: skip
    mixed = batches[True]
    relabelled = mixed.action[:, 0] == np.float32(0.7)
    assert 0.78 < relabelled.mean() < 0.93  # 6/7 = 0.857, 4 standard deviations either side
    assert bool(((mixed.action == np.float32(0.7)) | (mixed.action == -0.5)).all())
    np.testing.assert_allclose(mixed.next_obs[relabelled, 9:], np.tile(end, (relabelled.sum(), 1)),
                               atol=1e-6)  # fmt: skip
    assert not mixed.terminated.any() and mixed.obs.shape == mixed.next_obs.shape == (256, 12)
    mu, log_std, expert_action = (
        torch.zeros(8, ACT),
        torch.zeros(8, ACT),
        torch.full((8, ACT), -0.5),
    )
    assert agent.with_hindsight_rows(mu, log_std, expert_action)[2] is expert_action


@pytest.mark.parametrize("as_expert", [False, True])
def test_relabelled_data_survive_a_save_and_a_resumed_learner_updates_the_same(
    as_expert: bool,
) -> None:
    normalizer = identity_observation_normalizer(POSITIONS_SPEC, -np.ones(ACT), np.ones(ACT))
    goal = np.array([0.6, 0.1, 0.0])
    episode = positions_episode(np.array([0.4, 0.0, 0.02]), np.array([0.5, 0.0, 0.02]), goal)
    settings = {"bc_weight": 1.0, "hindsight_goal": "cube-goal", "hindsight_as_expert": as_expert}
    agent = positions_learner(normalizer, **settings)
    online, expert = hindsight_buffers(agent, normalizer, [episode])
    resumed = positions_learner(normalizer, **settings)
    resumed.load_state_dict(agent.state_dict())
    for learner_ in (agent, resumed):
        torch.manual_seed(1)
        learner_.learn(online, expert, np.random.default_rng(2))
    for name, value in agent.policy.actor.state_dict().items():
        assert torch.equal(value, resumed.policy.actor.state_dict()[name]), name
    assert torch.equal(agent.hindsight_obs, resumed.hindsight_obs)
    assert torch.equal(agent.hindsight_next_obs, resumed.hindsight_next_obs)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hindsight_goal": "cube"}, r"hindsight_goal 'cube': expected two different"),
        ({"hindsight_goal": "cube-table"}, r"hindsight_goal 'cube-table': table not among"),
        ({"hindsight_goal": "arm-goal"}, r"hindsight_goal 'arm-goal': arm has 2 entries"),
        ({"hindsight_goal": "cube-goal", "bc_weight": 0.0}, r"it needs bc_weight > 0"),
        (
            {"hindsight_goal": "cube-goal", "hindsight_min_move": -0.1},
            r"hindsight_min_move >= 0 \(got bc_weight 1, hindsight_min_move -0.1\)",
        ),
        (
            {"hindsight_as_expert": True},
            r"hindsight_as_expert: it relabels to the hindsight_goal, which is not set",
        ),
    ],
)
def test_a_bad_hindsight_goal_is_refused_in_one_line(settings: dict, message: str) -> None:
    normalizer = identity_observation_normalizer(POSITIONS_SPEC, -np.ones(ACT), np.ones(ACT))
    with pytest.raises(ValueError, match=message):
        positions_learner(normalizer, **{"bc_weight": 1.0, **settings})


def test_td_target_scores_the_transition_with_the_state_transition_reward() -> None:
    """With gamma 0 the TD target is the reward alone: ``tanh(MLP(LayerNorm([s, s'])))``
    of each transition, not of ``[s, a]`` (a net of 2 * OBS inputs)."""
    agent = learner(reward_input="state_next_state", gamma=0.0)
    data = batch(5)
    obs, next_obs = torch.as_tensor(data.obs), torch.as_tensor(data.next_obs)
    pairs = torch.cat([obs, torch.as_tensor(data.action)], dim=-1)
    target = agent.td_target(pairs, next_obs, torch.zeros(len(obs)))
    assert agent.reward.norm.normalized_shape == (2 * OBS,)
    torch.testing.assert_close(target, agent.reward(torch.cat([obs, next_obs], dim=-1)))


def test_the_task_reward_is_the_envs_reward_for_the_step_into_the_next_state() -> None:
    """``reward_source`` "task": from encoded next states (observations mapped by their mean
    and std) the learner recovers the reward the push env gave for each step, plus
    ``TASK_REWARD_SHIFT``; with gamma 0 the TD target is that reward, and an update leaves
    the reward net as it was."""
    from robot_il.envs import make_env, make_expert
    from robot_il.policies.opt_ail.policy import TASK_REWARD_SHIFT

    from robot_il.dataset import Normalizer
    from robot_il.train.replay import flatten_observation

    env = make_env("push", "mujoco", action_mode="eef_delta", max_episode_steps=40,
                   terminate_on_success=False)  # fmt: skip
    expert = make_expert(env)  # it reaches for the cube: the reward changes step by step
    observations, actions, rewards = [env.reset(seed=0)[0]], [], []
    expert.reset(observations[0])
    for _ in range(40):
        actions.append(expert.act(observations[-1]))
        obs, reward, *_ = env.step(actions[-1])
        observations.append(obs)
        rewards.append(reward)
    env.close()
    keys = sorted(observations[0])
    stacked = {key: np.stack([o[key] for o in observations]) for key in keys}
    shapes = {key: list(value.shape[1:]) for key, value in stacked.items()}
    spec = {"robot": "ur5e", "control_hz": 20.0, "observation": shapes, "action_dim": 7}
    normalizer = Normalizer.fit_arrays({**stacked, "action": np.stack(actions)}, mode="gaussian")
    torch.manual_seed(0)
    config = OPTAILConfig(obs_keys=tuple(keys), hidden_dims=(32, 32), batch_size=16,
                          reward_source="task", gamma=0.0)  # fmt: skip
    agent = OPTAIL(OPTAILPolicy(config, spec, normalizer), "push")
    encoded = np.stack([flatten_observation(o, keys, normalizer) for o in observations])
    data = Batch(encoded[:-1], np.clip(np.stack(actions), -1, 1).astype(np.float32),
                 encoded[1:], np.zeros(len(actions), np.float32))  # fmt: skip
    next_obs = torch.as_tensor(data.next_obs)
    expected = torch.tensor(rewards, dtype=torch.float32) + TASK_REWARD_SHIFT
    assert float(expected.max() - expected.min()) > 0.05
    torch.testing.assert_close(agent.task_reward(next_obs), expected, atol=1e-4, rtol=0)
    pairs = torch.cat([torch.as_tensor(data.obs), torch.as_tensor(data.action)], dim=-1)
    target = agent.td_target(pairs, next_obs, torch.zeros(len(pairs)))
    torch.testing.assert_close(target, expected, atol=1e-4, rtol=0)
    weights = torch.nn.utils.parameters_to_vector
    reward_before = weights(agent.reward.parameters()).detach().clone()
    critic_before = weights(agent.critic.parameters()).detach().clone()
    metrics = agent.update(data, data)
    assert torch.equal(weights(agent.reward.parameters()), reward_before)
    assert not torch.equal(weights(agent.critic.parameters()), critic_before)
    assert np.isnan(metrics["reward_loss"]) and np.isfinite(metrics["td_loss"])


def test_the_task_reward_is_refused_where_there_is_none_to_read() -> None:
    with pytest.raises(ValueError, match=r"reward_source 'task': 'dmc:cartpole_swingup' is not"):
        learner(reward_source="task")
    normalizer = identity_observation_normalizer(POSITIONS_SPEC, -np.ones(ACT), np.ones(ACT))
    config = OPTAILConfig(obs_keys=("arm", "cube", "goal"), reward_source="task")
    with pytest.raises(ValueError, match=r"push's reward reads observation key '\w+', not among"):
        OPTAIL(OPTAILPolicy(config, POSITIONS_SPEC, normalizer), "push")
    with pytest.raises(ValueError, match=r"reward_source must be 'learned' or 'task'"):
        learner(reward_source="env")


def test_critic_warmup_trains_reward_and_critic_before_the_actor_moves() -> None:
    """The first ``learn`` takes the warm-up's actor-frozen updates, then one ordinary update:
    the reward and critic take 4 steps, the actor 1; a learner restored from its state does
    not warm up again."""
    agent = learner(critic_warmup_updates=3)
    buffer, expert = filled_buffers()
    rng = np.random.default_rng(0)
    actor_before = [p.detach().clone() for p in agent.policy.actor.parameters()]
    critic_before = [p.detach().clone() for p in agent.critic.parameters()]
    agent.update(*(buffer.sample(rng, 16), expert.sample(rng, 16)), train_actor=False)
    assert all(torch.equal(a, b) for a, b in zip(actor_before, agent.policy.actor.parameters(),
                                                   strict=True))  # fmt: skip
    assert not all(torch.equal(a, b) for a, b in zip(critic_before, agent.critic.parameters(),
                                                       strict=True))  # fmt: skip
    fresh = learner(critic_warmup_updates=3)
    fresh.learn(buffer, expert, rng)
    steps = {name: int(getattr(fresh, name).state_dict()["state"][0]["step"])
             for name in ("reward_optimizer", "critic_optimizer", "actor_optimizer")}  # fmt: skip
    assert steps == {"reward_optimizer": 4, "critic_optimizer": 4, "actor_optimizer": 1}
    assert (fresh.critic_warmup_done, fresh.actor_updates) == (3, 1)
    restored = learner(critic_warmup_updates=3)
    restored.load_state_dict(fresh.state_dict())
    restored.learn(buffer, expert, rng)
    assert int(restored.reward_optimizer.state_dict()["state"][0]["step"]) == 5


def test_critic_updates_per_step_step_the_critic_that_often_and_the_actor_once() -> None:
    """``critic_updates_per_step`` 3: each ``learn`` takes 3 reward and critic steps and one
    actor step, each on its own batches; after a warm-up of 2, the first call takes 2 + 3."""
    buffer, expert = filled_buffers()
    for warmup, calls, expected in ((0, 2, (6, 2)), (2, 1, (5, 1))):
        agent = learner(critic_updates_per_step=3, critic_warmup_updates=warmup)
        rng = np.random.default_rng(0)
        for _ in range(calls):
            agent.learn(buffer, expert, rng)
        steps = [
            int(getattr(agent, name).state_dict()["state"][0]["step"])
            for name in ("reward_optimizer", "critic_optimizer", "actor_optimizer")
        ]
        assert steps == [expected[0], expected[0], expected[1]], (warmup, steps)
        assert agent.actor_updates == expected[1]
    # one call is three updates on batches drawn in turn, the actor stepping in the last
    once = learner(critic_updates_per_step=3)
    once.learn(buffer, expert, np.random.default_rng(0))
    plain = learner()
    rng = np.random.default_rng(0)
    for train_actor in (False, False, True):
        plain.update(buffer.sample(rng, 16), expert.sample(rng, 16), train_actor=train_actor)
    for a, b in zip(once.critic.parameters(), plain.critic.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="critic_updates_per_step must be >= 1"):
        learner(critic_updates_per_step=0)


def test_the_model_based_variant_refuses_a_critic_warmup() -> None:
    with pytest.raises(ValueError, match="critic_warmup_updates"):
        OPTAILConfig(obs_keys=("state",), model_based=True, critic_warmup_updates=10).validate()
    with pytest.raises(ValueError, match="critic_updates_per_step"):
        OPTAILConfig(obs_keys=("state",), model_based=True, critic_updates_per_step=2).validate()


def test_a_save_from_before_the_warmup_does_not_warm_up_mid_run() -> None:
    """A learner state saved before ``critic_warmup_done`` existed, after an update, is past
    the loop's first update: resuming it with a warm-up is refused (it would freeze the actor
    mid-run); without one it loads, and a save from before any update may still warm up."""
    buffer, expert = filled_buffers()
    fresh = learner().state_dict()
    old = learner()
    old.learn(buffer, expert, np.random.default_rng(0))
    saved = old.state_dict()
    for state in (saved, fresh):
        del state["critic_warmup_done"]
    with pytest.raises(ValueError, match="cannot warm up now"):
        learner(critic_warmup_updates=3).load_state_dict(saved)
    learner().load_state_dict(saved)
    restored = learner(critic_warmup_updates=3)
    restored.load_state_dict(fresh)
    restored.learn(buffer, expert, np.random.default_rng(0))
    assert restored.critic_warmup_done == 3


def test_bc_reference_keeps_the_clone_frozen_and_the_critic_chooses_per_state() -> None:
    """IBRL's proposal: after cloning, the frozen reference is the clone; each state takes
    the actor's or the clone's action, whichever the critic scores higher (both happen
    here), and the actor's updates leave the reference where it was."""
    agent = learner(bc_pretrain_steps=50, bc_reference=True)
    agent.pretrain_actor(expert_like(), np.random.default_rng(0))
    policy = agent.policy
    assert agent.critic is policy.critic
    for cloned, kept in zip(policy.actor.parameters(), policy.reference.parameters(), strict=True):
        assert torch.equal(cloned, kept)
    with torch.no_grad():  # the actor leaves the clone, as it will online
        policy.actor[-1].bias[:ACT] += 0.8
    obs = torch.as_tensor(batch(21, n=64).obs)
    with torch.no_grad():
        actor_action = policy.mean_action(obs)
        chosen, taken = policy.choose(obs, actor_action)
        clone_action = policy.reference_action(obs)
        clone_better = agent.critic(obs, clone_action) > agent.critic(obs, actor_action)
    assert torch.equal(taken, clone_better) and 0 < int(taken.sum()) < len(obs)
    torch.testing.assert_close(chosen, torch.where(taken[:, None], clone_action, actor_action))
    reference = [p.clone() for p in policy.reference.parameters()]
    agent.update(batch(1), batch(2))
    assert all(torch.equal(a, b) for a, b in zip(reference, policy.reference.parameters(),
                                                 strict=True))  # fmt: skip
    assert not torch.equal(policy.actor[-1].bias, policy.reference[-1].bias)


def test_bc_reference_bootstraps_from_the_better_of_the_actor_and_the_clone() -> None:
    """``V(s') = max(Q_targ(s', a') - alpha log pi(a'|s'), Q_targ(s', a_ref(s')))``: the
    actor's soft value wherever it is the larger, the clone's Q elsewhere (both here)."""
    agent = learner(bc_pretrain_steps=50, bc_reference=True)
    agent.pretrain_actor(expert_like(), np.random.default_rng(0))
    with torch.no_grad():
        agent.policy.actor[-1].bias[:ACT] += 0.8
    next_obs = torch.as_tensor(batch(22, n=64).next_obs)
    with torch.no_grad():
        torch.manual_seed(3)
        value = agent.soft_value(agent.critic_target, next_obs)
        torch.manual_seed(3)
        action, log_pi = agent.policy.sample(next_obs)
        actor_value = agent.critic_target(next_obs, action) - agent.config.alpha * log_pi
        clone_q = agent.critic_target(next_obs, agent.policy.reference_action(next_obs))
    torch.testing.assert_close(value, torch.maximum(actor_value, clone_q))
    assert 0 < int((clone_q > actor_value).sum()) < len(next_obs)


def test_bc_reference_deploys_the_critics_choice_through_the_checkpoint(tmp_path) -> None:
    """The checkpoint holds the clone and the critic: a loaded policy acts as the trained
    one does, the critic's choice between the actor's mean and the clone's action."""
    from robot_il.policies import load_policy

    agent = learner(bc_pretrain_steps=50, bc_reference=True, twin_critics=True)
    agent.pretrain_actor(expert_like(), np.random.default_rng(0))
    for _ in range(5):
        agent.update(batch(1), batch(2))
    policy = agent.policy
    loaded = load_policy(policy.save(tmp_path / "ckpt"))
    assert loaded.reference is not None and isinstance(loaded.critic, type(agent.critic))
    takes = []
    for seed in range(12):
        obs = {"state": np.random.default_rng(seed).standard_normal(OBS).astype(np.float32)}
        state = torch.as_tensor(obs["state"])[None]
        with torch.no_grad():
            expected, taken = policy.choose(state, policy.mean_action(state))
        np.testing.assert_allclose(loaded.act(obs), expected[0].numpy(), rtol=1e-5, atol=1e-6)
        takes.append(bool(taken[0]))
    assert any(takes) and not all(takes)


def test_bc_reference_needs_a_clone_and_iq_learn_refuses_it() -> None:
    from robot_il.policies.iq_learn import IQLearnConfig

    with pytest.raises(ValueError, match="bc_reference keeps the clone: it needs "
                                         "bc_pretrain_steps > 0"):  # fmt: skip
        learner(bc_reference=True)
    with pytest.raises(ValueError, match="IQ-Learn takes no bc_reference"):
        IQLearnConfig(obs_keys=("state",), bc_pretrain_steps=10, bc_reference=True).validate()


def test_clone_radius_holds_the_actors_mean_within_it_of_the_frozen_clone(tmp_path) -> None:
    """A bounded residual: cloned, the policy acts as the clone does; however far its actor
    network's mean goes (here 5 pre-squash units), the mean stays within ``clone_radius`` of
    the frozen clone's and reaches it; updates move the policy and leave the clone as it
    was; a loaded checkpoint acts as the trained policy does."""
    from robot_il.policies import load_policy

    radius = 0.2
    agent = learner(bc_pretrain_steps=50, clone_radius=radius)
    agent.pretrain_actor(expert_like(), np.random.default_rng(0))
    policy = agent.policy
    assert policy.critic is None  # no IBRL choice
    obs = torch.as_tensor(batch(21, n=64).obs)
    with torch.no_grad():
        torch.testing.assert_close(policy.mean_action(obs), policy.reference_action(obs))
        mu_ref = policy.reference_mean(obs)
        torch.testing.assert_close(mu_ref, policy.reference(obs)[:, :ACT])
        policy.actor[-1].bias[:ACT] += 5.0
        offset = policy.distribution(obs)[0] - mu_ref
    assert float(offset.abs().max()) <= radius + 1e-6 and float(offset.min()) > 0.99 * radius
    with torch.no_grad():
        policy.actor[-1].bias[:ACT] -= 5.0
    reference = [p.clone() for p in policy.reference.parameters()]
    for _ in range(20):
        agent.update(batch(1), batch(2))
    assert all(torch.equal(a, b) for a, b in zip(reference, policy.reference.parameters(),
                                                 strict=True))  # fmt: skip
    with torch.no_grad():
        moved = policy.distribution(obs)[0] - mu_ref
    assert 0 < float(moved.abs().max()) <= radius + 1e-6
    loaded = load_policy(policy.save(tmp_path / "ckpt"))
    assert loaded.reference is not None and loaded.critic is None
    for seed in range(4):
        state = np.random.default_rng(seed).standard_normal(OBS).astype(np.float32)
        with torch.no_grad():
            expected = policy.mean_action(torch.as_tensor(state)[None])[0].numpy()
        np.testing.assert_allclose(loaded.act({"state": state}), expected, rtol=1e-5, atol=1e-6)


def test_clone_radius_needs_a_clone_and_is_not_negative() -> None:
    with pytest.raises(ValueError, match="clone_radius .* needs bc_pretrain_steps > 0"):
        learner(clone_radius=0.1)
    with pytest.raises(ValueError, match="clone_radius must be >= 0"):
        learner(bc_pretrain_steps=10, clone_radius=-0.1)


def test_layer_norm_critics_do_not_extrapolate_to_far_actions() -> None:
    """RLPD's critic: with a LayerNorm after each hidden layer Q stays within the last
    layer's reach however far an action lies from the data (the last hidden layer, unit
    variance over its n units before the ReLU, has norm at most sqrt(n), so |Q| <= ||w||
    sqrt(n) + |b|), where the plain critic's Q grows with the action's size; the learner
    trains it (both twins move)."""
    LayerNorm = torch.nn.LayerNorm
    plain, normed = learner(twin_critics=True), learner(twin_critics=True, critic_layer_norm=True)
    assert not any(isinstance(m, LayerNorm) for m in plain.critic.modules())
    assert sum(isinstance(m, LayerNorm) for m in normed.critic.modules()) == 4
    obs = torch.as_tensor(batch(5, n=64).obs)
    far = torch.full((64, ACT), 1e4)
    with torch.no_grad():
        last = normed.critic.q1.mlp[-1]
        reach = float(last.weight.norm() * last.in_features**0.5 + last.bias.abs())
        assert float(normed.critic.q1(obs, far).abs().max()) <= reach + 1e-4
        assert float(plain.critic.q1(obs, far).abs().max()) > 10 * reach
    before = [p.clone() for p in normed.critic.parameters()]
    normed.update(batch(1), batch(2))
    moved = [not torch.equal(a, b) for a, b in zip(before, normed.critic.parameters(),
                                                   strict=True)]  # fmt: skip
    assert all(moved)


@pytest.mark.parametrize(("target_per_dim", "rises"), [(5.0, True), (-20.0, False)])
def test_a_learned_temperature_moves_toward_the_entropy_target(
    target_per_dim: float, rises: bool
) -> None:
    """SAC's temperature step: alpha rises while the actor's entropy is below H_target (5
    nats a dimension, more than a squashed action in [-1, 1] can have) and falls while above
    (-20 a dimension); the soft value, the actor and the optimism term read the new alpha,
    and a fixed temperature stays the config's."""
    fixed = learner()
    agent = learner(learn_temperature=True, target_entropy_per_dim=target_per_dim,
                    temperature_lr=1e-2)  # fmt: skip
    alphas = [agent.alpha]
    for seed in range(5):
        metrics = agent.update(batch(2 * seed), batch(2 * seed + 1))
        fixed.update(batch(2 * seed), batch(2 * seed + 1))
        alphas.append(metrics["alpha"])
    steps = np.diff(alphas)
    assert (steps > 0).all() if rises else (steps < 0).all(), alphas
    assert agent.alpha == pytest.approx(float(agent.log_alpha.exp()))
    assert fixed.alpha == 0.01 and "alpha" not in fixed.update(batch(20), batch(21))
    obs = torch.as_tensor(batch(30).obs)
    torch.manual_seed(3)
    value = agent.soft_value(agent.critic, obs)
    torch.manual_seed(3)
    action, log_pi = agent.policy.sample(obs)
    expected = agent.critic(obs, action) - agent.alpha * log_pi
    torch.testing.assert_close(value, expected)


def test_a_learned_temperature_resumes_with_its_optimizer_and_a_bad_rate_is_refused() -> None:
    settings = {"learn_temperature": True, "temperature_lr": 1e-2}
    agent = learner(**settings)
    agent.update(batch(1), batch(2))
    saved = io.BytesIO()  # through torch.save, as the loop saves: no tensor shared
    torch.save(agent.state_dict(), saved)
    saved.seek(0)
    resumed = learner(**settings)
    resumed.load_state_dict(torch.load(saved, weights_only=False))
    assert resumed.alpha == agent.alpha != 0.01
    for learner_ in (agent, resumed):
        torch.manual_seed(4)
        learner_.update(batch(3), batch(4))
    assert resumed.alpha == agent.alpha
    assert torch.equal(resumed.log_alpha, agent.log_alpha)
    with pytest.raises(ValueError, match=r"learn_temperature: temperature_lr must be > 0, got 0"):
        learner(learn_temperature=True, temperature_lr=0.0)
