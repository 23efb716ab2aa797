"""``robot-il select`` without ``--dataset`` records the candidates' expert demonstrations into
``--out/demos`` first: a recording stopped there (Ctrl-C) goes on to its count when the same
command runs again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_errors import one_line_error

from robot_il.cli.select import candidates_dataset, default_candidate_names
from robot_il.dataset import Dataset
from robot_il.train.demos import record_expert_demos


@pytest.fixture
def stopped_recording(tmp_path: Path) -> Path:
    """A selection's ``--out`` whose expert recording stopped after 3 episodes: what a Ctrl-C
    during ``[select] recording 6 expert reach demonstrations`` leaves (the recorder commits
    each episode; the rest are never started)."""
    pytest.importorskip("mujoco")
    record_expert_demos("reach", tmp_path / "demos", episodes=3)
    return tmp_path


def test_a_stopped_recording_goes_on_to_its_count(stopped_recording: Path) -> None:
    """The rerun trained the candidates on the 3 episodes the Ctrl-C left, naming them for
    what it found (``bc_3demos_3000steps`` where an uninterrupted run trains
    ``bc_6demos_3000steps``), and never recorded the rest."""
    out = stopped_recording
    kept = Dataset.open(out / "demos" / "env.zarr").episode(2)["joint_pos"].copy()
    names = default_candidate_names(out, None, 6)
    assert names[0] == "bc_6demos_3000steps", names
    recording = Dataset.open(candidates_dataset(out, None, 6))
    assert recording.num_episodes == 6
    assert [int(recording.meta(i)["seed"]) for i in range(6)] == list(range(6))
    np.testing.assert_array_equal(recording.episode(2)["joint_pos"], kept)


def test_a_record_below_the_recording_is_refused(
    stopped_recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--record 2`` over a recording of 3 used all 3, the flag ignored."""
    out = stopped_recording
    argv = ["select", "sim", "--out", str(out), "--record", "2", "--episodes", "4"]
    err = one_line_error(argv, capsys)
    assert "--record 2:" in err and "holds 3 expert demonstrations already" in err, err
    assert "pass --record 3" in err, err
    assert not (out / "runs").exists()  # nothing trained
