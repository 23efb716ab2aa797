"""``robot-il select sim`` as a user runs it: mistakes refused before anything is trained or
launched, and a selection stopped midway goes on when the same command runs again."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import BIN, constant_checkpoint

from robot_il.cli import main
from robot_il.select import UCB1, Selector

Q0 = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0, 0.0])
"""A joint target (6 joints + gripper): any fixed action makes a loadable checkpoint."""


@pytest.fixture
def candidates(tmp_path):
    """Two real BC checkpoints (paths) that load and run."""
    return [str(constant_checkpoint(tmp_path / name, Q0)) for name in ("still", "other")]


def select_sim(out, candidates, *flags: str) -> int:
    return main(["select", "sim", "--out", str(out), "--candidates", ",".join(candidates), *flags])


def rated_state(path, candidates, episodes: int, rule=None, seed: int = 0) -> Selector:
    """A selection state of ``episodes`` rated episodes, as a stopped run leaves it."""
    selector = Selector.create(candidates, rule or UCB1(), seed=seed, state_path=path)
    for _ in range(episodes):
        selector.feedback(selector.choose().episode, 0.5)
    return selector


def test_fewer_episodes_than_candidates_is_refused_before_anything(tmp_path, candidates, capsys):
    """The winner would be named among the candidates that happened to run."""
    out = tmp_path / "out"
    assert select_sim(out, candidates, "--episodes", "1") == 2
    error = capsys.readouterr().err
    assert "--episodes 1: fewer episodes than the 2 candidates" in error, error
    assert not out.exists()


def test_a_candidate_that_does_not_load_is_refused_before_the_launch(tmp_path, candidates, capsys):
    """It cost a minute per episode it was chosen for, and stopped the launch as default."""
    broken = tmp_path / "broken"
    os.rename(candidates[1], broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    out = tmp_path / "out"
    assert select_sim(out, [candidates[0], str(broken)], "--episodes", "2") == 2
    error = capsys.readouterr().err
    assert "--candidates: not loadable:" in error and str(broken) in error, error
    assert "[select] robot-il launch" not in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize("verb", ["sim", "candidates"])
def test_out_naming_a_file_is_refused(tmp_path, candidates, capsys, verb):
    """It failed with a FileExistsError traceback, ``candidates`` after recording."""
    out = tmp_path / "file"
    out.write_text("mine")
    argv = ["select", verb, "--out", str(out)]
    argv += ["--candidates", ",".join(candidates)] if verb == "sim" else ["--record", "2"]
    assert main(argv) == 2
    assert f"--out {out}: is a file" in capsys.readouterr().err
    assert out.read_text() == "mine"


def test_a_state_of_other_candidates_or_rule_is_refused_and_kept(tmp_path, candidates, capsys):
    out = tmp_path / "out"
    state = out / "selection.json"
    rated_state(state, candidates[::-1], 3)
    before = state.read_text()
    assert select_sim(out, candidates, "--episodes", "4") == 2
    error = capsys.readouterr().err
    assert f"{state}: holds a selection of candidates {','.join(candidates[::-1])}" in error
    assert "(3 rated episodes)" in error and "--fresh" in error
    state.unlink()
    rated_state(state, candidates, 3)
    assert select_sim(out, candidates, "--episodes", "4", "--rule", "uniform") == 2
    assert "holds a selection of --rule ucb1" in capsys.readouterr().err
    assert select_sim(out, candidates, "--episodes", "4", "--seed", "3") == 2
    assert "holds a selection of --seed 0" in capsys.readouterr().err
    assert json.loads(state.read_text())["log"] == json.loads(before)["log"]


def test_a_finished_selection_run_again_shows_its_result(tmp_path, candidates, capsys):
    """The same command again used to delete the rated episodes and start over."""
    out = tmp_path / "out"
    rated_state(out / "selection.json", candidates, 3)
    assert select_sim(out, candidates, "--episodes", "3") == 0
    printed = capsys.readouterr().out
    assert "3 episodes rated already (--episodes 3)" in printed
    assert "robot-il launch" not in printed  # nothing to run
    assert "winner after 3 episodes:" in printed
    assert len(Selector.load(out / "selection.json").log) == 3
    assert (out / "selection.png").is_file()


def test_a_training_run_s_out_names_its_checkpoint(tmp_path, candidates, capsys):
    """A candidate may be named by its training run's --out (the checkpoint in its policy/),
    as robot-il eval and the deploy launch files take it: it was refused as 'not checkpoint
    directories'."""
    runs = [tmp_path / "runs" / Path(candidate).name for candidate in candidates]
    for run, candidate in zip(runs, candidates, strict=True):
        run.mkdir(parents=True)
        os.rename(candidate, run / "policy")
    out = tmp_path / "out"
    rated_state(out / "selection.json", [str(run / "policy") for run in runs], 3)
    assert select_sim(out, [str(run) for run in runs], "--episodes", "3") == 0
    assert "3 episodes rated already (--episodes 3)" in capsys.readouterr().out


def test_a_selection_of_retrained_candidates_is_not_gone_on_with(tmp_path, candidates):
    """Its ratings are of the weights before: ``select sim`` sets such a state aside."""
    from robot_il.cli.select import retrained_since

    state = tmp_path / "selection.json"
    rated_state(state, candidates, 2)
    checkpoints = [Path(c) for c in candidates]
    assert retrained_since(state, checkpoints) == []
    stamp = state.stat().st_mtime + 10
    os.utime(checkpoints[1] / "config.json", (stamp, stamp))  # saved after the last rating
    assert retrained_since(state, checkpoints) == [candidates[1]]


def test_the_summary_table_fits_path_names(tmp_path, candidates, capsys):
    from robot_il.cli.select import summarize

    state = tmp_path / "selection.json"
    rated_state(state, candidates, 2)
    summarize(state, tmp_path / "selection.png")
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("candidate"))
    rows = [
        line for line in lines if line.startswith(candidates[0]) or line.startswith(candidates[1])
    ]
    assert len(rows) == 2
    assert all(len(row) == len(header) for row in rows), [header, *rows]


@pytest.mark.ros
def test_a_stopped_selection_goes_on_where_it_stopped(tmp_path, candidates, ros_env):
    """A state with one rated episode and the next one open (Ctrl-C midway): the same command
    rates the open one on the env seed an uninterrupted run would use, keeps the first."""
    out = tmp_path / "out"
    selector = rated_state(out / "selection.json", candidates, 1)
    pending = selector.choose()
    first = selector.log[0]
    result = subprocess.run(
        [str(BIN / "robot-il"), "select", "sim", "--out", str(out), "--candidates",
         ",".join(candidates), "--episodes", "2"],
        env=ros_env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "going on after 1 rated episodes" in result.stdout
    assert "env_seed:=10001" in result.stdout
    resumed = Selector.load(out / "selection.json")
    assert len(resumed.log) == 2 and resumed.log[0] == first
    assert resumed.log[1].episode == pending.episode and resumed.log[1].arm == pending.arm
    assert "winner after 2 episodes:" in result.stdout


def test_the_choices_plot_numbers_episodes_whole_and_scales_its_colours(tmp_path, candidates):
    """selection.png read episodes 0.5, 1.5, ... and named no rating for its colours."""
    import matplotlib.pyplot as plt

    from robot_il.cli.select import choices_figure

    fig = choices_figure(rated_state(tmp_path / "selection.json", candidates, 3))
    plot, colour_bar = fig.axes
    ticks = plot.get_xticks()
    plt.close(fig)
    assert len(ticks) >= 1 and np.array_equal(ticks, np.round(ticks)), ticks
    assert colour_bar.get_ylabel() == "rating"


def test_a_page_port_in_use_is_refused_before_the_launch(tmp_path, candidates, capsys):
    """The page failed to bind in the launch and the selection ran on without it."""
    import socket

    out = tmp_path / "out"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert select_sim(out, candidates, "--web", "--port", str(port)) == 2
    error = capsys.readouterr().err
    assert f"--port {port}: cannot serve the feedback page on 127.0.0.1:{port}" in error, error
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--port", "8080"], ["--camera", "side"]])
def test_page_flags_without_web_are_refused(tmp_path, candidates, capsys, flags):
    """They were ignored: no page was served, and nothing said so."""
    assert select_sim(tmp_path / "out", candidates, *flags) == 2
    error = capsys.readouterr().err
    assert f"{flags[0]}: only for the feedback page, which --web serves" in error, error


def test_takeover_flags_are_checked_before_the_launch(tmp_path, candidates, capsys):
    """--device without --takeover would be ignored; a keyboard takeover with no terminal
    (pytest's standard input is none) could never take the arm over."""
    assert select_sim(tmp_path / "out", candidates, "--device", "spacemouse") == 2
    assert "--device: only for taking the arm over" in capsys.readouterr().err
    assert select_sim(tmp_path / "out", candidates, "--takeover") == 2
    assert "standard input is not one" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_selection_with_takeover_records_and_fine_tunes_into_out(tmp_path, candidates, ros_env):
    """``--takeover`` from a terminal (a pseudo terminal here) starts the teleop node and the
    corrections recorder into --out, at the candidates' rate; a selection nobody corrects runs
    as without it and leaves an empty corrections dataset for the next run to append to."""
    import pty

    from robot_il.dataset import Dataset

    out = tmp_path / "out"
    master, slave = pty.openpty()
    try:
        result = subprocess.run(
            [str(BIN / "robot-il"), "select", "sim", "--out", str(out), "--candidates",
             ",".join(candidates), "--episodes", "2", "--takeover"],
            env=ros_env, stdin=slave, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "takeover:=true device:=keyboard" in result.stdout
    assert "record_hz:=20" in result.stdout
    corrections = Dataset.open(out / "corrections.zarr")
    assert corrections.attrs["kind"] == "corrections" and corrections.num_episodes == 0
    assert "winner after 2 episodes:" in result.stdout
