"""``robot-il launch deploy_sim.launch.yaml``: a trained checkpoint solves the simulated task
through the UR driver's topics, the safety layer and real processes on loopback DDS."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from deploy_helpers import BIN, Client, wait_for
from make_reach_checkpoint import FIXTURE, train_reach_bc

pytestmark = pytest.mark.ros


def deploy_and_wait_for_success(
    checkpoint: Path, context, env: dict[str, str], log: Path, timeout: float = 20.0
) -> float:
    """Launch deploy_sim with ``checkpoint``; returns the seconds from the first command to
    ``task/success``. Fails if the task was solved before the policy commanded anything
    (the test must be able to fail) or not within ``timeout`` s of it."""
    from std_msgs.msg import Bool, Float64MultiArray

    with open(log, "w") as out:
        launch = subprocess.Popen(
            [
                str(BIN / "robot-il"),
                "launch",
                "deploy_sim.launch.yaml",
                f"checkpoint:={checkpoint}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = Client(context)
    try:
        success = client.record(Bool, "task/success")
        commands = client.record(Float64MultiArray, "forward_position_controller/commands")
        wait_for(lambda: success and commands, 90, "deploy_sim start", (launch,), (log,))
        first_command = commands[0][0]
        assert not any(m.data for t, m in success if t < first_command), "solved before acting"
        wait_for(
            lambda: any(m.data for _, m in success[-5:]), timeout, "task success", (launch,), (log,)
        )
        solved = next(t for t, m in success if m.data)
        return solved - first_command
    finally:
        client.close()
        launch.send_signal(signal.SIGINT)
        try:
            code = launch.wait(timeout=20)
        except subprocess.TimeoutExpired:
            launch.kill()
            raise
        assert code in (0, 130), log.read_text()[-3000:]


def test_deploy_sim_launch_solves_reach_with_a_trained_bc(ros_context, ros_env, tmp_path) -> None:
    seconds = deploy_and_wait_for_success(FIXTURE, ros_context, ros_env, tmp_path / "launch.log")
    assert seconds < 10.0  # the env's episode is 4 s; allow the safe-start ramp and load


@pytest.mark.slow
def test_bc_trained_from_scratch_solves_reach_through_ros(ros_context, ros_env, tmp_path) -> None:
    start = time.monotonic()
    checkpoint = train_reach_bc(tmp_path)
    print(f"trained in {time.monotonic() - start:.0f} s")
    seconds = deploy_and_wait_for_success(checkpoint, ros_context, ros_env, tmp_path / "l.log")
    assert seconds < 10.0
