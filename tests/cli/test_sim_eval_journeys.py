"""User journeys of ``robot-il eval``, ``info`` and ``sim`` found wanting in review: a long
evaluation silent until its end, and one interrupted losing the episodes it had run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_errors import one_line_error

from robot_il.cli import main

pytest.importorskip("mujoco")

FAST = ["--no-progress", "--batch-size", "16", "--policy.hidden-dims", "16"]


@pytest.fixture(scope="module")
def run(reach: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished BC run of 5 steps, not evaluated."""
    out = tmp_path_factory.mktemp("journey") / "bc"
    argv = ["train", "bc", "--dataset", str(reach), "--out", str(out), "--steps", "5", *FAST]
    assert main([*argv, "--eval.episodes", "0"]) == 0
    return out


def interrupt_at_act(monkeypatch: pytest.MonkeyPatch, call: int, before=lambda: None) -> None:
    """BC's ``act`` raises KeyboardInterrupt (Ctrl-C) on its ``call``-th call, after calling
    ``before()``."""
    from robot_il.policies.bc import BCPolicy

    acted, act = [], BCPolicy.act

    def act_then_interrupt(self: BCPolicy, obs: dict) -> object:
        acted.append(1)
        if len(acted) == call:
            before()
            raise KeyboardInterrupt
        return act(self, obs)

    monkeypatch.setattr(BCPolicy, "act", act_then_interrupt)


def test_an_evaluation_says_each_episode_as_it_ends(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the episodes' lines came all together after the last episode, so a long
    evaluation showed nothing but its bar; now episode 1's line is out while episode 2 runs,
    and an interrupted evaluation (Ctrl-C in its third episode) says what its finished
    episodes gave, with the interval, that nothing was written, and leaves no part of its
    video behind."""
    seen: list[str] = []
    interrupt_at_act(monkeypatch, 3 + 3 + 1, before=lambda: seen.append(capsys.readouterr().out))
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(run), "--max-steps", "3", "--out", str(out)]
    assert main([*argv, "--episodes", "5", "--seed", "7", "--video"]) == 130
    lines = [*seen[0].splitlines(), *capsys.readouterr().out.splitlines()]
    assert lines[1:3] == ["seed 7: FAILURE after 3 steps", "seed 8: FAILURE after 3 steps"]
    assert lines[3] == (
        f"interrupted after 2 of 5 episodes: success 0/2 = 0% (95% CI 0%-66%); not written "
        f"({out} keeps the previous results)"
    )
    assert sorted(p.name for p in out.iterdir()) == []  # no rollouts.partial.mp4


def test_results_or_a_video_that_cannot_be_written_are_refused_before_any_rollout(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: eval's ``mkdir`` of an ``--out`` under a file (or on a read-only file system)
    ended in a FileNotFoundError traceback after the policy loaded, and sim rollout's video
    in a folder it cannot create files in (/proc here: root writes through permissions) in
    imageio's BrokenPipe traceback after the first episode. Both are refused in one line
    now, and nothing is created; a video whose folder is a file is said to be so."""
    notes = tmp_path / "notes.txt"
    notes.write_text("")
    out = notes / "eval"
    err = one_line_error(["eval", "--checkpoint", str(run), "--out", str(out)], capsys)
    assert err == f"robot-il: error: {out}: cannot write the results there (Not a directory)"
    rollout = ["sim", "rollout", "--task", "reach", "--expert", "--video"]
    err = one_line_error([*rollout, str(notes / "reach.mp4")], capsys)
    assert err.endswith(f"{notes / 'reach.mp4'}: cannot write the video there (Not a directory)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    if Path("/proc/self").is_dir():
        err = one_line_error([*rollout, "/proc/reach.mp4"], capsys)
        assert err.startswith("robot-il: error: /proc/reach.mp4: cannot write the video there")


def test_seeds_torch_cannot_take_are_refused_before_the_checkpoint_loads(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``--seed`` 2**64 passed the flag's check (>= 0) and failed in torch's
    ``manual_seed`` with an overflow traceback, after the env was built; the last episode's
    seed counts too."""
    top = 2**64 - 1
    err = one_line_error(["eval", "--checkpoint", str(run), "--seed", str(top), "--episodes",
                          "2"], capsys)  # fmt: skip
    assert err == (
        f"robot-il: error: the evaluation's episode seeds run from {top} to {top + 1}; they "
        f"must lie in 0..{top} (2**64 - 1, the largest torch's generators take)"
    )
    argv = ["eval", "--checkpoint", str(run), "--seed", str(top), "--episodes", "1"]
    assert main([*argv, "--max-steps", "1", "--out", str(run / "top")]) == 0


def test_a_checkpoint_of_data_that_named_no_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real cell's recording names no task, nor its checkpoint: ``info`` printed "task None
    ... None actions", and ``eval`` failed after loading it with "pass eval.task", a
    training setting. Now info says eval needs --task (and joint actions, as everything reads
    a missing action mode), eval asks for --task at once, and runs with it."""
    import numpy as np

    from robot_il.dataset import DatasetWriter

    data = tmp_path / "cell.zarr"
    rng = np.random.default_rng(0)
    with DatasetWriter.create(data, robot="ur5e", control_hz=20.0, fsync=False) as writer:
        for _ in range(2):
            joints = rng.uniform(-1, 1, (10, 6)).astype(np.float32)
            action = np.concatenate([joints, np.zeros((10, 1), np.float32)], axis=1)
            writer.add_episode({"joint_pos": joints, "action": action})
    run = tmp_path / "bc"
    argv = ["train", "bc", "--dataset", str(data), "--out", str(run), "--steps", "2", *FAST]
    assert main([*argv, "--eval.episodes", "0"]) == 0
    capsys.readouterr()
    assert main(["info", str(run)]) == 0
    acts_for = capsys.readouterr().out.splitlines()[2]
    assert acts_for == "acts for     ur5e, no task (robot-il eval needs --task) at 20 Hz, joint " \
                       "actions (7)"  # fmt: skip
    err = one_line_error(["eval", "--checkpoint", str(run)], capsys)
    assert err == (f"robot-il: error: {run}: its training data named no task; pass --task "
                   "(robot-il sim list shows them)")  # fmt: skip
    argv = ["eval", "--checkpoint", str(run), "--task", "reach", "--episodes", "1"]
    assert main([*argv, "--max-steps", "2"]) == 0
    assert "bc on reach/mujoco: success 0/1" in capsys.readouterr().out


def test_an_evaluation_of_a_training_still_running_says_so(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``eval --checkpoint OUT`` of a training still running evaluated its latest
    save as if it were the finished policy, and nothing said so but the step in the
    provenance line. The run lock (held here as the trainer holds it) is read now; a
    finished run's evaluation says nothing of it."""
    from robot_il.train.trainer import lock_run

    argv = ["eval", "--checkpoint", str(run), "--episodes", "1", "--max-steps", "1"]
    argv += ["--out", str(tmp_path / "eval")]
    with lock_run(run):
        assert main(argv) == 0
        note = f"robot-il: note: a training still runs in {run} (pid {os.getpid()}): this "
        assert note in capsys.readouterr().out
    assert main(argv) == 0
    assert "training still runs" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "guess"),
    [
        (["sim", "rollout", "--task", "reech", "--expert"], "'reech' (did you mean 'reach'?)"),
        (["sim", "rollout", "--task", "pick-place", "--expert"], "(did you mean 'pick_place'?)"),
        (["eval", "--task", "bimanual_hand"], "(did you mean 'bimanual_handover'?)"),
    ],
)
def test_a_task_name_typo_is_answered_with_the_nearest_task(
    run: Path, capsys: pytest.CaptureFixture[str], argv: list[str], guess: str
) -> None:
    """Before: "unknown task 'reech'" and the list of all eight tasks to search by eye."""
    argv = [*argv, "--checkpoint", str(run)] if argv[0] == "eval" else argv
    err = one_line_error(argv, capsys)
    assert err.startswith(f"robot-il: error: unknown task '{argv[argv.index('--task') + 1]}' ")
    assert guess in err and "dmc:cartpole_swingup; a task of your own is registered" in err
