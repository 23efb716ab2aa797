"""``robot-il launch ur5e_rtde.launch.yaml``: a client that knows only the UR driver's topics
reads joint states and moves the (fake) arm, through real processes on loopback DDS."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from robot_il.envs.ur5e.description import HOME_JOINT_POS

pytestmark = pytest.mark.ros

ROBOT_IL = str(Path(sys.executable).parent / "robot-il")


def test_launched_bridge_moves_the_arm_and_stops_cleanly(ros_context, ros_env) -> None:
    import rclpy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    launch = subprocess.Popen(
        [
            ROBOT_IL,
            "launch",
            "ur5e_rtde.launch.yaml",
            "use_fake_hardware:=true",
            "tf_prefix:=left_",
        ],
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    node = rclpy.create_node("driver_client", context=ros_context)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    states: list[JointState] = []
    node.create_subscription(JointState, "joint_states", states.append, 10)
    commands = node.create_publisher(Float64MultiArray, "forward_position_controller/commands", 10)
    target = HOME_JOINT_POS + np.array([0.2, -0.1, 0.1, 0.0, 0.0, 0.2])
    try:
        deadline = time.monotonic() + 30
        while len(states) < 50:
            assert time.monotonic() < deadline and launch.poll() is None, "no joint_states"
            executor.spin_once(timeout_sec=0.05)
        first = states[-1]
        assert list(first.name)[:2] == ["left_shoulder_pan_joint", "left_shoulder_lift_joint"]
        np.testing.assert_allclose(first.position, HOME_JOINT_POS, atol=1e-6)
        count_before = len(states)
        start = time.monotonic()
        while time.monotonic() - start < 2.0:
            commands.publish(Float64MultiArray(data=target.tolist()))
            executor.spin_once(timeout_sec=0.02)
        rate = (len(states) - count_before) / (time.monotonic() - start)
        np.testing.assert_allclose(states[-1].position, target, atol=0.02)
    finally:
        launch.send_signal(signal.SIGINT)
        output, _ = launch.communicate(timeout=30)
        executor.shutdown()
        node.destroy_node()
    assert launch.returncode == 130, output
    assert "control loop:" in output  # the bridge shut down through servoStop
    assert rate > 50, f"joint_states arrived at {rate:.0f} Hz"


def launch_to_its_end(
    env: dict[str, str], *arguments: str
) -> tuple[subprocess.CompletedProcess, str]:
    """``robot-il launch ur5e_rtde.launch.yaml`` with ``arguments``, run to its exit (60 s at
    most); returns the process and its stdout and stderr together."""
    launch = subprocess.run(
        [ROBOT_IL, "launch", "ur5e_rtde.launch.yaml", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return launch, launch.stdout + launch.stderr


def test_a_robot_ip_where_nothing_listens_is_a_one_line_error(ros_env) -> None:
    """A wrong ``robot_ip``: the bridge's one-line error names it, no traceback, exit code 2
    (ur_rtde raised a bare RuntimeError: a traceback through the node's start-up)."""
    pytest.importorskip("rtde_receive")
    import socket

    with socket.socket() as probe:  # RTDE's port: nothing may listen on it for this test
        if probe.connect_ex(("127.0.0.1", 30004)) == 0:
            pytest.skip("something listens on 127.0.0.1:30004")
    launch, output = launch_to_its_end(ros_env, "robot_ip:=127.0.0.1")
    assert launch.returncode == 2, output
    assert "Traceback" not in output
    assert "error: robot_ip 127.0.0.1: " in output and "30004" in output


def test_a_launch_without_robot_ip_is_refused_in_one_line(ros_env) -> None:
    """A launch that forgot ``robot_ip:=`` connected to URSim's address (the old default) on
    whatever network the machine is on. Now the bridge refuses it in one line, exit code 2,
    before it opens any connection."""
    launch, output = launch_to_its_end(ros_env)
    assert launch.returncode == 2, output
    bridge_lines = [line for line in output.splitlines() if line.startswith("[ur_rtde_bridge]")]
    assert bridge_lines == [
        "[ur_rtde_bridge] error: robot_ip is required: the UR controller's IP address "
        "(or use_fake_hardware:=true)"
    ], output


@pytest.mark.parametrize(
    ("name", "required"),
    [
        ("deploy_ur5e.launch.yaml", {"checkpoint": "ckpt"}),
        ("record_real_cell.launch.yaml", {"path": "cell.zarr"}),
    ],
)
def test_real_cell_launch_files_declare_the_gripper(name: str, required: dict, capsys) -> None:
    """``gripper:=robotiq`` reached the bridge (its included ur5e_rtde.launch.yaml declares
    it), but ``robot-il launch FILE -s`` did not list it; the recorder of a real cell records
    the gripper the bridge drives, and without one none; the policy node refuses a checkpoint
    that observes a gripper the cell lacks."""
    from robot_il.cli import main
    from robot_il.launch.description import load_launch
    from robot_il.launch.substitution import package_share

    assert main(["launch", name, "-s"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "gripper: robotiq: a Robotiq 2F-85 via its URCap socket [default '']" in shown
    assert "gripper_host: gripper URCap host (default: robot_ip) [default '']" in shown
    path = package_share("robot_il", Path(__file__)) / "launch" / name
    for given, expected in (({}, "gripper:=''"), ({"gripper": "robotiq"}, "gripper:=robotiq")):
        plan = load_launch(path, {**required, **given})
        argv = {p.name: " ".join(p.argv) for p in plan.processes}
        assert expected in argv["ur_rtde_bridge"]
        for node in ("recorder", "policy"):  # each knows whether a gripper key will come
            if node in argv:
                assert expected in argv[node]


def test_real_cell_cameras_replay_a_video_file_with_camera_loop() -> None:
    """The no-robot example of record_real_cell.launch.yaml reads a video file, which the
    camera node can replay (its ``loop`` parameter), but the launch file offered no way to
    set it: the camera reported "no frame" once the clip had ended."""
    from robot_il.launch.description import load_launch
    from robot_il.launch.substitution import package_share

    path = package_share("robot_il", Path(__file__)) / "launch" / "record_real_cell.launch.yaml"
    for given, expected in (({}, "loop:=false"), ({"camera_loop": "true"}, "loop:=true")):
        plan = load_launch(path, {"path": "cell.zarr", **given})
        cameras = [p for p in plan.processes if p.name.startswith("camera_")]
        assert len(cameras) == 2
        assert all(expected in p.argv for p in cameras), [p.argv for p in cameras]
