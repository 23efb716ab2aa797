"""Online fine-tuning on a person's corrections: recording, the simulated correcting person,
and the fine-tuning update, on real MuJoCo rollouts, real zarr datasets and real torch steps.

The learning test starts from a deliberately weak BC policy (5 reach demonstrations, trained
to a plateau, about 10% success), lets the simulated person correct it over 30 deployed
episodes, fine-tunes, and evaluates on the same 40 seeds before and after. A control
fine-tunes the same way on expert episodes at the demonstration seeds (no state the policy
visited): the gain must beat both the original and the control by a one-sided permutation
test at p < 0.05.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from robot_il.errors import ConfigError, DatasetError

BC_REACH = Path(__file__).parents[1] / "ros" / "fixtures" / "bc_reach"
"""Trained by the ``trained_checkpoints`` fixture (tests/conftest.py)."""

pytestmark = pytest.mark.usefixtures("trained_checkpoints")
EVAL_SEED, EVAL_EPISODES = 1000, 40
DEPLOY_SEED, DEPLOY_EPISODES = 500, 30
DEMO_EPISODES = 5


def digest(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, by relative path."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@dataclass
class Experiment:
    original: Path
    original_digest: dict[str, str]
    corrections: Path
    finetuned: Path
    control: Path
    before: list[bool]
    after: list[bool]
    after_control: list[bool]
    takeovers: int


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    from robot_il.policies import load_policy
    from robot_il.policies.spec import spec_from_env

    from robot_il.select.correcting_person import (
        SimulatedCorrectingPerson,
        record_expert_segments,
        run_supervised_episode,
    )
    from robot_il.select.corrections import CorrectionsRecorder
    from robot_il.train.config import BCTrainConfig, EvalConfig
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.evaluate import evaluate, make_eval_env
    from robot_il.train.finetune import FinetuneSettings, finetune_checkpoint
    from robot_il.train.trainer import train

    work = tmp_path_factory.mktemp("finetune")
    demos = record_expert_demos("reach", work / "demos", episodes=DEMO_EPISODES, seed=0)
    config = BCTrainConfig(
        dataset=str(demos), out=str(work / "run"), steps=1500, batch_size=256,
        warmup_steps=10, progress=False, eval=EvalConfig(episodes=0),
    )  # fmt: skip
    config.policy.obs_keys = ("joint_pos", "target_pos")
    config.policy.hidden_dims = (128, 128)
    original = train(config).checkpoint
    original_digest = digest(original)

    policy = load_policy(original)
    env = make_eval_env(policy.spec)
    try:
        before = evaluate(policy, env, episodes=EVAL_EPISODES, seed=EVAL_SEED).successes
        person = SimulatedCorrectingPerson(env)
        corrections = work / "corrections.zarr"
        with CorrectionsRecorder.open(corrections, spec_from_env(env), fsync=False) as recorder:
            episodes = [
                run_supervised_episode(env, policy, person, recorder, seed=DEPLOY_SEED + i)
                for i in range(DEPLOY_EPISODES)
            ]
        control_data = work / "control.zarr"
        with CorrectionsRecorder.open(control_data, spec_from_env(env), fsync=False) as recorder:
            record_expert_segments(env, recorder, range(DEMO_EPISODES))
        settings = FinetuneSettings(steps=300, lr=1e-3)
        finetuned = finetune_checkpoint(
            original, corrections, work / "finetuned", demos_path=demos, settings=settings
        )
        control = finetune_checkpoint(
            original, control_data, work / "control", demos_path=demos, settings=settings
        )
        after = evaluate(load_policy(finetuned), env, episodes=EVAL_EPISODES, seed=EVAL_SEED)
        after_control = evaluate(load_policy(control), env, episodes=EVAL_EPISODES, seed=EVAL_SEED)
    finally:
        env.close()
    return Experiment(
        original, original_digest, corrections, finetuned, control, before,
        after.successes, after_control.successes,
        sum(e.takeover_step is not None for e in episodes),
    )  # fmt: skip


def test_corrections_improve_a_weak_policy_beyond_chance(experiment: Experiment) -> None:
    from robot_il.train.stats import permutation_test

    before, after, control = experiment.before, experiment.after, experiment.after_control
    assert sum(before) <= EVAL_EPISODES // 4, f"the starting policy is not weak: {sum(before)}"
    assert experiment.takeovers >= DEPLOY_EPISODES // 2, "the person rarely had to intervene"
    summary = f"before {sum(before)}, after {sum(after)}, control {sum(control)} / {len(after)}"
    assert permutation_test(after, before) < 0.05, summary
    assert permutation_test(after, control) < 0.05, summary


def test_original_checkpoint_is_untouched(experiment: Experiment) -> None:
    assert digest(experiment.original) == experiment.original_digest
    assert digest(experiment.finetuned) != experiment.original_digest


def test_lineage_names_parent_corrections_and_settings(experiment: Experiment, tmp_path) -> None:
    from robot_il.policies import load_policy

    from robot_il.train.finetune import FinetuneSettings, finetune_checkpoint, read_lineage

    assert read_lineage(experiment.original) == []
    (entry,) = read_lineage(experiment.finetuned)
    assert entry["parent"] == str(experiment.original.resolve())
    weights = (experiment.original / "model.safetensors").read_bytes()
    assert entry["parent_weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert entry["corrections"] == str(experiment.corrections.resolve())
    assert entry["corrections_segments"] >= experiment.takeovers
    assert entry["settings"]["lr"] == 1e-3 and entry["settings"]["steps"] == 300
    # the datasets it learned from (robot_il.provenance): its parent's, the corrections, then
    # the demonstrations mixed in, here the parent's own (the same fingerprint)
    original, finetuned = (json.loads((c / "config.json").read_text())["provenance"]
                           for c in (experiment.original, experiment.finetuned))  # fmt: skip
    (trained_on,) = original["training_data"]
    inherited, corrections, demos = finetuned["training_data"]
    assert inherited == trained_on and Path(corrections["path"]) == experiment.corrections
    assert corrections["episodes_used"] == entry["corrections_segments"]
    assert demos["fingerprint"] == trained_on["fingerprint"] != corrections["fingerprint"]

    again = finetune_checkpoint(
        experiment.finetuned, experiment.corrections, tmp_path / "again",
        settings=FinetuneSettings(steps=2, batch_size=8),
    )  # fmt: skip
    chain = read_lineage(again)
    assert [e["parent"] for e in chain] == [
        str(experiment.original.resolve()),
        str(experiment.finetuned.resolve()),
    ]
    assert chain[1]["demos"] is None
    load_policy(again)  # a fine-tuned checkpoint is a normal checkpoint


def test_corrections_dataset_validates_and_holds_the_corrected_segments(
    experiment: Experiment,
) -> None:
    from robot_il.dataset import Dataset
    from robot_il.dataset.validate import validate

    report = validate(experiment.corrections)
    assert report.ok, report.problems
    dataset = Dataset.open(experiment.corrections)
    assert dataset.attrs["kind"] == "corrections"
    assert dataset.num_episodes == experiment.takeovers
    for episode in range(dataset.num_episodes):
        meta = dataset.meta(episode)
        assert DEPLOY_SEED <= meta["seed"] < DEPLOY_SEED + DEPLOY_EPISODES
        assert meta["takeover_step"] >= 1
        assert dataset.episode(episode)["action"].shape[1] == 7


def record_one_correction(path: Path, **env_kwargs) -> None:
    """One corrected segment of the reach expert in an env made with ``env_kwargs``."""
    from robot_il.select.correcting_person import record_expert_corrections

    record_expert_corrections(path, "reach", [0], fsync=False, **env_kwargs)


def test_corrections_for_another_action_mode_are_refused(tmp_path: Path) -> None:
    from robot_il.train.finetune import finetune_checkpoint

    corrections = tmp_path / "eef.zarr"
    record_one_correction(corrections, action_mode="eef_delta")
    with pytest.raises(DatasetError, match=r"eef\.zarr: .*another robot.*action_mode"):
        finetune_checkpoint(BC_REACH, corrections, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corrections_for_another_robot_are_refused_and_kept(tmp_path: Path) -> None:
    from robot_il.envs import make_env
    from robot_il.policies.spec import spec_from_env

    from robot_il.dataset import Dataset
    from robot_il.select.corrections import CorrectionsRecorder
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.finetune import finetune_checkpoint

    corrections = tmp_path / "corrections.zarr"
    record_one_correction(corrections)
    env = make_env("reach")
    other_robot = dict(spec_from_env(env), robot="panda")
    env.close()
    with pytest.raises(DatasetError, match=r"robot 'ur5e' != expected 'panda'"):
        CorrectionsRecorder.open(corrections, other_robot)
    assert Dataset.open(corrections).num_episodes == 1  # nothing recorded is lost

    panda = tmp_path / "panda.zarr"
    with CorrectionsRecorder.open(panda, other_robot, fsync=False):
        pass  # created for the other robot, no segment yet: judged by its attrs
    with pytest.raises(DatasetError, match=r"panda\.zarr: .*robot 'panda' != expected 'ur5e'"):
        finetune_checkpoint(BC_REACH, panda, tmp_path / "out")
    demos = record_expert_demos("reach", tmp_path / "demos", episodes=1)
    with pytest.raises(DatasetError, match="not a corrections dataset"):
        finetune_checkpoint(BC_REACH, demos, tmp_path / "out")


def test_new_checkpoint_must_go_to_a_new_directory(tmp_path: Path) -> None:
    from robot_il.train.finetune import finetune_checkpoint

    corrections = tmp_path / "corrections.zarr"
    record_one_correction(corrections)
    before = digest(BC_REACH)
    for out in (BC_REACH, tmp_path):
        with pytest.raises(ConfigError, match="does not exist"):
            finetune_checkpoint(BC_REACH, corrections, out)
    assert digest(BC_REACH) == before


def test_a_segment_under_way_is_dropped_and_committed_ones_kept(tmp_path: Path) -> None:
    from robot_il.envs import make_env
    from robot_il.policies.spec import spec_from_env

    from robot_il.dataset import Dataset
    from robot_il.select.corrections import CorrectionsRecorder

    env = make_env("reach")
    obs, _ = env.reset(seed=0)
    spec = spec_from_env(env)
    env.close()
    action = np.concatenate([obs["joint_pos"], [0.0]]).astype(np.float32)
    with CorrectionsRecorder.open(tmp_path / "c.zarr", spec, fsync=False) as recorder:
        recorder.begin(seed=0)
        recorder.append(obs, action)
        assert recorder.commit() == 0
        recorder.begin(seed=1)
        recorder.append(obs, action)  # the episode ends (or the process dies) mid-correction
    with CorrectionsRecorder.open(tmp_path / "c.zarr", spec, fsync=False) as recorder:
        assert recorder.num_segments == 1
        recorder.begin()
        assert recorder.commit() is None  # an empty segment is not an episode
        with pytest.raises(DatasetError, match="outside a corrected segment"):
            recorder.append(obs, action)
    assert Dataset.open(tmp_path / "c.zarr").meta(0)["seed"] == 0


def test_drift_monitor_takes_over_on_stall_or_regress_not_on_progress() -> None:
    from robot_il.select.correcting_person import DriftMonitor

    monitor = DriftMonitor(patience=3, min_improvement=0.01, regress=0.2)
    assert not any(monitor.drifted(r) for r in np.linspace(0.1, 0.9, 30))
    monitor.reset()
    assert [monitor.drifted(r) for r in (0.5, 0.5, 0.505, 0.5)] == [False, False, False, True]
    monitor.reset()
    assert [monitor.drifted(r) for r in (0.6, 0.65, 0.4)] == [False, False, True]


@pytest.mark.slow
def test_finetuning_a_diffusion_checkpoint_keeps_it_loadable(tmp_path: Path) -> None:
    from robot_il.policies import load_policy

    from robot_il.train.config import DiffusionTrainConfig, EvalConfig
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.finetune import FinetuneSettings, finetune_checkpoint
    from robot_il.train.trainer import train

    demos = record_expert_demos("reach", tmp_path / "demos", episodes=2)
    config = DiffusionTrainConfig(
        dataset=str(demos), out=str(tmp_path / "run"), steps=20, batch_size=16,
        warmup_steps=2, progress=False, eval=EvalConfig(episodes=0),
    )  # fmt: skip
    config.policy.obs_keys = ("joint_pos", "target_pos")
    original = train(config).checkpoint
    corrections = tmp_path / "corrections.zarr"
    record_one_correction(corrections)
    out = finetune_checkpoint(
        original, corrections, tmp_path / "ft", demos_path=demos,
        settings=FinetuneSettings(steps=5, batch_size=8),
    )  # fmt: skip
    policy = load_policy(out)
    obs = {"joint_pos": np.zeros(6, np.float32), "target_pos": np.full(3, 0.4, np.float32)}
    assert np.isfinite(policy.act(obs)).all()
    assert json.loads((out / "config.json").read_text())["policy_type"] == "diffusion"


def test_online_finetuner_updates_the_deployed_candidate_and_resumes(tmp_path: Path) -> None:
    from robot_il.select.online_finetune import OnlineFinetuner
    from robot_il.train.finetune import FinetuneSettings, read_lineage

    corrections, out_root = tmp_path / "corrections.zarr", tmp_path / "finetuned"
    before = digest(BC_REACH)
    finetuner = OnlineFinetuner(
        corrections, out_root, settings=FinetuneSettings(steps=2, batch_size=8)
    )
    assert finetuner.after_episode(BC_REACH) is None  # no correction recorded yet
    assert finetuner.checkpoint_for(BC_REACH) == BC_REACH

    record_one_correction(corrections)
    first = finetuner.after_episode(BC_REACH)
    assert first.parent == out_root and re.fullmatch(r"bc_reach-[0-9a-f]{8}-ft001", first.name)
    assert finetuner.checkpoint_for(BC_REACH) == first
    assert finetuner.after_episode(BC_REACH) is None  # nothing new since

    record_one_correction(corrections)  # appends a second segment
    second = finetuner.after_episode(BC_REACH)
    assert second == out_root / first.name.replace("-ft001", "-ft002")
    assert [e["corrections_segments"] for e in read_lineage(second)] == [1, 2]
    assert read_lineage(second)[-1]["parent"] == str(first.resolve())

    restarted = OnlineFinetuner(corrections, out_root, min_new_segments=2)
    assert restarted.checkpoint_for(BC_REACH) == second
    assert restarted.after_episode(BC_REACH) is None
    assert digest(BC_REACH) == before


def test_online_finetuner_keeps_candidates_of_one_name_apart(tmp_path: Path, monkeypatch) -> None:
    """``runs/seed0/bc/policy``, ``runs/seed1/bc/policy`` and ``bc`` are three checkpoints of
    one folder name: each gets its own fine-tuned series (they all took ``bc-ft001`` when the
    name alone chose it), and a run and its ``policy/`` share theirs."""
    from robot_il.select.online_finetune import OnlineFinetuner
    from robot_il.train.finetune import FinetuneSettings, read_lineage

    monkeypatch.chdir(tmp_path)  # the bare name "bc" is relative, as a candidate may be
    seed0, seed1, bare = Path("runs/seed0/bc/policy"), Path("runs/seed1/bc/policy"), Path("bc")
    for candidate in (seed0, seed1, bare):
        shutil.copytree(BC_REACH, candidate)
    corrections = tmp_path / "corrections.zarr"
    record_one_correction(corrections)
    finetuner = OnlineFinetuner(
        corrections, tmp_path / "ft", settings=FinetuneSettings(steps=2, batch_size=8)
    )
    tuned = finetuner.after_episode(seed0)
    assert re.fullmatch(r"bc-[0-9a-f]{8}-ft001", tuned.name)
    assert finetuner.checkpoint_for(seed0) == finetuner.checkpoint_for(seed0.parent) == tuned
    assert finetuner.checkpoint_for(seed1) == seed1 and finetuner.checkpoint_for(bare) == bare
    other = finetuner.after_episode(seed1)  # its own first fine-tuning, not seed0's second
    assert other.name.endswith("-ft001") and other != tuned
    assert read_lineage(other)[0]["parent"] == str(seed1.resolve())
    assert finetuner.checkpoint_for(seed0) == tuned and finetuner.checkpoint_for(bare) == bare


def test_online_finetuner_continues_a_candidates_series_of_the_old_naming(
    tmp_path: Path, monkeypatch
) -> None:
    """Checkpoints fine-tuned before the names carried a hash are ``<name>-ftNNN``: a
    deployment restarted since silently began again from the original. The candidate they
    descend from (by their lineage) continues them; another candidate of that folder name
    does not take them."""
    from robot_il.select.online_finetune import OnlineFinetuner
    from robot_il.train.finetune import FinetuneSettings, read_lineage

    monkeypatch.chdir(tmp_path)
    seed0, seed1 = Path("runs/seed0/bc/policy"), Path("runs/seed1/bc/policy")
    for candidate in (seed0, seed1):
        shutil.copytree(BC_REACH, candidate)
    corrections, out_root = tmp_path / "corrections.zarr", tmp_path / "ft"
    record_one_correction(corrections)
    settings = FinetuneSettings(steps=2, batch_size=8)
    old_style = out_root / "bc-ft001"  # what seed0's fine-tuning was named before the hash
    OnlineFinetuner(corrections, out_root, settings=settings).after_episode(seed0).rename(old_style)

    restarted = OnlineFinetuner(corrections, out_root, settings=settings)
    assert restarted.checkpoint_for(seed0) == restarted.checkpoint_for(seed0.parent) == old_style
    assert restarted.checkpoint_for(seed1) == seed1
    assert restarted.after_episode(seed0) is None  # its corrections were used already

    record_one_correction(corrections)
    second = restarted.after_episode(seed0)
    assert re.fullmatch(r"bc-[0-9a-f]{8}-ft002", second.name)
    assert read_lineage(second)[-1]["parent"] == str(old_style.resolve())
    assert restarted.checkpoint_for(seed0) == second
    assert restarted.after_episode(seed1).name.endswith("-ft001")  # its own series
