"""The push task frame: its numbers, the env wrapper on MuJoCo, converted datasets and the
specs that keep frame policies out of world envs."""

import csv
from pathlib import Path

import numpy as np
import pytest
from robot_il.envs import make_env, make_expert
from robot_il.envs.spatial import quat_multiply
from robot_il.envs.task_frame import (
    FRAME_KEYS,
    WORLD_KEYS,
    TaskFrameEnv,
    action_in_frame,
    action_in_world,
    frame_dataset,
    frame_observation,
    frame_yaw,
)

from robot_il.cli import main as cli
from robot_il.errors import ConfigError, DatasetError


def _z_turned(obs: dict[str, np.ndarray], angle: float, shift: np.ndarray) -> dict:
    """The scene of ``obs`` turned by ``angle`` about the world z axis, then shifted in xy."""
    cos, sin = np.cos(angle), np.sin(angle)
    turn = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    z_quat = np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])

    def pose(value: np.ndarray) -> np.ndarray:
        return np.concatenate([turn @ value[:3] + shift, quat_multiply(z_quat, value[3:])])

    return {"eef_pose": pose(obs["eef_pose"]), "object_pose": pose(obs["object_pose"]),
            "target_pos": turn @ obs["target_pos"] + shift, "gripper": obs["gripper"]}  # fmt: skip


@pytest.fixture
def world_obs() -> dict[str, np.ndarray]:
    half = np.sqrt(0.5)
    return {
        "eef_pose": np.array([0.42, -0.05, 0.12, 0.0, 1.0, 0.0, 0.0]),
        "object_pose": np.array([0.50, 0.02, 0.025, half, 0.0, 0.0, half]),
        "target_pos": np.array([0.38, 0.12, 0.025]),
        "gripper": np.array([1.0]),
    }


def test_the_frame_puts_the_cube_at_the_origin_and_the_target_on_x(world_obs):
    yaw = frame_yaw(world_obs, "push")
    frame = frame_observation(world_obs, "push", yaw)
    distance = np.linalg.norm(world_obs["target_pos"][:2] - world_obs["object_pose"][:2])
    np.testing.assert_allclose(frame["object_pose"][:3], [0.0, 0.0, 0.025], atol=1e-7)
    np.testing.assert_allclose(frame["target_pos"], [distance, 0.0, 0.025], atol=1e-6)
    reach = np.linalg.norm(world_obs["eef_pose"][:3] - world_obs["object_pose"][:3])
    assert np.linalg.norm(frame["eef_pose"][:3] - frame["object_pose"][:3]) == pytest.approx(reach)
    first, second = frame["eef_pose"][3:6], frame["eef_pose"][6:9]
    assert np.linalg.norm(first) == pytest.approx(1.0) and first @ second == pytest.approx(0.0)
    # world x axes turned back by the heading: the TCP's along world x, the cube's along y
    np.testing.assert_allclose(first, [np.cos(-yaw), np.sin(-yaw), 0.0], atol=1e-6)
    cube_x = [np.cos(np.pi / 2 - yaw), np.sin(np.pi / 2 - yaw), 0.0]
    np.testing.assert_allclose(frame["object_pose"][3:6], cube_x, atol=1e-6)
    assert {key: value.shape for key, value in frame.items()} == FRAME_KEYS


def test_both_signs_of_a_quaternion_look_the_same(world_obs):
    """A top-down TCP's world quaternion (w near 0) changes sign from one step to the next;
    the frame's rotation columns do not."""
    flipped = {**world_obs, "eef_pose": world_obs["eef_pose"] * [1, 1, 1, -1, -1, -1, -1]}
    here = frame_observation(world_obs, "push", frame_yaw(world_obs, "push"))
    there = frame_observation(flipped, "push", frame_yaw(flipped, "push"))
    np.testing.assert_array_equal(there["eef_pose"], here["eef_pose"])


def test_a_turned_and_shifted_scene_looks_the_same_in_the_frame(world_obs):
    """What makes ten demonstrations cover every push direction."""
    here = frame_observation(world_obs, "push", frame_yaw(world_obs, "push"))
    moved = _z_turned(world_obs, 2.1, np.array([0.05, -0.08, 0.0]))
    there = frame_observation(moved, "push", frame_yaw(moved, "push"))
    for key in FRAME_KEYS:
        np.testing.assert_allclose(there[key], here[key], atol=1e-6, err_msg=key)


def test_the_fixed_frame_keeps_the_world_and_gives_attitudes_one_form(world_obs):
    """The fixed frame changes the observation's form only: world positions, and the
    rotation columns that both quaternion signs share; a turned scene looks turned."""
    assert frame_yaw(world_obs, "fixed") == 0.0
    fixed = frame_observation(world_obs, "fixed", frame_yaw(world_obs, "fixed"))
    for key in ("eef_pose", "object_pose"):
        np.testing.assert_allclose(fixed[key][:3], world_obs[key][:3], atol=1e-7)
    np.testing.assert_allclose(fixed["target_pos"], world_obs["target_pos"], atol=1e-7)
    np.testing.assert_allclose(fixed["eef_pose"][3:], [1, 0, 0, 0, -1, 0], atol=1e-7)  # x, -y
    flipped = {**world_obs, "eef_pose": world_obs["eef_pose"] * [1, 1, 1, -1, -1, -1, -1]}
    np.testing.assert_array_equal(frame_observation(flipped, "fixed", 0.0)["eef_pose"],
                                  fixed["eef_pose"])  # fmt: skip
    turned = _z_turned(world_obs, 2.1, np.zeros(3))
    there = frame_observation(turned, "fixed", frame_yaw(turned, "fixed"))
    assert np.abs(there["object_pose"][:3] - fixed["object_pose"][:3]).max() > 0.1


def test_actions_turn_into_the_frame_and_back(world_obs):
    yaw = frame_yaw(world_obs, "push")
    toward_target = world_obs["target_pos"] - world_obs["object_pose"][:3]
    world = np.concatenate([toward_target, [0.0, 0.0, 0.3], [1.0]]).astype(np.float32)
    framed = action_in_frame(world, yaw)
    assert framed[0] == pytest.approx(np.linalg.norm(toward_target), rel=1e-6)
    assert framed[1] == pytest.approx(0.0, abs=1e-7)
    assert framed[5] == pytest.approx(0.3) and framed[6] == 1.0  # z turns stay, gripper too
    batch = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)
    yaws = np.linspace(-3, 3, 4)
    np.testing.assert_allclose(action_in_world(action_in_frame(batch, yaws), yaws), batch,
                               atol=1e-6)  # fmt: skip
    assert action_in_world(batch, yaws).dtype == np.float32


def test_the_expert_pushes_the_same_through_the_frame_env():
    """The push expert's world actions, given in the frame through ``TaskFrameEnv`` from the
    same episode seed, move the cube as they do in the bare env, and succeed."""
    kwargs = {"control_hz": 20.0, "action_mode": "eef_delta", "terminate_on_success": False,
              "max_episode_steps": 60}  # fmt: skip
    world_env = make_env("push", "mujoco", **kwargs)
    frame_env = make_env("push", "mujoco", frame="push", **kwargs)
    assert isinstance(frame_env, TaskFrameEnv) and not isinstance(world_env, TaskFrameEnv)
    expert = make_expert(world_env)
    try:
        obs, _ = world_env.reset(seed=4)
        framed, _ = frame_env.reset(seed=4)
        expert.reset(obs)
        largest_gap = 0.0
        for _ in range(60):
            action = expert.act(obs)
            framed, _, _, _, frame_info = frame_env.step(
                action_in_frame(action, frame_yaw(obs, "push"))
            )
            obs, _, _, _, info = world_env.step(action)
            in_frame = frame_observation(obs, "push", frame_yaw(obs, "push"))
            np.testing.assert_allclose(framed["target_pos"], in_frame["target_pos"], atol=2e-3)
            largest_gap = max(largest_gap, np.abs(
                frame_env.unwrapped.task.observe(frame_env.unwrapped.backend)["object_pose"][:3]
                - obs["object_pose"][:3]).max())  # fmt: skip
        assert info["is_success"] and frame_info["is_success"]
        assert largest_gap < 2e-3  # m: float32 turns of the actions, nothing more
    finally:
        world_env.close()
        frame_env.close()


def test_the_fixed_frame_env_steps_world_actions_as_they_are():
    """Through the fixed frame env the push expert's world actions, unturned, give the bare
    env's episode: the same cube positions to float32 and the same success."""
    kwargs = {"control_hz": 20.0, "action_mode": "eef_delta", "max_episode_steps": 60}
    world_env = make_env("push", "mujoco", **kwargs)
    fixed_env = make_env("push", "mujoco", frame="fixed", **kwargs)
    expert = make_expert(world_env)
    try:
        obs, _ = world_env.reset(seed=4)
        fixed, _ = fixed_env.reset(seed=4)
        expert.reset(obs)
        done = False
        while not done:
            action = expert.act(obs)
            fixed, _, _, _, fixed_info = fixed_env.step(action)
            obs, _, terminated, truncated, info = world_env.step(action)
            np.testing.assert_allclose(fixed["object_pose"][:3], obs["object_pose"][:3], atol=1e-6)
            assert fixed_env.heading == 0.0
            done = terminated or truncated
        assert info["is_success"] and fixed_info["is_success"]
    finally:
        world_env.close()
        fixed_env.close()


@pytest.fixture(scope="module")
def push_datasets(tmp_path_factory) -> tuple:
    """One recorded push episode (world frame) and its copy in the push frame, made by the
    CLI."""
    from robot_il.train.demos import record_expert_demos

    root = tmp_path_factory.mktemp("push_frame")
    world = record_expert_demos("push", root / "world", episodes=1, seed=2,
                                action_mode="eef_delta", max_episode_steps=60)  # fmt: skip
    converted = root / "frame" / "env.zarr"
    assert cli(["data", "frame", str(world), str(converted), "--frame", "push"]) == 0
    return world, converted


def test_the_frame_copy_names_the_keys_it_leaves_out(push_datasets, tmp_path, capsys):
    """Before: only "wrote ...", and training on a left-out camera failed later."""
    world, _ = push_datasets
    assert cli(["data", "frame", str(world), str(tmp_path / "f.zarr")]) == 0
    out = capsys.readouterr().out
    assert "left out (no frame policy observes them): " in out and "joint_pos" in out
    assert cli(["data", "info", str(tmp_path / "f.zarr")]) == 0
    assert "task frame   push (observations and actions)" in capsys.readouterr().out


def test_an_unknown_frame_is_refused_in_one_line_and_writes_nothing(push_datasets, tmp_path,
                                                                    capsys):  # fmt: skip
    world, _ = push_datasets
    assert cli(["data", "frame", str(world), str(tmp_path / "f.zarr"), "--frame", "cube"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("unknown frame 'cube'; frames: push, fixed") and "\n" not in error
    assert not (tmp_path / "f.zarr").exists()


def test_a_recorded_dataset_converts_and_its_policies_refuse_world_envs(push_datasets):
    from robot_il.policies.spec import spec_from_dataset, spec_from_env, spec_mismatches

    from robot_il.dataset import Dataset
    from robot_il.train.evaluate import make_eval_env

    world_path, converted = push_datasets
    with pytest.raises(DatasetError, match="exists"):  # nothing replaced without --force
        frame_dataset(world_path, converted, "push")
    with pytest.raises(ConfigError, match="already in the 'push' frame") as error:
        frame_dataset(converted, converted.parent / "twice.zarr", "push")  # no double turn
    assert "\n" not in str(error.value) and not (converted.parent / "twice.zarr").exists()
    world, frame = Dataset.open(world_path), Dataset.open(converted)
    assert sorted(frame.keys) == sorted([*FRAME_KEYS, "action"])
    assert frame.attrs["frame"] == "push" and frame.meta(0)["seed"] == world.meta(0)["seed"]
    steps = world.episode(0)
    expected = action_in_frame(steps["action"], frame_yaw(steps, "push"))
    np.testing.assert_allclose(frame.episode(0)["action"], expected, atol=1e-7)
    spec = spec_from_dataset(frame, sorted(FRAME_KEYS), str(converted))
    assert spec["frame"] == "push"
    env = make_eval_env(spec)  # the spec's frame picks the wrapper
    assert isinstance(env, TaskFrameEnv)
    env.close()
    world_env = make_env("push", "mujoco", control_hz=20.0, action_mode="eef_delta")
    problems = spec_mismatches(spec, spec_from_env(world_env))
    world_env.close()
    assert problems[0] == "frame 'world' != trained 'push'"


def test_a_deployed_frame_checkpoint_reads_and_answers_in_the_world(push_datasets, tmp_path):
    """The deploy node's inference process runs a frame checkpoint on world observations
    (the robot's topics): it asks for the world keys, answers what the policy answers in
    the frame turned back to the world, and a scene turned about z gets its action turned."""
    from robot_il.policies import load_policy

    from robot_il.dataset import Dataset
    from robot_il.deploy.worker import CheckpointInfo, InferenceWorker
    from robot_il.train.config import load_config
    from robot_il.train.trainer import train

    world_path, converted = push_datasets
    settings = ["--dataset", str(converted), "--out", str(tmp_path / "bc"), "--steps", "30",
                "--eval.episodes", "0", "--no-progress"]  # fmt: skip
    config = load_config("bc", None, settings)
    checkpoint = train(config).checkpoint
    info = CheckpointInfo.read(checkpoint)
    assert info.spec["frame"] is None and info.spec["observation"]["eef_pose"] == [7]
    assert info.obs_keys == sorted(WORLD_KEYS)
    steps = Dataset.open(world_path).episode(0)
    history = {key: steps[key][10:11] for key in WORLD_KEYS}
    policy = load_policy(checkpoint)
    yaw = frame_yaw(history, "push")
    expected = action_in_world(
        policy.predict_actions(frame_observation(history, "push", yaw)), yaw[-1]
    )
    worker = InferenceWorker(info)
    try:
        np.testing.assert_allclose(worker.predict(history), expected, atol=1e-6)
        turned = _z_turned({k: v[0] for k, v in history.items()}, 0.7, np.zeros(3))
        answer = worker.predict({k: np.asarray(v, np.float32)[None] for k, v in turned.items()})
    finally:
        worker.close()
    np.testing.assert_allclose(answer, action_in_world(expected, 0.7), atol=1e-5)


def test_a_deployed_frame_diffusion_inpaints_world_actions_in_its_frame(push_datasets, tmp_path):
    """Real-time chunking of a frame checkpoint: the committed actions come in the world (the
    node's timeline), the policy samples around them turned into its frame, and they come
    back first, exactly."""
    from robot_il.envs.task_frame import WorldFramePolicy
    from robot_il.policies import load_policy

    from robot_il.dataset import Dataset
    from robot_il.train.config import load_config
    from robot_il.train.evaluate import torch_seeded
    from robot_il.train.trainer import train

    world_path, converted = push_datasets
    settings = ["--dataset", str(converted), "--out", str(tmp_path / "dp"), "--steps", "30",
                "--eval.episodes", "0", "--no-progress", "--policy.down-dims", "16", "32",
                "--policy.horizon", "8", "--policy.n-action-steps", "4"]  # fmt: skip
    policy = load_policy(train(load_config("diffusion", None, settings)).checkpoint)
    deployed = WorldFramePolicy(policy)
    assert deployed.inpaints_committed
    steps = Dataset.open(world_path).episode(0)
    history = {key: steps[key][9:11] for key in WORLD_KEYS}
    committed = steps["action"][11:13]
    with torch_seeded(0):
        answer = deployed.predict_actions(history, committed)
    yaw = frame_yaw(history, "push")
    with torch_seeded(0):
        in_frame = policy.predict_actions(
            frame_observation(history, "push", yaw), action_in_frame(committed, yaw[-1])
        )
    np.testing.assert_array_equal(answer[:2], committed)
    np.testing.assert_allclose(answer[2:], action_in_world(in_frame, yaw[-1])[2:], atol=1e-6)


def test_opt_ail_trains_online_in_the_frame_and_refuses_world_relabelling(push_datasets, tmp_path):
    """The online loop runs on a frame dataset in the frame env (its replay holds frame
    states); hindsight relabelling, which writes world positions, is refused in one line
    before any env step."""
    from robot_il.policies import load_policy

    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    _, converted = push_datasets
    settings = ["--dataset", str(converted), "--no-progress", "--learning-starts", "20",
                "--env-steps", "60", "--eval.every", "0", "--eval.episodes", "1",
                "--policy.hidden-dims", "32", "32", "--policy.batch-size", "16"]  # fmt: skip
    result = train_online(load_config("opt_ail", None, [*settings, "--out", str(tmp_path / "a")]))
    policy = load_policy(result.checkpoint)
    assert policy.spec["frame"] == "push" and policy.encoder.output_dim == 22  # 9 + 1 + 9 + 3
    relabel = ["--out", str(tmp_path / "b"), "--policy.hindsight-goal", "object_pose-target_pos",
               "--policy.bc-weight", "1"]  # fmt: skip
    with pytest.raises(ConfigError, match="relabelling needs world positions") as error:
        train_online(load_config("opt_ail", None, [*settings, *relabel]))
    assert "\n" not in str(error.value) and not (tmp_path / "b" / "train_state").exists()


def test_opt_ail_relabels_in_the_fixed_frame_and_its_checkpoint_deploys(push_datasets, tmp_path):
    """The fixed frame's positions are the world's, so hindsight relabelling runs there; the
    deploy worker answers world observations with the policy's own actions, unturned."""
    from robot_il.policies import load_policy

    from robot_il.dataset import Dataset
    from robot_il.deploy.worker import CheckpointInfo, InferenceWorker
    from robot_il.train.config import load_config
    from robot_il.train.online import train_online

    world_path, _ = push_datasets
    fixed = tmp_path / "fixed.zarr"
    assert cli(["data", "frame", str(world_path), str(fixed), "--frame", "fixed"]) == 0
    settings = ["--dataset", str(fixed), "--out", str(tmp_path / "run"), "--no-progress",
                "--learning-starts", "20", "--env-steps", "130", "--log-every", "10",
                "--eval.every", "0", "--eval.episodes", "1", "--policy.hidden-dims", "32", "32",
                "--policy.batch-size", "16", "--policy.hindsight-goal", "object_pose-target_pos",
                "--policy.hindsight-min-move", "0", "--policy.bc-weight", "1"]  # fmt: skip
    checkpoint = train_online(load_config("opt_ail", None, settings)).checkpoint
    policy = load_policy(checkpoint)
    assert policy.spec["frame"] == "fixed" and policy.encoder.output_dim == 22
    with (tmp_path / "run" / "metrics.csv").open(newline="") as file:
        relabelled = [float(row["hindsight_transitions"] or 0) for row in csv.DictReader(file)]
    assert max(relabelled) >= 60  # the first episode's 60 steps, relabelled (min move 0)
    history = {key: Dataset.open(world_path).episode(0)[key][10:11] for key in WORLD_KEYS}
    expected = policy.predict_actions(frame_observation(history, "fixed", np.zeros(1)))
    worker = InferenceWorker(CheckpointInfo.read(checkpoint))
    try:
        np.testing.assert_allclose(worker.predict(history), expected, atol=1e-6)
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("push", {"frame": "cup"}, "unknown frame 'cup'; frames: push, fixed"),
        ("push", {"frame": "push", "action_mode": "joint"}, "needs one arm in eef_delta"),
        ("reach", {"frame": "push", "action_mode": "eef_delta"}, "observes no object_pose"),
        ("dmc:walker_walk", {"frame": "push"}, "DeepMind Control tasks have no task frame"),
    ],
)
def test_a_frame_the_env_cannot_take_is_refused_in_one_line(task, kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        make_env(task, "mujoco", **kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_bc_from_ten_demonstrations_pushes_far_better_in_the_frame(tmp_path):
    """The frame's reason to exist: tuned BC on the same 10 push demonstrations, 20 held-out
    seeds, succeeds on at least 16 in the frame and on at most 8 in the world (measured: 100%
    against 10% on 50 seeds)."""
    from robot_il.policies import load_policy

    from robot_il.train.config import load_config
    from robot_il.train.demos import record_expert_demos
    from robot_il.train.evaluate import evaluate, make_eval_env
    from robot_il.train.trainer import train

    world = record_expert_demos("push", tmp_path / "world", episodes=10, action_noise=0.005,
                                action_mode="eef_delta", terminate_on_success=False,
                                max_episode_steps=70)  # fmt: skip
    framed = frame_dataset(world, tmp_path / "frame.zarr", "push")
    successes = {}
    for name, dataset in (("world", world), ("frame", framed)):
        settings = ["--dataset", str(dataset), "--out", str(tmp_path / name), "--steps", "4000",
                    "--lr", "1e-3", "--weight-decay", "1e-3", "--policy.head", "gaussian",
                    "--policy.normalization", "gaussian", "--eval.episodes", "0",
                    "--no-progress"]  # fmt: skip
        policy = load_policy(train(load_config("bc", None, settings)).checkpoint)
        env = make_eval_env(policy.spec)
        try:
            successes[name] = sum(evaluate(policy, env, episodes=20, seed=10_000).successes)
        finally:
            env.close()
    assert successes["frame"] >= 16 and successes["world"] <= 8, successes


def test_a_dataset_the_frame_cannot_turn_is_named_for_what_it_lacks(tmp_path) -> None:
    """A joint-action dataset was refused as lacking "nothing"."""
    from robot_il.train.demos import record_expert_demos

    joint = record_expert_demos("push", tmp_path / "joint", episodes=1, seed=2,
                                action_mode="joint")  # fmt: skip
    with pytest.raises(ConfigError, match="holds 'joint' ones \\(record with --action-mode eef"):
        frame_dataset(joint, tmp_path / "f1.zarr", "push")
    reach = record_expert_demos("reach", tmp_path / "reach", episodes=1, seed=2,
                                action_mode="eef_delta")  # fmt: skip
    with pytest.raises(ConfigError, match=r"lacks object_pose \(7,\)"):
        frame_dataset(reach, tmp_path / "f2.zarr", "push")
    two_arms = record_expert_demos("bimanual_handover", tmp_path / "two", episodes=1, seed=2,
                                   action_mode="eef_delta")  # fmt: skip
    with pytest.raises(ConfigError, match=r"needs one arm, and this dataset records 2 \(left, r"):
        frame_dataset(two_arms, tmp_path / "f3.zarr", "push")  # it listed five missing keys


def test_the_frame_copy_never_replaces_its_source_and_a_failed_one_keeps_the_old(
    push_datasets, tmp_path
) -> None:
    """Before: ``data frame world.zarr world.zarr --force`` emptied the world recording
    before reading it, and a conversion that failed midway had already emptied the copy it
    was replacing."""
    import shutil

    from robot_il.dataset import Dataset

    world, converted = push_datasets
    with pytest.raises(ConfigError, match="is the source dataset") as error:
        frame_dataset(world, world.parent / "." / world.name, "push", overwrite=True)
    assert "\n" not in str(error.value) and Dataset.open(world).num_episodes == 1
    assert cli(["data", "frame", str(world), "memory://frame.zarr"]) == 2  # was a local "memory:"
    assert not Path("memory:").exists()
    broken = tmp_path / "broken.zarr"  # a world recording whose steps fail to decompress
    shutil.copytree(world, broken)
    (broken / "data" / "eef_pose" / "c" / "0" / "0").write_bytes(b"garbage")
    kept = tmp_path / "kept.zarr"
    shutil.copytree(converted, kept)
    with pytest.raises(DatasetError, match="episode 0 .* unreadable"):
        frame_dataset(broken, kept, "push", overwrite=True)
    assert Dataset.open(kept).num_episodes == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.zarr", "kept.zarr"]
