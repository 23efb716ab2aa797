"""User journeys of ``robot-il eval``, ``info`` and ``sim`` found wanting in review: a long
evaluation silent until its end, and one interrupted losing the episodes it had run."""

from __future__ import annotations

from pathlib import Path

import pytest

from robot_il.cli import main

pytest.importorskip("mujoco")

FAST = ["--no-progress", "--batch-size", "16", "--policy.hidden-dims", "16"]


@pytest.fixture(scope="module")
def reach(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scripted reach demonstrations, recorded as a user records them."""
    out = tmp_path_factory.mktemp("journey") / "reach.zarr"
    argv = ["record", "--task", "reach", "--expert", "--episodes", "2", "--no-fsync"]
    assert main([*argv, "--out", str(out)]) == 0
    return out


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
