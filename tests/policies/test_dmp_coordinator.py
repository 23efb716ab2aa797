"""The learned two-arm coordinator's env, action decoding and hard distance shield (kinematic
``bimanual_cross`` scenes, real DMPs, IK and capsule distances)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from robot_il.envs import cross_scenes as cs
from robot_il.policies.dmp.coordinator import (
    ACTION_SIZE,
    OBSERVATION_SIZE,
    RATE_CORRECTION_MAX,
    VIA_OFFSET_MAX,
    decode_action,
    run_coordinated,
)
from robot_il.policies.dmp.coordinator_env import (
    TIME_COST,
    CoordinatorBatch,
    CoordinatorEnv,
    coordinator_vec_env,
)
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.cross_episodes import run_episodes

from robot_il.errors import ConfigError

# Scenes 0..19: independent DMPs collide in some of them (the benchmark's 61 % over 500).
SEEDS = np.arange(20)


def full_speed(obs: np.ndarray) -> np.ndarray:
    """A coordinator that never lets either arm slow (the largest rate correction: rate 1
    whatever the phase law asks), no offset."""
    action = np.zeros((len(obs), ACTION_SIZE))
    action[:, [0, 4]] = 1.0
    return action


def test_decode_action_maps_rate_corrections_and_offsets():
    action = np.array([[0.0, 1.0, -1.0, 0.5, -1.0, 0.0, 0.0, 0.0], [0.5, 0, 0, 0, -0.3, 0, 0, 0]])
    corrections, offsets = decode_action(action)
    np.testing.assert_allclose(
        corrections, RATE_CORRECTION_MAX * np.array([[0.0, 0.5], [-1.0, -0.3]])
    )
    np.testing.assert_allclose(offsets[0, 0], VIA_OFFSET_MAX * np.array([1.0, -1.0, 0.5]))
    np.testing.assert_allclose(offsets[1, 0], 0.0)
    # Out-of-range actions are clipped, never amplified.
    corrections, offsets = decode_action(np.full((1, ACTION_SIZE), 5.0))
    assert corrections.max() == RATE_CORRECTION_MAX and np.abs(offsets).max() == VIA_OFFSET_MAX


@pytest.mark.parametrize(
    "params",
    [
        CouplingParams(),
        CouplingParams(
            repulsion_gain=19.0, slow_distance=0.11, stop_distance=0.005, phase_rate_limit=8.6
        ),
    ],
)
def test_coordinator_acting_zero_is_the_coupled_layer_exactly(params):
    """The coordinator is a residual: an action of 0 leaves the ``coupled`` repulsion and
    phase law alone, tick for tick (so PPO starts from the tuned layer)."""
    scenes = cs.sample_scenes(SEEDS)
    zero = run_coordinated(scenes, lambda obs: np.zeros((len(obs), ACTION_SIZE)), params, dt=0.02)
    coupled = run_episodes(scenes, "coupled", params, dt=0.02)
    for field in ("collision", "success", "makespan", "min_separation"):
        np.testing.assert_array_equal(getattr(zero, field), getattr(coupled, field))
    # ... and the corrections act: letting both arms go at full speed changes the outcome.
    free = run_coordinated(scenes, full_speed, params, dt=0.02)
    assert not np.array_equal(free.min_separation, coupled.min_separation)


def test_full_speed_coordinator_matches_independent_collisions():
    """Without slowing, the coordinated DMP layer still collides where independent DMPs do
    (repulsion alone does not separate crossing arms): the learned part has work to do."""
    scenes = cs.sample_scenes(SEEDS)
    free = run_coordinated(scenes, full_speed, dt=0.02)
    independent = run_episodes(scenes, "independent", dt=0.02)
    assert independent.collision.sum() >= 5
    assert free.collision.sum() >= 3


def test_shield_never_lets_the_arms_closer_than_the_clearance():
    scenes = cs.sample_scenes(SEEDS)
    clearance = 0.02

    # An adversarial coordinator: full speed, via-points pushed towards the other arm.
    def towards(obs: np.ndarray) -> np.ndarray:
        action = full_speed(obs)
        action[:, 1:4] = np.sign(obs[:, 26:29])  # left arm towards the right tool
        action[:, 5:8] = -np.sign(obs[:, 26:29])
        return action

    for coordinator in (full_speed, towards):
        unshielded = run_coordinated(scenes, coordinator, dt=0.02)
        shielded = run_coordinated(scenes, coordinator, shield_clearance=clearance, dt=0.02)
        assert unshielded.collision.any()
        assert not shielded.collision.any()
        assert shielded.min_separation.min() >= clearance - 1e-9
        # The shield holds only what it must: most scenes still end with both arms home.
        assert shielded.success.mean() >= 0.5


def test_env_is_a_gymnasium_env_and_rate_zero_holds_the_arms():
    from gymnasium.utils.env_checker import check_env

    env = CoordinatorEnv()
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (OBSERVATION_SIZE,) and info["scene_seed"] == 3
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, again)
    # The largest negative correction from the first decision: the phase rates ramp down
    # from 1 within a few ticks, then nothing moves; every step costs time and nothing else.
    hold = np.zeros(ACTION_SIZE, dtype=np.float32)
    hold[[0, 4]] = -1.0
    for _ in range(3):
        obs, reward, terminated, truncated, _ = env.step(hold)
    for _ in range(5):
        before = obs
        obs, reward, terminated, truncated, info = env.step(hold)
        np.testing.assert_allclose(obs[:3], before[:3], atol=1e-9)
        assert reward == pytest.approx(-TIME_COST)
        assert not (terminated or truncated)


def test_restarted_slot_equals_a_fresh_scene():
    batch = CoordinatorBatch(np.array([0, 1]))
    for _ in range(4):
        batch.step(np.zeros((2, ACTION_SIZE)))
    batch.restart(np.array([1]), np.array([7]))
    fresh = CoordinatorBatch(np.array([7]))
    np.testing.assert_allclose(
        batch.controller.observe()[1], fresh.controller.observe()[0], atol=1e-6
    )


def test_vec_env_restarts_ended_episodes_with_their_outcome():
    env = coordinator_vec_env(4, first_seed=0)
    obs = env.reset()
    outcomes, terminal = [], 0
    for _ in range(int(cs.TIME_LIMIT / 0.1) + 1):
        obs, reward, done, infos = env.step(np.zeros((4, ACTION_SIZE), dtype=np.float32))
        assert obs.shape == (4, OBSERVATION_SIZE) and reward.shape == (4,)
        for i in np.flatnonzero(done):
            assert infos[i]["terminal_observation"].shape == (OBSERVATION_SIZE,)
            outcomes.append(infos[i]["episode_outcome"])
            terminal += 1
    # At full speed every scene ends within the time limit, by arrival or by collision.
    assert terminal >= 4 and set(outcomes) <= {"success", "collision", "deadlock"}
    assert "deadlock" not in outcomes


def test_vec_env_says_it_renders_nothing_without_a_warning():
    """Before: SB3 warned "The `render_mode` attribute is not defined" on every training."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert coordinator_vec_env(2, first_seed=0).render_mode is None


def test_tick_must_divide_the_decision_period():
    with pytest.raises(ConfigError, match="must divide"):
        CoordinatorBatch(np.array([0]), dt=0.03)


def test_constant_via_offset_still_ends_at_the_goals():
    """A via-point offset fades with the phase: however long the coordinator holds one, both
    tools end at their DMP goals at the time limit (the term is added out of place and scaled
    like the repulsion on every tick, also where the arms are apart and there is none)."""
    scenes = cs.sample_scenes(SEEDS)

    def offset(obs: np.ndarray) -> np.ndarray:
        action = np.zeros((len(obs), ACTION_SIZE))
        action[:, [1, 2, 3]], action[:, [5, 6, 7]] = (1.0, -1.0, 0.5), (-1.0, 1.0, 0.5)
        return action

    held = run_coordinated(scenes, offset, dt=0.02)
    assert held.end_distance.max() < 1e-3, held.end_distance
    assert held.summary()["at_goal_at_end_rate"] == 1.0


def test_coordinator_training_continues_only_under_its_own_settings(tmp_path):
    """A rerun continues the saved PPO model; before, one under other PPO settings went on
    silently under the saved ones (``PPO.load``) while its rows recorded the new ones, and
    one over another coupling made a net labelled with a coupling it had not trained over."""
    from robot_il.errors import CheckpointError
    from robot_il.train.coordinator import CoordinatorTrainConfig, read_rows, train_coordinator

    config = CoordinatorTrainConfig(total_steps=256, chunk_steps=256, n_envs=4, n_steps=64,
                                    batch_size=128, n_epochs=1, net_arch=(16,))  # fmt: skip
    train_coordinator(tmp_path, config)
    longer = dataclasses.replace(config, total_steps=512, threads=2)  # free to change
    train_coordinator(tmp_path, longer)
    assert [row["steps"] for row in read_rows(tmp_path)] == [256, 512]
    with pytest.raises(CheckpointError, match="PPO config changed since this run: n_epochs 1 -> 2"):
        train_coordinator(tmp_path, dataclasses.replace(longer, total_steps=768, n_epochs=2))
    with pytest.raises(CheckpointError, match="trained over coupling None; it would go on over"):
        train_coordinator(tmp_path, dataclasses.replace(longer, total_steps=768), CouplingParams())
    assert len(read_rows(tmp_path)) == 2
