"""``robot-il launch deploy_sim.launch.yaml``: a trained checkpoint solves the simulated task
through the UR driver's topics, the safety layer and real processes on loopback DDS."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import BIN, Client, constant_checkpoint, log_tail, wait_for
from make_reach_checkpoint import FIXTURE, train_reach_bc

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("trained_checkpoints")]


def deploy_and_wait_for_success(
    checkpoint: Path, context, env: dict[str, str], log: Path, *, lock_step: bool
) -> None:
    """Launch deploy_sim with ``checkpoint`` and wait for ``task/success``. Fails if the task
    was solved before the policy commanded anything (the test must be able to fail) or not
    within 60 s (wall) of the first command."""
    from std_msgs.msg import Bool, Float64MultiArray

    argv = [str(BIN / "robot-il"), "launch", "deploy_sim.launch.yaml"]
    argv += [f"checkpoint:={checkpoint}", f"lock_step:={str(lock_step).lower()}"]
    # Subscribed before the nodes start, ordered by publication: a lock-step run may solve
    # the task in the first second, and a backlog of one topic comes after another's.
    client = Client(context)
    success = client.record(Bool, "task/success")
    commands = client.record(Float64MultiArray, "forward_position_controller/commands")
    with open(log, "w") as out:
        launch = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: success and commands, 90, "deploy_sim start", (launch,), (log,))
        first_command = commands[0].sent
        solved_before = any(m[1].data for m in success if m.sent < first_command)
        assert not solved_before, "solved before acting"
        wait_for(
            lambda: any(m.data for _, m in success[-5:]), 60, "task success", (launch,), (log,)
        )
    finally:
        client.close()
        launch.send_signal(signal.SIGINT)
        try:
            code = launch.wait(timeout=20)
        except subprocess.TimeoutExpired:
            launch.kill()
            raise
        assert code in (0, 130), log_tail(log)


def test_deploy_sim_launch_solves_reach_in_lock_step(ros_context, ros_env, tmp_path) -> None:
    """Lock-step: the simulator waits for every command, so machine load cannot make the
    observations stale or the result differ."""
    deploy_and_wait_for_success(
        FIXTURE, ros_context, ros_env, tmp_path / "launch.log", lock_step=True
    )


@pytest.mark.slow
def test_deploy_sim_launch_solves_reach_in_real_time(ros_context, ros_env, tmp_path) -> None:
    """Real time, as on a robot: needs a machine that keeps up with 500 Hz (the watchdog holds
    the arm whenever joint states are more than 0.1 s old)."""
    deploy_and_wait_for_success(
        FIXTURE, ros_context, ros_env, tmp_path / "launch.log", lock_step=False
    )


@pytest.mark.slow
def test_bc_trained_from_scratch_solves_reach_through_ros(ros_context, ros_env, tmp_path) -> None:
    start = time.monotonic()
    checkpoint = train_reach_bc(tmp_path)
    print(f"trained in {time.monotonic() - start:.0f} s")
    deploy_and_wait_for_success(
        checkpoint, ros_context, ros_env, tmp_path / "l.log", lock_step=True
    )


def test_a_checkpoint_of_another_task_is_refused_naming_both_tasks(ros_context) -> None:
    """deploy_sim's task defaults to reach: a push checkpoint launched without task:=push
    was refused with "observation 'object_pose' missing" only, which names no cause."""
    from rclpy.parameter import Parameter

    from robot_il.errors import CheckpointError
    from robot_il.ros.policy_node import PolicyNode

    parameters = [Parameter("checkpoint", value=str(FIXTURE))]  # trained on reach
    with pytest.raises(CheckpointError) as error:
        PolicyNode(
            context=ros_context,
            parameter_overrides=[*parameters, Parameter("task", value="bimanual_handover")],
        )
    message = str(error.value)
    assert "trained on task 'reach', deployed on task 'bimanual_handover'" in message
    assert "acts for 1 arm(s), this node drives 2; deploy it with deploy_sim" in message
    assert "\n" not in message


def test_the_node_takes_every_task_input_whatever_its_first_checkpoint_observes(
    ros_context, tmp_path
) -> None:
    """A selection switches checkpoints in one node: one that observes the push target after a
    first one that did not waited for ever, as the node had subscribed only to its first
    checkpoint's inputs."""
    from rclpy.parameter import Parameter
    from robot_il.envs.tasks import TASKS

    from robot_il.ros.policy_node import PolicyNode

    joints_only = constant_checkpoint(tmp_path / "joints", np.zeros(7), task="push")
    node = PolicyNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("checkpoint", value=str(joints_only)),
            Parameter("task", value="push"),
        ],
    )
    try:
        topics = {subscription.topic_name for subscription in node.subscriptions}
    finally:
        node.shutdown()
    assert {"/task/target", "/task/object_pose"} <= topics, topics
    assert set(TASKS["push"]().task_keys) == {"target_pos", "object_pose"}
