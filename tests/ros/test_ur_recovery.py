"""Recovery after a protective stop or a stopped control program through the RTDE bridge's
dashboard services, against the fake arm and its fake dashboard: a person's go-ahead
(``recovery/resume``) by default, or ``auto_unlock``; and the optional robot state topics
(speed scaling, TCP pose, wrench)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from deploy_helpers import DEADLINE_SCALE, wait_for
from robot_il.envs.ur5e.description import HOME_JOINT_POS

from robot_il.ros.node_main import SpinThread

pytestmark = pytest.mark.ros


class Cell:
    """The bridge on a fake arm (whose status reports changes ``status_lag`` s late), and a
    client commanding a swinging base joint (or, once ``swinging`` is false, the home pose)
    that keeps the bridge's safety events and log lines."""

    def __init__(self, context, status_lag: float = 0.0, **parameters) -> None:
        import rclpy
        from rcl_interfaces.msg import Log
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from std_msgs.msg import Float64MultiArray, String

        from robot_il.ros.rtde import FakeDashboard, FakeRTDE
        from robot_il.ros.ur_rtde_bridge import UrRtdeBridge

        self.arm = FakeRTDE(HOME_JOINT_POS, status_lag=status_lag)
        self.dashboard = FakeDashboard(self.arm)
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.bridge = UrRtdeBridge(
            context=context, rtde=self.arm, dashboard=self.dashboard, parameter_overrides=overrides
        )
        self.client = rclpy.create_node("client", context=context)
        commands = self.client.create_publisher(
            Float64MultiArray, "forward_position_controller/commands", 10
        )

        self.swinging = True

        def swing() -> None:
            target = HOME_JOINT_POS.copy()
            if self.swinging:
                target[0] += 0.5 * np.sin(np.pi * time.monotonic())
            commands.publish(Float64MultiArray(data=target.tolist()))

        self.client.create_timer(0.02, swing)
        self.events: list[dict] = []
        self.client.create_subscription(
            String, "safety/events", lambda m: self.events.append(json.loads(m.data)), 100
        )
        self.logs: list[str] = []

        def keep_log(msg: Log) -> None:
            if msg.name == "ur_rtde_bridge":
                self.logs.append(msg.msg)

        self.client.create_subscription(Log, "/rosout", keep_log, 100)
        self.executor = MultiThreadedExecutor(num_threads=2, context=context)
        self.executor.add_node(self.bridge)
        self.executor.add_node(self.client)
        self.spin = SpinThread(self.executor)

    def moving_since(self, t0: float) -> bool:
        calls = np.array([c.q[0] for c in list(self.arm.servo_calls) if c.t > t0])
        return len(calls) > 10 and np.ptp(calls) > 0.01

    def held_since(self, t0: float) -> bool:
        calls = np.array([c.q for c in list(self.arm.servo_calls) if c.t > t0])
        return len(calls) > 10 and bool(np.all(calls == calls[-1]))

    def call(self, name: str):
        from std_srvs.srv import Trigger

        client = self.client.create_client(Trigger, name)
        assert client.wait_for_service(timeout_sec=10), name
        future = client.call_async(Trigger.Request())
        wait_for(future.done, 10, f"{name} to answer")
        return future.result()

    def close(self) -> None:
        self.spin.stop(timeout=10 * DEADLINE_SCALE)
        self.bridge.shutdown()
        self.client.destroy_node()


def test_protective_stop_waits_for_a_person_then_recovers(ros_context) -> None:
    from geometry_msgs.msg import PoseStamped
    from robot_il.envs.ur5e.kinematics import forward_kinematics
    from std_msgs.msg import Float64

    from robot_il.ros.observation import RobotObservation

    cell = Cell(ros_context, unlock_delay=0.3, observe_robot_state=True, ramp_duration=0.2)
    scaling, poses = [], []
    cell.client.create_subscription(
        Float64,
        "speed_scaling_state_broadcaster/speed_scaling",
        lambda m: scaling.append(m.data),
        10,
    )
    cell.client.create_subscription(PoseStamped, "tcp_pose_broadcaster/pose", poses.append, 10)
    # A deploy node's view: the arm's state as optional observation keys.
    observation = RobotObservation(
        cell.client, "reach", subscribe={"speed_scaling", "wrench"}, robot_state=True
    )
    assert observation.keys["speed_scaling"] == [1] and observation.keys["wrench"] == [6]
    try:
        wait_for(lambda: cell.moving_since(time.monotonic() - 0.3), 10, "the arm to move")
        assert cell.call("recovery/resume").success is False  # nothing to recover from

        cell.arm.protective_stop()
        stopped_at = time.monotonic()
        time.sleep(1.0)  # well past unlock_delay: nobody said go
        assert cell.held_since(stopped_at + 0.05) and cell.bridge.safety.estopped
        assert "unlockProtectiveStop" not in cell.dashboard.calls
        assert scaling[-1] == 0.0  # the controller's speed scaling reads 0 while stopped
        wait_for(lambda: observation.snapshot()[0].get("speed_scaling") == 0.0, 2, "the key")
        assert observation.snapshot()[0]["wrench"].tolist() == [0.0] * 6

        answer = cell.call("recovery/resume")  # the person's go-ahead
        assert answer.success, answer.message
        resumed_at = time.monotonic()
        assert cell.dashboard.calls[:2] == ["unlockProtectiveStop", "closeSafetyPopup"]
        assert cell.arm.script_uploads == 1 and not cell.bridge.safety.estopped
        wait_for(lambda: cell.moving_since(resumed_at), 10, "the arm to move again")
        assert scaling[-1] == 1.0

        # The dashboard as the UR driver's Trigger services.
        assert cell.call("dashboard_client/power_on").success
        assert cell.call("dashboard_client/brake_release").success
        assert cell.dashboard.calls[-2:] == ["powerOn", "brakeRelease"]
        # TCP pose: forward kinematics of the arm, as a PoseStamped in the base frame; compared
        # at rest, as a loaded machine delivers a moving arm's pose late.
        cell.swinging = False
        wait_for(lambda: cell.held_since(time.monotonic() - 0.3), 10, "the arm to come to rest")
        received = len(poses)
        wait_for(lambda: len(poses) > received, 5, "a TCP pose of the arm at rest")
        pose = poses[-1]
        q = np.array(cell.arm.getActualQ())
        expected = forward_kinematics(q)[:3, 3]
        position = [pose.pose.position.x, pose.pose.position.y, pose.pose.position.z]
        assert np.allclose(position, expected, atol=0.02) and pose.header.frame_id == "base"
    finally:
        cell.close()


def test_auto_unlock_recovers_unattended(ros_context) -> None:
    cell = Cell(ros_context, unlock_delay=0.3, auto_unlock=True, ramp_duration=0.2)
    try:
        wait_for(lambda: cell.moving_since(time.monotonic() - 0.3), 10, "the arm to move")
        cell.arm.protective_stop()
        stopped_at = time.monotonic()
        wait_for(lambda: "unlockProtectiveStop" in cell.dashboard.calls, 5, "the auto unlock")
        assert time.monotonic() - stopped_at >= 0.3  # not before the controller allows it
        resumed = time.monotonic()
        wait_for(lambda: cell.moving_since(resumed), 10, "the arm to move again")
        assert cell.arm.script_uploads == 1
    finally:
        cell.close()


@pytest.mark.parametrize(
    ("first", "auto_unlock"),
    [("operator", True), ("emergency_stop", False)],
)
def test_recovering_from_a_protective_stop_keeps_another_stop_latched(
    ros_context, first: str, auto_unlock: bool
) -> None:
    """An operator's e-stop (``safety/estop``) or an emergency stop, then a protective stop
    (a bump): recovery unlocks the protective stop, by itself or at a person's go-ahead,
    and the arm holds on until a person calls ``safety/reset_estop``. All three once shared
    one latch, and recovery released it: the arm moved again while the operator's e-stop
    stood."""
    from std_msgs.msg import Bool

    cell = Cell(ros_context, unlock_delay=0.3, auto_unlock=auto_unlock, ramp_duration=0.2)
    try:
        wait_for(lambda: cell.moving_since(time.monotonic() - 0.3), 10, "the arm to move")
        if first == "operator":
            estop = cell.client.create_publisher(Bool, "safety/estop", 10)
            wait_for(lambda: estop.get_subscription_count() > 0, 10, "the bridge's e-stop")
            estop.publish(Bool(data=True))
        else:
            cell.arm.emergency_stop()
        wait_for(lambda: cell.bridge.safety.estopped, 5, "the e-stop to latch")
        cell.arm.emergency_stop(False)  # released on the pendant: still latched here
        cell.arm.protective_stop()
        stopped_at = time.monotonic()
        if auto_unlock:
            wait_for(lambda: "unlockProtectiveStop" in cell.dashboard.calls, 5, "the unlock")
        else:
            time.sleep(0.35)  # past unlock_delay
            answer = cell.call("recovery/resume")
            assert answer.success, answer.message
            assert f"the arm holds: e-stop latched by {first}" in answer.message
        recovered = time.monotonic()
        assert not cell.arm.isProtectiveStopped() and cell.arm.script_uploads == 1
        time.sleep(0.5)
        assert cell.held_since(stopped_at + 0.05) and not cell.moving_since(recovered)
        assert cell.bridge.safety.estop_sources == {first}

        assert cell.call("safety/reset_estop").success  # the person's release
        reset = time.monotonic()
        assert not cell.bridge.safety.estopped
        wait_for(lambda: cell.moving_since(reset), 10, "the arm to move again")
    finally:
        cell.close()


def test_a_program_stopped_on_the_pendant_holds_the_arm_until_a_person_resumes(
    ros_context,
) -> None:
    """The pendant's stop button stops the arm's control program: ur_rtde's servoJ returns
    False and the arm no longer follows. The bridge went on "commanding" it without a word;
    it holds, says so once (a log line, an ``estop`` safety event), and goes on only at a
    person's ``recovery/resume``, which restarts the program (no unlock: nothing is locked).
    ``auto_unlock`` leaves a stopped program alone: the person who stopped it may be in the
    cell."""
    cell = Cell(ros_context, unlock_delay=0.3, auto_unlock=True, ramp_duration=0.2)
    try:
        wait_for(lambda: cell.moving_since(time.monotonic() - 0.3), 10, "the arm to move")
        cell.arm.stop_program()
        wait_for(lambda: cell.bridge.safety.estopped, 5, "the bridge to hold")
        held_at = time.monotonic()
        time.sleep(1.0)  # well past unlock_delay
        assert cell.bridge.safety.estop_sources == {"program_stopped"}
        assert cell.held_since(held_at + 0.05)
        assert cell.arm.script_uploads == 0 and not cell.dashboard.calls
        said = [line for line in cell.logs if "control program is not running" in line]
        assert len(said) == 1, cell.logs
        assert "recovery/resume" in said[0]
        assert [e["detail"] for e in cell.events if e["kind"] == "estop"] == [
            "e-stop latched by program_stopped"
        ]

        answer = cell.call("recovery/resume")
        assert answer.success, answer.message
        assert answer.message == "program restarted; the arm restarts slowly"
        assert cell.arm.script_uploads == 1 and not cell.dashboard.calls
        assert not cell.bridge.safety.estopped
        base = cell.arm.getActualQ()[0]
        wait_for(lambda: abs(cell.arm.getActualQ()[0] - base) > 0.01, 10, "the arm to follow")
        assert cell.call("recovery/resume").success is False  # nothing left to recover from
    finally:
        cell.close()


def test_a_protective_stop_reported_after_the_unlock_does_not_latch_again(ros_context) -> None:
    """A real controller answers the unlock with "releasing" and starts the re-uploaded
    program later, so its status read a protective stop for a while after
    ``recovery/resume`` had released the latch: the bridge latched the stop again at once and
    the arm held (and a second resume would unlock an arm with no protective stop). Recovery
    releases once the controller reports the stop released and the program running."""
    lag = 0.2
    cell = Cell(ros_context, status_lag=lag, unlock_delay=0.3, ramp_duration=0.2)
    try:
        wait_for(lambda: cell.moving_since(time.monotonic() - 0.3), 10, "the arm to move")
        cell.arm.protective_stop()
        time.sleep(0.4)  # past unlock_delay
        started = time.monotonic()
        answer = cell.call("recovery/resume")
        assert answer.success, answer.message
        resumed = time.monotonic()
        time.sleep(0.5)
        assert not cell.bridge.safety.estopped, cell.bridge.safety.estop_sources
        assert resumed - started >= lag  # it waited for the controller
        assert cell.dashboard.calls.count("unlockProtectiveStop") == 1
        assert sum(line.startswith("protective stop:") for line in cell.logs) == 1, cell.logs
        wait_for(lambda: cell.moving_since(resumed), 10, "the arm to move again")
    finally:
        cell.close()


def test_a_program_stopped_during_a_resumes_release_can_be_recovered_from(ros_context) -> None:
    """A control program that stopped again while ``recovery/resume`` was releasing the last
    stop was latched by the servo thread and recorded, and the resume then forgot it with the
    last one: the arm held, latched, and every later resume answered "no protective stop or
    stopped program to recover from" (only ``safety/reset_estop`` got it out). The release and
    the forgetting are now one step under the lock the servo thread latches stops under."""
    cell = Cell(ros_context, unlock_delay=0.3, ramp_duration=0.2)
    try:
        wait_for(lambda: cell.moving_since(time.monotonic() - 0.3), 10, "the arm to move")
        cell.arm.stop_program()
        wait_for(lambda: cell.bridge.safety.estopped, 5, "the bridge to hold")
        release = cell.bridge.recovery.release

        def release_as_the_program_stops_again(forget) -> str | None:
            held = release(forget)
            cell.bridge.recovery.release = release  # once
            cell.arm.stop_program()  # the next servoJ is refused and latched
            wait_for(lambda: cell.bridge.safety.estopped, 5, "the second stop to latch")
            return held

        cell.bridge.recovery.release = release_as_the_program_stops_again
        assert cell.call("recovery/resume").success
        assert cell.bridge.safety.estop_sources == {"program_stopped"}
        answer = cell.call("recovery/resume")
        assert answer.success, answer.message
        resumed = time.monotonic()
        assert not cell.bridge.safety.estopped
        wait_for(lambda: cell.moving_since(resumed), 10, "the arm to move again")
    finally:
        cell.close()
