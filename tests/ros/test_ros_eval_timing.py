"""``robot-il eval --ros`` times each episode by the simulated steps, not by when it reads
them: with its spin thread held up (a loaded core) it reports the same successes and lengths
seed by seed as without."""

from __future__ import annotations

import time

import pytest
from make_reach_checkpoint import FIXTURE

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]


def test_a_held_up_evaluation_reports_the_same_lengths(
    ros_context, ros_env, tmp_path, monkeypatch
) -> None:
    """A callback of the evaluating node sleeps 20 ms on each step's ``task/success``: the
    lock-step simulation runs ahead while neither ``/clock`` nor ``task/success`` is read, and
    they are read a step of each at a time (the latest clock read at a success was steps late,
    and the first steps' messages were lost from 10-deep queues: [True, False], [10, 80] for
    [True, True], [10, 15])."""
    from std_msgs.msg import Bool

    from robot_il.ros import ros_eval

    def evaluate(log_dir: str):
        return ros_eval.evaluate_over_ros(FIXTURE, episodes=2, seed=10_004, context=ros_context,
                                          env=ros_env, log_dir=tmp_path / log_dir)  # fmt: skip

    free = evaluate("free")
    assert free.successes == [True, True]  # the fixture solves both seeds, as in the env

    class HeldUp(ros_eval._Watcher):
        def __init__(self, context) -> None:
            super().__init__(context)
            self.node.create_subscription(Bool, "task/success", lambda _: time.sleep(0.02), 10)

    monkeypatch.setattr(ros_eval, "_Watcher", HeldUp)
    held_up = evaluate("held_up")
    assert (held_up.successes, held_up.lengths) == (free.successes, free.lengths)
