"""``robot-il sim``: listing, an expert rollout written to a watchable mp4, one-line errors."""

from __future__ import annotations

import imageio.v2 as imageio
import pytest

from robot_il.cli import main


def test_list(capsys):
    assert main(["sim", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("reach", "push", "pick_place", "bimanual_handover", "mujoco", "pybullet"):
        assert name in out
    lines = out.splitlines()
    assert lines[-1].endswith("dmc:walker_walk, dmc:walker_stand, dmc:cartpole_swingup")
    cameras = {task.split()[0]: below.split("cameras: ")[1]
               for task, below in zip(lines[:-2:2], lines[1:-2:2], strict=True)}  # fmt: skip
    assert cameras["reach"] == "front, top, side, wrist"  # the cameras make_env accepts
    assert cameras["bimanual_handover"] == "front, top, side, left_wrist, right_wrist"


def test_rollout_writes_video(tmp_path, capsys):
    video = tmp_path / "reach.mp4"
    code = main(
        [
            "sim",
            "rollout",
            "--task",
            "reach",
            "--backend",
            "pybullet",
            "--expert",
            "--episodes",
            "2",
            "--seed",
            "3",
            "--video",
            str(video),
            "--video-size",
            "90",
            "122",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "success 2/2 = 100% (95% CI 34%-100%)" in out
    frames = [frame for frame in imageio.get_reader(str(video), format="FFMPEG")]
    # the size asked for, not imageio's multiple of 16 (was 96x128)
    assert len(frames) > 4 and frames[0].shape == (90, 122, 3)
    assert frames[0].std() > 5


def test_an_interrupted_rollout_keeps_the_previous_video_and_says_what_it_ran(
    tmp_path, capsys, monkeypatch
):
    """Ctrl-C in the second episode: the film of the first did replace the previous video
    (the writer wrote the named file), and nothing said how the finished episode went. Now
    the previous video stays whole, no part is left, and the finished episode's line is
    printed with its interval."""
    import robot_il.envs

    make_expert = robot_il.envs.make_expert

    def expert_interrupted_in_episode_two(env):
        expert = make_expert(env)
        act, reset, episodes = expert.act, expert.reset, []

        def count_episodes(obs):
            episodes.append(1)
            reset(obs)

        def act_or_interrupt(obs):
            if len(episodes) == 2:
                raise KeyboardInterrupt
            return act(obs)

        expert.reset, expert.act = count_episodes, act_or_interrupt
        return expert

    monkeypatch.setattr(robot_il.envs, "make_expert", expert_interrupted_in_episode_two)
    video = tmp_path / "reach.mp4"
    video.write_bytes(b"the previous film")
    argv = ["sim", "rollout", "--task", "reach", "--expert", "--episodes", "3"]
    assert main([*argv, "--video", str(video), "--video-size", "48", "64"]) == 130
    assert video.read_bytes() == b"the previous film"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reach.mp4"]
    assert (
        "interrupted after 1 of 3 episodes: success 1/1 = 100% (95% CI 21%-100%); the video "
        "not written" in capsys.readouterr().out
    )


def test_rollout_errors_are_one_line(capsys):
    assert main(["sim", "rollout", "--task", "fold_laundry", "--expert"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robot-il: error: unknown task 'fold_laundry'") and "\n" not in err
    assert main(["sim", "rollout", "--task", "reach"]) == 2
    assert "--expert" in capsys.readouterr().err


def test_rollout_refuses_bad_flags_before_any_work(tmp_path, capsys):
    """A DMC task (no scripted expert), a negative seed and an empty video frame fail at once,
    and no video file is left behind."""
    assert main(["sim", "rollout", "--task", "dmc:walker_walk", "--expert"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robot-il: error: dmc:walker_walk: sim rollout runs scripted experts")
    assert "\n" not in err
    video = tmp_path / "b.mp4"
    for flags in (["--seed", "-1"], ["--video", str(video), "--video-size", "0", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["sim", "rollout", "--task", "reach", "--expert", *flags])
        assert exit_info.value.code == 2
        assert "must be >= " in capsys.readouterr().err
    assert not video.exists()


def test_rollout_refuses_a_video_it_cannot_write(tmp_path, capsys):
    """A video in a missing folder failed with imageio's traceback after the env was built;
    now it, a folder named like a video and an odd frame size fail at once in one line."""
    (tmp_path / "folder.mp4").mkdir()
    odd = [str(tmp_path / "odd.mp4"), "--video-size", "101", "98"]
    for flags, message in (
        ([str(tmp_path / "missing" / "a.mp4")], f"folder {tmp_path / 'missing'} does not exist"),
        ([str(tmp_path / "folder.mp4")], "is a folder"),
        (odd, "101 98: H.264 video needs even sizes"),
    ):
        assert main(["sim", "rollout", "--task", "reach", "--expert", "--video", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
