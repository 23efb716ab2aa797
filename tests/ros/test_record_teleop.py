"""Teleoperated recording over ROS: ``teleop`` reads a real keyboard device on a pseudo
terminal and servos ``sim_robot``; ``recorder`` writes the episodes to zarr as the operator's
episode keys say."""

from __future__ import annotations

import os
import pty
import subprocess
import time

import numpy as np
import pytest
from deploy_helpers import BIN, Client, log_tail, node_process, stop, wait_for

pytestmark = pytest.mark.ros

RIGHT, BACKSPACE = b"\x1b[C", b"\x7f"


def test_keyboard_teleop_recording_keeps_and_discards_episodes(
    ros_context, ros_env, tmp_path
) -> None:
    from robot_il.envs.ur5e.kinematics import tcp_point
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset

    path = tmp_path / "teleop.zarr"
    sim_log, rec_log, teleop_log = tmp_path / "sim.log", tmp_path / "rec.log", tmp_path / "tel.log"
    logs = (sim_log, rec_log, teleop_log)
    master, slave = pty.openpty()
    with open(teleop_log, "w") as out:
        teleop = subprocess.Popen(
            [str(BIN / "teleop"), "--ros-args", "-p", "device:=keyboard", "-p", "rate:=20.0"]
            # A loaded test machine delays joint states; the default 0.1 s would hold the arm.
            + ["-p", "max_observation_age:=1.0"],
            env=ros_env,
            stdin=slave,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    os.close(slave)
    recorder_params = {"path": str(path), "fsync": "false", "autostart": "false"}
    try:
        with node_process("recorder", recorder_params, ros_env, rec_log) as recorder:
            client = Client(ros_context)
            try:
                # No robot yet: start is refused, naming what is missing, and nothing is begun.
                refused = client.call(Trigger, "recorder/start", timeout=60)
                assert not refused.success and "joint_pos" in refused.message, refused.message
                with node_process("sim_robot", {"task": "reach"}, ros_env, sim_log) as sim:
                    procs = (sim, recorder, teleop)
                    commands = client.record(
                        Float64MultiArray, "forward_position_controller/commands"
                    )
                    events = client.record(String, "teleop/episode_event")
                    joint_states = client.record(JointState, "joint_states")
                    wait_for(lambda: len(commands) > 5, 60, "teleop servo commands", procs, logs)
                    wait_for(lambda: joint_states, 10, "joint states", procs, logs)
                    # Started once the recorder has the robot's state (DDS discovery between
                    # the recorder and the simulator may lag the test's own on a loaded
                    # machine): the episode then holds the whole motion.
                    answers = []

                    def start() -> bool:
                        answers.append(client.call(Trigger, "recorder/start"))
                        return answers[-1].success

                    wait_for(start, 10, "the recorder to see the robot and start", procs, logs)
                    # the refused calls began nothing: this is the first episode, begun now
                    assert answers[-1].message == "recording episode 0", answers[-1].message

                    def press(keys: bytes, times: int) -> None:
                        for _ in range(times):
                            os.write(master, keys)
                            time.sleep(0.1)  # two teleop ticks: no read caps a burst of presses

                    def tool_x() -> float:
                        return tcp_point(joint_states[-1][1].position[:6])[0]

                    def settled() -> bool:
                        # at rest: the safety filter's command has stopped ramping (the arm
                        # tracks a ramp within 2 mrad too) and the arm stands on it
                        recent = [np.array(m.data[:6]) for _, m in commands[-3:]]
                        steady = all(np.abs(c - recent[-1]).max() < 1e-4 for c in recent)
                        arm = np.array(joint_states[-1][1].position[:6])
                        return steady and np.abs(recent[-1] - arm).max() < 0.002

                    rest_since: float | None = None

                    def at_rest_a_while() -> bool:
                        # the recorder samples its own DDS view at 20 Hz: on a loaded machine
                        # it may see the rest pose later than this client, so the arm stays
                        # at rest for 20 of its periods before the episode is committed
                        nonlocal rest_since
                        if not (tool_x() - start_x > 0.06 and settled()):
                            rest_since = None
                            return False
                        rest_since = rest_since or time.monotonic()
                        return time.monotonic() - rest_since > 1.0

                    start_x = tool_x()
                    press(b"w", 16)  # +x, 5 mm a press
                    # A loaded machine runs the simulator slower than the clock: commit the
                    # episode once the arm is seen there at rest, not after a fixed wait.
                    wait_for(at_rest_a_while, 10, "the arm to follow", procs, logs)
                    press(RIGHT, 1)  # keep: committed, the simulator resets, a new episode starts
                    wait_for(lambda: events, 10, "episode event", procs, logs)
                    time.sleep(0.5)
                    press(b"d", 10)
                    press(BACKSPACE, 1)  # discard: the second episode is dropped
                    wait_for(lambda: len(events) >= 2, 10, "second episode event", procs, logs)
                    time.sleep(0.5)
                    stop_response = client.call(Trigger, "recorder/stop")
                    assert stop_response.success, stop_response.message
            finally:
                client.close()
            assert stop(recorder) in (0, 130), log_tail(rec_log)
    finally:
        stop(teleop)
        os.close(master)

    dataset = Dataset.open(path)
    assert [m.data for _, m in events] == ["next", "discard"]
    assert dataset.num_episodes == 2  # the kept one and the third (stopped), not the discarded
    assert dataset.attrs["task"] == "reach" and dataset.attrs["action_mode"] == "joint"
    first = dataset.episode(0)
    assert {"joint_pos", "joint_vel", "gripper", "eef_pose", "target_pos", "action"} <= set(first)
    assert first["action"].shape[1] == 7
    moved = first["eef_pose"][-1, :3] - first["eef_pose"][0, :3]
    assert moved[0] > 0.04 and abs(moved[1]) < 0.02, moved  # about 16 x 5 mm along +x
    # The recorded action is the command the arm followed: it settled there after the presses.
    np.testing.assert_allclose(first["action"][-1, :6], first["joint_pos"][-1], atol=0.01)
    assert np.abs(first["action"][-1, :6] - first["action"][0, :6]).max() > 0.02
    # Stamps of the joint states sampled at 20 Hz: in order (a late joint state may be
    # sampled twice on a loaded machine), spanning the episode.
    stamps = first["timestamp"]
    assert np.all(np.diff(stamps) >= 0)
    assert stamps[-1] >= 0.75 * (len(stamps) - 1) / 20.0


def test_a_second_session_into_the_same_dataset_records_new_scenes(
    ros_context, ros_env, tmp_path
) -> None:
    """``record_teleop.launch.yaml`` run again with the same ``path`` started the simulator on
    seed 0 again: the second session's episodes repeated the first session's scenes
    (duplicate demonstrations). Its ``sim_robot`` now starts after the scenes the dataset
    holds: with 2 episodes there, the start-up scene is seed 2's, the next seed 3's."""
    from geometry_msgs.msg import PointStamped
    from robot_il.envs import make_env
    from std_srvs.srv import Trigger

    from robot_il.dataset import DatasetWriter
    from robot_il.launch.description import load_launch
    from robot_il.launch.substitution import package_share

    path = tmp_path / "teleop.zarr"
    with DatasetWriter.create(path, robot="ur5e", control_hz=20.0, fsync=False) as writer:
        for _ in range(2):  # a first session's two episodes
            writer.add_episode({"joint_pos": np.zeros((3, 6), np.float32),
                                "action": np.zeros((3, 7), np.float32)})  # fmt: skip
    launch = package_share("robot_il", tmp_path) / "launch" / "record_teleop.launch.yaml"
    plan = load_launch(launch, {"path": str(path)})
    (sim,) = [spec for spec in plan.processes if spec.name == "sim_robot"]
    log = tmp_path / "sim.log"
    with open(log, "w") as out:
        process = subprocess.Popen(sim.argv, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    client = Client(ros_context)
    try:
        targets = client.record(PointStamped, "task/target")
        wait_for(lambda: targets, 60, "task/target", (process,), (log,))
        start_up = targets[-1][1].point
        assert client.call(Trigger, "sim/reset").message == "episode 1 (seed 3)"
    finally:
        client.close()
        stop(process)
    env = make_env("reach", "mujoco")
    try:
        expected = env.reset(seed=2)[0]["target_pos"]
    finally:
        env.close()
    np.testing.assert_allclose([start_up.x, start_up.y, start_up.z], expected, atol=1e-6)
    assert "holds 2 episodes: its next scenes are seeds from 2" in log.read_text()
