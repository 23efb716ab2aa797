"""``robot-il sim replay``: a recording's actions, executed from its seeds, walk through its
observations again (DART noise included), and a dataset that no longer matches says so."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import pytest
import zarr

from robot_il.cli import main


@pytest.fixture(scope="module")
def noisy_push(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scripted push episodes recorded with DART noise (executed, not recorded)."""
    path = tmp_path_factory.mktemp("replay") / "push.zarr"
    argv = ["record", "--task", "push", "--expert", "--episodes", "2", "--max-steps", "70",
            "--action-mode", "eef_delta", "--action-noise", "0.005",
            "--out", str(path)]  # fmt: skip
    assert main(argv) == 0
    return path


def test_a_recording_replays_exactly_with_the_noise_it_executed(noisy_push, tmp_path, capsys):
    video = tmp_path / "replay.mp4"
    argv = ["sim", "replay", "--dataset", str(noisy_push), "--episodes", "-1",
            "--video", str(video), "--video-size", "64", "96"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "recorded success, replayed success; largest gap 0 (joint_pos" in out
    assert "replayed 1 episode(s) on mujoco: 1 ended as recorded; largest gap 0" in out
    reader = imageio.get_reader(video)
    steps = int(out.split(" actions")[0].rsplit(" ", 1)[1])
    assert reader.count_frames() == steps + 1  # before every action and after the last
    assert reader.get_data(0).shape == (64, 96, 3)


def test_a_replay_without_the_recorded_noise_drifts(noisy_push, tmp_path, capsys):
    """The noise is what the env executed: forget it (the episode's meta says none) and the
    replayed joints leave the recorded ones."""
    import shutil

    copy = tmp_path / "quiet.zarr"
    shutil.copytree(noisy_push, copy)
    root = zarr.open_group(str(copy), mode="r+")
    root["meta/action_noise"][:] = 0.0
    main(["sim", "replay", "--dataset", str(copy), "--episodes", "0"])
    out = capsys.readouterr().out
    gap = float(out.split("largest gap ")[1].split(" ")[0])
    assert gap > 1e-3


def test_a_replay_on_the_other_backend_says_where_it_was_recorded(noisy_push, capsys):
    """Before: the summary said "replayed ... on pybullet: 0 ended as recorded" of a MuJoCo
    recording with no word that the backends differ, the likeliest reason for a gap."""
    argv = ["sim", "replay", "--dataset", str(noisy_push), "--episodes", "0"]
    main([*argv, "--backend", "pybullet"])
    assert "replayed 1 episode(s) on pybullet (recorded on mujoco): " in capsys.readouterr().out
    assert main(argv) == 0
    assert "replayed 1 episode(s) on mujoco: 1 ended as recorded" in capsys.readouterr().out


def test_what_cannot_be_replayed_is_refused_in_one_line(noisy_push, tmp_path, capsys):
    import shutil

    def error(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    err = error(["sim", "replay", "--dataset", str(noisy_push), "--episodes", "2"])
    assert err.endswith(f"--episodes 2: {noisy_push} has 2 episodes (0..1, or -2..-1 from "
                        "the end)")  # fmt: skip
    unseeded = tmp_path / "unseeded.zarr"
    shutil.copytree(noisy_push, unseeded)
    del zarr.open_group(str(unseeded), mode="r+")["meta/seed"]
    err = error(["sim", "replay", "--dataset", str(unseeded)])
    assert "episode 0 has no env seed (meta/seed)" in err
    err = error(["sim", "replay", "--dataset", str(noisy_push), "--video", str(tmp_path)])
    assert "--video must name an .mp4 file" in err


def test_a_benchmark_recording_and_its_task_frame_copy_replay_with_their_noise(tmp_path, capsys):
    """``robot_il.train.demos`` keeps the DART noise in the dataset's attrs, not per episode
    (its replays drifted 0.41 rad and 9 of 10 ended otherwise); a task-frame copy replays in
    the frame env, the noise drawn in the world and turned into the frame (6 of 10 ended
    otherwise when the noise was added to the frame's actions)."""
    from robot_il.envs.task_frame import frame_dataset

    from robot_il.train.demos import record_expert_demos

    world = record_expert_demos("push", tmp_path / "world", episodes=2, seed=2,
                                action_noise=0.005, action_mode="eef_delta",
                                max_episode_steps=70, terminate_on_success=False)  # fmt: skip
    assert main(["sim", "replay", "--dataset", str(world)]) == 0
    assert "2 ended as recorded; largest gap 0 (joint_pos" in capsys.readouterr().out
    frame = frame_dataset(world, tmp_path / "frame.zarr", "push")
    assert main(["sim", "replay", "--dataset", str(frame)]) == 0
    out = capsys.readouterr().out
    assert "2 ended as recorded" in out
    assert float(out.split("largest gap ")[-1].split(" ")[0]) < 1e-4
