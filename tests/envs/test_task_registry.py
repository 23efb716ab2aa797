"""A task of one's own: registered with ``register_task``, it runs in both backends with its
expert like the built-in tasks; a task the env cannot run is refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import robot_il.envs.experts as experts_module
from robot_il.envs import make_env, make_expert, register_task
from robot_il.envs.backends import BACKENDS
from robot_il.envs.experts.reach import ReachExpert
from robot_il.envs.tasks import TASKS, Task
from robot_il.envs.tasks.reach import Reach

from robot_il import envs
from robot_il.cli import main
from robot_il.errors import ConfigError


class HighReach(Reach):
    """Reach with targets higher up than the built-in task's."""

    name = "high_reach"

    def sample(self, rng: np.random.Generator):
        state = super().sample(rng)
        self.target = rng.uniform([0.35, -0.2, 0.30], [0.5, 0.2, 0.45])
        return state


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task and expert registries as they are, restored after the test."""
    monkeypatch.setattr(TASKS, "_tasks", dict(TASKS._tasks))
    monkeypatch.setattr(experts_module, "EXPERTS", dict(experts_module.EXPERTS))


def test_own_task_runs_with_its_expert_alike_in_both_backends(registry):
    register_task(HighReach, ReachExpert)
    assert "high_reach" in envs.TASKS and "high_reach" in TASKS
    spaces, outcomes = {}, {}
    for backend in BACKENDS:
        env = make_env("high_reach", backend)
        expert = make_expert(env)
        obs, _ = env.reset(seed=4)
        expert.reset(obs)
        assert obs["target_pos"][2] >= 0.30  # its own sampling, not the built-in reach's
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            done = terminated or truncated
        spaces[backend] = env.unwrapped.spec_dict()["observation"]
        outcomes[backend] = info["is_success"]
        env.close()
    assert spaces["mujoco"] == spaces["pybullet"]
    assert outcomes == {"mujoco": True, "pybullet": True}


class AnotherReach(Reach):
    name = "reach"


class Spaced(Reach):
    name = "my reach"


class ArmKey(Reach):
    name = "arm_key"
    task_keys = {"joint_pos": (6,)}


class NoShape(Reach):
    name = "no_shape"
    task_keys = {"target_pos": 3}


class NoLength(Reach):
    name = "no_length"
    episode_seconds = 0


class Unfinished(Task):
    name = "unfinished"
    episode_seconds = 2.0
    task_keys = {}


@pytest.mark.parametrize(
    ("task", "expert", "message"),
    [
        (
            AnotherReach,
            None,
            "task 'reach' is registered twice: by robot_il.envs.tasks.reach."
            "Reach and by test_task_registry.AnotherReach",
        ),  # fmt: skip
        (Spaced, None, "name must be a word of letters, digits and _, got 'my reach'"),
        (ArmKey, None, "task key 'joint_pos' is one the env fills itself"),
        (NoShape, None, r"task_keys\['target_pos'\] must be a shape tuple"),
        (NoLength, None, "episode_seconds must be a number > 0"),
        (Unfinished, None, "Unfinished does not define evaluate, observe, sample, scene"),
        (Reach(), None, "is not a Task subclass"),
        (HighReach, object, "expert <class 'object'> of task 'high_reach' is not an Expert"),
    ],
    ids=["twice", "name", "arm_key", "shape", "length", "abstract", "instance", "expert"],
)
def test_a_task_the_env_cannot_run_is_refused_before_anything_is_registered(
    registry, task, expert, message
):
    before = dict(TASKS)
    with pytest.raises(ConfigError, match=message):
        register_task(task, expert)
    assert dict(TASKS) == before


def test_the_same_class_twice_is_one_registration_and_another_expert_is_refused(registry):
    class OtherExpert(ReachExpert):
        pass

    register_task(HighReach, ReachExpert)
    register_task(HighReach, ReachExpert)  # its module imported by a script and a plugin
    with pytest.raises(ConfigError, match="'high_reach' has an expert already"):
        register_task(HighReach, OtherExpert)
    assert experts_module.EXPERTS["high_reach"] is ReachExpert


class Float64Target(Reach):
    name = "float64_target"

    def observe(self, backend):
        return {"target_pos": self.target}  # float64: the declaration says float32


class ShortTarget(Reach):
    name = "short_target"

    def observe(self, backend):
        return {"target_pos": self.target[:2].astype(np.float32)}


class Undeclared(Reach):
    name = "undeclared"

    def observe(self, backend):
        return {**super().observe(backend), "speed": np.zeros(1, np.float32)}


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            Float64Target,
            r"gives 'target_pos' as float64 \(3,\); its task_keys declare float32 \(3,\)",
        ),
        (ShortTarget, r"gives 'target_pos' as float32 \(2,\); its task_keys declare float32"),
        (Undeclared, "gives 'speed', which its task_keys .target_pos. do not declare"),
    ],
    ids=["dtype", "shape", "undeclared"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_observation_other_than_declared_is_refused_at_reset(task, message, backend):
    """Before, the float64 target was recorded as it came, against the dataset's declared
    float32, and the undeclared key was recorded and trained on outside the spec."""
    from robot_il.envs.env import RobotEnv

    env = RobotEnv(task(), backend)
    with pytest.raises(ConfigError, match=f"task '{task.name}' .*{message}"):
        env.reset(seed=0)
    env.close()


def test_record_refuses_an_observation_other_than_declared_before_writing(
    registry, tmp_path, capsys
):
    """Before, the dataset was created and the episodes recorded with the float64 target."""
    register_task(Float64Target, ReachExpert)
    out = tmp_path / "float64.zarr"
    argv = ["record", "--task", "float64_target", "--expert", "--episodes", "1", "--no-fsync"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "observe() gives 'target_pos' as float64" in capsys.readouterr().err
    assert not out.exists()


class FailingSuccess(Reach):
    """A success test with a bug on its success branch: it reads a key its task does not
    have once the target is reached, after the recording has begun."""

    name = "failing_success"

    def evaluate(self, obs):
        reward, success = super().evaluate(obs)
        return reward, success and bool(obs["object_pose"][0] > 0)


def test_record_says_what_is_kept_when_a_task_raises(registry, tmp_path, capsys):
    """A task's bug keeps its traceback (the user's own line), and the recorder says first
    what the dataset holds; before, it said nothing for any error but its own. A dataset this
    run began and left empty is removed (a rerun after the fix needed --force)."""
    register_task(FailingSuccess, ReachExpert)
    out = tmp_path / "failing.zarr"
    argv = ["record", "--task", "failing_success", "--expert", "--episodes", "1", "--no-fsync"]
    with pytest.raises(KeyError, match="object_pose"):
        main([*argv, "--out", str(out)])
    error = capsys.readouterr().err
    assert f"{out}: no episode recorded; the empty dataset it began is removed" in error, error
    assert not out.exists()
    with pytest.raises(KeyError, match="object_pose"):  # run again as it was: no --force asked
        main([*argv, "--out", str(out)])


PLUGIN = """
import numpy as np
from robot_il.envs import register_task
from robot_il.envs.experts.reach import ReachExpert
from robot_il.envs.tasks.reach import Reach


class HighReach(Reach):
    name = "high_reach"

    def sample(self, rng):
        state = super().sample(rng)
        self.target = rng.uniform([0.35, -0.2, 0.30], [0.5, 0.2, 0.45])
        return state


register_task(HighReach, ReachExpert)
"""


def install_plugin(site: Path, source: str) -> dict[str, str]:
    """A package ``my-tasks`` with module ``my_tasks`` (``source``) declared as a
    ``robot_il.tasks`` entry point, laid out in ``site`` as pip installs one; the environment
    of a process that has it installed."""
    info = site / "my_tasks-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[robot_il.tasks]\nmy_tasks = my_tasks\n")
    (site / "my_tasks.py").write_text(source)
    return {**os.environ, "PYTHONPATH": str(site), "MUJOCO_GL": "egl"}


def robot_il(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``robot-il argv`` run as a user runs it, in a process of its own."""
    command = [str(Path(sys.executable).with_name("robot-il")), *argv]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_own_task_from_a_plugin_records_in_pybullet_and_replays_in_mujoco(tmp_path):
    """Before, `robot-il record --task high_reach` was an invalid choice: no command could
    see a task of one's own."""
    env = install_plugin(tmp_path / "site", PLUGIN)
    out = tmp_path / "high_reach.zarr"
    argv = ["--task", "high_reach", "--expert", "--episodes", "2", "--no-fsync"]
    recorded = robot_il(["record", *argv, "--backend", "pybullet", "--out", str(out)], env)
    assert recorded.returncode == 0, recorded.stderr
    assert "kept 2 episode(s) of 2 attempt(s)" in recorded.stdout
    replayed = robot_il(["sim", "replay", "--dataset", str(out), "--backend", "mujoco"], env)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 2 episode(s) on mujoco (recorded on pybullet): 2 ended as recorded" in (
        replayed.stdout
    )


def test_a_plugin_that_fails_to_load_is_named_in_one_line(tmp_path):
    env = install_plugin(tmp_path / "site", "import robot_il.envs\nrobot_il.envs.no_such\n")
    result = robot_il(["sim", "rollout", "--task", "reach", "--expert"], env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "robot-il: error: task plugin 'my_tasks' (my_tasks, package my-tasks, entry point "
        "group robot_il.tasks) failed to load: AttributeError: module 'robot_il.envs' has no "
        "attribute 'no_such'"
    )


class FarReach(Reach):
    """Reach whose target lies 1.5 m ahead: beyond the UR5e's 0.85 m."""

    name = "far_reach"

    def sample(self, rng: np.random.Generator):
        state = super().sample(rng)
        self.target = np.array([1.5, 0.0, 0.3])
        return state


def test_an_expert_target_out_of_reach_is_named(registry, tmp_path, capsys):
    """Before, each attempt failed after the whole time limit with nothing said about why."""
    register_task(FarReach, ReachExpert)
    assert main(["sim", "rollout", "--task", "far_reach", "--expert"]) == 0
    out = capsys.readouterr().out
    assert "FAILURE after 80 steps" in out
    assert "the far_reach expert found no joints on its way to (1.500, 0.000, 0.300) m" in out
    argv = ["record", "--task", "far_reach", "--expert", "--max-attempts", "2", "--no-fsync"]
    assert main([*argv, "--out", str(tmp_path / "far.zarr")]) == 1
    out = capsys.readouterr().out
    assert "expert episode seed 0 failed: the far_reach expert found no joints" in out
    assert "(0 successful, 2 discarded, 2 with a waypoint out of reach)" in out
