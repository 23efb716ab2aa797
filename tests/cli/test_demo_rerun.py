"""``robot-il demo`` run again into the same ``--out`` replaces its results; its numbers are
checked before its first step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_errors import argparse_error, one_line_error

from robot_il.cli import build_parser
from robot_il.cli.demo import BC_RUN, demo_steps, earlier_run, run_steps


def recorded_and_trained(out: Path, episodes: int) -> int:
    """The demo's own record and train steps into ``out`` (``--episodes``, 50 BC steps), as
    its ``run`` goes through them; their exit code."""
    argv = ["demo", "--out", str(out), "--episodes", str(episodes), "--train-steps", "50"]
    args = build_parser(argv).parse_args(argv)
    steps = dict(demo_steps(args))
    named = [(title, steps[title]) for title in ("record expert demonstrations", "train BC")]
    return run_steps(named, earlier_run(out))


def test_a_demo_of_other_settings_trains_on_its_own_recording(tmp_path: Path) -> None:
    """A second demo with other ``--episodes`` re-recorded the dataset (``record --force``),
    then its ``train bc`` found the first demo's run, refused to resume it on the new data and
    stopped the demo, the first recording gone."""
    pytest.importorskip("mujoco")
    out = tmp_path / "demo"
    assert recorded_and_trained(out, episodes=3) == 0
    assert recorded_and_trained(out, episodes=2) == 0
    config = json.loads((out / BC_RUN / "policy" / "config.json").read_text())
    assert config["provenance"]["training_data"][0]["episodes_used"] == 2, config["provenance"]


def test_a_folder_that_is_no_demo_run_is_refused_before_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo removes only a BC run of its own; anything else at ``--out/bc`` stops it
    before it records."""
    out = tmp_path / "demo"
    (out / BC_RUN).mkdir(parents=True)
    (out / BC_RUN / "notes.txt").write_text("mine")
    err = one_line_error(["demo", "--out", str(out)], capsys)
    assert f"{out / BC_RUN}: not a training run, where the demo trains BC" in err, err
    assert sorted(path.name for path in out.iterdir()) == [BC_RUN]
    assert (out / BC_RUN / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--episodes", "0"], "argument --episodes: must be >= 1, got 0"),
        (["--eval-episodes", "-1"], "argument --eval-episodes: must be >= 1, got -1"),
        (["--select-episodes", "2"], "argument --select-episodes: must be >= 4, got 2"),
    ],
)
def test_bad_numbers_are_refused_before_the_first_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """``--select-episodes 2`` failed at the demo's last step, after recording, training,
    evaluating and deploying (25 s); ``--eval-episodes -1`` after training."""
    out = tmp_path / "demo"
    assert message in argparse_error(["demo", "--out", str(out), *flags], capsys)
    assert not out.exists()
