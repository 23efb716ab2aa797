"""The two-arm DMP policy: trained from recorded bimanual_cross demos, saved, loaded, run in
MuJoCo and PyBullet, and refusing bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from robot_il.envs import make_env
from robot_il.policies import load_policy
from robot_il.policies.dmp.policy import DMPPolicy

from robot_il.errors import ActionError, DatasetError
from robot_il.train.dmp import train_dmp
from robot_il.train.evaluate import evaluate


@pytest.fixture(scope="module")
def cross_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from robot_il.train.demos import record_expert_demos

    return record_expert_demos("bimanual_cross", tmp_path_factory.mktemp("cross"), episodes=6)


@pytest.fixture(scope="module")
def checkpoint(cross_demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = train_dmp(str(cross_demos), tmp_path_factory.mktemp("dmp_run"))
    assert result.segments == 12  # each arm moves once per episode
    return result.checkpoint


def test_saved_checkpoint_loads_and_acts_identically(checkpoint: Path, cross_demos) -> None:
    first, second = load_policy(checkpoint), load_policy(checkpoint.parent)
    assert isinstance(first, DMPPolicy) and first.config == second.config
    (library_data,) = first.training_data  # the recording its library came from
    assert library_data["path"] == str(cross_demos) and library_data["episodes_used"] == 6
    env = make_env("bimanual_cross", "mujoco")
    obs, _ = env.reset(seed=3)
    for _ in range(30):
        action = first.act(obs)
        np.testing.assert_array_equal(action, second.act(obs))
        obs, *_ = env.step(action)
    env.close()


@pytest.mark.slow  # about 25 s on an idle 2-core machine
def test_coupled_dmps_beat_independent_ones_in_mujoco(checkpoint: Path) -> None:
    """On scenes where the arms start together, independent DMPs collide; coupled ones wait."""
    coupled = load_policy(checkpoint)
    independent = load_policy(checkpoint)
    independent.config = dataclasses.replace(independent.config, method="independent")
    env = make_env("bimanual_cross", "mujoco")
    # Seeds whose start delays differ by < 0.3 s: the paths meet in the middle.
    seeds = [s for s in range(60) if _delay_gap(env, s) < 0.3][:5]
    assert len(seeds) == 5
    wins = {}
    for name, policy in (("coupled", coupled), ("independent", independent)):
        wins[name] = sum(evaluate(policy, env, episodes=1, seed=s).successes[0] for s in seeds)
    env.close()
    assert wins["coupled"] >= 4 and wins["independent"] <= 1, wins


def test_policy_on_the_expert_library_commands_the_kinematic_benchmarks_path(checkpoint):
    """With the kinematic benchmark's DMPs as its library, the policy in MuJoCo commands
    what the kinematic controller computes for the same scene: the scene's goals, delays and
    move durations come from the observation (physics compares like with like)."""
    from robot_il.envs import cross_scenes as cs
    from robot_il.policies.dmp.cross_episodes import (
        expert_library,
        scene_controller,
        start_joints,
    )

    policy = load_policy(checkpoint)
    policy.segments = expert_library(policy.segments)
    policy.config = dataclasses.replace(policy.config, method="independent")
    seed = 4
    env = make_env("bimanual_cross", "mujoco")
    obs, _ = env.reset(seed=seed)
    scenes = cs.sample_scenes([seed])
    np.testing.assert_allclose(obs["move_durations"], scenes.duration[0], rtol=1e-6)
    kinematic = scene_controller(scenes, method="independent")
    ticks = int(round(policy.config.internal_hz / env.unwrapped.control_hz))
    moved = 0.0
    for _ in range(40):  # 2 s: both arms under way
        action = policy.act(obs)
        for _ in range(ticks):
            kinematic.tick(1.0 / policy.config.internal_hz)
        np.testing.assert_allclose(action[:6], kinematic.joints[0, 0], atol=2e-4)
        np.testing.assert_allclose(action[7:13], kinematic.joints[1, 0], atol=2e-4)
        moved = max(moved, float(np.abs(kinematic.joints - start_joints(scenes)).max()))
        obs, *_ = env.step(action)
    env.close()
    assert moved > 0.3  # the comparison covers real motion, not the arms at rest


def _delay_gap(env, seed: int) -> float:
    obs, _ = env.reset(seed=seed)
    return float(abs(obs["start_delays"][0] - obs["start_delays"][1]))


def test_robot_il_eval_runs_the_checkpoint_on_pybullet(checkpoint: Path, tmp_path: Path) -> None:
    from robot_il.cli import main

    assert main(["eval", "--checkpoint", str(checkpoint), "--episodes", "1",
                 "--backend", "pybullet", "--out", str(tmp_path)]) == 0  # fmt: skip
    assert (tmp_path / "eval.json").exists()


def test_goal_out_of_reach_is_refused_before_any_motion(checkpoint: Path) -> None:
    policy = load_policy(checkpoint)
    env = make_env("bimanual_cross", "mujoco")
    obs, _ = env.reset(seed=0)
    env.close()
    obs = dict(obs)
    obs["tool_goals"] = obs["tool_goals"].copy()
    obs["tool_goals"][3:] = [1.5, -0.3, 0.2]  # 1.5 m ahead: beyond the right arm's reach
    with pytest.raises(ActionError, match="right arm's goal .* out of reach") as info:
        policy.act(obs)
    assert "\n" not in str(info.value)
    assert policy.controller is None


def test_one_arm_dataset_is_refused_for_the_two_arm_controller(synthetic_dataset, tmp_path):
    with pytest.raises(DatasetError, match="needs keys left_eef_pose, right_eef_pose") as info:
        train_dmp(str(synthetic_dataset), tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_train_dmp_cli_with_cma_search_resumes_and_saves_the_best(
    cross_demos, tmp_path, capsys
) -> None:
    """A rerun continues the search under its own settings; others are refused (it went on
    over other scenes, and picked the best of costs that do not compare)."""
    import json

    from robot_il.cli import main

    argv = ["train", "dmp", "--dataset", str(cross_demos), "--out", str(tmp_path),
            "--search", "cma", "--popsize", "2"]  # fmt: skip
    assert main([*argv, "--search-scenes", "4", "--generations", "1"]) == 0
    assert "CMA-ES generation 1/1: best cost" in capsys.readouterr().out
    rerun = [*argv, "--search-scenes", "4", "--generations", "2"]
    assert main(rerun) == 0  # continues from the saved CMA-ES state
    log = tmp_path / "cma" / "search.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [row["generation"] for row in rows] == [0, 0, 1, 1]
    capsys.readouterr()
    assert main([*argv, "--search-scenes", "2", "--generations", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "this CMA-ES search started with other settings (scene_seeds 4 from seed" in err
    assert main([*argv, "--search-scenes", "4", "--generations", "3", "--n-bases", "20"]) == 2
    assert "other settings (primitives " in capsys.readouterr().err  # DMPs fitted otherwise
    assert len(log.read_text().splitlines()) == 4
    best = min(rows, key=lambda row: row["cost"])
    policy = load_policy(tmp_path)
    assert policy.config.search == "cma" and policy.config.coupling == best["params"]
    # a rerun without --search (to add --eval-episodes, say) replaced the tuned coupling by
    # the hand-set one without a word
    before = (tmp_path / "policy" / "config.json").read_bytes()
    assert main(argv[: argv.index("--search")]) == 2
    err = capsys.readouterr().err
    assert "its coupling was tuned by CMA-ES; this run would replace it by the hand-set" in err
    assert (tmp_path / "policy" / "config.json").read_bytes() == before


def test_dataset_too_short_to_learn_from_is_refused(tmp_path) -> None:
    from robot_il.dataset import DatasetWriter

    path = tmp_path / "short.zarr"
    attrs = {"task": "bimanual_cross", "action_mode": "joint"}
    with DatasetWriter.create(path, robot="ur5e", control_hz=20.0, attrs=attrs, fsync=False) as w:
        pose = np.tile(np.array([0.3, 0.2, 0.2, 0.0, 1.0, 0.0, 0.0], np.float32), (6, 1))
        pose[:, 0] += np.linspace(0.0, 0.1, 6, dtype=np.float32)  # moves, but for 6 samples
        joints = np.zeros((6, 6), np.float32)
        w.add_episode(
            {
                "left_eef_pose": pose,
                "right_eef_pose": pose,
                "left_joint_pos": joints,
                "right_joint_pos": joints,
                "action": np.zeros((6, 14), np.float32),
            }
        )
    with pytest.raises(DatasetError, match="no left arm movement of >= 10 samples") as info:
        train_dmp(str(path), tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_bimanual_handover_runs_from_dmps(tmp_path) -> None:
    """The handover replayed from library DMPs, its reaches moved to where the cube is."""
    from robot_il.train.demos import record_expert_demos

    demos = record_expert_demos("bimanual_handover", tmp_path / "demos", episodes=8)
    result = train_dmp(str(demos), tmp_path / "run")
    policy = load_policy(result.checkpoint)
    assert policy.config.playback == "sequence"
    env = make_env("bimanual_handover", "mujoco")
    outcome = evaluate(policy, env, episodes=5, seed=10_000)
    env.close()
    assert sum(outcome.successes) >= 4, outcome.line()


def test_a_run_on_other_demonstrations_is_refused_before_any_work(cross_demos, tmp_path):
    """train dmp into an --out holding a run on other data replaced its checkpoint (and went
    on with its CMA-ES search over another library) without a word."""
    from robot_il.errors import CheckpointError
    from robot_il.train.demos import record_expert_demos

    out = tmp_path / "dmp"
    first = train_dmp(str(cross_demos), out).checkpoint
    assert train_dmp(str(cross_demos), out).checkpoint == first  # the same data: fine
    before = (first / "config.json").read_text()
    other = record_expert_demos("bimanual_cross", tmp_path / "other", episodes=2, seed=50)
    with pytest.raises(CheckpointError, match="this run started on") as info:
        train_dmp(str(other), out)
    assert "\n" not in str(info.value)
    assert (first / "config.json").read_text() == before


def test_an_out_holding_a_dmp_rl_checkpoint_is_not_overwritten(cross_demos, tmp_path) -> None:
    """train dmp into a ``robot-il train dmp-rl`` run's --out (same data) replaced its DMP+RL
    checkpoint by a plain DMP one without a word, and the run could not export again."""
    from robot_il.policies.dmp.coordinator import ACTION_SIZE, OBSERVATION_SIZE, CoordinatorNet
    from robot_il.policies.dmp.coupling import CouplingParams

    from robot_il.errors import ConfigError
    from robot_il.train.coordinator import export_dmp_rl

    dmp = train_dmp(str(cross_demos), tmp_path / "dmp").checkpoint
    shapes = [(8, OBSERVATION_SIZE), (ACTION_SIZE, 8)]
    net = CoordinatorNet([np.zeros(s) for s in shapes], [np.zeros(s[0]) for s in shapes],
                         CouplingParams())  # fmt: skip
    run = tmp_path / "rl"
    exported = export_dmp_rl(dmp, net, run / "policy", shield_clearance=0.02)
    before = (exported / "config.json").read_text()
    with pytest.raises(ConfigError, match="a DMP \\+ RL checkpoint that this run would overwrite"):
        train_dmp(str(cross_demos), run)
    assert (exported / "config.json").read_text() == before


def test_train_dmp_in_the_out_of_a_running_training_is_refused(cross_demos, tmp_path, capsys):
    """Before: ``robot-il train dmp`` took no run lock: given the --out of a training still
    running there (a CMA search runs for hours), it saved its checkpoint under the other's."""
    from robot_il.cli import main
    from robot_il.train.trainer import lock_run

    out = tmp_path / "run"
    argv = ["train", "dmp", "--dataset", str(cross_demos), "--out", str(out)]
    with lock_run(out):  # another training holds it
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "another training runs in this --out" in err and len(err.splitlines()) == 1
        assert not (out / "policy").exists()
    assert main(argv) == 0  # once it has ended
