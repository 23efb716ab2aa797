"""What is evaluated is what is deployed: the same checkpoint on the same seeds succeeds over
ROS 2 (``sim_robot`` in lock-step, the policy node and its safety layer, separate processes)
as in ``robot-il eval``, for a joint-mode and an end-effector-delta checkpoint."""

from __future__ import annotations

import os

import pytest
from make_eef_reach_checkpoint import FIXTURE as EEF_FIXTURE
from make_reach_checkpoint import FIXTURE as JOINT_FIXTURE

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]

SEED = 10_000  # robot-il eval's held-out seeds


def eval_in_env(checkpoint, episodes: int, seed: int):
    from robot_il.policies import load_policy

    from robot_il.train.evaluate import evaluate, make_eval_env

    policy = load_policy(checkpoint)
    env = make_eval_env(policy.spec)
    try:
        return evaluate(policy, env, episodes=episodes, seed=seed)
    finally:
        env.close()


def compare(checkpoint, episodes, seed, ros_context, ros_env, tmp_path):
    from robot_il.ros.ros_eval import evaluate_over_ros

    in_env = eval_in_env(checkpoint, episodes, seed)
    over_ros = evaluate_over_ros(
        checkpoint,
        episodes=episodes,
        seed=seed,
        context=ros_context,
        env=ros_env,
        log_dir=tmp_path / "logs",
    )
    assert over_ros.seeds == in_env.seeds
    print(f"{checkpoint.name}: eval {in_env.line()}  over ROS {over_ros.line()}")
    return in_env, over_ros


def test_deploy_matches_eval_seed_by_seed(ros_context, ros_env, tmp_path):
    """Seeds 10004..10007: the joint-mode fixture solves the first two in the env and fails
    the last two (it misses their targets), so both outcomes are at stake; over ROS 2 each
    seed ends the same way."""
    in_env, over_ros = compare(JOINT_FIXTURE, 4, 10_004, ros_context, ros_env, tmp_path)
    assert 0 < sum(in_env.successes) < 4, "the seeds no longer put success at stake"
    assert over_ros.successes == in_env.successes


@pytest.mark.slow
@pytest.mark.parametrize("fixture", [JOINT_FIXTURE, EEF_FIXTURE], ids=["joint", "eef_delta"])
def test_deploy_within_5_points_of_eval_on_50_seeds(fixture, ros_context, ros_env, tmp_path):
    in_env, over_ros = compare(fixture, 50, SEED, ros_context, ros_env, tmp_path)
    assert abs(in_env.success_rate - over_ros.success_rate) <= 0.05


def test_eval_over_ros_refuses_what_it_cannot_do_before_starting(capsys, tmp_path):
    from robot_il.cli import main

    argv = ["eval", "--checkpoint", str(JOINT_FIXTURE), "--ros", "--out", str(tmp_path)]
    assert main([*argv, "--video"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "robot-il: error: --ros evaluates the task's full episodes without video"
    assert not (tmp_path / "ros_logs").exists()  # no node was started


def test_eval_over_ros_keeps_off_a_domain_another_process_holds(capsys, tmp_path, ros_domain_id):
    """Its domain was 1 + pid % 101, locked by nobody: an evaluation whose pid landed on a
    test's or a launch's domain counted episodes the other process's nodes played (a test saw
    [False, False, False, True] for [True, True, False, False]). It now claims a free domain,
    and refuses one another robot_il process holds."""
    from robot_il.cli import main
    from robot_il.ros.dds import claim_domain, claim_free_domain

    lock, other = claim_domain(ros_domain_id, "an evaluation")
    assert lock is None and other == f"pid {os.getpid()}: a test"  # this test holds it
    free, free_lock = claim_free_domain("an evaluation")
    with free_lock:
        assert free != ros_domain_id
    argv = ["eval", "--checkpoint", str(JOINT_FIXTURE), "--ros", "--out", str(tmp_path),
            "--episodes", "1", "--domain-id", str(ros_domain_id)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"robot-il: error: ROS domain {ros_domain_id}: another robot_il process runs on it "
        f"(pid {os.getpid()}: a test); its nodes would mix with these: pick another domain or "
        "leave it out"
    )
    assert not (tmp_path / "ros_logs").exists()  # no node was started


def test_eval_over_ros_stopped_by_sigterm_stops_its_nodes(tmp_path):
    """``kill`` (SIGTERM) of ``robot-il eval --ros`` ended it at once and left its nodes,
    ``sim_robot`` and the policy node with its fork server, running for good, on their
    domain (5 processes in a scratch check). It now stops them as Ctrl-C does."""
    import contextlib
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from deploy_helpers import group_runs, log_tail, stop, wait_for

    log = tmp_path / "eval.log"
    argv = [str(Path(sys.executable).with_name("robot-il")), "eval", "--checkpoint",
            str(JOINT_FIXTURE), "--ros", "--episodes", "20",
            "--out", str(tmp_path / "r.json")]  # fmt: skip
    with log.open("w") as output:
        evaluation = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
    try:
        first = "1/20"  # an episode has ended: the nodes run
        wait_for(lambda: first in log.read_text(), 120, "the first episode", (evaluation,), (log,))
        evaluation.send_signal(signal.SIGTERM)  # the command alone, as `kill <pid>` does
        wait_for(lambda: evaluation.poll() is not None, 30, "the evaluation's end", (), (log,))
        assert evaluation.returncode == 143, log_tail(log)
        wait_for(lambda: not group_runs(evaluation.pid), 30, "the end of the evaluation's nodes")
    finally:
        stop(evaluation)
        with contextlib.suppress(ProcessLookupError):  # nodes a failure left running
            os.killpg(evaluation.pid, signal.SIGKILL)
