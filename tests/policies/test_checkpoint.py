"""Checkpoints: a save/load round trip acts identically; a checkpoint for another robot,
rate or observation spec is refused with ``CheckpointError`` before any rollout."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import torch
from robot_il.policies import load_policy
from robot_il.policies.bc import BCConfig, BCPolicy
from robot_il.policies.diffusion import DiffusionConfig, DiffusionPolicy
from robot_il.policies.spec import spec_from_dataset, spec_from_env

from robot_il.dataset import Dataset, Normalizer
from robot_il.errors import CheckpointError, ConfigError
from robot_il.train.evaluate import make_eval_env

OBS_KEYS = ["joint_pos", "target_pos"]


def _policy(policy_class, config, dataset_path: Path, **observation):
    """A fresh policy; ``observation`` overrides shapes in its spec (a policy for other data)."""
    dataset = Dataset.open(dataset_path)
    spec = spec_from_dataset(dataset, OBS_KEYS, str(dataset_path))
    spec["observation"].update(observation)
    normalizer = Normalizer.fit(dataset, [*OBS_KEYS, "action"])
    torch.manual_seed(0)
    return policy_class(config, spec, normalizer).eval()


def _rollout_actions(policy, steps: int = 12) -> np.ndarray:
    """Actions for a fixed observation sequence, with torch's RNG reset (diffusion samples)."""
    rng = np.random.default_rng(3)
    torch.manual_seed(0)
    policy.reset()
    return np.stack(
        [
            policy.act(
                {
                    "joint_pos": rng.uniform(-1, 1, 6).astype(np.float32),
                    "target_pos": rng.uniform(-1, 1, 3).astype(np.float32),
                }
            )  # fmt: skip
            for _ in range(steps)
        ]
    )


@pytest.mark.parametrize(
    ("policy_class", "config"),
    [
        (
            BCPolicy,
            BCConfig(obs_keys=tuple(OBS_KEYS), head="gaussian", horizon=4, n_action_steps=2),
        ),  # fmt: skip
        (DiffusionPolicy, DiffusionConfig(obs_keys=tuple(OBS_KEYS), down_dims=(16, 32))),
    ],
)
def test_round_trip_gives_identical_actions(
    policy_class, config, synthetic_dataset: Path, tmp_path: Path
) -> None:
    policy = _policy(policy_class, config, synthetic_dataset)
    before = _rollout_actions(policy)
    policy.save(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {
        "model.safetensors", "config.json", "normalizer.safetensors"
    }  # fmt: skip
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert saved["policy_type"] == policy.policy_type
    assert saved["spec"]["robot"] == "ur5e"
    loaded = load_policy(tmp_path / "ckpt")
    assert type(loaded) is policy_class
    np.testing.assert_array_equal(_rollout_actions(loaded), before)


def test_a_checkpoint_records_the_code_and_libraries_that_made_it(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """Reproducing a result starts from what made it: this checkout's commit (and whether it
    held uncommitted changes), the libraries' versions, the CPU, the time of the save."""
    from robot_il.provenance import REPOSITORY, describe

    _policy(BCPolicy, BCConfig(obs_keys=tuple(OBS_KEYS)), synthetic_dataset).save(tmp_path / "c")
    record = json.loads((tmp_path / "c" / "config.json").read_text())["provenance"]
    head = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert record["git"]["commit"] == head and isinstance(record["git"]["dirty"], bool)
    assert record["libraries"]["torch"] == torch.__version__
    assert record["libraries"]["numpy"] == np.__version__
    saved = datetime.fromisoformat(record["saved_utc"])
    assert abs((datetime.now(timezone.utc) - saved).total_seconds()) < 600
    line = describe(record)
    assert f"at git {head[:10]}" in line and f"torch {torch.__version__}" in line
    assert "\n" not in line
    assert describe(None).startswith("provenance unknown")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_checkpoint_saved_onto_a_full_disk_fails_as_an_oserror(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """safetensors' own SafetensorError ('No space left on device (os error 28)') got past
    the CLI's one-line report of a full disk as a traceback; the weights file is linked to
    /dev/full, which answers every write with ENOSPC."""
    import errno

    policy = _policy(BCPolicy, BCConfig(obs_keys=tuple(OBS_KEYS)), synthetic_dataset)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").symlink_to("/dev/full")
    with pytest.raises(OSError) as raised:
        policy.save(tmp_path / "ckpt")
    assert raised.value.errno == errno.ENOSPC


def test_checkpoint_for_other_robot_is_refused(synthetic_dataset: Path, tmp_path: Path) -> None:
    policy = _policy(BCPolicy, BCConfig(obs_keys=tuple(OBS_KEYS)), synthetic_dataset)
    policy.save(tmp_path / "ckpt")
    expected = dict(policy.spec, robot="panda")
    with pytest.raises(CheckpointError, match="robot 'panda' != trained 'ur5e'"):
        load_policy(tmp_path / "ckpt", expected_spec=expected)


def test_checkpoint_for_other_observation_spec_is_refused_before_rollout(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """A wrong shape is found when the eval env is made; a missing camera when loading."""
    from robot_il.envs import make_env

    config = BCConfig(obs_keys=tuple(OBS_KEYS))
    _policy(BCPolicy, config, synthetic_dataset, target_pos=[9]).save(tmp_path / "wide")
    with pytest.raises(CheckpointError, match=r"'target_pos' shape \[3\] != \[9\]"):
        make_eval_env(load_policy(tmp_path / "wide").spec)
    camera = _policy(BCPolicy, config, synthetic_dataset, rgb_wrist=[32, 32, 3])
    camera.save(tmp_path / "camera")
    env = make_env("reach")
    try:
        with pytest.raises(CheckpointError, match="'rgb_wrist' missing"):
            load_policy(tmp_path / "camera", expected_spec=spec_from_env(env))
    finally:
        env.close()


def test_checkpoint_for_other_control_rate_is_refused(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    policy = _policy(BCPolicy, BCConfig(obs_keys=tuple(OBS_KEYS)), synthetic_dataset)
    policy.save(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="control_hz 10.0 != trained 20.0"):
        load_policy(tmp_path / "ckpt", expected_spec=dict(policy.spec, control_hz=10.0))


def test_unreadable_checkpoints_raise_checkpoint_error(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint directory$"):
        load_policy(tmp_path / "missing")
    # a relative path names the folder it was looked for from (run from another folder)
    with pytest.raises(CheckpointError, match=r"no such checkpoint directory \(relative to /"):
        load_policy("outputs/missing_run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_policy(tmp_path / "empty")
    policy = _policy(BCPolicy, BCConfig(obs_keys=tuple(OBS_KEYS)), synthetic_dataset)
    policy.save(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(dict(config, policy_type="gpt")))
    with pytest.raises(CheckpointError, match="unknown policy type 'gpt'"):
        load_policy(tmp_path / "ckpt")
    config["config"]["hidden_dims"] = [8]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_policy(tmp_path / "ckpt")


def test_fewer_action_steps_replan_every_step(synthetic_dataset: Path) -> None:
    """A checkpoint trained to execute 2 of 4 actions, set to execute 1, runs the network on
    every observation and acts with each chunk's first action."""
    config = BCConfig(obs_keys=tuple(OBS_KEYS), horizon=4, n_action_steps=2)
    policy = _policy(BCPolicy, config, synthetic_dataset)
    trained = _rollout_actions(policy, steps=6)
    calls = []
    predict_chunk = policy.predict_chunk
    policy.predict_chunk = lambda batch: calls.append(1) or predict_chunk(batch)
    policy.set_action_steps(1)
    replanned = _rollout_actions(policy, steps=6)
    assert len(calls) == 6
    assert policy.config.n_action_steps == 1
    # the same observations: first actions of a chunk agree, the executed second ones do not
    np.testing.assert_allclose(replanned[::2], trained[::2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(replanned[1::2], trained[1::2], atol=1e-4)


def test_more_action_steps_than_the_chunk_holds_are_refused(synthetic_dataset: Path) -> None:
    policy = _policy(BCPolicy, BCConfig(obs_keys=tuple(OBS_KEYS), horizon=4, n_action_steps=2),
                     synthetic_dataset)  # fmt: skip
    policy._queue.append(np.zeros(6, np.float32))
    with pytest.raises(ConfigError, match="n_action_steps 5: horizon 4 < n_obs_steps"):
        policy.set_action_steps(5)
    assert policy.config.n_action_steps == 2 and len(policy._queue) == 1  # nothing changed
