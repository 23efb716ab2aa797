"""A DMP+RL checkpoint: the PPO coordinator's actor in numpy, saved in a DMP checkpoint,
loaded and run in MuJoCo (recorded ``bimanual_cross`` demos, real safetensors, real PPO)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from robot_il.envs import make_env
from robot_il.policies import load_policy
from robot_il.policies.dmp.coordinator import OBSERVATION_SIZE, CoordinatorNet
from robot_il.policies.dmp.coordinator_env import coordinator_vec_env
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.policy import DMPPolicy

from robot_il.errors import CheckpointError, ConfigError
from robot_il.train.coordinator import export_dmp_rl


@pytest.fixture(scope="module")
def ppo():
    from stable_baselines3 import PPO

    env = coordinator_vec_env(2, first_seed=0)
    return PPO("MlpPolicy", env, n_steps=8, batch_size=16, seed=0, device="cpu")


@pytest.fixture(scope="module")
def dmp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.dmp import train_dmp

    demos = record_expert_demos("bimanual_cross", tmp_path_factory.mktemp("cross"), episodes=2)
    return train_dmp(str(demos), tmp_path_factory.mktemp("dmp_run")).checkpoint


def test_numpy_actor_equals_the_ppo_deterministic_action(ppo, tmp_path: Path) -> None:
    obs = np.random.default_rng(0).normal(size=(64, OBSERVATION_SIZE)).astype(np.float32)
    net = CoordinatorNet.from_sb3(ppo, CouplingParams())
    expected = ppo.predict(obs, deterministic=True)[0]
    np.testing.assert_allclose(net(obs), expected, atol=1e-5)
    net.save(tmp_path / "net.safetensors")
    np.testing.assert_allclose(
        CoordinatorNet.load(tmp_path / "net.safetensors")(obs), expected, atol=1e-5
    )


def test_missing_coordinator_weights_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError,
        match=r"none\.safetensors: no coordinator weights "
        r"\(train them with `benchmarks/dmp_multiarm\.py --train-coordinator",
    ):
        CoordinatorNet.load(tmp_path / "none.safetensors")


def test_dmp_rl_checkpoint_loads_and_acts_identically(ppo, dmp_checkpoint, tmp_path) -> None:
    # The net carries the DMP layer it was trained over; the checkpoint runs that layer.
    trained_over = CouplingParams(repulsion_gain=19.0, repulsion_range=0.3, phase_rate_limit=8.0)
    net = CoordinatorNet.from_sb3(ppo, trained_over)
    net.save(tmp_path / "net.safetensors")
    assert CoordinatorNet.load(tmp_path / "net.safetensors").coupling == trained_over
    out = export_dmp_rl(
        dmp_checkpoint, CoordinatorNet.load(tmp_path / "net.safetensors"), tmp_path / "rl",
        shield_clearance=0.02,
    )  # fmt: skip
    first, second = load_policy(out), load_policy(out)
    assert isinstance(first, DMPPolicy) and first.config.coordinator
    assert first.config.shield_clearance == 0.02
    assert first.params == trained_over
    env = make_env("bimanual_cross", "mujoco")
    obs, _ = env.reset(seed=5)
    moved = 0.0
    start = obs["left_joint_pos"].copy()
    for _ in range(40):
        action = first.act(obs)
        np.testing.assert_array_equal(action, second.act(obs))
        obs, *_ = env.step(action)
        moved = max(moved, float(np.abs(obs["left_joint_pos"] - start).max()))
    env.close()
    assert moved > 0.05  # the coordinated DMPs drive the arm
    # The plain DMP checkpoint is untouched and has no coordinator.
    assert not load_policy(dmp_checkpoint).config.coordinator


def test_coordinator_without_its_coupling_is_refused(ppo, dmp_checkpoint, tmp_path) -> None:
    """A coordinator written before it was a residual on the phase law (no stored coupling)
    would load with the wrong action meaning: refused, as a file and inside a checkpoint."""
    from safetensors.numpy import load_file, save_file

    net = CoordinatorNet.from_sb3(ppo, CouplingParams())
    net.save(tmp_path / "net.safetensors")
    old = {k: v for k, v in load_file(str(tmp_path / "net.safetensors")).items()}
    del old["coordinator/coupling"]
    save_file(old, str(tmp_path / "old.safetensors"))
    retrain = r"old\.safetensors: coordinator without the DMP coupling .* --train-coordinator"
    with pytest.raises(CheckpointError, match=retrain):
        CoordinatorNet.load(tmp_path / "old.safetensors")
    out = export_dmp_rl(dmp_checkpoint, net, tmp_path / "rl")
    weights = out / "model.safetensors"
    arrays = {k: v for k, v in load_file(str(weights)).items() if k != "coordinator/coupling"}
    save_file(arrays, str(weights))
    with pytest.raises(CheckpointError, match=r"rl: coordinator without .* --train-coordinator"):
        load_policy(out)


def test_export_refuses_another_coupling_unless_overridden(ppo, dmp_checkpoint, tmp_path):
    """The net's actions correct its own layer's phase law: deploying it over another layer
    takes the explicit override (as the shared-bin rows do over the hand-set layer)."""
    trained_over = CouplingParams(repulsion_gain=19.0)
    net = CoordinatorNet.from_sb3(ppo, trained_over)
    with pytest.raises(ConfigError, match="differs from the one the coordinator was trained"):
        export_dmp_rl(dmp_checkpoint, net, tmp_path / "refused", CouplingParams())
    assert not (tmp_path / "refused").exists()
    same = export_dmp_rl(dmp_checkpoint, net, tmp_path / "same", CouplingParams(19.0))
    assert load_policy(same).params == trained_over
    other = export_dmp_rl(
        dmp_checkpoint, net, tmp_path / "other", CouplingParams(), override_coupling=True
    )
    assert load_policy(other).params == CouplingParams()


def test_export_writes_no_checkpoint_that_would_run_unshielded_or_over_another(
    ppo, dmp_checkpoint, tmp_path
) -> None:
    """Before: ``export_dmp_rl`` wrote a negative or NaN shield into a checkpoint that ran the
    arms unshielded (``info``: "distance shield nan m"), and wrote over whatever ``out`` held
    (a BC checkpoint became a DMP+RL config and weights beside the BC normalizer)."""
    import json
    import shutil

    net = CoordinatorNet.from_sb3(ppo, CouplingParams())
    for bad in (-0.01, 0.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="dmp shield_clearance must be a finite distance"):
            export_dmp_rl(dmp_checkpoint, net, tmp_path / "bad", shield_clearance=bad)
        assert not (tmp_path / "bad").exists()
    other = tmp_path / "other"  # another family's checkpoint (its policy_type alone differs)
    shutil.copytree(dmp_checkpoint, other)
    saved = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**saved, "policy_type": "bc"}))
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    with pytest.raises(ConfigError, match="a bc checkpoint that this run would overwrite"):
        export_dmp_rl(dmp_checkpoint, net, other)
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before
    with pytest.raises(ConfigError, match="a dmp checkpoint that this run would overwrite"):
        export_dmp_rl(dmp_checkpoint, net, dmp_checkpoint)  # the DMP checkpoint itself
    assert not load_policy(dmp_checkpoint).config.coordinator
    # an earlier export is replaced (a rerun's), from the run directory as from its checkpoint
    first = export_dmp_rl(dmp_checkpoint.parent, net, tmp_path / "rl", shield_clearance=0.02)
    assert export_dmp_rl(dmp_checkpoint, net, first).is_dir()
    assert load_policy(first).config.shield_clearance is None
    # a checkpoint with a bad shield (written before this check) is refused when loaded
    saved = json.loads((first / "config.json").read_text())
    saved["config"]["shield_clearance"] = float("nan")
    (first / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError, match="rl: dmp shield_clearance must be a finite"):
        load_policy(first)


def test_checkpoint_that_lost_its_coordinator_is_refused(ppo, dmp_checkpoint, tmp_path) -> None:
    from safetensors.numpy import load_file, save_file

    out = export_dmp_rl(
        dmp_checkpoint, CoordinatorNet.from_sb3(ppo, CouplingParams()), tmp_path / "rl"
    )
    weights = out / "model.safetensors"
    arrays = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("coordinator/")}
    save_file(arrays, str(weights))
    with pytest.raises(CheckpointError, match="coordinator"):
        load_policy(out)


def test_deploy_worker_call_acts_as_act_from_each_reset(ppo, dmp_checkpoint, tmp_path) -> None:
    """``predict_actions`` (the deploy worker's call) goes on with the running episode until
    ``reset``, as ``act`` does: the worker resets it at each of the node's episodes, the
    same scene's included."""
    out = export_dmp_rl(
        dmp_checkpoint, CoordinatorNet.from_sb3(ppo, CouplingParams()), tmp_path / "rl"
    )
    deployed, reference = load_policy(out), load_policy(out)
    env = make_env("bimanual_cross", "mujoco")
    for seed in (5, 5, 6):
        obs, _ = env.reset(seed=seed)
        deployed.reset()
        reference.reset()
        for _ in range(5):
            history = {k: np.asarray(v)[None] for k, v in obs.items()}
            action = deployed.predict_actions(history)
            assert action.shape == (1, 14)
            np.testing.assert_array_equal(action[0], reference.act(obs))
            obs, *_ = env.step(action[0])
    env.close()


def test_move_durations_set_tau_only_where_the_checkpoint_observes_them(dmp_checkpoint):
    """A checkpoint made to observe ``move_durations`` runs each move in the scene's time; one
    whose spec does not (made before the key existed) keeps its demonstrations' time, as it
    did when it was made. The durations (s) are no retrieval feature beside the metres."""
    policy = load_policy(dmp_checkpoint)
    assert "move_durations" in policy.spec["observation"]
    assert "move_durations" not in policy.config.scene_keys
    env = make_env("bimanual_cross", "mujoco")
    obs, _ = env.reset(seed=5)
    env.close()
    obs = dict(obs, move_durations=np.array([3.1, 2.7], dtype=np.float32))
    policy.act(obs)
    np.testing.assert_allclose(policy.controller._position_state.tau[:, 0], [3.1, 2.7], 1e-6)
    older = load_policy(dmp_checkpoint)
    del older.spec["observation"]["move_durations"]
    older.act(obs)
    demo_taus = [s.position.tau for s in older.segments]
    taus = older.controller._position_state.tau[:, 0]
    assert all(np.isclose(demo_taus, tau).any() for tau in taus), (taus, demo_taus)
    assert not np.isclose(taus, [3.1, 2.7]).any()
