"""User journeys of ``robot-il train opt-ail|iq-learn|dac`` and ``train_opt_ail.launch.yaml``
found wanting in review: NaN settings, a dataset of another robot's task or of another task of
the robot, an ``--out`` holding another family's run (an online one's given to BC too) or
another recording's, a budget that ends before learning starts, launch arguments that
overrode the config file, a rerun naming the dataset's own task, a typo'd backend, a DMC
task's success, a rerun with a smaller budget, and the other OPT-AIL variant's settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_errors import one_line_error

from robot_il.cli import main
from robot_il.cli.train import split_config_flag
from robot_il.dataset import DatasetWriter
from robot_il.launch.description import load_launch
from robot_il.train.config import load_config

pytest.importorskip("mujoco")

FAST = ["--no-progress", "--eval.episodes", "0", "--policy.hidden-dims", "16"]


@pytest.fixture(scope="module")
def push(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scripted push demonstration, recorded as a user records it."""
    out = tmp_path_factory.mktemp("online") / "push.zarr"
    argv = ["record", "--task", "push", "--expert", "--episodes", "1", "--no-fsync"]
    assert main([*argv, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DeepMind Control cartpole dataset's shape (``benchmarks/dmc_experts.py record``)."""
    path = tmp_path_factory.mktemp("online") / "cartpole.zarr"
    rng = np.random.default_rng(0)
    attrs = {"task": "dmc:cartpole_swingup", "backend": "dm_control", "action_mode": "dmc"}
    with DatasetWriter.create(path, robot="dmc_cartpole", control_hz=100.0, attrs=attrs,
                              fsync=False) as writer:  # fmt: skip
        writer.add_episode({"state": rng.standard_normal((20, 5)).astype(np.float32),
                            "action": rng.uniform(-1, 1, (20, 1)).astype(np.float32)})  # fmt: skip
    return path


@pytest.mark.parametrize("family", ["opt-ail", "iq-learn", "dac"])
def test_nan_settings_are_refused_before_the_run(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    """Before: NaN passed every ``x <= 0`` check (``--policy.alpha nan`` trained)."""
    out = tmp_path / "run"
    argv = ["train", family, "--dataset", str(push), "--out", str(out), *FAST]
    err = one_line_error([*argv, "--policy.alpha", "nan"], capsys)
    assert "policy config: alpha: nan is not a number a run can take" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("dataset", "task", "cause"),
    [
        ("cartpole", "push", "unknown backend 'dm_control'"),
        ("push", "dmc:cartpole_swingup", "action_mode 'joint': dmc:cartpole_swingup takes"),
    ],
)
def test_a_dataset_of_another_robots_task_is_named(
    push: Path,
    cartpole: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dataset: str,
    task: str,
    cause: str,
) -> None:
    """Before: the env's complaint alone ("unknown backend 'dm_control'") with no word of the
    dataset whose settings it was given."""
    path = {"push": push, "cartpole": cartpole}[dataset]
    out = tmp_path / "run"
    argv = ["train", "opt-ail", "--dataset", str(path), "--out", str(out), "--task", task]
    err = one_line_error([*argv, *FAST], capsys)
    assert f"{path}: does not fit env {task}: {cause}" in err
    assert not out.exists()


def test_an_out_holding_another_familys_run_is_named_as_such(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "the normalizer of action, eef_pose, ... differs from this run's (dataset,
    max_episodes or normalize_observations changed)" for a BC run's --out."""
    out = tmp_path / "run"
    bc = ["train", "bc", "--dataset", str(push), "--out", str(out), "--steps", "2", *FAST]
    assert main([*bc, "--batch-size", "8"]) == 0
    online = ["train", "opt-ail", "--dataset", str(push), "--out", str(out), *FAST]
    err = one_line_error(online, capsys)
    assert f"{out / 'train_state'}: resumes a 'bc' run, not 'opt_ail'" in err


def test_an_offline_training_into_an_online_runs_out_is_named_as_such(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "cannot resume: No such file or directory: .../model.safetensors" for
    ``robot-il train bc`` given the --out of an OPT-AIL run (which keeps no such file)."""
    out = tmp_path / "run"
    online = ["train", "opt-ail", "--dataset", str(push), "--out", str(out), *FAST]
    with pytest.warns(UserWarning, match="makes no update"):
        assert main([*online, "--env-steps", "5"]) == 0
    bc = ["train", "bc", "--dataset", str(push), "--out", str(out), "--steps", "2", *FAST]
    err = one_line_error(bc, capsys)
    assert f"{out / 'train_state'}: resumes a 'opt_ail' run, not 'bc'" in err


def test_a_dataset_of_another_task_of_the_robot_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``--dataset reach.zarr --task push`` trained a push policy on the reach
    demonstrations without a word, blind to the cube (reach's observations have no
    object_pose), as a mixed-up --dataset does."""
    reach = tmp_path / "reach.zarr"
    record = ["record", "--task", "reach", "--expert", "--episodes", "1", "--no-fsync"]
    assert main([*record, "--out", str(reach)]) == 0
    argv = ["train", "opt-ail", "--dataset", str(reach), "--out", str(tmp_path / "run"), *FAST]
    with pytest.warns(UserWarning) as caught:
        assert main([*argv, "--task", "push", "--env-steps", "5"]) == 0
    assert f"--task push: {reach} demonstrates task 'reach'; this run imitates those " \
        "demonstrations on push, its policy not observing object_pose (without --task it " \
        "trains on reach)" in [str(w.message) for w in caught]  # fmt: skip


def test_a_rerun_on_another_recording_of_the_task_names_the_data(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a run on joint-target demonstrations rerun on end-effector-delta ones of the
    same task was refused as "the normalizer of action differs from this run's", as BC's was
    before it named the data."""
    eef = tmp_path / "push_eef.zarr"
    record = ["record", "--task", "push", "--expert", "--episodes", "1", "--no-fsync"]
    assert main([*record, "--action-mode", "eef_delta", "--out", str(eef)]) == 0
    out = tmp_path / "run"
    argv = ["train", "opt-ail", "--out", str(out), "--learning-starts", "0", *FAST]
    assert main([*argv, "--dataset", str(push), "--env-steps", "5"]) == 0
    capsys.readouterr()
    err = one_line_error([*argv, "--dataset", str(eef), "--env-steps", "10"], capsys)
    assert f": this run started on {push} (data " in err


def test_a_budget_that_ends_before_learning_starts_says_so(push: Path, tmp_path: Path) -> None:
    """Before: ``--env-steps 1000`` (learning starts at 2000) saved the untrained actor as
    the run's checkpoint without a word."""
    argv = ["train", "dac", "--dataset", str(push), "--out", str(tmp_path / "run"), *FAST]
    with pytest.warns(UserWarning, match="--env-steps 5 <= --learning-starts 2000: this run "
                      "makes no update"):  # fmt: skip
        assert main([*argv, "--env-steps", "5"]) == 0


def test_the_launch_file_leaves_the_config_files_settings_in_place(tmp_path: Path) -> None:
    """Before: the launch arguments' defaults (env_steps 100000, max_episodes 1, seed 0,
    eval_every 10000) always overrode the config file's."""
    config = tmp_path / "opt_ail.yaml"
    config.write_text("env_steps: 3000\nmax_episodes: 4\nseed: 2\neval: {every: 500}\n"
                      "policy: {model_based: true}\n")  # fmt: skip
    launch = Path(__file__).parents[2] / "launch" / "train_opt_ail.launch.yaml"
    values = {"dataset": "d.zarr", "out": str(tmp_path / "run"), "config": str(config)}

    def settings(**given: str):
        (process,) = load_launch(launch, {**values, **given}).processes
        assert process.argv[1:3] == ("train", "opt-ail")
        return load_config("opt_ail", *split_config_flag(list(process.argv[3:])))

    from_file = settings()
    assert (from_file.env_steps, from_file.max_episodes, from_file.seed) == (3000, 4, 2)
    assert from_file.eval.every == 500 and from_file.policy.model_based
    given = settings(env_steps="700", max_episodes="1", device="cpu")
    assert (given.env_steps, given.max_episodes, given.seed, given.device) == (700, 1, 2, "cpu")
    defaults = settings(config="")
    assert (defaults.env_steps, defaults.max_episodes, defaults.eval.every) == (100_000, 0, 10_000)
    assert not defaults.progress


def test_a_rerun_naming_the_task_and_backend_it_ran_on_resumes(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a run started on the dataset's task and backend, rerun with ``--task push``
    (or ``--backend mujoco``), was refused: "task None -> 'push'"; it is the same env. A save
    from before runs kept their env (None: the dataset's) resumes so too; another task is
    still refused, naming both."""
    out = tmp_path / "run"
    argv = ["train", "opt-ail", "--dataset", str(push), "--out", str(out), *FAST]
    named = ["--learning-starts", "0", "--task", "push", "--backend", "mujoco"]
    assert main([*argv, "--env-steps", "5", "--learning-starts", "0"]) == 0
    assert main([*argv, "--env-steps", "10", *named]) == 0
    path = out / "train_state" / "state.pt"
    state = torch.load(path, weights_only=False)
    state["run_config"].update(task=None, backend=None)
    torch.save(state, path)
    assert main([*argv, "--env-steps", "15", *named]) == 0
    err = one_line_error([*argv, "--env-steps", "20", *named, "--task", "pick_place"], capsys)
    assert "run config changed since this run: task 'push' -> 'pick_place'" in err


@pytest.mark.parametrize(
    ("flag", "error"),
    [
        ("--backend", "unknown backend 'pybulet'; backends: mujoco, pybullet"),
        ("--eval.backend", "unknown backend 'pybulet'; backends: mujoco, pybullet"),
        ("--task", "unknown task 'pybulet'; tasks: reach, push,"),
    ],
)
def test_a_typo_in_the_task_or_backend_is_named_without_blaming_the_dataset(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, error: str
) -> None:
    """Before: ``--backend pybulet`` said "push.zarr: does not fit env push: unknown backend
    'pybulet'", as if the recording were at fault."""
    out = tmp_path / "run"
    argv = ["train", "opt-ail", "--dataset", str(push), "--out", str(out), *FAST]
    err = one_line_error([*argv, flag, "pybulet"], capsys)
    assert err.startswith(f"robot-il: error: {error}")
    assert not out.exists()


def test_a_task_without_a_success_test_reports_its_return_alone(
    cartpole: Path, push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: every evaluation of a DeepMind Control task printed "success 0/1 = 0% (95% CI
    0%-79%)" and the run ended on "success 0%", a test the suite does not have."""
    fast = [*FAST[:1], "--policy.hidden-dims", "16", "--eval.episodes", "1"]
    budget = ["--env-steps", "3", "--learning-starts", "0"]
    for dataset, success in ((cartpole, False), (push, True)):
        out = tmp_path / dataset.stem
        argv = ["train", "dac", "--dataset", str(dataset), "--out", str(out), *fast, *budget]
        assert main([*argv, "--eval.max-episode-steps", "3"]) == 0
        printed = capsys.readouterr()
        assert bool(re.search(r"success \d", printed.out + printed.err)) == success, printed
        assert "env step 3: return" in printed.out


def test_robot_il_eval_reports_a_return_alone_for_a_task_without_a_success_test(
    cartpole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``robot-il eval`` of a DeepMind Control checkpoint printed "seed N: FAILURE"
    for every episode, "success 0/2 = 0%", and kept that rate in ``eval.json`` and
    ``success.png``. Now each episode's return and their mean, as training reports them; a
    previous evaluation's success plot goes with the rest of its results."""
    out = tmp_path / "run"
    argv = ["train", "dac", "--dataset", str(cartpole), "--out", str(out), *FAST]
    assert main([*argv, "--env-steps", "2", "--learning-starts", "0"]) == 0
    results = out / "eval"
    results.mkdir()
    (results / "success.png").write_bytes(b"a previous evaluation's")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--episodes", "2", "--max-steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert "FAILURE" not in printed and "success" not in printed, printed
    assert re.search(r"^seed 10001: return -?\d+\.\d after 3 steps$", printed, re.M), printed
    assert re.search(r"^dac on dmc:cartpole_swingup/dm_control: mean return -?\d+\.\d over 2 "
                     r"episodes$", printed, re.M), printed  # fmt: skip
    report = json.loads((results / "eval.json").read_text())
    assert not {"success_rate", "interval95", "successes"} & set(report)
    assert len(report["returns"]) == 2 and report["lengths"] == [3, 3]
    assert sorted(p.name for p in results.iterdir()) == ["eval.json"]


def test_bc_on_a_task_without_a_success_test_reports_its_return_alone(
    cartpole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: BC's evaluations of a DeepMind Control task printed "success 0/2 = 0%" and
    kept that rate in ``summary.json`` and the metrics, as the online learners did."""
    out = tmp_path / "bc"
    argv = ["train", "bc", "--dataset", str(cartpole), "--out", str(out), "--steps", "4"]
    assert main([*argv, "--batch-size", "4", "--eval.episodes", "2",
                 "--eval.max-episode-steps", "3"]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert "success" not in printed.out + printed.err, printed
    assert re.search(r"step 4: mean return -?\d+\.\d over 2 episodes", printed.out + printed.err)
    evaluation = json.loads((out / "summary.json").read_text())["eval"]
    assert set(evaluation) == {"returns", "seeds"} and len(evaluation["returns"]) == 2


def test_a_rerun_with_a_budget_below_the_steps_made_is_refused(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a run of 6 env steps rerun with ``--env-steps 3`` did nothing and rewrote
    ``summary.json`` as a 3-step run (or, at ``--buffer-size 0``, blamed the replay buffer's
    capacity)."""
    out = tmp_path / "run"
    argv = ["train", "opt-ail", "--dataset", str(push), "--out", str(out), *FAST]
    assert main([*argv, "--env-steps", "6", "--learning-starts", "0"]) == 0
    summary = (out / "summary.json").read_text()
    rerun = [*argv, "--env-steps", "3", "--learning-starts", "0", "--buffer-size", "10"]
    err = one_line_error(rerun, capsys)
    assert f"{out}: this run has made 6 env steps, more than --env-steps 3" in err
    assert (out / "summary.json").read_text() == summary


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (["--model-based", "--policy.eta", "0.5", "--policy.optimism-states", "8"],
         "eta, optimism_states: model-free OPT-AIL's, which this run is not"),
        (["--policy.updates-per-step", "1"],
         "updates_per_step: model-based (--model-based) OPT-AIL's, which this run is not"),
    ],
)  # fmt: skip
def test_a_setting_the_other_opt_ail_variant_reads_is_refused(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: list, error: str
) -> None:
    """Before: ``--model-based --policy.eta 0.5`` trained with no optimism term, and
    ``--policy.updates-per-step 1`` without ``--model-based`` one update per env step as
    before: each flag changed nothing, without a word."""
    out = tmp_path / "run"
    argv = ["train", "opt-ail", "--dataset", str(push), "--out", str(out), *FAST, *settings]
    assert f"policy config: {error}" in one_line_error([*argv, "--env-steps", "1"], capsys)
    assert not out.exists()


def test_a_run_without_its_progress_bar_says_how_far_it_got(
    push: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: with ``--no-progress`` (the launch file's) a run printed nothing between its
    evaluations, 10,000 env steps apart by default (minutes on a CPU)."""
    argv = ["train", "dac", "--dataset", str(push), "--out", str(tmp_path / "run"), *FAST]
    assert main([*argv, "--env-steps", "20", "--learning-starts", "0", "--log-every", "10"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " env steps/s, " in line]
    assert [line.split(":")[0] for line in lines] == ["env step 10 of 20", "env step 20 of 20"]
    assert all(re.fullmatch(r"env step \d+ of 20: [\d.]+ env steps/s, \d+ episodes", line)
               for line in lines)  # fmt: skip
