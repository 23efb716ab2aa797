"""``robot-il train dmp-rl`` as a user runs it: recorded ``bimanual_cross`` demos, a DMP
checkpoint from ``robot-il train dmp``, a tiny PPO budget (real SB3, real safetensors), the
exported DMP+RL checkpoint evaluated in MuJoCo, a rerun to more steps, and the inputs it
refuses before training (the coordinator was trainable only through the benchmark script,
into the repository's folders)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from cli_errors import one_line_error
from robot_il.policies import load_policy
from robot_il.policies.dmp.coupling import CouplingParams

from robot_il.cli import main
from robot_il.train.coordinator import COORDINATOR_SUBDIR, read_rows

pytest.importorskip("mujoco")

TINY = ["--n-envs", "4", "--n-steps", "16", "--batch-size", "64", "--chunk-steps", "64"]
"""One rollout is 64 env steps; a row per rollout."""


@pytest.fixture(scope="module")
def dmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``robot-il train dmp --search cma`` run (one tiny generation) over two scripted
    ``bimanual_cross`` demonstrations: its checkpoint holds a tuned, not the hand-set, coupling."""
    root = tmp_path_factory.mktemp("dmp_rl")
    demos = root / "cross.zarr"
    argv = ["record", "--task", "bimanual_cross", "--expert", "--episodes", "2", "--no-fsync"]
    assert main([*argv, "--out", str(demos)]) == 0
    argv = ["train", "dmp", "--dataset", str(demos), "--out", str(root / "dmp"), "--search", "cma"]
    assert main([*argv, "--generations", "1", "--popsize", "2", "--search-scenes", "2"]) == 0
    assert load_policy(root / "dmp").params != CouplingParams()
    return root / "dmp"


@pytest.fixture(scope="module")
def run(dmp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished ``dmp-rl`` run of 128 env steps with the 2 cm shield."""
    out = tmp_path_factory.mktemp("dmp_rl") / "rl"
    argv = ["train", "dmp-rl", "--dmp", str(dmp), "--out", str(out), "--steps", "128", *TINY]
    assert main([*argv, "--shield-clearance", "0.02"]) == 0
    return out


def test_the_exported_checkpoint_runs_the_dmp_layer_with_the_net_in_eval(
    dmp: Path, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = load_policy(run / "policy")
    assert policy.config.coordinator and policy.config.shield_clearance == 0.02
    # trained over and deployed on the DMP checkpoint's CMA-ES coupling
    assert policy.params == load_policy(dmp).params == policy.coordinator.coupling
    assert [row["steps"] for row in read_rows(run / COORDINATOR_SUBDIR)] == [64, 128]
    assert main(["eval", "--checkpoint", str(run / "policy"), "--episodes", "1"]) == 0
    assert "dmp on bimanual_cross/mujoco: success 1/1" in capsys.readouterr().out


def test_a_rerun_to_more_steps_continues_and_exports_the_longer_trained_net(
    dmp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"  # the system's temporary folder, watched for SB3's log folders
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    out = tmp_path / "rl"
    argv = ["train", "dmp-rl", "--dmp", str(dmp), "--out", str(out), *TINY]
    assert main([*argv, "--steps", "64"]) == 0
    first = load_policy(out / "policy").coordinator.digest()
    assert main([*argv, "--steps", "128"]) == 0
    assert [row["steps"] for row in read_rows(out / COORDINATOR_SUBDIR)] == [64, 128]
    assert f"checkpoint: {out / 'policy'} (coordinator 128 env steps, no shield)" in (
        capsys.readouterr().out
    )
    assert load_policy(out / "policy").coordinator.digest() != first
    assert not list(temp.glob("SB3-*")), "SB3 logged to an empty folder per chunk"
    capsys.readouterr()
    for steps in ("128", "64"):  # the same command again, or fewer steps: nothing to train
        assert main([*argv, "--steps", steps]) == 0
        assert f"trained 128 env steps already (--steps {steps}); nothing to train" in (
            capsys.readouterr().out
        )
    assert len(read_rows(out / COORDINATOR_SUBDIR)) == 2
    err = one_line_error([*argv, "--steps", "192", "--seed", "1"], capsys)
    assert "PPO config changed since this run: seed 0 -> 1" in err
    assert len(read_rows(out / COORDINATOR_SUBDIR)) == 2


def test_inputs_it_cannot_train_on_are_refused_before_training(
    dmp: Path, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"

    def refused(flags: list[str], dmp_path: Path = dmp) -> str:
        base = ["train", "dmp-rl", "--dmp", str(dmp_path), "--out", str(out), "--steps", "64"]
        err = one_line_error([*base, *flags], capsys)
        assert not (out / COORDINATOR_SUBDIR).exists()
        return err

    assert f"{tmp_path / 'nope'}: no such checkpoint directory" in refused([], tmp_path / "nope")
    assert "already a DMP + RL checkpoint; pass the DMP checkpoint it was made from" in refused(
        [], run
    )
    handover = tmp_path / "handover"
    shutil.copytree(dmp / "policy", handover)
    saved = json.loads((handover / "config.json").read_text())
    saved["spec"]["task"] = "bimanual_handover"
    (handover / "config.json").write_text(json.dumps(saved))
    assert "for 'bimanual_handover' (coupled playback); the coordinator trains over" in refused(
        [], handover
    )
    saved["spec"]["task"], saved["config"]["method"] = "bimanual_cross", "independent"
    (handover / "config.json").write_text(json.dumps(saved))
    assert "runs method 'independent'; the coordinator is a residual" in refused([], handover)
    assert "--batch-size must be in 2..128 (one rollout: --n-envs 2 x --n-steps 64)" in refused(
        ["--n-envs", "2"]
    )
    for bad in ("-0.01", "nan", "inf"):
        assert f"--shield-clearance must be a finite distance > 0 m, got {float(bad)}" in refused(
            [f"--shield-clearance={bad}"]
        )
    # a shield wider than the arms' passing distance holds them for good: a checkpoint that
    # never finishes (PPO trains without the shield, so it cannot learn to free them)
    err = refused(["--shield-clearance", "0.3"])
    assert "--shield-clearance 0.3 m holds the arms short of their goals in 16 of 16" in err
    assert "; use a smaller clearance" in err
    out.write_text("mine\n")
    assert f"--out {out}: is a file" in refused([])
    assert out.read_text() == "mine\n"
    with pytest.raises(SystemExit):
        main(["train", "dmp-rl", "--dmp", str(dmp), "--out", str(tmp_path / "x"), "--steps", "0"])
    assert "argument --steps: must be >= 1, got 0" in capsys.readouterr().err


def test_an_out_holding_another_checkpoint_is_not_overwritten(
    dmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` the DMP run itself would have replaced its checkpoint by the DMP+RL one."""
    before = (dmp / "policy" / "config.json").read_bytes()
    argv = ["train", "dmp-rl", "--dmp", str(dmp), "--out", str(dmp), "--steps", "64", *TINY]
    err = one_line_error(argv, capsys)
    assert f"{dmp / 'policy'}: a dmp checkpoint that this run would overwrite" in err
    assert (dmp / "policy" / "config.json").read_bytes() == before
    assert not (dmp / COORDINATOR_SUBDIR).exists()
    assert not load_policy(dmp).config.coordinator


def test_steps_within_one_chunk_train_to_steps_not_to_the_chunk(dmp: Path, tmp_path: Path) -> None:
    """``--steps`` is the budget, rounded up to whole rollouts (64 env steps here): a chunk of
    256 between saves trained 256 steps for ``--steps 96``, and the default chunk 8,192 for
    ``--steps 2048``."""
    out = tmp_path / "rl"
    argv = ["train", "dmp-rl", "--dmp", str(dmp), "--out", str(out), *TINY]
    assert main([*argv, "--chunk-steps", "256", "--steps", "96"]) == 0
    assert [row["steps"] for row in read_rows(out / COORDINATOR_SUBDIR)] == [128]


def test_info_tells_the_dmp_rl_checkpoint_and_its_shield_from_the_dmp_one(
    dmp: Path, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both share spec, data and library: info printed the same lines for both."""
    assert main(["info", str(dmp)]) == 0
    line = "controller   coupled DMPs, CMA-ES coupling, at 100 Hz"
    assert f"{line}\n" in capsys.readouterr().out
    assert main(["info", str(run)]) == 0
    shield = "learned coordinator (DMP + RL), distance shield 0.02 m"
    assert f"{line}, {shield}\n" in capsys.readouterr().out


def test_a_second_run_into_the_out_of_a_running_one_is_refused(
    dmp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``train dmp-rl`` took no run lock: two runs into one --out both trained, each
    appending its rows to the other's ``rows.jsonl`` and saving over its ``ppo.zip``."""
    from robot_il.train.trainer import lock_run

    out = tmp_path / "rl"
    argv = ["train", "dmp-rl", "--dmp", str(dmp), "--out", str(out), "--steps", "64", *TINY]
    with lock_run(out):  # another training holds it
        assert "another training runs in this --out" in one_line_error(argv, capsys)
        assert not (out / COORDINATOR_SUBDIR).exists() and not (out / "policy").exists()
    assert main(argv) == 0  # once it has ended
    assert [row["steps"] for row in read_rows(out / COORDINATOR_SUBDIR)] == [64]


def test_a_run_interrupted_while_it_saves_resumes_from_its_last_save(
    dmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: SB3 writes ``ppo.zip`` in place, so a Ctrl-C during the second save left half a
    zip, and the rerun ended in a traceback ("wasn't a zip-file"), the run lost. The fault: the
    save writes the start of a zip, then the interrupt arrives."""
    from stable_baselines3.common import base_class

    save = base_class.save_to_zip_file
    saves = []

    def interrupted_second_save(path, *args, **kwargs) -> None:
        saves.append(path)
        if len(saves) == 1:
            return save(path, *args, **kwargs)
        half_a_zip = b"PK\x03\x04\x14\x00"
        if hasattr(path, "write"):  # an open file
            path.write(half_a_zip)
        else:
            Path(path).write_bytes(half_a_zip)
        raise KeyboardInterrupt

    out = tmp_path / "rl"
    argv = ["train", "dmp-rl", "--dmp", str(dmp), "--out", str(out), "--steps", "128", *TINY]
    monkeypatch.setattr(base_class, "save_to_zip_file", interrupted_second_save)
    assert main(argv) == 130  # robot-il: interrupted
    assert [row["steps"] for row in read_rows(out / COORDINATOR_SUBDIR)] == [64]
    monkeypatch.setattr(base_class, "save_to_zip_file", save)
    assert main(argv) == 0
    assert [row["steps"] for row in read_rows(out / COORDINATOR_SUBDIR)] == [64, 128]
    assert load_policy(out / "policy").config.coordinator
