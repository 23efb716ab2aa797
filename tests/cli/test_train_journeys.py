"""User journeys of ``robot-il train``, ``eval`` and the training launch file found wanting in
review: settings no run can take, an ``--out`` that is a file, a device this machine lacks,
a finished run started again, torchrun around a one-process learner, and launch arguments
that overrode the config file."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_errors import one_line_error

from robot_il.cli import main
from robot_il.cli.train import split_config_flag
from robot_il.launch.description import load_launch
from robot_il.train.config import TRAIN_CONFIGS, load_config

pytest.importorskip("mujoco")

FAST = ["--no-progress", "--batch-size", "16", "--policy.hidden-dims", "16"]
ONLINE = ["--no-progress", "--policy.hidden-dims", "16", "--learning-starts", "0",
          "--buffer-size", "1000"]  # fmt: skip
BRIEF = {"bc": ["--steps", "5", *FAST], "opt-ail": [*ONLINE, "--env-steps", "50"]}
"""A budget of seconds: a refusal that does not come ends the test quickly, not after a run."""


@pytest.fixture(scope="module")
def run(reach: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished BC run of 5 steps with a one-episode evaluation."""
    out = tmp_path_factory.mktemp("journey") / "bc"
    argv = ["train", "bc", "--dataset", str(reach), "--out", str(out), "--steps", "5", *FAST]
    assert main([*argv, "--eval.episodes", "1", "--eval.max-episode-steps", "3"]) == 0
    return out


@pytest.mark.parametrize(
    ("family", "flags", "message"),
    [
        ("bc", ["--steps", "0"], "--steps must be >= 1, got 0"),
        ("bc", ["--log-every", "0"], "--log-every must be >= 1, got 0"),
        ("bc", ["--save-every", "0"], "--save-every must be >= 1, got 0"),
        ("bc", ["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        ("bc", ["--lr", "0"], "--lr must be > 0, got 0.0"),
        ("diffusion", ["--eval.episodes", "-1"], "--eval.episodes must be >= 0, got -1"),
        ("dac", ["--log-every", "0"], "--log-every must be >= 1, got 0"),
        ("opt-ail", ["--buffer-size", "-1"], "--buffer-size must be >= 0, got -1"),
        ("bc", ["--device", "cdua"], "device 'cdua': Expected one of cpu"),
        ("bc", ["--eval.seed", str(2**64)], "episode seeds run from 18446744073709551616"),
        ("opt-ail", ["--eval.seed", str(2**64 - 1), "--eval.episodes", "2"], "must lie in 0.."),
    ],
)
def test_train_refuses_settings_no_run_can_take_before_creating_the_run(
    reach: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    family: str,
    flags: list[str],
    message: str,
) -> None:
    """Before: steps 0 printed a checkpoint that was never written, an interval of 0 died
    of ZeroDivisionError mid-run, a bad device name as a traceback."""
    out = tmp_path / "run"
    argv = ["train", family, "--dataset", str(reach), "--out", str(out), *flags]
    assert message in one_line_error(argv, capsys)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_this_machine_lacks_is_one_line_for_train_and_eval(
    reach: Path, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "robot-il: error: device 'cuda': 0 CUDA devices visible here; use cpu"
    argv = ["train", "bc", "--dataset", str(reach), "--out", str(tmp_path / "gpu")]
    assert one_line_error([*argv, "--device", "cuda"], capsys) == message
    assert one_line_error(["eval", "--checkpoint", str(run), "--device", "cuda"], capsys) == message


def test_an_out_that_is_a_file_is_refused_by_train_eval_and_dmp(
    reach: Path, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: FileExistsError / NotADirectoryError tracebacks, after the data was loaded."""
    file = tmp_path / "notes.txt"
    file.write_text("mine\n")
    for family in ("bc", "dac", "dmp"):
        err = one_line_error(["train", family, "--dataset", str(reach), "--out", str(file)], capsys)
        assert f"--out {file}: is a file" in err
    err = one_line_error(["eval", "--checkpoint", str(run), "--out", str(file)], capsys)
    assert f"--out {file}: is a file" in err
    assert file.read_text() == "mine\n"


@pytest.mark.parametrize("family", ["bc", "opt-ail"])
def test_an_out_inside_the_dataset_is_refused(
    reach: Path, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    """Before: the run's folders were written among the dataset's arrays."""
    out = reach / "run"
    argv = ["train", family, "--dataset", str(reach), "--out", str(out), *BRIEF[family]]
    err = one_line_error(argv, capsys)
    assert f"--out {out}: is inside the dataset {reach}" in err
    assert not out.exists()


@pytest.mark.parametrize("family", ["bc", "opt-ail"])
def test_an_out_inside_another_dataset_or_in_a_checkpoint_is_refused(
    reach: Path, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    """Before: a run was written among another dataset's arrays, or into a checkpoint (a
    run's ``policy/``, which that run replaces, with the run inside it, at its next save)."""
    other = Path(shutil.copytree(reach, tmp_path / "other.zarr"))
    argv = ["train", family, "--dataset", str(reach), *BRIEF[family]]
    err = one_line_error([*argv, "--out", str(other / "run")], capsys)
    assert f"--out {other / 'run'}: is inside the dataset {other}; pass a run directory" in err
    checkpoint = run / "policy"
    err = one_line_error([*argv, "--out", str(checkpoint)], capsys)
    assert f"--out {checkpoint}: is a checkpoint, not a run directory; pass a new --out" in err
    assert not (other / "run").exists() and not (checkpoint / "train_state").exists()


def test_a_finished_run_started_again_keeps_its_summary(
    reach: Path, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the same command again rewrote summary.json with final_loss NaN (not JSON)
    and no evaluation."""
    summary = json.loads((run / "summary.json").read_text())
    assert "eval" in summary
    argv = ["train", "bc", "--dataset", str(reach), "--out", str(run), "--steps", "5", *FAST]
    assert main([*argv, "--eval.episodes", "1", "--eval.max-episode-steps", "3"]) == 0
    assert f"{run}: this run finished at step 5; nothing to train" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text()) == summary


HOLDERS = {
    "bc": [*FAST, "--steps", "1000", "--save-every", "5"],
    "dac": [*ONLINE, "--env-steps", "100000", "--save-every", "1"],
}
"""A training that saves early and would run for seconds more, per family."""


@pytest.mark.parametrize("family", HOLDERS)
def test_a_second_training_in_the_out_of_a_running_one_is_refused(
    reach: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    """Before: a second training (of any family) given the --out of one still running
    trained too; the first one's metrics rows went to the metrics.csv the second replaced
    (a deleted file), and a save of one could fail renaming the other's. Refused now while
    the first runs (here: stopped by SIGSTOP after its first save); once it is killed, its
    rerun resumes from that save and finishes."""
    out = tmp_path / "run"
    argv = ["train", family, "--dataset", str(reach), "--out", str(out), "--eval.episodes", "0"]
    robot_il = Path(sys.executable).with_name("robot-il")
    first = subprocess.Popen([robot_il, *argv, *HOLDERS[family]], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "train_state" / "state.pt").exists():
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no save within 60 s"
            time.sleep(0.01)
        first.send_signal(signal.SIGSTOP)  # holds its lock, as if busy
        metrics = (out / "metrics.csv").stat()
        for other in ("bc", "dac"):
            again = ["train", other, "--dataset", str(reach), "--out", str(out)]
            err = one_line_error([*again, *HOLDERS[other], "--eval.episodes", "0"], capsys)
            assert err == (f"robot-il: error: {out}: another training runs in this --out (pid "
                           f"{first.pid}); wait for it to end or pass another --out")  # fmt: skip
        assert (out / "metrics.csv").stat() == metrics
    finally:
        first.kill()
        first.wait()
    saved = torch.load(out / "train_state" / "state.pt", weights_only=False)["step"]
    budget = ("steps", 1000) if family == "bc" else ("env_steps", saved + 3)
    rerun = [f"--{budget[0].replace('_', '-')}", str(budget[1]), "--save-every", "1000"]
    assert main([*argv, *HOLDERS[family], *rerun]) == 0
    assert json.loads((out / "summary.json").read_text())[budget[0]] == budget[1]


@pytest.mark.parametrize("family", HOLDERS)
def test_an_out_that_cannot_be_written_is_refused_in_one_line(
    reach: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    """Before: the run lock's ``mkdir`` of ``--out`` (here under a file; a read-only file
    system fails the same way) ended the run in an OSError traceback."""
    (tmp_path / "notes.txt").write_text("")
    out = tmp_path / "notes.txt" / "run"
    argv = ["train", family, "--dataset", str(reach), "--out", str(out), "--eval.episodes", "0"]
    err = one_line_error([*argv, *HOLDERS[family]], capsys)
    assert err == f"robot-il: error: --out {out}: cannot write the run there (Not a directory)"


def test_an_out_on_a_file_system_without_locks_trains_unlocked_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFSv3 without its lock daemon answers ``flock`` with ENOLCK: such runs trained before
    the run lock came, and must still (a traceback ended them). No such file system here, so
    the kernel's answer is injected."""
    import errno
    import fcntl

    from robot_il.train import trainer

    def no_locks(*_args) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot lock the run \\(No locks available\\)"):
        lock = trainer.lock_run(tmp_path / "run")
    lock.close()
    assert (tmp_path / "run" / trainer.RUN_LOCK).exists()


@pytest.mark.parametrize("family", ["opt-ail", "dac", "iq-learn", "dmp"])
def test_torchrun_around_a_one_process_learner_is_refused(
    reach: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    family: str,
) -> None:
    """Before: each torchrun process ran the whole online (or DMP) training into one --out."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "run"
    err = one_line_error(["train", family, "--dataset", str(reach), "--out", str(out)], capsys)
    assert f"{family} trains in one process; run it without torchrun" in err
    assert not out.exists()


def test_usage_errors_name_the_command_the_user_typed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: tyro's hint said ``robot-il train iq_learn --help``, which argparse refuses,
    in a box of many lines."""
    err = one_line_error(["train", "iq-learn", "--model-based"], capsys)
    assert err == ("robot-il: error: Unrecognized options: --model-based "
                   "(run robot-il train iq-learn --help)")  # fmt: skip
    err = one_line_error(["train", "bc", "--policy.image-encodr", "resnet"], capsys)
    assert "--policy.image-encodr, resnet; perhaps --policy.image-encoder (run" in err
    err = one_line_error(["train", "bc", "--policy.image-encoder", "resnt18"], capsys)
    assert "invalid choice 'resnt18' for argument '--policy.image-encoder'" in err


def test_the_launch_file_leaves_the_config_files_settings_in_place(
    reach: Path, tmp_path: Path
) -> None:
    """Before: the launch arguments' defaults (steps 2000, eval_backend mujoco, ...) always
    overrode the config file, and evaluated a PyBullet dataset's policy in MuJoCo."""
    config = tmp_path / "bc.yaml"
    config.write_text("steps: 30\nseed: 3\neval: {episodes: 2, backend: pybullet}\n")
    launch = Path(__file__).parents[2] / "launch" / "train.launch.yaml"
    values = {"dataset": str(reach), "out": str(tmp_path / "run"), "config": str(config)}

    def settings(**given: str):
        (process,) = load_launch(launch, {**values, **given}).processes
        assert process.argv[1:3] == ("train", "bc")
        return load_config("bc", *split_config_flag(list(process.argv[3:])))

    from_file = settings()
    assert (from_file.steps, from_file.seed, from_file.device) == (30, 3, "cpu")
    assert (from_file.eval.episodes, from_file.eval.backend) == (2, "pybullet")
    given = settings(steps="7", eval_backend="mujoco")
    assert (given.steps, given.seed, given.eval.backend) == (7, 3, "mujoco")
    config.unlink()
    defaults = settings(config="")
    assert (defaults.steps, defaults.eval.episodes, defaults.eval.backend) == (2000, 10, None)


@pytest.mark.parametrize(("family", "shortcut"), [("bc", "--config"), ("opt-ail", "--model-based")])
def test_help_names_the_flags_the_training_command_takes_beside_the_fields(
    capsys: pytest.CaptureFixture[str], family: str, shortcut: str
) -> None:
    """Before: ``--help`` listed the config's fields only, not ``--config`` (the README's
    ``--config file.yaml``) nor opt-ail's ``--model-based``."""
    with pytest.raises(SystemExit) as exit_info:
        main(["train", family, "--help"])
    assert exit_info.value.code == 0
    assert shortcut in capsys.readouterr().out


@pytest.mark.parametrize("family", ["bc", "diffusion", "opt-ail", "dac", "iq-learn"])
def test_help_describes_every_run_and_evaluation_flag(
    capsys: pytest.CaptureFixture[str], family: str
) -> None:
    """Before: ``--dataset``, ``--env-steps``, ``--eval.every`` and the other run settings
    were listed with their default alone."""
    with pytest.raises(SystemExit):
        main(["train", family, "--help"])
    flags = capsys.readouterr().out.partition("show this help message and exit")[2]
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", flags).split())  # one line, boxes or not
    config = TRAIN_CONFIGS[family.replace("-", "_")]()
    names = [f.name for f in dataclasses.fields(config) if f.name not in ("eval", "policy")]
    names += [f"eval.{f.name}" for f in dataclasses.fields(config.eval)]
    for flag in (f"--{name.replace('_', '-')}" for name in names):
        # the flag, its --no- twin, its type (INT, {None}|STR), its help, its default
        flag_help = rf"{re.escape(flag)}(?:, --no-\S+)?(?: [A-Z{{]\S*)? (.*?) ?\(default:"
        described = re.search(flag_help, text)
        assert described and len(described[1].split()) >= 2, f"{flag}: no description"


def test_an_evaluation_elsewhere_keeps_the_others_results(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: every evaluation wrote ``<checkpoint>/eval``, so a PyBullet evaluation replaced
    the MuJoCo one's eval.json, plot and video."""
    quick = ["eval", "--checkpoint", str(run), "--episodes", "1", "--max-steps", "2"]
    assert main(quick) == 0
    assert main([*quick, "--backend", "pybullet"]) == 0
    capsys.readouterr()
    mujoco = json.loads((run / "eval" / "eval.json").read_text())
    pybullet = json.loads((run / "eval_pybullet" / "eval.json").read_text())
    assert (mujoco["env"], pybullet["env"]) == ("reach/mujoco", "reach/pybullet")


def test_a_camera_without_a_video_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--camera wrst`` without ``--video`` was ignored: nothing checked the name."""
    err = one_line_error(["eval", "--checkpoint", str(run), "--camera", "wrst"], capsys)
    assert err.endswith("--camera wrst: picks the camera --video films; add --video")


def test_an_evaluation_killed_midway_leaves_the_previous_results_whole(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted in its second episode, an evaluation with ``--video`` leaves the previous
    evaluation's results as they were (it used to leave its own part of a video beside the
    previous eval.json); a finished one without ``--video`` takes the previous video away."""
    from robot_il.policies.bc import BCPolicy

    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(run), "--max-steps", "3", "--out", str(out)]
    assert main([*argv, "--episodes", "1", "--video"]) == 0
    results = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(results) == ["eval.json", "rollouts.mp4", "success.png"]
    acted, act = [], BCPolicy.act

    def act_then_interrupt(self: BCPolicy, obs: dict) -> object:
        acted.append(1)
        if len(acted) == 5:  # the second episode's second step
            raise KeyboardInterrupt
        return act(self, obs)

    with monkeypatch.context() as patch:
        patch.setattr(BCPolicy, "act", act_then_interrupt)
        assert main([*argv, "--episodes", "2", "--video", "--seed", "7"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in results} == results
    assert main([*argv, "--episodes", "1", "--seed", "7"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "success.png"]
    assert json.loads((out / "eval.json").read_text())["seeds"] == [7]


def test_a_run_without_its_progress_bar_says_how_far_it_got(
    reach: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: with ``--no-progress`` (train.launch.yaml's) a BC or Diffusion run printed
    nothing between its evaluations (minutes of a camera policy's training on a CPU)."""
    argv = ["train", "bc", "--dataset", str(reach), "--out", str(tmp_path / "run"), *FAST]
    assert main([*argv, "--steps", "10", "--log-every", "5", "--eval.episodes", "0"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " steps/s" in line]
    assert [line.split(":")[0] for line in lines] == ["step 5 of 10", "step 10 of 10"], lines
    assert all(re.fullmatch(r"step \d+ of 10: loss [\d.]+, [\d.]+ steps/s", line) for line in lines)
