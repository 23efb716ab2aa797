"""The training loop, its commands and its refusals, on a small synthetic dataset."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
import zarr
from robot_il.policies import policy_class
from safetensors.numpy import load_file

from robot_il.cli import main
from robot_il.dataset import Dataset, DatasetWriter
from robot_il.errors import CheckpointError, ConfigError, DatasetError
from robot_il.train.config import load_config
from robot_il.train.trainer import policy_type_of, train

FAST = ["--no-progress", "--eval.episodes", "0", "--batch-size", "32",
        "--policy.hidden-dims", "32", "32"]  # fmt: skip


def _config(dataset: Path, out: Path, *settings: str):
    return load_config("bc", None, ["--dataset", str(dataset), "--out", str(out), *FAST, *settings])


def _interrupted(config: Any, steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train ``config`` as a run killed after its ``steps``-th optimizer step."""
    done = {"n": 0}
    policy = policy_class(policy_type_of(config))
    step = policy.after_optimizer_step

    def then_interrupt(self: Any) -> None:
        step(self)
        done["n"] += 1
        if done["n"] == steps:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(policy, "after_optimizer_step", then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(config)


def test_interrupted_run_resumes_to_the_same_weights(
    synthetic_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    metrics_without_timing: Callable[[Path], list[dict[str, str]]],
) -> None:
    """Killed after logging step 30 and saving at 20, the resumed run ends with the weights
    and the metrics rows of the run never interrupted: step 30 is logged once."""
    settings = ("--steps", "40", "--save-every", "20", "--log-every", "10")
    straight = train(_config(synthetic_dataset, tmp_path / "straight", *settings))
    _interrupted(_config(synthetic_dataset, tmp_path / "resumed", *settings), 35, monkeypatch)
    assert (tmp_path / "resumed" / "checkpoints" / "step_0000020").is_dir()
    resumed = train(_config(synthetic_dataset, tmp_path / "resumed", *settings))

    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rows = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and [r.split(",")[0] for r in rows[1:]] == [
        "10", "20", "30", "40"
    ]  # fmt: skip
    assert metrics_without_timing(tmp_path / "resumed") == metrics_without_timing(
        tmp_path / "straight"
    )
    with pytest.raises(ConfigError, match="holds a training run"):
        train(_config(synthetic_dataset, tmp_path / "resumed", *settings, "--no-resume"))


def test_an_interrupted_run_says_what_it_saved_and_how_to_resume(
    synthetic_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C keeps the run's last save, which may be none yet (``--save-every`` 1000 by
    default): the interrupted run says which, and whether a rerun resumes or starts over."""
    out = tmp_path / "run"
    settings = ("--steps", "40", "--save-every", "20")
    _interrupted(_config(synthetic_dataset, out, *settings), 5, monkeypatch)
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{out}: interrupted at step 4, before its first save (--save-every 20): the same "
        "command again starts over"
    )
    _interrupted(_config(synthetic_dataset, out, *settings), 25, monkeypatch)
    _interrupted(_config(synthetic_dataset, out, *settings), 3, monkeypatch)
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{out}: interrupted at step 22; saved at step 20: the same command again resumes "
        "from there"
    )


def test_dataset_without_a_configured_key_fails_before_training(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    config = _config(synthetic_dataset, tmp_path / "run", "--policy.obs-keys", "joint_pos",
                     "rgb_front")  # fmt: skip
    with pytest.raises(DatasetError, match="lacks key\\(s\\) rgb_front needed by the policy"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_max_episodes_trains_on_the_first_episodes_only(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """The normalizer, fit on the training episodes, must match one fit on episodes 0-1."""
    from robot_il.dataset import Dataset, Normalizer

    result = train(_config(synthetic_dataset, tmp_path / "two", "--steps", "1",
                           "--max-episodes", "2"))  # fmt: skip
    saved = load_file(str(result.checkpoint / "normalizer.safetensors"))
    dataset = Dataset.open(synthetic_dataset)
    first_two = Normalizer.fit(dataset, ["joint_pos", "target_pos", "action"], episodes=[0, 1])
    every = Normalizer.fit(dataset, ["joint_pos", "target_pos", "action"])
    assert saved.keys() == first_two.state_dict().keys()
    for key, value in first_two.state_dict().items():
        np.testing.assert_array_equal(saved[key], value, err_msg=key)
    assert any(not np.array_equal(saved[key], value) for key, value in every.state_dict().items())
    with pytest.raises(ConfigError, match="max_episodes 7 > the 6 episodes"):
        train(_config(synthetic_dataset, tmp_path / "seven", "--max-episodes", "7"))


def test_dataset_the_eval_env_cannot_serve_fails_before_training(tmp_path: Path) -> None:
    """Observations recorded with a (3,) joint_pos cannot come from the UR5e reach env."""
    import robot_il.dataset as ds

    path = tmp_path / "odd.zarr"
    rng = np.random.default_rng(0)
    with ds.DatasetWriter.create(path, robot="ur5e", control_hz=20.0,
                                 attrs={"task": "reach"}, fsync=False) as writer:  # fmt: skip
        writer.add_episode({"joint_pos": rng.random((5, 3), dtype=np.float32),
                            "action": rng.random((5, 7), dtype=np.float32)})  # fmt: skip
    config = load_config("bc", None, ["--dataset", str(path), "--out", str(tmp_path / "run"),
                                      "--no-progress"])  # fmt: skip
    with pytest.raises(CheckpointError, match="'joint_pos' shape \\[6\\] != \\[3\\]"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_a_dataset_without_a_task_names_the_flags_that_train_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real cell's recording (or a LeRobot import) names no task to evaluate in: the refusal
    names the flags as typed (it said "pass eval.task")."""
    data = tmp_path / "cell.zarr"
    with DatasetWriter.create(data, robot="ur5e", control_hz=20.0, fsync=False) as writer:
        writer.add_episode({"joint_pos": np.zeros((30, 6), np.float32),
                            "action": np.zeros((30, 7), np.float32)})  # fmt: skip
    argv = ["train", "bc", "--dataset", str(data), "--out", str(tmp_path / "run"), *FAST]
    assert main([*argv, "--eval.episodes", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "robot-il: error: evaluation needs a task: the dataset names none; pass --eval.task T, "
        "or --eval.episodes 0 to train without evaluating"
    )
    assert main([*argv, "--steps", "2"]) == 0


def test_yaml_config_and_flags_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "bc.yaml"
    path.write_text(yaml.safe_dump({"steps": 7, "policy": {"hidden_dims": [8], "horizon": 3}}))
    config = load_config("bc", path, ["--policy.horizon", "5"])
    assert (config.steps, config.policy.hidden_dims, config.policy.horizon) == (7, (8,), 5)
    path.write_text(yaml.safe_dump({"policy": {"hiden_dims": [8]}}))
    with pytest.raises(ConfigError, match="unknown setting 'hiden_dims'"):
        load_config("bc", path)
    path.write_text(yaml.safe_dump({"steps": "many"}))
    with pytest.raises(ConfigError, match="steps must be int"):
        load_config("bc", path)


def test_cli_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "bc", "--dataset", str(tmp_path / "none.zarr"), "--out",
                 str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("robot-il: error: ") and "\n" not in err
    assert "none.zarr" in err
    assert main(["eval", "--checkpoint", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_cli_trains_then_evaluates_with_video_and_plot(
    synthetic_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bc.yaml"
    config.write_text(yaml.safe_dump({"steps": 20, "batch_size": 16, "log_every": 10}))
    run = tmp_path / "run"
    code = main(["train", "bc", "--config", str(config), "--dataset", str(synthetic_dataset),
                 "--out", str(run), "--no-progress", "--eval.episodes", "0"])  # fmt: skip
    assert code == 0
    for produced in ("policy/model.safetensors", "policy/config.json", "train_config.yaml",
                     "metrics.csv", "train_state/state.pt", "summary.json"):  # fmt: skip
        assert (run / produced).is_file(), produced
    assert any((run / "tensorboard").iterdir())
    recorded = yaml.safe_load((run / "train_config.yaml").read_text())  # the keys it used
    assert (
        recorded["policy"]["obs_keys"]
        == json.loads((run / "policy" / "config.json").read_text())["config"]["obs_keys"]
        != []
    )
    code = main(["eval", "--checkpoint", str(run), "--episodes", "2", "--max-steps", "4",
                 "--video", "--out", str(tmp_path / "eval")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "bc on reach/mujoco: success" in out
    for produced in ("eval.json", "success.png", "rollouts.mp4"):
        assert (tmp_path / "eval" / produced).stat().st_size > 0, produced
    # where the checkpoint came from: printed, and kept beside the results
    assert f"checkpoint {run}: saved " in out and " by robot_il " in out
    summary = json.loads((tmp_path / "eval" / "eval.json").read_text())
    saved = json.loads((run / "policy" / "config.json").read_text())
    assert summary["checkpoint_provenance"] == saved["provenance"]
    (trained_on,) = saved["provenance"]["training_data"]
    assert trained_on["path"] == str(synthetic_dataset) and trained_on["episodes_used"] == 6
    assert f"trained on {synthetic_dataset} (6 of 6 episodes, data " in out
    assert main(["info", str(run)]) == 0  # the same, without loading the weights
    info = capsys.readouterr().out
    assert f"checkpoint   {run / 'policy'}\npolicy       bc (checkpoint format 1)\n" in info
    assert "acts for     ur5e, task reach at 20 Hz, joint actions (7)\n" in info
    assert "observes     joint_pos (6,), target_pos (3,)" in info
    assert f"origin       saved {saved['provenance']['saved_utc']} by robot_il" in info
    assert main(["info", str(tmp_path / "nothing")]) == 2


def test_launch_file_runs_a_training(synthetic_dataset: Path, tmp_path: Path) -> None:
    from robot_il.launch.description import load_launch

    plan = load_launch(
        Path(__file__).parents[2] / "launch" / "train.launch.yaml",
        {"dataset": str(synthetic_dataset), "out": str(tmp_path / "run"), "steps": "5",
         "eval_episodes": "0"},
    )  # fmt: skip
    (process,) = plan.processes
    assert process.argv[1:4] == ("train", "bc", "--config=")
    done = subprocess.run(process.argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "policy" / "model.safetensors").is_file()


def test_misfit_horizons_are_a_config_error(synthetic_dataset: Path, tmp_path: Path) -> None:
    config = _config(synthetic_dataset, tmp_path / "run", "--policy.n-obs-steps", "2",
                     "--policy.horizon", "2", "--policy.n-action-steps", "2")  # fmt: skip
    with pytest.raises(ConfigError, match="horizon 2 < n_obs_steps - 1 \\+ n_action_steps"):
        train(config)


@pytest.mark.slow
def test_torchrun_trains_data_parallel(synthetic_dataset: Path, tmp_path: Path) -> None:
    command = str(Path(sys.executable).with_name("robot-il"))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         command, "train", "bc", "--dataset", str(synthetic_dataset),
         "--out", str(tmp_path / "ddp"), "--steps", "10", *FAST],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "ddp" / "policy" / "model.safetensors").is_file()
    # Killed between a save's two renames, then resumed by both processes: one of them puts
    # the save back (both at once raced to rename the same folder), the other waits for it.
    out = tmp_path / "ddp"
    for saved in ("train_state", "policy"):
        (out / saved).rename(out / f"{saved}.old")
    resumed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         command, "train", "bc", "--dataset", str(synthetic_dataset),
         "--out", str(out), "--steps", "10", *FAST],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "this run finished at step 10; nothing to train" in resumed.stdout  # found again
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".old") == []
    assert (out / "policy" / "model.safetensors").is_file()


def _actions(dataset: Path) -> Any:
    """The dataset's recorded actions, writable in place (a dataset re-recorded at its path)."""
    import zarr

    return zarr.open_group(str(dataset), mode="r+")["data"]["action"]


def test_a_run_resumed_on_other_data_is_refused(
    synthetic_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's data are part of what it learned: a dataset edited at its path since the run
    started is refused before a step (its fingerprint, ``robot_il.provenance``), and another
    dataset is named as other data even when its keys differ too (not as the observation
    keys they default to); the same data moved elsewhere resume."""
    import shutil

    data = Path(shutil.copytree(synthetic_dataset, tmp_path / "data.zarr"))
    first_action = float(_actions(data)[0, 0])
    out = tmp_path / "run"
    _interrupted(_config(data, out, "--steps", "4", "--save-every", "2"), 3, monkeypatch)
    _actions(data)[0, 0] = first_action + 1.0
    refused = (r"this run started on .*data\.zarr \(data [0-9a-f]{16}, 6 episodes\); it would "
               r"resume on data [0-9a-f]{16}, 6 episodes \(resume on the data it started on, "
               r"or pass a new --out\)")  # fmt: skip
    with pytest.raises(CheckpointError, match=refused):
        train(_config(data, out, "--steps", "4", "--save-every", "2"))
    assert not (out / "checkpoints" / "step_0000004").exists()
    other = tmp_path / "other.zarr"  # another recording, without target_pos
    attrs = {"task": "reach", "action_mode": "joint"}
    with DatasetWriter.create(other, robot="ur5e", control_hz=20.0, attrs=attrs,
                              fsync=False) as writer:  # fmt: skip
        writer.add_episode({"joint_pos": np.zeros((30, 6), np.float32),
                            "action": np.zeros((30, 7), np.float32)})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"this run started on .*data\.zarr \(data "
                       r"[0-9a-f]{16}, 6 episodes\); it would resume on data [0-9a-f]{16}, 1 "
                       "episodes"):  # fmt: skip
        train(_config(other, out, "--steps", "4", "--save-every", "2"))
    _actions(data)[0, 0] = first_action
    moved = Path(shutil.move(data, tmp_path / "moved.zarr"))
    train(_config(moved, out, "--steps", "4", "--save-every", "2"))
    assert (out / "checkpoints" / "step_0000004").is_dir()


def test_a_run_resumed_with_another_policy_config_is_refused(
    synthetic_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy setting that keeps every weight's shape (here the normalization; an image crop
    or its cameras likewise) would load and train the rest of the run on other inputs: the
    resume is refused, naming the field, before a step; the same config resumes."""
    out = tmp_path / "run"
    _interrupted(_config(synthetic_dataset, out, "--steps", "4", "--save-every", "2"), 3,
                 monkeypatch)  # fmt: skip
    with pytest.raises(CheckpointError, match="policy config changed since this run: "
                       "normalization 'minmax' -> 'gaussian'"):  # fmt: skip
        train(_config(synthetic_dataset, out, "--steps", "4", "--policy.normalization",
                      "gaussian"))  # fmt: skip
    assert not (out / "checkpoints" / "step_0000004").exists()
    train(_config(synthetic_dataset, out, "--steps", "4", "--save-every", "2"))
    assert (out / "checkpoints" / "step_0000004").is_dir()


def test_a_run_resumed_with_other_training_settings_is_refused(
    synthetic_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schedule (warm-up, then cosine decay to 0 at ``steps``), the optimizer, the batches
    and the split are the saved run's: a resume under another learning rate or step budget
    would be overridden by the saved optimizer and schedule, one under another seed or split
    would train on other episodes, so each is refused before a step, naming the fields, and
    the saved state is kept; the same settings resume."""
    out = tmp_path / "run"
    _interrupted(_config(synthetic_dataset, out, "--steps", "4", "--save-every", "2"), 3,
                 monkeypatch)  # fmt: skip
    saved = (out / "train_state" / "state.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"training config changed since this run: "
                       r"lr 0\.001 -> 0\.01; steps 4 -> 8 \(pass a new --out, or resume it "
                       r"with its own settings: --config .*/train_config\.yaml\)$"):  # fmt: skip
        train(_config(synthetic_dataset, out, "--steps", "8", "--save-every", "2", "--lr",
                      "1e-2"))  # fmt: skip
    assert "lr: 0.001" in (out / "train_config.yaml").read_text()  # the run's own, as hinted
    with pytest.raises(CheckpointError, match=r"training config changed since this run: "
                       r"seed 0 -> 3; val_fraction 0\.0 -> 0\.5 "):  # fmt: skip
        train(_config(synthetic_dataset, out, "--steps", "4", "--save-every", "2", "--seed",
                      "3", "--val-fraction", "0.5"))  # fmt: skip
    assert (out / "train_state" / "state.pt").read_bytes() == saved
    train(_config(synthetic_dataset, out, "--steps", "4", "--save-every", "2"))
    assert (out / "checkpoints" / "step_0000004").is_dir()


def test_a_resumed_run_refits_the_saved_normalizer_or_is_refused(
    synthetic_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train_state/`` keeps the normalizer the run fitted on its training episodes, and a
    resumed run must fit the same one (the weights learned on inputs mapped by it): a run
    saved before its training settings were kept, resumed on another split, is refused
    before a step, naming the keys."""
    out = tmp_path / "run"
    _interrupted(_config(synthetic_dataset, out, "--steps", "4", "--save-every", "2"), 3,
                 monkeypatch)  # fmt: skip
    kept = load_file(str(out / "train_state" / "normalizer.safetensors"))
    fitted = load_file(str(out / "checkpoints" / "step_0000002" / "normalizer.safetensors"))
    assert kept.keys() == fitted.keys()
    for key, value in fitted.items():
        np.testing.assert_array_equal(kept[key], value, err_msg=key)
    path = out / "train_state" / "state.pt"
    state = torch.load(path, weights_only=False)
    del state["run_config"]  # as saved before the settings were kept
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"train_state: the normalizer of [a-z_, ]*"
                       r"joint_pos[a-z_, ]* differs from this run's "):  # fmt: skip
        train(_config(synthetic_dataset, out, "--steps", "4", "--save-every", "2", "--seed",
                      "3", "--val-fraction", "0.5"))  # fmt: skip
    assert not (out / "checkpoints" / "step_0000004").exists()


DDP_WORKER = """
import os, sys
from robot_il.policies.bc import BCPolicy
from robot_il.train.config import load_config
from robot_il.train.trainer import train

kill_after = int(sys.argv[1])  # optimizer steps, 0: none
if kill_after:
    step, done = BCPolicy.after_optimizer_step, []

    def then_kill(self):
        step(self)
        done.append(1)
        if len(done) == kill_after:
            os._exit(3)

    BCPolicy.after_optimizer_step = then_kill
train(load_config("bc", None, sys.argv[2:]))
"""
"""A torchrun worker: BC training, each process killed after ``argv[1]`` steps."""


@pytest.mark.slow
def test_a_data_parallel_run_resumes_each_process_bit_exactly(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """Each torchrun process draws its own batches (seed offset by its rank): a 2-process run
    killed after a save and resumed in 2 processes ends with the weights of the run never
    interrupted (had both resumed one process's generators, they would draw the same
    batches); resuming it in another number of processes is refused."""
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    settings = ("--steps", "4", "--save-every", "2")

    def torchrun(out: Path, kill_after: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
             str(worker), str(kill_after), "--dataset", str(synthetic_dataset),
             "--out", str(out), *settings, *FAST],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    done = torchrun(tmp_path / "straight", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert torchrun(tmp_path / "resumed", 3).returncode != 0
    state = torch.load(tmp_path / "resumed" / "train_state" / "state.pt", weights_only=False)
    first, second = state["process_rngs"]
    assert state["step"] == 2 and first["numpy_rng"] != second["numpy_rng"]
    done = torchrun(tmp_path / "resumed", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_file(str(tmp_path / "straight" / "train_state" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "train_state" / "model.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    with pytest.raises(CheckpointError, match=r"saved the random state of 2 process\(es\); "
                       r"it would resume in 1 \(resume it in 2, "):  # fmt: skip
        train(_config(synthetic_dataset, tmp_path / "resumed", *settings))


def _as_saved_before_each_process_was_kept(out: Path) -> None:
    """Rewrite ``out``'s train_state as runs saved it before each torchrun process's random
    state was kept: rank 0's alone, flat in the state."""
    path = out / "train_state" / "state.pt"
    state = torch.load(path, weights_only=False)
    first = state.pop("process_rngs")[0]
    state.update({key: first[key] for key in ("numpy_rng", "torch_rng", "python_rng")})
    torch.save(state, path)


def test_a_run_saved_with_one_flat_random_state_resumes_bit_exactly_in_one_process(
    synthetic_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save holding one flat random state (made before each process's was kept) resumes
    in one process to the weights of the run never interrupted, with no warning."""
    settings = ("--steps", "4", "--save-every", "2")
    train(_config(synthetic_dataset, tmp_path / "straight", *settings))
    _interrupted(_config(synthetic_dataset, tmp_path / "resumed", *settings), 3, monkeypatch)
    _as_saved_before_each_process_was_kept(tmp_path / "resumed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(_config(synthetic_dataset, tmp_path / "resumed", *settings))
    a = load_file(str(tmp_path / "straight" / "train_state" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "train_state" / "model.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_a_run_saved_with_one_flat_random_state_resumes_in_two_processes(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """A 2-process run saved before each process's random state was kept holds rank 0's
    alone: it resumes in its 2 processes, rank 0 from that state, rank 1 on a stream of its
    own (seed + rank, step), with a warning that the resume is not bit-exact."""
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    out = tmp_path / "run"

    def torchrun(kill_after: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
             str(worker), str(kill_after), "--dataset", str(synthetic_dataset),
             "--out", str(out), "--steps", "4", "--save-every", "2", *FAST],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    assert torchrun(3).returncode != 0
    _as_saved_before_each_process_was_kept(out)
    done = torchrun(0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processes 1..1 draw new streams (seed + rank, step 2), so this resume is not " \
        "bit-exact" in " ".join(done.stderr.split())  # fmt: skip
    state = torch.load(out / "train_state" / "state.pt", weights_only=False)
    first, second = state["process_rngs"]
    assert state["step"] == 4 and first["numpy_rng"] != second["numpy_rng"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
def test_a_run_on_the_gpu_resumes_bit_exactly(
    synthetic_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Diffusion draws its noise and timesteps from the GPU's generator: its state is saved
    with the run and restored, so a run on ``--device cuda`` interrupted after a save and
    resumed ends with the weights of the run never interrupted."""

    def config(out: Path):
        return load_config("diffusion", None, [
            "--dataset", str(synthetic_dataset), "--out", str(out), "--no-progress",
            "--eval.episodes", "0", "--batch-size", "16",
            "--policy.down-dims", "16", "32", "--policy.horizon", "4",
            "--policy.n-action-steps", "2", "--steps", "6", "--save-every", "3",
            "--device", "cuda"])  # fmt: skip

    train(config(tmp_path / "straight"))
    _interrupted(config(tmp_path / "resumed"), 4, monkeypatch)
    train(config(tmp_path / "resumed"))
    a = load_file(str(tmp_path / "straight" / "train_state" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "train_state" / "model.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_an_evaluation_of_a_sampling_policy_gives_the_same_outcomes_each_time(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """Diffusion samples its initial noise: each episode draws it from a generator seeded by
    the episode's env seed, so an evaluation repeats itself whatever the process drew before,
    episode ``i`` is the same alone, and the caller's random stream is left as it was."""
    from robot_il.policies import load_policy

    from robot_il.train.evaluate import evaluate, make_eval_env

    run = train(load_config("diffusion", None, [
        "--dataset", str(synthetic_dataset), "--out", str(tmp_path / "run"), "--no-progress",
        "--eval.episodes", "0", "--batch-size", "8", "--steps", "2",
        "--policy.down-dims", "8", "16", "--policy.horizon", "4",
        "--policy.n-action-steps", "2"]))  # fmt: skip
    policy = load_policy(run.checkpoint)
    env = make_eval_env(policy.spec, max_episode_steps=6)
    try:
        first = evaluate(policy, env, episodes=2, seed=7)
        torch.manual_seed(123)  # another state of the process's generator
        before = torch.get_rng_state()
        again = evaluate(policy, env, episodes=2, seed=7)
        assert torch.equal(torch.get_rng_state(), before)
        alone = evaluate(policy, env, episodes=1, seed=8)
    finally:
        env.close()
    assert again.returns == first.returns and alone.returns == first.returns[1:]


def test_a_run_killed_between_the_renames_of_a_save_resumes_from_that_save(
    synthetic_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A save renames ``train_state/`` to ``train_state.old`` and then the new one in its
    place; killed between the two renames, the run is still found (it started over from step
    0), and the checkpoint the deploy node reads is back in ``policy/``."""
    out = tmp_path / "run"
    settings = ("--steps", "4", "--save-every", "2", "--log-every", "2")
    train(_config(synthetic_dataset, out, *settings))
    rows = (out / "metrics.csv").read_text()
    for saved in ("train_state", "policy"):
        (out / saved).rename(out / f"{saved}.old")
        shutil.copytree(
            out / f"{saved}.old", out / f"{saved}.tmp"
        )  # written whole, not yet renamed
    capsys.readouterr()
    assert train(_config(synthetic_dataset, out, *settings)).steps == 4
    assert f"{out}: this run finished at step 4; nothing to train" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.suffix in ("", ".old", ".tmp")) == [
        "checkpoints", "policy", "tensorboard", "train_state"
    ]  # fmt: skip
    assert (out / "metrics.csv").read_text() == rows


def test_a_checkpoint_records_its_step_and_the_settings_a_config_file_gave(
    synthetic_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line a checkpoint records does not show what ``--config`` gave (the seed
    here): the checkpoint keeps the run's settings and its step, and ``robot-il info`` shows
    them, for the latest checkpoint and for each snapshot, with the command, quoted as a shell
    reads it back, and the folder its relative paths start from."""
    config = tmp_path / "bc.yaml"
    config.write_text(yaml.safe_dump({"seed": 3, "steps": 4, "save_every": 2}))
    run = tmp_path / "run"
    assert main(["train", "bc", "--config", str(config), "--dataset", str(synthetic_dataset),
                 "--out", str(run), *FAST]) == 0  # fmt: skip
    for checkpoint, step in ((run / "policy", 4), (run / "checkpoints" / "step_0000002", 2)):
        saved = json.loads((checkpoint / "config.json").read_text())["provenance"]["training"]
        assert saved["step"] == step and saved["config"]["seed"] == 3
        assert (
            saved["config"]["dataset"] == str(synthetic_dataset) and "policy" not in saved["config"]
        )
        capsys.readouterr()
        assert main(["info", str(checkpoint)]) == 0
        shown = capsys.readouterr().out
        assert f"; step {step} of 4, seed 3, batch 32, lr 0.001\n" in shown
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
        assert f"\ncommand      {command} (in {Path.cwd()})\n" in shown


def test_a_resumed_runs_checkpoint_names_each_resume_and_what_changed_at_it(
    synthetic_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A resume may change the threads (or device, code, libraries), which changes a
    Diffusion run's numbers: it is warned about, and the checkpoint names each resume and what
    changed at it (its top-level provenance is the last process's alone); a resume under the
    same code and settings is named as such, without a warning."""
    out = tmp_path / "run"
    settings = ("--steps", "8", "--save-every", "2")
    _interrupted(_config(synthetic_dataset, out, *settings), 3, monkeypatch)  # saved at 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _interrupted(_config(synthetic_dataset, out, *settings), 3, monkeypatch)  # at 4
        _interrupted(_config(synthetic_dataset, out, *settings, "--threads", "2"), 3, monkeypatch)
        train(_config(synthetic_dataset, out, *settings))
    assert [str(w.message) for w in caught if "resumed at" in str(w.message)] == [
        f"{out}: resumed at step {step} with threads {change}: its weights may differ from an "
        "uninterrupted run's (its checkpoints record each part)"
        for step, change in ((4, "1 -> 2"), (6, "2 -> 1"))
    ]
    saved = json.loads((out / "policy" / "config.json").read_text())["provenance"]["training"]
    assert [(s["from_step"], s["threads"]) for s in saved["segments"]] == [
        (0, 1), (2, 1), (4, 2), (6, 1)
    ]  # fmt: skip
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    resumes = ("; step 8 of 8, seed 0, batch 32, lr 0.001; resumed at step 2 under the same "
               "code and settings; resumed at step 4 with threads 1 -> 2; resumed at step 6 "
               "with threads 2 -> 1\n")  # fmt: skip
    assert resumes in capsys.readouterr().out
    first = json.loads((out / "checkpoints" / "step_0000002" / "config.json").read_text())
    assert "segments" not in first["provenance"]["training"]  # saved by the first process


def test_a_fine_tuned_checkpoint_keeps_where_its_parent_came_from(
    synthetic_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fine-tuned checkpoint's own provenance is the fine-tuning's (its code, its command):
    the training that made its parent (the seed and steps a ``--config`` file gave, the
    commit) stays in its lineage, and ``robot-il info`` shows it after the parent run is gone."""
    from robot_il.policies import load_policy

    from robot_il.select.corrections import CorrectionsRecorder
    from robot_il.train.finetune import FinetuneSettings, finetune_checkpoint

    config = tmp_path / "bc.yaml"
    config.write_text(yaml.safe_dump({"seed": 5, "steps": 4, "lr": 0.002}))
    run = tmp_path / "run"
    assert main(["train", "bc", "--config", str(config), "--dataset", str(synthetic_dataset),
                 "--out", str(run), *FAST]) == 0  # fmt: skip
    spec = load_policy(run).spec
    demo = Dataset.open(synthetic_dataset).episode(0)
    with CorrectionsRecorder.open(tmp_path / "corrections.zarr", spec, fsync=False) as recorder:
        recorder.begin()
        for t in range(10):
            recorder.append({k: demo[k][t] for k in spec["observation"]}, demo["action"][t])
        recorder.commit()
    settings = FinetuneSettings(steps=2, batch_size=4, seed=7)
    tuned = finetune_checkpoint(run, tmp_path / "corrections.zarr", tmp_path / "tuned",
                                settings=settings)  # fmt: skip
    shutil.rmtree(run)
    capsys.readouterr()
    assert main(["info", str(tuned)]) == 0
    shown = capsys.readouterr().out
    assert "fine-tuning  1: from " in shown and "(2 steps, seed 7)" in shown
    assert "its parent saved " in shown and "; step 4 of 4, seed 5, batch 32, lr 0.002\n" in shown


def test_a_run_on_a_dataset_recorded_into_since_resumes_on_the_episodes_it_used(
    synthetic_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run started on every episode of a dataset that a recording then grew: the refusal
    names the ``--max-episodes`` that resumes on the run's own episodes, and that resumes."""
    from robot_il.dataset import DatasetWriter

    data = Path(shutil.copytree(synthetic_dataset, tmp_path / "data.zarr"))
    out = tmp_path / "run"
    _interrupted(_config(data, out, "--steps", "4", "--save-every", "2"), 3, monkeypatch)
    with DatasetWriter.open(data, fsync=False) as writer:
        writer.add_episode({k: np.asarray(v[:10]) for k, v in
                            zarr.open_group(str(data), mode="r")["data"].arrays()})  # fmt: skip
    with pytest.raises(
        CheckpointError,
        match=r"resume on data [0-9a-f]{16}, 7 episodes \(if "
        r"episodes were only added since, resume with --max-episodes 6, or",
    ):
        train(_config(data, out, "--steps", "4", "--save-every", "2"))  # fmt: skip
    assert train(_config(data, out, "--steps", "4", "--save-every", "2", "--max-episodes", "6"))
    assert (out / "checkpoints" / "step_0000004").is_dir()


def test_a_diffusion_runs_weights_do_not_depend_on_how_often_it_logs(
    synthetic_dataset: Path, tmp_path: Path
) -> None:
    """The validation loss draws Diffusion's noise from a seed of its own: logging (and so
    validating) every step or every other step trains the same weights, and the logged
    validation losses of a step agree."""

    def run(log_every: str) -> Path:
        out = tmp_path / f"log{log_every}"
        train(load_config("diffusion", None, [
            "--dataset", str(synthetic_dataset), "--out", str(out), "--no-progress",
            "--eval.episodes", "0", "--batch-size", "8", "--steps", "4", "--val-fraction",
            "0.34", "--log-every", log_every, "--policy.down-dims", "8", "16",
            "--policy.horizon", "4", "--policy.n-action-steps", "2"]))  # fmt: skip
        return out

    every, other = run("1"), run("2")
    a = load_file(str(every / "policy" / "model.safetensors"))
    b = load_file(str(other / "policy" / "model.safetensors"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    rows = {path: {r.split(",")[0]: r.split(",")[2] for r in
                   (path / "metrics.csv").read_text().splitlines()[1:]}
            for path in (every, other)}  # fmt: skip
    assert rows[every]["4"] == rows[other]["4"] != ""


def test_a_run_killed_after_its_final_save_writes_its_summary_when_rerun(
    synthetic_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed between its final save and ``summary.json`` (the run's state then, with nothing
    left to train), the rerun makes the final evaluation and writes the summary the run would
    have written; a run with its summary has nothing left to do."""
    settings = ("--steps", "4", "--save-every", "2", "--eval.episodes", "2",
                "--eval.max-episode-steps", "3")  # fmt: skip
    straight = train(_config(synthetic_dataset, tmp_path / "straight", *settings))
    out = tmp_path / "killed"
    train(_config(synthetic_dataset, out, *settings))
    (out / "summary.json").unlink()
    capsys.readouterr()
    finished = train(_config(synthetic_dataset, out, *settings))
    assert f"{out}: this run trained its 4 steps; writing its summary" in capsys.readouterr().out
    assert finished.evaluation == straight.evaluation and finished.steps == 4
    assert finished.final_loss == straight.final_loss
    summary = (out / "summary.json").read_text()
    assert summary == (tmp_path / "straight" / "summary.json").read_text()
    assert train(_config(synthetic_dataset, out, *settings)).evaluation is None
    assert f"{out}: this run finished at step 4; nothing to train" in capsys.readouterr().out
    assert (out / "summary.json").read_text() == summary


def test_an_image_crop_that_leaves_the_frames_is_refused_before_they_are_decoded(
    tmp_path: Path,
) -> None:
    """The crop is checked against the frames' size that the dataset's metadata states,
    before its frames are decoded into RAM (seconds to minutes for a camera dataset): the
    last episode's frames here are unreadable, which a refusal after decoding would meet
    first."""
    rng = np.random.default_rng(0)
    data = tmp_path / "camera.zarr"
    attrs = {"task": "reach", "action_mode": "joint"}
    with DatasetWriter.create(data, robot="ur5e", control_hz=20.0, attrs=attrs,
                              fsync=False) as writer:  # fmt: skip
        for _ in range(2):
            writer.add_episode({
                "joint_pos": rng.uniform(-1, 1, (5, 6)).astype(np.float32),
                "rgb_front": rng.integers(0, 256, (5, 16, 16, 3), np.uint8),
                "action": np.zeros((5, 7), np.float32),
            })  # fmt: skip
    # the shard holding the frames ends with its index, (offset, size) per frame, and a CRC
    (shard,) = [p for p in (data / "data" / "rgb_front" / "c").rglob("*") if p.is_file()]
    frames = zarr.open_array(str(data / "data" / "rgb_front"), mode="r").shards[0]
    raw = bytearray(shard.read_bytes())
    index = np.frombuffer(raw[-4 - 16 * frames : -4], np.uint64).reshape(frames, 2)
    offset, size = (int(n) for n in index[9])
    raw[offset : offset + size] = b"\xff" * size  # the last frame, garbled
    shard.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match=r"image_crop \(4, 4, 16, 8\) \(top, left, height, "
                       r"width\) leaves the 16x16 frames of rgb_front"):  # fmt: skip
        train(_config(data, tmp_path / "run", "--policy.obs-keys", "joint_pos", "rgb_front",
                      "--policy.image-encoder", "conv", "--policy.image-crop", "4", "4", "16",
                      "8"))  # fmt: skip
    with pytest.raises(DatasetError, match="rgb_front episode 1 .* unreadable"):
        Dataset.open(data, cache="ram")  # what decoding the frames meets
