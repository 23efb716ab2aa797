"""Bad flags of the ``robot-il`` verbs fail at once, as one-line errors, before a verb records,
trains or creates anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_errors import argparse_error, one_line_error

from robot_il.cli import main
from robot_il.stop_signals import Terminated


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["--max-steps", "0"], "argument --max-steps: must be >= 1, got 0"),
        (["--max-steps", "-3"], "argument --max-steps: must be >= 1, got -3"),
        (["--image-size", "0,96"], "image size must be at least 1,1"),
    ],
)
def test_record_refuses_bad_numbers_before_creating_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    out = tmp_path / "demos.zarr"
    argv = ["record", "--task", "reach", "--expert", "--episodes", "1", "--out", str(out)]
    assert message in argparse_error([*argv, *flags], capsys)
    assert not out.exists()


def test_record_refuses_a_camera_named_twice_before_creating_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demos.zarr"
    for backend in ("mujoco", "pybullet"):
        argv = ["record", "--task", "reach", "--backend", backend, "--expert", "--out", str(out)]
        assert main([*argv, "--cameras", "front,front"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "robot-il: error: camera 'front' is asked for twice in ['front', 'front']"
        assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "-1"], "argument --seed: must be >= 0"),
        (["--max-steps", "0"], "argument --max-steps: must be >= 1"),
        (["--ros", "--domain-id", "500"], "argument --domain-id: must be in 0..101, got 500"),
    ],
)
def test_eval_refuses_bad_numbers(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    argv = ["eval", "--checkpoint", "no_such_checkpoint", *flags]
    assert message in argparse_error(argv, capsys)


@pytest.mark.parametrize("domain", ["500", "-1", "seven"])
def test_launch_refuses_a_domain_id_out_of_range(
    capsys: pytest.CaptureFixture[str], domain: str
) -> None:
    argv = ["launch", "--domain-id", domain, "deploy_sim.launch.yaml"]
    assert "argument --domain-id:" in argparse_error(argv, capsys)


def test_a_launch_file_is_found_by_its_repository_path_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``robot-il launch launch/deploy_sim.launch.yaml`` (the path the README names) outside the
    repository said "not found (nor in robot_il's launch files)", one of which it is; a typo
    of a name said so too, naming none."""
    monkeypatch.chdir(tmp_path)
    assert main(["launch", "launch/deploy_sim.launch.yaml", "-s"]) == 0
    assert "checkpoint: checkpoint directory" in capsys.readouterr().out
    err = one_line_error(["launch", "deploy_sm.launch.yaml", "checkpoint:=x"], capsys)
    assert "deploy_sm.launch.yaml not found" in err, err
    assert "did you mean deploy_sim.launch.yaml?" in err, err


def test_select_sim_checks_its_flags_before_recording_or_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--rule`` and ``--default-candidate`` are checked first: a bad one used to surface only
    after the expert demonstrations were recorded and the candidates trained."""
    out = tmp_path / "select"
    argv = ["select", "sim", "--out", str(out)]
    assert "invalid choice: 'bogus'" in argparse_error([*argv, "--rule", "bogus"], capsys)
    assert main([*argv, "--default-candidate", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robot-il: error: --default-candidate 'nope' is not one of")
    assert "bc_100demos_3000steps" in err and "\n" not in err
    assert not out.exists()  # nothing recorded, nothing trained
    for flags in (["--seed", "-1"], ["--env-seed", "-5"], ["--episodes", "0"]):
        assert "must be >= " in argparse_error([*argv, *flags], capsys)


def test_a_reader_that_goes_away_ends_the_verb_without_a_traceback() -> None:
    """`robot-il data info D | head` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    robot_il = Path(sys.executable).parent / "robot-il"
    process = subprocess.Popen(
        [str(robot_il), "sim", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # before the verb has written anything (it starts in about 1 s)
    stderr = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 1 and "Traceback" not in stderr and "Error" not in stderr, stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_one_line_not_a_traceback(
    reach: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Writing onto a full disk (/dev/full answers every write with ENOSPC) ended in an
    OSError traceback: in checkpoint saves, LeRobot exports, split files."""
    argv = ["data", "split", str(reach), "--out", "/dev/full", "--force"]
    err = one_line_error(argv, capsys)
    assert err == "robot-il: error: no space left on the disk; free some and run the command again"


@pytest.mark.parametrize("verb", [["eval", "--episodes", "1", "--checkpoint"], ["info"]])
def test_a_run_stopped_before_its_first_save_is_named_as_such(verb, tmp_path, capsys) -> None:
    """eval and info on a run killed before it saved said "not a checkpoint (no
    config.json)", as for any folder; the run's out holds its train_config.yaml from the
    start (robot_il.train.trainer.MetricsLogger)."""
    from robot_il.train.trainer import CONFIG_YAML

    run = tmp_path / "bc"
    run.mkdir()
    (run / CONFIG_YAML).write_text("steps: 2000\n")
    assert main([*verb, str(run)]) == 2
    assert "a training run that has saved no checkpoint yet" in capsys.readouterr().err


@pytest.mark.parametrize("verb", [["eval", "--episodes", "1", "--checkpoint"], ["info"]])
def test_a_dataset_given_as_a_checkpoint_is_named_as_such(verb, tmp_path, capsys) -> None:
    """A dataset where a checkpoint belongs (the usual mix-up of two paths) said "not a
    checkpoint (no config.json)", as for any folder."""
    from robot_il.dataset import DatasetWriter

    path = tmp_path / "demos.zarr"
    DatasetWriter.create(path, robot="ur5e", control_hz=20.0).close()
    assert main([*verb, str(path)]) == 2
    error = capsys.readouterr().err
    assert f"{path}: a dataset, not a checkpoint (robot-il train" in error, error


def test_select_sim_shows_the_candidates_their_own_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trained_checkpoints: None
) -> None:
    """``--candidates`` of a push checkpoint ran them in the launch file's reach scene; now the
    scene is the candidates' task, and candidates of two tasks are refused before any node."""
    import json
    import shutil

    from robot_il.cli.select import candidates_task

    fixture = Path(__file__).parents[1] / "ros" / "fixtures" / "bc_reach"
    pushes = []
    for name in ("push_a", "push_b"):
        shutil.copytree(fixture, tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        config["spec"]["task"] = "push"
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        pushes.append(str(tmp_path / name))
    assert candidates_task(pushes) == "push"
    out = tmp_path / "select"
    candidates = f"{pushes[0]},{fixture}"
    err = one_line_error(["select", "sim", "--out", str(out), "--candidates", candidates], capsys)
    assert "--candidates: trained on different tasks (push_a on push, bc_reach on reach)" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "unknown", "command"),
    [
        (["data", "export-video", "d.zarr", "0", "out.mp4"], "--episode 0", "data export-video"),
        (["data", "info", "d.zarr"], "--no-such-flag", "data info"),
        (["sim", "rollout", "--task", "reach"], "--no-such-flag", "sim rollout"),
        (["select", "sim", "--out", "o"], "--no-such-flag", "select sim"),
        (["train", "dmp", "--dataset", "d.zarr", "--out", "o"], "--no-such-flag", "train dmp"),
        (["record", "--task", "reach", "--expert", "--out", "o.zarr"], "--no-such-flag", "record"),
        (["eval", "--checkpoint", "c"], "--no-such-flag", "eval"),
    ],
)
def test_an_unknown_argument_is_refused_with_its_command_s_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], unknown: str, command: str
) -> None:
    """argparse handed a subcommand's unknown arguments up to the top-level parser, whose
    error showed ``usage: robot-il [-h] VERB ...``, nothing of the subcommand's arguments
    (``--episode 0``: export-video takes the episode as a positional argument)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, *unknown.split()])
    assert exit_info.value.code == 2
    usage, *_, error = capsys.readouterr().err.strip().splitlines()
    assert usage.startswith(f"usage: robot-il {command} [-h]")
    assert error == f"robot-il {command}: error: unrecognized arguments: {unknown}"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"format_version": 2}, "format version 2 is newer than this robot_il reads (1)"),
        ({"spec": {"robot": "ur5e"}}, "its spec lacks 'control_hz', 'observation', 'action_dim'"),
    ],
)
def test_a_checkpoint_this_robot_il_cannot_read_is_refused_in_one_line(
    change, error, tmp_path, capsys
) -> None:
    """A newer robot_il's checkpoint was read as if it were this one's, and a spec without its
    rate or inputs failed in info and eval with a KeyError traceback."""
    import json
    import shutil

    fixture = Path(__file__).parents[1] / "ros" / "fixtures" / "bc_reach"
    checkpoint = tmp_path / "bc_reach"
    shutil.copytree(fixture, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, **change}))
    for verb in (["info"], ["eval", "--episodes", "1", "--checkpoint"]):
        assert main([*verb, str(checkpoint)]) == 2
        assert error in capsys.readouterr().err


def test_a_ctrl_c_while_the_verb_is_imported_says_interrupted(monkeypatch, capsys):
    """Ctrl-C in a command's first second, while its verb imported torch or MuJoCo, ended in
    a KeyboardInterrupt traceback: it says "interrupted", exit code 130, as it does later."""
    import robot_il.cli

    def interrupted_import(name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(robot_il.cli, "import_module", interrupted_import)
    assert main(["record", "--task", "reach"]) == 130
    assert capsys.readouterr().err == "robot-il: interrupted\n"


@pytest.mark.parametrize(
    ("interrupt", "code", "said"),
    [(KeyboardInterrupt, 130, "robot-il: interrupted\n"),
     (Terminated, 143, "robot-il: stopped (SIGTERM)\n")],
)  # fmt: skip
def test_a_ctrl_c_in_a_native_extensions_init_says_interrupted(
    monkeypatch, capsys, interrupt, code, said
):
    """MuJoCo's extension turns a Ctrl-C in its init into "ImportError: initialization
    failed", the interrupt its cause (two such errors deep in ``robot-il record``, seen with
    SIGINT 0.35 s into it): the command ended with that traceback and exit code 1."""
    import robot_il.cli

    def interrupted_import(name: str) -> None:
        try:  # a pybind11 module imported by another, as MuJoCo's are
            raise ImportError("initialization failed") from interrupt()
        except ImportError as inner:
            raise ImportError("initialization failed") from inner

    monkeypatch.setattr(robot_il.cli, "import_module", interrupted_import)
    assert main(["record", "--task", "reach"]) == code
    assert capsys.readouterr().err == said


def test_an_import_error_of_another_cause_is_raised_as_it_is(monkeypatch):
    import robot_il.cli

    def broken_import(name: str) -> None:
        raise ImportError("initialization failed") from ValueError("a broken extension")

    monkeypatch.setattr(robot_il.cli, "import_module", broken_import)
    with pytest.raises(ImportError, match="initialization failed"):
        main(["record", "--task", "reach"])
