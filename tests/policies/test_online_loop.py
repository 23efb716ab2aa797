"""The online training loop (``robot_il.train.online``) with OPT-AIL on the real reach env:
buffers, expert transitions, a kill and resume, the CLI, and refusing bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_il.dataset import Dataset, DatasetWriter, Normalizer
from robot_il.errors import CheckpointError, ConfigError, DatasetError
from robot_il.train.replay import ReplayBuffer, expert_buffer, flatten_observation

ROBOT_IL = str(Path(sys.executable).with_name("robot-il"))
SMALL = ["--no-progress", "--learning-starts", "40", "--log-every", "50",
         "--policy.hidden-dims", "32", "32", "--policy.batch-size", "32",
         "--policy.optimism-states", "16"]  # fmt: skip


@pytest.fixture(scope="module")
def one_reach_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scripted reach demonstration (joint mode), recorded through the recorder."""
    from robot_il.train.demos import record_expert_demos

    return record_expert_demos("reach", tmp_path_factory.mktemp("reach1"), episodes=1, seed=3)


def train_command(dataset: Path, out: Path, *settings: str) -> list[str]:
    return [ROBOT_IL, "train", "opt-ail", "--dataset", str(dataset), "--out", str(out),
            *SMALL, *settings]  # fmt: skip


RUN = ("--env-steps", "320", "--save-every", "80", "--eval.every", "160", "--eval.episodes", "1")
"""Four reach episodes (80 steps each, truncated by the time limit), a save after each."""


@pytest.fixture(scope="module")
def straight_run(one_reach_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of ``RUN`` through ``robot-il train opt-ail``, never interrupted."""
    out = tmp_path_factory.mktemp("straight") / "run"
    subprocess.run(train_command(one_reach_demo, out, *RUN), check=True, capture_output=True,
                   timeout=600)  # fmt: skip
    return out


def test_replay_buffer_samples_uniformly_and_overwrites_the_oldest(tmp_path) -> None:
    buffer = ReplayBuffer(10, obs_dim=1, action_dim=1)
    for i in range(13):  # 0, 1, 2 are overwritten by 10, 11, 12
        buffer.add(np.array([i]), np.array([i]), np.array([i + 1]), terminated=i == 12)
    assert len(buffer) == 10 and sorted(buffer.obs[:, 0]) == list(range(3, 13))
    draws = buffer.sample(np.random.default_rng(0), 100_000).obs[:, 0].astype(int)
    counts = np.bincount(draws - 3, minlength=10)
    chi2 = float(((counts - 10_000) ** 2 / 10_000).sum())
    assert chi2 < 27.88, counts  # chi-square, 9 degrees of freedom, p = 0.001
    buffer.save(tmp_path / "replay.npz")
    restored = ReplayBuffer(10, obs_dim=1, action_dim=1)
    restored.load(tmp_path / "replay.npz")
    np.testing.assert_array_equal(restored.obs, buffer.obs)
    assert restored.cursor == buffer.cursor == 3 and restored.terminated.sum() == 1


def test_a_saved_replay_buffer_loads_into_a_larger_one_oldest_first(tmp_path) -> None:
    """A run given a larger budget sizes its buffer by it (``buffer_size`` 0): the saved
    transitions load oldest first and the next one follows them, whether the saved ring had
    wrapped or not; a buffer too small for them is refused, naming both sizes."""
    wrapped, partial = ReplayBuffer(5, obs_dim=1, action_dim=1), ReplayBuffer(8, 1, 1)
    for i in range(7):  # 0 and 1 overwritten by 5 and 6: the ring holds 5 6 2 3 4
        wrapped.add(np.array([i]), np.array([-i]), np.array([i + 1]), terminated=i == 4)
        partial.add(np.array([i]), np.array([-i]), np.array([i + 1]), terminated=i == 4)
    for saved, oldest_first in ((wrapped, [2, 3, 4, 5, 6]), (partial, list(range(7)))):
        saved.save(tmp_path / "replay.npz")
        larger = ReplayBuffer(12, obs_dim=1, action_dim=1)
        larger.load(tmp_path / "replay.npz")
        n = len(oldest_first)
        assert len(larger) == n and larger.cursor == n
        np.testing.assert_array_equal(larger.obs[:n, 0], oldest_first)
        np.testing.assert_array_equal(larger.action[:n, 0], -np.array(oldest_first))
        np.testing.assert_array_equal(larger.next_obs[:n, 0], np.array(oldest_first) + 1)
        np.testing.assert_array_equal(larger.terminated[:n], np.array(oldest_first) == 4)
        larger.add(np.array([7]), np.array([-7]), np.array([8]), terminated=False)
        assert larger.obs[n, 0] == 7 and len(larger) == n + 1
    with pytest.raises(CheckpointError, match=r"replay\.npz: the saved replay buffer holds 7 "
                       r"transitions, more than this run's capacity 6 "):  # fmt: skip
        ReplayBuffer(6, obs_dim=1, action_dim=1).load(tmp_path / "replay.npz")


def test_expert_buffer_holds_whole_trajectories_and_subsamples(tmp_path) -> None:
    path = tmp_path / "d.zarr"
    with DatasetWriter.create(path, robot="ur5e", control_hz=20.0, fsync=False) as writer:
        for length in (600, 700):  # longer than the reference loader's 499-step cut
            state = np.arange(length, dtype=np.float32)[:, None]
            writer.add_episode({"state": state, "action": -state})
    dataset = Dataset.open(path)
    whole = expert_buffer(dataset, ["state"], episodes=2, subsample=1, seed=0)
    assert len(whole) == 599 + 699
    np.testing.assert_array_equal(whole.next_obs, whole.obs + 1)  # obs_t -> obs_t+1
    np.testing.assert_array_equal(whole.action, -whole.obs)
    assert whole.obs[:599, 0].max() == 598 and whole.terminated.sum() == 0
    sub = expert_buffer(dataset, ["state"], episodes=1, subsample=20, seed=0)
    steps = sub.obs[:, 0].astype(int)
    assert len(sub) in (29, 30) and set(np.diff(steps)) == {20}


def test_expert_buffer_maps_observations_by_the_normalizer(tmp_path) -> None:
    path = tmp_path / "d.zarr"
    with DatasetWriter.create(path, robot="ur5e", control_hz=20.0, fsync=False) as writer:
        state = np.arange(40, dtype=np.float32).reshape(20, 2)
        writer.add_episode({"state": state, "action": np.zeros((20, 1), np.float32)})
    dataset = Dataset.open(path)
    normalizer = Normalizer.fit(dataset, ["state"], mode="gaussian")
    mapped = expert_buffer(dataset, ["state"], episodes=1, subsample=1, seed=0,
                           normalizer=normalizer)  # fmt: skip
    np.testing.assert_allclose(mapped.obs, normalizer.normalize("state", state[:-1]), rtol=1e-6)
    np.testing.assert_allclose(mapped.next_obs, normalizer.normalize("state", state[1:]),
                               rtol=1e-6)  # fmt: skip
    assert abs(mapped.obs.mean()) < 0.2 and mapped.obs.std() > 0.9  # not the raw 0..38
    np.testing.assert_array_equal(
        mapped.obs[3], flatten_observation({"state": state[3]}, ["state"], normalizer)
    )


NORMALIZED = ("--policy.normalize-observations", "--policy.normalization", "gaussian",
              "--save-every", "80", "--eval.episodes", "0", "--buffer-size", "400")  # fmt: skip


def test_normalized_observations_are_the_demos_statistics_frozen_and_checked_on_resume(
    one_reach_demo: Path, tmp_path: Path
) -> None:
    """With ``normalize_observations`` the networks see the demonstrations' mean and std
    (std floored), fitted before the run: the checkpoint carries them, unchanged from the
    fit after 40 updates, the replay buffer holds observations mapped by them as ``act``
    maps its input, a resumed run whose saved statistics differ (or that saved none: raw
    observations) is refused before it touches the saved state, and one whose statistics
    match resumes keeping them."""
    from robot_il.envs import make_env
    from robot_il.policies import load_policy
    from safetensors.numpy import load_file, save_file

    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    out = tmp_path / "run"

    def run(env_steps: int):
        return train_online(load_config("opt_ail", None, [
            "--dataset", str(one_reach_demo), "--out", str(out), *SMALL, *NORMALIZED,
            "--env-steps", str(env_steps)]))  # fmt: skip

    policy = load_policy(run(80).checkpoint)
    keys = policy.obs_keys
    fitted = Normalizer.fit(Dataset.open(one_reach_demo), keys, mode="gaussian",
                            spread_floor=policy.config.observation_spread_floor)  # fmt: skip
    for key in keys:
        for stat in ("scale", "offset"):
            np.testing.assert_array_equal(policy.normalizer.stats(key)[stat],
                                          fitted.stats(key)[stat])  # fmt: skip
    assert any((policy.normalizer.stats(k)["scale"] != 1).any() for k in keys)
    env = make_env("reach", "mujoco", control_hz=policy.spec["control_hz"],
                   action_mode=policy.spec["action_mode"])  # fmt: skip
    raw, _ = env.reset(seed=0)  # training episode 0 of seed 0
    env.close()
    with np.load(out / "train_state" / "replay.npz") as replay:
        np.testing.assert_array_equal(replay["obs"][0], flatten_observation(raw, keys, fitted))
    saved_path = out / "train_state" / "normalizer.safetensors"
    saved = load_file(str(saved_path))
    changed = {**saved, f"{keys[0]}.scale": saved[f"{keys[0]}.scale"] * 2}
    save_file(changed, str(saved_path))
    state_before = (out / "train_state" / "state.pt").read_bytes()
    with pytest.raises(CheckpointError, match=f"normalizer of {keys[0]} differs"):
        run(160)
    assert (out / "train_state" / "state.pt").read_bytes() == state_before
    saved_path.unlink()  # a run saved before normalizers were saved held raw observations
    with pytest.raises(CheckpointError, match="stored raw observations"):
        run(160)
    assert (out / "train_state" / "state.pt").read_bytes() == state_before
    save_file(saved, str(saved_path))  # the run's own statistics: it resumes with them
    resumed = load_policy(run(160).checkpoint).normalizer.state_dict()
    for name, value in policy.normalizer.state_dict().items():
        np.testing.assert_array_equal(resumed[name], value)


def test_kill_and_resume_continues_bit_exactly(
    one_reach_demo: Path, straight_run: Path, tmp_path: Path
) -> None:
    """A run killed (SIGKILL) after a save and resumed ends with the same weights, replay
    buffer and evaluations as the run never interrupted."""
    import torch

    killed = tmp_path / "killed"
    process = subprocess.Popen(train_command(one_reach_demo, killed, *RUN),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "step_0000160").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no save before the end"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = torch.load(killed / "train_state" / "state.pt", weights_only=False)
    assert 80 <= saved["step"] < 320, "the kill must land mid-run, after a save"
    subprocess.run(train_command(one_reach_demo, killed, *RUN), check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    a = torch.load(straight_run / "train_state" / "state.pt", weights_only=False)
    b = torch.load(killed / "train_state" / "state.pt", weights_only=False)
    for net in ("actor", "reward", "critic", "critic_target"):
        for name, tensor in a["algorithm"][net].items():
            assert torch.equal(tensor, b["algorithm"][net][name]), (net, name)
    with np.load(straight_run / "train_state" / "replay.npz") as x, \
            np.load(killed / "train_state" / "replay.npz") as y:  # fmt: skip
        for field in ("obs", "action", "next_obs", "terminated"):
            np.testing.assert_array_equal(x[field], y[field])
        # reach's time limit (80 steps) truncates; a truncation is not a terminal
        assert len(x["obs"]) == 320 and x["terminated"].sum() == 0
    assert a["episode"] == b["episode"] == 4
    evaluations = json.loads((straight_run / "summary.json").read_text())["evaluations"]
    assert [e["step"] for e in evaluations] == [160, 320]
    resumed = json.loads((killed / "summary.json").read_text())["evaluations"]
    assert [e["returns"] for e in evaluations] == [e["returns"] for e in resumed]


def test_a_run_saves_its_td_bound_as_a_number(straight_run: Path) -> None:
    """The TD clip left unset (the reward's value bound) is saved, and compared on resume, as
    the bound it came to, 100 for the paper's tanh reward: a run saved when the default was
    the number 100 resumes under today's default."""
    import torch

    saved = torch.load(straight_run / "train_state" / "state.pt", weights_only=False)
    assert saved["policy_config"]["td_clip"] == 100.0
    checkpoint = json.loads((straight_run / "policy" / "config.json").read_text())
    assert checkpoint["config"]["td_clip"] == 100.0


def test_checkpoint_runs_in_robot_il_eval(straight_run: Path, tmp_path: Path) -> None:
    result = subprocess.run([ROBOT_IL, "eval", "--checkpoint", str(straight_run), "--episodes",
                             "2", "--out", str(tmp_path / "eval")], capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["policy_type"] == "opt_ail" and len(report["returns"]) == 2


def test_demonstrated_action_bounds_are_the_demos_reach_within_the_env_box() -> None:
    """Also what the training env receives: ``NormalizedActions`` maps ±1 to those bounds."""
    from robot_il.envs import make_env

    from robot_il.train.online import NormalizedActions, demonstrated_action_bounds

    actions = np.array([[0.01, -0.2, 1.0, 0.0], [-0.03, 0.1, 1.0, 0.0]], np.float32)
    low, high = np.array([-0.05, -0.25, -1, -1], np.float32), -np.array([-0.05, -0.25, -1, -1])
    bounded_low, bounded_high = demonstrated_action_bounds(actions, low, high, margin=1.5)
    np.testing.assert_allclose(bounded_low, [-0.045, -0.25, -1, -1])  # -1: never moved
    np.testing.assert_allclose(bounded_high, [0.045, 0.25, 1, 1])
    env = make_env("push", "mujoco", control_hz=20.0, action_mode="eef_delta")
    box = env.action_space.low, env.action_space.high
    low, high = demonstrated_action_bounds(0.5 * box[1][None], *box, margin=1.0)
    wrapped = NormalizedActions(env, low, high)
    np.testing.assert_allclose(wrapped.action(np.ones_like(low)), high, atol=1e-7)
    np.testing.assert_allclose(wrapped.action(-np.ones_like(low)), low, atol=1e-7)
    env.close()


def test_action_bounds_demos_acts_within_the_demos_reach_in_training_and_deployment(
    one_reach_demo: Path, tmp_path: Path
) -> None:
    """The checkpoint maps [-1, 1] to the demonstrated bounds (which differ from the env's
    box), so the deployed actor never leaves them."""
    from robot_il.envs import make_env
    from robot_il.policies import load_policy
    from robot_il.policies.base import ACTION_KEY

    from robot_il.train.config import load_config
    from robot_il.train.online import demonstrated_action_bounds, train_online

    out = tmp_path / "run"
    result = train_online(load_config("opt_ail", None, [
        "--dataset", str(one_reach_demo), "--out", str(out), *SMALL, "--env-steps", "80",
        "--policy.action-bounds", "demos"]))  # fmt: skip
    policy = load_policy(result.checkpoint)
    env = make_env("reach", "mujoco", control_hz=policy.spec["control_hz"],
                   action_mode=policy.spec["action_mode"])  # fmt: skip
    box = env.action_space.low, env.action_space.high
    recorded = Dataset.open(one_reach_demo).episode(0, [ACTION_KEY])[ACTION_KEY]
    demo_actions = np.asarray(recorded)[:-1]  # the expert transitions': the last has no s'
    low, high = demonstrated_action_bounds(demo_actions, *box, margin=1.5)
    assert ((low > box[0]) | (high < box[1])).any(), "the demos' reach must be a smaller box"
    np.testing.assert_allclose(policy.normalizer.unnormalize(ACTION_KEY, -np.ones_like(low)), low,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(policy.normalizer.unnormalize(ACTION_KEY, np.ones_like(high)), high,
                               atol=1e-6)  # fmt: skip
    env.close()


def _write_dataset(path: Path, *, state_dim: int = 5, action_dim: int = 1, nan: bool = False,
                   task: str = "dmc:cartpole_swingup") -> Path:  # fmt: skip
    """A cartpole-shaped dataset (what ``benchmarks/dmc_experts.py record`` writes)."""
    rng = np.random.default_rng(0)
    state = rng.standard_normal((50, state_dim)).astype(np.float32)
    action = rng.uniform(-1, 1, (50, action_dim)).astype(np.float32)
    attrs = {"task": task, "backend": "dm_control", "action_mode": "dmc"}
    with DatasetWriter.create(path, robot="dmc_cartpole", control_hz=100.0, attrs=attrs,
                              fsync=False) as writer:  # fmt: skip
        writer.add_episode({"state": state, "action": action})
    if nan:  # the writer refuses NaN: corrupt the stored array, as a bad disk or tool would
        import zarr

        zarr.open_group(str(path), mode="r+")["data/action"][17, 0] = np.nan
    return path


@pytest.mark.parametrize(
    ("dataset", "settings", "error", "message"),
    [
        ({"state_dim": 4}, (), DatasetError, "observation 'state' shape [5] != [4]"),
        ({"action_dim": 2}, (), DatasetError, "action_dim 1 != trained 2"),
        ({"nan": True}, (), DatasetError, "key 'action' of episode 0 holds NaN"),
        ({}, ("--task", "dmc:cheetah_run"), ConfigError, "unknown task 'dmc:cheetah_run'"),
        ({}, ("--task", "stack"), ConfigError, "unknown task 'stack'"),
        ({}, ("--demo-subsample", "0"), ConfigError, "demo_subsample must be >= 1"),
        (  # before: trained on raw observations, the flag read by nothing
            {},
            ("--policy.normalization", "gaussian"),
            ConfigError,
            "policy config: normalization 'gaussian': the observations are fed raw without "
            "--policy.normalize-observations",
        ),
        (  # before: "horizon 1 < n_obs_steps - 1 + n_action_steps (2 - 1 + 1)"
            {},
            ("--policy.n-obs-steps", "2"),
            ConfigError,
            "policy config: an online learner acts on the current observation: horizon, "
            "n_obs_steps and n_action_steps 1",
        ),
        (  # before: "no expert transitions in 1 episode(s)", the flag unnamed
            {},
            ("--demo-subsample", "5000"),
            ConfigError,
            "d.zarr: demo_subsample 5000 keeps no transition: its longest episode has 49; take "
            "at most 49",
        ),
        (
            {},
            ("--policy.reward-obs-keys", "gripper"),
            ConfigError,
            "policy config: reward_obs_keys gripper: not among the obs_keys (state)",
        ),
        (
            {},
            ("--policy.reward-offsets", "state-gripper"),
            ConfigError,
            "policy config: reward_offsets 'state-gripper': gripper not among the obs_keys",
        ),
        (
            {},
            ("--policy.reward-source", "task"),
            ConfigError,
            "policy config: reward_source 'task': 'dmc:cartpole_swingup' is not a UR5e task",
        ),
        (
            {},
            ("--policy.action-bounds", "demos", "--policy.action-bounds-margin", "0"),
            ConfigError,
            "action_bounds_margin > 0",
        ),
        (
            {},
            ("--policy.bc-reference",),
            ConfigError,
            "bc_reference keeps the clone: it needs bc_pretrain_steps > 0",
        ),
        (
            {},
            ("--policy.clone-radius", "0.2"),
            ConfigError,
            "clone_radius must be >= 0 and, > 0, keeps the actor near the clone: it needs "
            "bc_pretrain_steps > 0",
        ),
        (
            {},
            ("--policy.critic-updates-per-step", "0"),
            ConfigError,
            "critic_updates_per_step must be >= 1",
        ),
        ({}, ("--policy.actor-lr", "0"), ConfigError, "learning rates must be > 0"),
        ({}, ("--device", "meta"), ConfigError, "device 'meta': the online learners run on cpu"),
        ({}, ("--device", "gpu"), ConfigError, "device 'gpu': Expected one of"),
        ({}, ("--policy.reward-lr", "-1e-4"), ConfigError, "reward_lr must be > 0"),
    ],
)
def test_bad_input_fails_in_one_line_before_any_interaction(
    tmp_path: Path, dataset: dict, settings: tuple, error: type, message: str
) -> None:
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    path = _write_dataset(tmp_path / "d.zarr", **dataset)
    out = tmp_path / "run"
    config = load_config("opt_ail", None, ["--dataset", str(path), "--out", str(out), *SMALL,
                                           *settings])  # fmt: skip
    with pytest.raises(error) as caught:
        train_online(config)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not out.exists(), "nothing may start (or be written) before the input is checked"


def test_bf16_is_refused_where_the_cpu_computes_no_bf16_products(tmp_path, monkeypatch) -> None:
    """Elsewhere ``bf16`` would train in float32 while its rows said bf16."""
    from robot_il.train import online
    from robot_il.train.config import load_config

    monkeypatch.setattr(online, "bf16_products_supported", lambda: False)  # a CPU without them
    out = tmp_path / "run"
    config = load_config("opt_ail", None, ["--dataset", str(_write_dataset(tmp_path / "d.zarr")),
                                           "--out", str(out), *SMALL,
                                           "--policy.matmul-precision", "bf16"])  # fmt: skip
    with pytest.raises(ConfigError, match="computes no bfloat16 products"):
        online.train_online(config)
    assert not out.exists()


@pytest.mark.parametrize(
    ("visible", "settings", "message"),
    [
        (0, ("--device", "cuda"), "device 'cuda': 0 CUDA devices visible here; use cpu"),
        (1, ("--device", "cuda:1"), "device 'cuda:1': 1 CUDA devices visible here"),
        (1, ("--device", "cuda", "--policy.matmul-precision", "bf16"),
         "policy.matmul_precision bf16 is the CPU's oneDNN mode; on cuda use fp32"),
    ],
)  # fmt: skip
def test_a_gpu_that_is_not_there_and_bf16_on_a_gpu_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, visible: int, settings: tuple, message: str
) -> None:
    """``device``: refused in one line before anything starts where torch sees fewer CUDA
    devices than it names (here ``visible``, whatever this machine has), and with the CPU's
    bfloat16 mode on a GPU."""
    import torch

    from robot_il.train import online
    from robot_il.train.config import load_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: visible > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    out = tmp_path / "run"
    config = load_config("opt_ail", None, ["--dataset", str(_write_dataset(tmp_path / "d.zarr")),
                                           "--out", str(out), *SMALL, *settings])  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        online.train_online(config)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not out.exists()


def test_launch_file_builds_the_training_command(tmp_path: Path) -> None:
    from robot_il.cli.train import split_config_flag
    from robot_il.launch.description import load_launch
    from robot_il.train.config import OPTAILTrainConfig, load_config

    plan = load_launch(
        Path(__file__).parents[2] / "launch" / "train_opt_ail.launch.yaml",
        {"dataset": "d.zarr", "out": str(tmp_path / "run"), "env_steps": "5000",
         "max_episodes": "1", "task": "dmc:walker_walk"},
    )  # fmt: skip
    (process,) = plan.processes
    assert process.argv[1:3] == ("train", "opt-ail")
    config_file, settings = split_config_flag(list(process.argv[3:]))
    config = load_config("opt_ail", config_file, settings)
    assert isinstance(config, OPTAILTrainConfig) and config_file is None
    assert (config.env_steps, config.max_episodes, config.task) == (5000, 1, "dmc:walker_walk")
    assert config.eval.every == 10_000 and not config.progress


def test_a_camera_the_online_learner_does_not_observe_is_never_decoded(tmp_path) -> None:
    """The online learners act on state: the demonstrations' camera frames were decoded into
    RAM all the same (seconds to minutes, hundreds of MB). Here they are unreadable, and the
    run trains on the state keys without meeting them."""
    import zarr
    from robot_il.policies import load_policy

    from robot_il.train.config import load_config
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.online import train_online

    demos = record_expert_demos("reach", tmp_path / "camera", episodes=1, seed=3,
                                cameras=("front",), image_size=(32, 32))  # fmt: skip
    (shard,) = [p for p in (demos / "data" / "rgb_front" / "c").rglob("*") if p.is_file()]
    frames = zarr.open_array(str(demos / "data" / "rgb_front"), mode="r").shards[0]
    raw = bytearray(shard.read_bytes())
    index = np.frombuffer(raw[-4 - 16 * frames : -4], np.uint64).reshape(frames, 2)
    for offset, size in index[index[:, 0] != np.iinfo(np.uint64).max].astype(int):
        raw[offset : offset + size] = b"\xff" * size  # every stored frame, garbled
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="rgb_front episode 0 .* unreadable"):
        Dataset.open(demos, cache="ram")  # what decoding the frames meets
    result = train_online(load_config("opt_ail", None, [
        "--dataset", str(demos), "--out", str(tmp_path / "run"), *SMALL,
        "--env-steps", "80"]))  # fmt: skip
    assert "rgb_front" not in load_policy(result.checkpoint).spec["observation"]
