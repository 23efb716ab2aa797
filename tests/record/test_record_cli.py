"""``robot-il record`` end to end: the reach expert in MuJoCo into a real zarr dataset."""

from __future__ import annotations

import os

import numpy as np
import pytest

from robot_il.cli import main
from robot_il.dataset import Dataset
from robot_il.dataset.validate import validate

pytest.importorskip("mujoco")


def record(*args: str) -> int:
    return main(["record", "--task", "reach", "--no-fsync", *args])


def test_expert_episodes_are_recorded_validated_and_protected(tmp_path, capsys):
    out = tmp_path / "reach.zarr"
    assert record("--expert", "--episodes", "2", "--out", str(out)) == 0
    assert "kept 2 episode(s)" in capsys.readouterr().out

    report = validate(out)
    assert report.ok, report.problems
    dataset = Dataset.open(out)
    assert dataset.num_episodes == 2
    assert dataset.attrs["task"] == "reach" and dataset.attrs["source"] == "expert"
    assert dataset.attrs["control_hz"] == 20.0 and dataset.attrs["action_mode"] == "joint"
    for key in ("joint_pos", "joint_vel", "gripper", "eef_pose", "target_pos", "action"):
        assert key in dataset.keys
    for episode in range(2):
        steps, meta = dataset.episode(episode), dataset.meta(episode)
        assert meta["success"] and meta["source"] == "expert"
        assert meta["rec_dropped_ticks"] == 0 and meta["rec_frames"] == len(steps["tick"])
        np.testing.assert_array_equal(steps["tick"], np.arange(len(steps["tick"])))
        np.testing.assert_allclose(steps["timestamp"], steps["tick"] / 20.0)
        assert steps["action"].shape == (len(steps["tick"]), 7)
    assert [dataset.meta(i)["seed"] for i in range(2)] == [0, 1]
    first_episode = dataset.episode(0)["joint_pos"].copy()

    # An existing dataset is refused without --force, and left as it was.
    assert record("--expert", "--episodes", "1", "--out", str(out)) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    # --append adds episodes after the committed ones; a different setup is refused.
    assert record("--expert", "--episodes", "1", "--seed", "7", "--out", str(out), "--append") == 0
    assert (
        record("--expert", "--episodes", "1", "--out", str(out), "--append", "--control-hz", "10")
        == 2
    )
    assert "cannot append: dataset has control_hz=20.0" in capsys.readouterr().err
    dataset = Dataset.open(out)
    assert dataset.num_episodes == 3 and dataset.meta(2)["seed"] == 7
    np.testing.assert_array_equal(dataset.episode(0)["joint_pos"], first_episode)
    # --force replaces it.
    assert record("--expert", "--episodes", "1", "--out", str(out), "--force") == 0
    assert Dataset.open(out).num_episodes == 1


def test_a_task_frame_copy_is_refused_as_an_append_target(tmp_path, capsys):
    """Before: refused for its keys, pointing at --cameras and --image-size."""
    from robot_il.envs.task_frame import frame_dataset

    world = tmp_path / "push.zarr"
    args = ["--task", "push", "--expert", "--episodes", "1", "--action-mode", "eef_delta"]
    assert main(["record", "--no-fsync", *args, "--out", str(world)]) == 0
    copy = frame_dataset(world, tmp_path / "push_frame.zarr", "push")
    assert main(["record", "--no-fsync", *args, "--out", str(copy), "--append"]) == 2
    error = capsys.readouterr().err
    assert "cannot append: it is a copy in the 'push' task frame; append to the world" in error
    assert Dataset.open(copy).num_episodes == 1


def test_failed_expert_episodes_are_dropped_unless_kept(tmp_path, capsys):
    # Two steps are too few for the expert to reach: every attempt fails.
    out = tmp_path / "short.zarr"
    args = ["--expert", "--episodes", "1", "--max-steps", "2", "--max-attempts", "2"]
    assert record(*args, "--out", str(out)) == 1
    assert "kept 0 of 1 requested" in capsys.readouterr().out
    assert Dataset.open(out).num_episodes == 0
    assert record(*args, "--out", str(out), "--force", "--keep-failures") == 0
    dataset = Dataset.open(out)
    assert dataset.num_episodes == 1 and not dataset.meta(0)["success"]
    assert len(dataset.episode(0)["action"]) == 2


def test_action_noise_is_executed_but_the_clean_expert_action_is_recorded(tmp_path):
    """DART: the arm goes where the noisy action takes it, and every recorded action is what
    the expert chose from the recorded observation (replaying the observations gives it)."""
    from robot_il.envs import make_env, make_expert

    clean, noisy = tmp_path / "clean.zarr", tmp_path / "noisy.zarr"
    common = ("--expert", "--episodes", "1", "--action-mode", "eef_delta")
    assert record(*common, "--out", str(clean)) == 0
    assert record(*common, "--action-noise", "0.004", "--out", str(noisy)) == 0
    clean_steps, noisy_steps = Dataset.open(clean).episode(0), Dataset.open(noisy).episode(0)
    steps = min(len(clean_steps["tick"]), len(noisy_steps["tick"]))
    drift = np.abs(noisy_steps["eef_pose"][:steps, :3] - clean_steps["eef_pose"][:steps, :3])
    assert drift.max() > 0.002  # the noise moved the arm

    env = make_env("reach", "mujoco", action_mode="eef_delta")
    expert = make_expert(env)
    keys = [k for k in noisy_steps if k not in ("action", "timestamp", "tick")]
    observations = [{k: noisy_steps[k][t] for k in keys} for t in range(len(noisy_steps["tick"]))]
    expert.reset(observations[0])
    replayed = np.array([expert.act(obs) for obs in observations])
    env.close()
    np.testing.assert_allclose(replayed, noisy_steps["action"], atol=1e-6)
    assert record(*common, "--action-noise", "-1", "--out", str(tmp_path / "bad.zarr")) == 2


def test_no_dataset_is_started_where_none_can_be_written(tmp_path, capsys):
    """A file on the path (or a read-only folder) failed with an OSError traceback once the env
    was built; it is a one-line error before any work, and nothing is created."""
    afile = tmp_path / "notes.txt"
    afile.write_text("")
    for out, append in ((afile / "demo.zarr", ()), (afile, ("--append",))):
        assert record("--expert", "--episodes", "1", "--out", str(out), *append) == 2
        assert f"{out}: cannot be written: {afile} is a file" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes in a read-only folder anyway
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o555)
        assert record("--expert", "--episodes", "1", "--out", str(folder / "d" / "x.zarr")) == 2
        assert f"cannot write in {folder} (read-only" in capsys.readouterr().err
        assert not any(folder.iterdir())
    with pytest.raises(SystemExit):
        record("--expert", "--max-attempts", "0", "--out", str(tmp_path / "none.zarr"))
    assert "--max-attempts: must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "none.zarr").exists()


def test_a_dataset_that_never_had_a_frame_takes_the_appended_keys(tmp_path):
    """A session interrupted before its first frame leaves a dataset without keys: appending
    to it was refused ('this session records eef_pose, which the dataset does not have')."""
    from robot_il.dataset import DatasetWriter

    out = tmp_path / "empty.zarr"
    attrs = {"task": "reach", "backend": "mujoco", "action_mode": "joint", "source": "expert"}
    DatasetWriter.create(out, robot="ur5e", control_hz=20.0, attrs=attrs, fsync=False).close()
    assert record("--expert", "--episodes", "1", "--out", str(out), "--append") == 0
    dataset = Dataset.open(out)
    assert dataset.num_episodes == 1 and "eef_pose" in dataset.keys


@pytest.mark.parametrize("during", ["robot_il.envs.make_env", "robot_il.cli.record._open_writer"])
def test_an_append_interrupted_before_its_writer_opened_says_the_dataset_is_whole(
    tmp_path, capsys, monkeypatch, during
):
    """Ctrl-C while an ``--append`` session started (its env's build, its writer's opening:
    5 of 15 early interrupts in a loop) said only "interrupted", nothing of the episodes
    already in the dataset."""
    out = tmp_path / "reach.zarr"
    assert record("--expert", "--episodes", "2", "--out", str(out)) == 0

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(during, ctrl_c)
    assert record("--expert", "--episodes", "1", "--out", str(out), "--append") == 130
    assert f"{out}: 0 episode(s) of this session kept, 2 in the dataset" in capsys.readouterr().err
    assert Dataset.open(out).num_episodes == 2


def test_a_ctrl_c_as_the_new_store_is_put_in_place_leaves_no_dataset(tmp_path, capsys, monkeypatch):
    """A Ctrl-C just after the new store's rename, before its writer opened, left an empty
    dataset that a rerun refused without --force; the opening now takes the stop after it."""
    import signal

    import robot_il.dataset.writer

    put_in_place = robot_il.dataset.writer.replace_atomically

    def put_in_place_then_ctrl_c(*args, **kwargs):
        put_in_place(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(robot_il.dataset.writer, "replace_atomically", put_in_place_then_ctrl_c)
    out = tmp_path / "reach.zarr"
    assert record("--expert", "--episodes", "1", "--out", str(out)) == 130
    assert "no episode recorded; the empty dataset it began is removed" in capsys.readouterr().err
    assert not out.exists()


def test_a_second_ctrl_c_waits_for_the_line_of_what_was_kept(tmp_path, capsys, monkeypatch):
    """A second Ctrl-C while an interrupted session counted what it kept cut that line off:
    the person pressing twice learnt nothing of the dataset."""
    import signal

    import robot_il.cli.record

    out = tmp_path / "reach.zarr"
    assert record("--expert", "--episodes", "2", "--out", str(out)) == 0
    count_episodes = robot_il.cli.record._episodes_in
    counts = []

    def count_under_a_second_ctrl_c(path):
        counts.append(path)
        if len(counts) == 2:  # the first is the append's count before it starts
            signal.raise_signal(signal.SIGINT)
        return count_episodes(path)

    def first_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(robot_il.cli.record, "_episodes_in", count_under_a_second_ctrl_c)
    monkeypatch.setattr("robot_il.record.demos.record_expert", first_ctrl_c)
    assert record("--expert", "--episodes", "1", "--out", str(out), "--append") == 130
    assert f"{out}: 0 episode(s) of this session kept, 2 in the dataset" in capsys.readouterr().err
    assert len(counts) == 2


def test_each_episode_keeps_the_settings_it_was_recorded_under(tmp_path, capsys):
    """The DART noise and hold-after-success were stored nowhere, so an --append under other
    ones mixed them without a trace; now each episode's meta has them, and the append says so."""
    out = tmp_path / "reach.zarr"
    assert record("--expert", "--episodes", "1", "--out", str(out)) == 0
    capsys.readouterr()
    appended = ["--expert", "--episodes", "1", "--out", str(out), "--append"]
    assert record(*appended, "--action-noise", "0.01", "--hold-after-success") == 0
    note = "note: appending under other settings than the dataset's last episode ("
    assert f"{note}hold_after_success False -> True, action_noise 0.0 -> 0.01)" in (
        capsys.readouterr().out
    )
    dataset = Dataset.open(out)
    assert [dataset.meta(e)["action_noise"] for e in range(2)] == [0.0, 0.01]
    assert [dataset.meta(e)["hold_after_success"] for e in range(2)] == [False, True]


@pytest.mark.parametrize(("stop_signal", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_session_says_how_many_episodes_it_kept(tmp_path, stop_signal, code):
    """Ctrl-C said only "interrupted": whether the episodes recorded so far were kept was left
    to ``data info``. SIGTERM (``kill``, ``timeout``, a service manager) ended the process at
    once, with no word at all; it now stops the session as Ctrl-C does."""
    import contextlib
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from robot_il.ros.ros_eval import stop_process

    out = tmp_path / "reach.zarr"
    robot_il = Path(sys.executable).parent / "robot-il"
    argv = [str(robot_il), "record", "--task", "reach", "--expert", "--episodes", "500",
            "--no-fsync", "--out", str(out)]  # fmt: skip
    log = tmp_path / "record.log"  # not a pipe, whose buffer the progress bar could fill
    with log.open("w") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=output)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until some episodes are committed
            time.sleep(0.2)
            try:
                if Dataset.open(out).num_episodes >= 2:
                    break
            except Exception:  # noqa: BLE001 - not created yet
                continue
        process.send_signal(getattr(signal, stop_signal))
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
        stopped = process.poll() is not None
        stop_process(process)  # one that has not stopped leaves its stacks in the log
    err = log.read_text()
    assert stopped, f"still running 60 s after {stop_signal}:\n{err[-5000:]}"
    kept = Dataset.open(out).num_episodes
    assert process.returncode == code, err
    assert f"{out}: {kept} episode(s) of this session kept, {kept} in the dataset" in err
