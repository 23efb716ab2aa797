"""``ur_rtde_bridge``: drive a UR5e through RTDE servoJ from the UR driver's ROS topics.

For users without Universal Robots' ROS 2 driver: the bridge speaks the same topics
(``joint_states``; ``forward_position_controller/commands`` as std_msgs/Float64MultiArray;
``scaled_joint_trajectory_controller/joint_trajectory`` as trajectory_msgs/JointTrajectory),
so a deploy node drives either without change. Every command passes the safety layer
(:mod:`robot_il.safety`) and goes out as ``servoJ`` from a control thread at ``rate_hz``
(500 Hz, the UR5e controller rate) on a fixed grid of deadlines, as the policy node's
control loop (:class:`robot_il.deploy.ticker.Ticker`: a late tick is caught up, a long stall
skips); ``joint_states`` are published from RTDE receive at the same rate, each new sample
once (a stalled link ages them downstream). A lost link (``servoJ`` raises, or no new sample
for ``link_timeout`` s) shuts the bridge down with exit code 1 after trying ``servoStop``.
A ``servoJ`` the controller refuses (returns False) while no stop is latched and none is
reported means its control program is not running (stopped on the pendant, or by a fault):
the arm is not following, so the bridge latches its e-stop as ``program_stopped`` (logged
once, an ``estop`` safety event) until ``recovery/resume`` restarts the program.
``safety/estop`` (std_msgs/Bool, true latches), ``safety/reset_estop`` (std_srvs/Trigger) and
``safety/events`` (std_msgs/String, one JSON object per intervention) expose the safety layer.
The arm's protective and emergency stops latch the e-stop too, each as a source of its own
(:meth:`robot_il.safety.SafetyFilter.estop`): ``safety/reset_estop`` (a person) releases every
source, the recovery below only those of the protective stop and the stopped program. While
the e-stop is latched the gripper stays as it is; the newest gripper command that came
meanwhile is sent when the last source is released. On shutdown the bridge calls
``servoStop`` and stops the script.

Gripper: ``gripper:=robotiq`` drives a Robotiq 2F-85 through its URCap socket
(:mod:`robot_il.ros.robotiq`, ``gripper_host`` defaulting to ``robot_ip``, port 63352) on its
own thread: ``<tf_prefix>gripper/command`` (std_msgs/Float64, closure 0 open .. 1 closed) sets
it and ``joint_states`` reports ``<tf_prefix>gripper_joint`` (closure) while the link is up.
A lost link is logged as one error and a ``device_fault`` safety event, the arm holds
position (and the joint states go on without the gripper joint) until the link is back and
the gripper active again; then the arm restarts with the safe-start ramp.

Recovery (:mod:`robot_il.ros.ur_recovery`): a protective stop latches the e-stop; the
dashboard's Trigger services (``dashboard_client/unlock_protective_stop``, ``.../play``,
``.../power_on``, ...) and ``recovery/resume`` (a person's go-ahead: unlock, restart the
program, wait for the controller to report both, release the latches of the protective stop
and the stopped program) bring the arm back; ``auto_unlock`` (false by default) does it
unattended after a protective stop. Neither releases an operator's e-stop or an emergency
stop.
Optional robot state, as the UR driver's broadcasters publish it: ``observe_robot_state:=true``
publishes ``speed_scaling_state_broadcaster/speed_scaling`` (std_msgs/Float64, 0..1),
``tcp_pose_broadcaster/pose`` (geometry_msgs/PoseStamped, base frame) and
``force_torque_sensor_broadcaster/wrench`` (geometry_msgs/WrenchStamped, N and N m) at 50 Hz.

``use_fake_hardware:=true`` runs against :class:`robot_il.ros.rtde.FakeRTDE` (no robot) and,
with a gripper, a :class:`robot_il.ros.robotiq.FakeRobotiqServer` on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy._rclpy_pybind11 import RCLError
from rclpy.context import Context
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_il.deploy.ticker import MAX_LAG, Ticker
from robot_il.envs.ur5e.description import HOME_JOINT_POS, JOINT_NAMES
from robot_il.envs.ur5e.kinematics import tcp_point
from robot_il.errors import ConfigError, HardwareError
from robot_il.ros.node_main import declare_text, freeze_startup_objects, log_or_print, run_node
from robot_il.ros.quiet_node import QuietNode
from robot_il.ros.robotiq import ROBOTIQ_PORT, FakeRobotiqServer, GripperLink, RobotiqGripper
from robot_il.ros.rtde import (
    Dashboard,
    FakeDashboard,
    FakeRTDE,
    RTDEControl,
    RTDEReceive,
    connect_rtde,
)
from robot_il.ros.subscription_reader import SubscriptionReader
from robot_il.ros.ur_recovery import Recovery
from robot_il.ros.ur_topics import (
    COMMAND_TOPIC,
    ESTOP_TOPIC,
    GRIPPER_JOINT,
    JOINT_STATES_TOPIC,
    RESET_ESTOP_SERVICE,
    SAFETY_EVENTS_TOPIC,
    TRAJECTORY_TOPIC,
    trajectory_points,
)
from robot_il.safety import SafetyEvent, SafetyFilter, SafetyLimits
from robot_il.safety.events import EventSummary
from robot_il.safety.filter import OPERATOR
from robot_il.safety.limits import UR5E_ACCELERATION, UR5E_WORKSPACE

GRIPPERS = ("", "robotiq")
"""Values of the ``gripper`` parameter: none, or a Robotiq 2F-85 through its URCap socket."""
MAX_CATCH_UP = 0.5
"""s: the longest stall the servo loop makes up with servoJ calls at once (``max_lag`` is
capped to it). Each call re-sends the newest safe target, so a catch-up sends no stale
motion; the cap bounds the burst of calls into a link that has just stalled."""
PROTECTIVE_STOP = "protective_stop"
"""E-stop source: the arm's protective stop (released by recovery or ``safety/reset_estop``)."""
EMERGENCY_STOP = "emergency_stop"
"""E-stop source: the arm's emergency stop (released by ``safety/reset_estop`` alone)."""
PROGRAM_STOPPED = "program_stopped"
"""E-stop source: the controller refused ``servoJ`` without a stop, its control program not
running (released by recovery, which restarts it, or ``safety/reset_estop``, after which the
next refused command latches it again)."""
RECOVERED = (PROTECTIVE_STOP, PROGRAM_STOPPED)
"""The sources recovery releases once the controller reports the arm ready again."""
ROBOT_IP_REQUIRED = (
    "robot_ip is required: the UR controller's IP address (or use_fake_hardware:=true)"
)
"""The bridge's one-line refusal of an empty ``robot_ip`` on a real arm (no default address)."""
ESTOP_SOURCES = (OPERATOR, PROTECTIVE_STOP, EMERGENCY_STOP, PROGRAM_STOPPED)
"""Every source of the bridge's e-stop: ``safety/reset_estop`` releases them all."""


class LoopStats:
    """Timing of the servo loop: tick count, periods (s), and its ticker's late ticks (caught
    up) and skipped periods (after a stall longer than the ticker's ``max_lag``)."""

    def __init__(self, ticker: Ticker) -> None:
        self.ticker = ticker
        self.period = ticker.period
        self.ticks = 0
        self._periods: list[float] = []
        self._last: float | None = None

    def tick(self, now: float) -> None:
        if self._last is not None:
            self._periods.append(now - self._last)
        self._last = now
        self.ticks += 1

    def summary(self) -> dict[str, float]:
        """Achieved rate (Hz) and period jitter (ms) percentiles over the run."""
        periods = np.array(self._periods[-100_000:])
        if periods.size == 0:
            return {"ticks": self.ticks, "rate_hz": 0.0}
        jitter = np.abs(periods - self.period) * 1e3
        return {
            "ticks": self.ticks,
            "rate_hz": float(1.0 / periods.mean()),
            "jitter_p50_ms": float(np.percentile(jitter, 50)),
            "jitter_p99_ms": float(np.percentile(jitter, 99)),
            "max_period_ms": float(periods.max() * 1e3),
            "late": self.ticker.late,
            "skipped": self.ticker.skipped,
        }


class _Trajectory:
    """A JointTrajectory sampled linearly in time from its start (monotonic s)."""

    def __init__(self, start: float, times: np.ndarray, positions: np.ndarray) -> None:
        self.start, self.times, self.positions = start, times, positions

    def sample(self, now: float) -> tuple[np.ndarray, float]:
        """Target at ``now`` and when it was "computed": now while running, else the end."""
        elapsed = now - self.start
        target = np.array([np.interp(elapsed, self.times, self.positions[:, j]) for j in range(6)])
        end = self.start + float(self.times[-1])
        return target, min(now, end)


class UrRtdeBridge(QuietNode):
    """The bridge node: parameters, topics and the servo thread.

    ``rtde`` overrides the connection (tests pass a :class:`FakeRTDE`); otherwise the node
    connects to ``robot_ip``, or fakes the arm with ``use_fake_hardware``. Parameters (ROS):
    ``rate_hz`` (servo rate), ``max_lag`` (periods the servo loop may fall behind and catch up
    with servoJ calls at once; a longer stall skips the periods it lost), ``lookahead_time``
    (s, 0.03..0.2) and ``gain`` (100..2000) of servoJ, ``robot_ip`` (the controller's address:
    required, no default to connect to, unless ``use_fake_hardware``), ``use_fake_hardware``,
    ``tf_prefix`` (of the joint names), and the safety limits ``max_command_age``,
    ``max_observation_age``, ``ramp_duration`` (s), ``acceleration_limit`` (rad/s^2),
    ``link_timeout`` (s without a new RTDE sample before the link counts as lost),
    ``workspace_lower``/``workspace_upper`` (m, base frame); the gripper's ``gripper``,
    ``gripper_host``, ``gripper_port``, ``gripper_speed`` and ``gripper_force`` (0..255);
    ``serial_number`` (empty: unchecked), the controller this bridge must find at
    ``robot_ip`` (its dashboard's ``get serial number``).
    """

    def __init__(
        self,
        node_name: str = "ur_rtde_bridge",
        *,
        context: Context | None = None,
        parameter_overrides: list[Parameter] | None = None,
        rtde: FakeRTDE | None = None,
        dashboard: Dashboard | None = None,
    ) -> None:
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides)
        self.rate_hz = self.declare_parameter("rate_hz", 500.0).value
        self.lookahead_time = self.declare_parameter("lookahead_time", 0.1).value
        self.gain = self.declare_parameter("gain", 300.0).value
        robot_ip = self.declare_parameter("robot_ip", "").value.strip()
        use_fake = self.declare_parameter("use_fake_hardware", False).value
        tf_prefix = self.declare_parameter("tf_prefix", "").value
        max_command_age = self.declare_parameter("max_command_age", 0.5).value
        max_observation_age = self.declare_parameter("max_observation_age", 0.05).value
        self.link_timeout = self.declare_parameter("link_timeout", 1.0).value
        ramp_duration = self.declare_parameter("ramp_duration", 1.0).value
        acceleration = self.declare_parameter("acceleration_limit", UR5E_ACCELERATION).value
        lower, upper = (corner.tolist() for corner in UR5E_WORKSPACE)
        workspace_lower = self.declare_parameter("workspace_lower", lower).value
        workspace_upper = self.declare_parameter("workspace_upper", upper).value
        max_lag = int(self.declare_parameter("max_lag", MAX_LAG).value)
        serial_number = declare_text(self, "serial_number", "").strip()
        gripper = self.declare_parameter("gripper", "").value
        gripper_host = self.declare_parameter("gripper_host", "").value or robot_ip
        gripper_port = int(self.declare_parameter("gripper_port", ROBOTIQ_PORT).value)
        gripper_speed = int(self.declare_parameter("gripper_speed", 255).value)
        gripper_force = int(self.declare_parameter("gripper_force", 150).value)
        if not robot_ip and not use_fake and rtde is None:
            # No default address: a launch that forgot robot_ip:= connected to whatever
            # answered at the old default (URSim's 192.168.56.101) on the robot network.
            raise ConfigError(ROBOT_IP_REQUIRED)
        if gripper not in GRIPPERS:
            raise ConfigError(f"gripper {gripper!r} is not one of {GRIPPERS}")
        if not 0.03 <= self.lookahead_time <= 0.2:
            raise ConfigError(f"lookahead_time {self.lookahead_time} s is outside [0.03, 0.2]")
        if not 100.0 <= self.gain <= 2000.0:
            raise ConfigError(f"gain {self.gain} is outside [100, 2000]")
        if not self.link_timeout > max_observation_age:
            raise ConfigError(
                f"link_timeout {self.link_timeout} s must exceed max_observation_age "
                f"{max_observation_age} s (the arm holds on stale data before the link is lost)"
            )
        if not 1.0 <= self.rate_hz <= 500.0:
            raise ConfigError(f"rate_hz {self.rate_hz} is outside [1, 500]")
        if not 1 <= max_lag <= MAX_CATCH_UP * self.rate_hz:  # no long burst of servoJ calls
            raise ConfigError(
                f"max_lag {max_lag} periods is outside [1, {MAX_CATCH_UP * self.rate_hz:g}] "
                f"({MAX_CATCH_UP} s at rate_hz {self.rate_hz:g})"
            )

        self.period = 1.0 / self.rate_hz
        self.joint_names = [f"{tf_prefix}{name}" for name in JOINT_NAMES]
        self.fake_gripper: FakeRobotiqServer | None = None
        if gripper and use_fake:
            self.fake_gripper = FakeRobotiqServer()
            gripper_host, gripper_port = "127.0.0.1", self.fake_gripper.port
        if rtde is None and use_fake:
            rtde = FakeRTDE(HOME_JOINT_POS)
        if rtde is not None:
            self.control: RTDEControl = rtde
            self.receive: RTDEReceive = rtde
            self.dashboard: Dashboard = dashboard or FakeDashboard(rtde)
        else:
            self.control, self.receive, self.dashboard = connect_rtde(robot_ip, self.rate_hz)
        if serial_number:
            self._check_serial_number(robot_ip, serial_number)

        limits = SafetyLimits.ur5e(
            acceleration=np.full(6, acceleration),
            workspace_lower=workspace_lower,
            workspace_upper=workspace_upper,
            max_command_age=max_command_age,
            max_observation_age=max_observation_age,
            ramp_duration=ramp_duration,
        )
        self.safety = SafetyFilter(
            limits,
            tool_point=tcp_point,
            period=self.period,
            on_event=self._on_safety_event,
            log_events=False,  # summarised by the events timer, off the servo thread
        )
        self._event_summary = EventSummary()
        self._lock = threading.Lock()
        self._target: np.ndarray | None = None
        self._target_stamp = 0.0
        self._trajectory: _Trajectory | None = None
        self._deferred_gripper: float | None = None
        """The newest gripper command (closure 0..1) that came while the e-stop was latched."""
        self._measured: np.ndarray | None = None
        self._pending_events: deque[SafetyEvent] = deque()

        self.gripper: GripperLink | None = None
        if gripper:
            self.safety.set_fault("gripper not connected yet")  # before its thread can clear it
            self.gripper = GripperLink(
                RobotiqGripper(gripper_host, gripper_port),
                self._on_gripper_link,
                speed=gripper_speed,
                force=gripper_force,
            )
            self.create_subscription(
                Float64, f"{tf_prefix}gripper/command", self._on_gripper_command, 10
            )
        self._gripper_joint = f"{tf_prefix}{GRIPPER_JOINT}"
        self._joint_state_msg = JointState(name=self.joint_names)
        self.joint_states = self.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
        self.events = self.create_publisher(String, SAFETY_EVENTS_TOPIC, 10)
        # Commands come at up to 500 Hz: taken by the executor, each held the interpreter
        # for half a millisecond of the servo thread's 2 ms period (subscription_reader).
        self._command_reader = SubscriptionReader(self, "rtde-commands")
        self._command_reader.subscribe(Float64MultiArray, COMMAND_TOPIC, self._on_command, 10)
        self.create_subscription(JointTrajectory, TRAJECTORY_TOPIC, self._on_trajectory, 10)
        # (default QoS event handlers: an e-stop publisher it cannot hear is logged)
        self.create_subscription(
            Bool, ESTOP_TOPIC, self._on_estop, 10, event_callbacks=SubscriptionEventCallbacks()
        )
        self.create_service(Trigger, RESET_ESTOP_SERVICE, self._on_reset_estop)
        self.create_timer(0.05, self._publish_events)
        self.recovery = Recovery(
            self, self.dashboard, self.control, self.receive, self._release_recovered
        )
        if self.declare_parameter("observe_robot_state", False).value:
            self._state_pubs = (
                self.create_publisher(Float64, "speed_scaling_state_broadcaster/speed_scaling", 10),
                self.create_publisher(PoseStamped, "tcp_pose_broadcaster/pose", 10),
                self.create_publisher(WrenchStamped, "force_torque_sensor_broadcaster/wrench", 10),
            )
            self._base_frame = f"{tf_prefix}base"
            self.create_timer(0.02, self._publish_robot_state)

        # The servo thread shares the GIL with the executor: at Python's default 5 ms switch
        # interval a busy callback could hold it for two servo periods.
        sys.setswitchinterval(min(sys.getswitchinterval(), self.period / 10))
        freeze_startup_objects()  # no garbage-collector pauses in the servo loop
        self._running = True
        self.fatal_error: Exception | None = None
        """Set when the control thread failed and shut the node down (exit code 1)."""
        # Deadlines on a fixed grid, as in the policy node: a late tick is caught up with
        # servoJ calls at once, a stall longer than max_lag periods skips what it lost.
        self.stats = LoopStats(Ticker(self.period, max_lag=max_lag))
        self._thread = threading.Thread(target=self._servo_loop, name="servo", daemon=True)
        self._thread.start()
        self._command_reader.start()
        self.get_logger().info(
            f"servoJ at {self.rate_hz:g} Hz, lookahead {self.lookahead_time} s, gain "
            f"{self.gain:g}, {'fake arm' if rtde is not None else robot_ip}"
        )

    # -- ROS callbacks -------------------------------------------------------------------

    def _on_command(self, msg) -> None:
        values = np.array(msg.data, dtype=np.float64)
        if values.shape != (6,):
            self.get_logger().error(
                f"{COMMAND_TOPIC}: expected 6 joint positions, got {values.size}; ignored"
            )
            return
        with self._lock:
            self._trajectory = None
            self._target, self._target_stamp = values, time.monotonic()

    def _on_trajectory(self, msg) -> None:
        parsed = trajectory_points(msg, self.joint_names, self.get_logger())
        if parsed is None:
            return
        times, positions = parsed
        with self._lock:
            if times[0] > 0 and self._measured is not None:
                # Like the UR driver: start from where the arm is, not with a jump.
                times = np.concatenate([[0.0], times])
                positions = np.vstack([self._measured, positions])
            self._target = None
            self._trajectory = _Trajectory(time.monotonic(), times, positions)

    def _on_gripper_command(self, msg) -> None:
        if not np.isfinite(msg.data):
            self.get_logger().error(f"gripper command {msg.data} is not finite; ignored")
            return
        with self._lock:
            sources = self.safety.estop_sources
            if sources:
                # An e-stop stops the gripper too: it must not drop (or crush) what it holds.
                # The newest command waits for the release: a commander that sends the gripper
                # only when it changes (the policy node) would otherwise never send it again,
                # and go on as if the gripper had moved.
                self._deferred_gripper = float(msg.data)
            else:
                self._deferred_gripper = None
                self.gripper.command(msg.data)
                return
        latched = ", ".join(sorted(sources))
        self.get_logger().warning(
            f"gripper command {msg.data:g} deferred: e-stop latched by {latched}",
            throttle_duration_sec=1.0,
        )

    def _on_gripper_link(self, up: bool, detail: str) -> None:
        """The gripper thread's news: the arm holds while its gripper is unreachable."""
        with self._lock:
            self.safety.set_fault(None if up else f"gripper: {detail}")
        if up:
            log_or_print(self, f"gripper: {detail} active")
        else:
            log_or_print(self, f"gripper: {detail}; the arm holds until it is back", error=True)

    def _on_estop(self, msg) -> None:
        if msg.data:
            self.safety.estop(OPERATOR)
            self.get_logger().warning("e-stop latched")

    def _on_reset_estop(self, request, response):
        self._release(*ESTOP_SOURCES)
        response.success, response.message = True, "e-stop reset"
        self.get_logger().info("e-stop reset")
        return response

    def _release_recovered(self, forget: Callable[[], None]) -> str | None:
        """Recovery's release once the controller reports the arm ready: the latches of the
        protective stop and the stopped program alone, and recovery's record of them
        (``forget``) in the same hold of the lock the servo thread latches and records a stop
        under: a stop latched before is released with them, one latched after is recorded
        anew. Returns why the arm still holds (an operator's e-stop, an emergency stop), or
        None."""
        self._release(*RECOVERED, then=forget)
        sources = self.safety.estop_sources
        if not sources:
            return None
        return f"e-stop latched by {', '.join(sorted(sources))} until {RESET_ESTOP_SERVICE}"

    def _release(self, *sources: str, then: Callable[[], None] | None = None) -> None:
        """Release the e-stop of ``sources`` (and call ``then`` under the same lock); once
        none is latched, forget the old target (the arm waits for a new command) and send the
        newest gripper command that came during the stop."""
        with self._lock:
            for source in sources:
                self.safety.reset_estop(source)
            if then is not None:
                then()
            if not self.safety.estopped:
                self._target, self._trajectory = None, None
                if self._deferred_gripper is not None:
                    self.gripper.command(self._deferred_gripper)
                    self._deferred_gripper = None

    def _publish_robot_state(self) -> None:
        """Speed scaling, TCP pose and wrench from RTDE receive (executor thread, 50 Hz)."""
        from robot_il.envs.spatial import axis_angle_to_matrix
        from robot_il.envs.ur5e.transforms import matrix_to_quat

        speed, pose, wrench = self._state_pubs
        stamp = self.get_clock().now().to_msg()
        speed.publish(Float64(data=float(self.receive.getSpeedScaling())))
        tcp = self.receive.getActualTCPPose()
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = stamp, self._base_frame
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = tcp[:3]
        w, x, y, z = matrix_to_quat(axis_angle_to_matrix(np.array(tcp[3:])))
        o = msg.pose.orientation
        o.w, o.x, o.y, o.z = float(w), float(x), float(y), float(z)
        pose.publish(msg)
        force = self.receive.getActualTCPForce()
        msg = WrenchStamped()
        msg.header.stamp, msg.header.frame_id = stamp, self._base_frame
        f, t = msg.wrench.force, msg.wrench.torque
        f.x, f.y, f.z, t.x, t.y, t.z = (float(v) for v in force)
        wrench.publish(msg)

    def _check_serial_number(self, robot_ip: str, expected: str) -> None:
        """``HardwareError`` before anything moves unless the controller at ``robot_ip`` reports
        serial number ``expected``: with two arms' IPs swapped each arm would play the other's
        commands, and the arm-to-arm limits would guard the wrong bases."""
        reported = str(self.dashboard.getSerialNumber()).strip()
        if reported != expected:
            for interface in (self.control, self.receive, self.dashboard):
                interface.disconnect()
            raise HardwareError(
                f"robot_ip {robot_ip}: the controller there reports serial number {reported!r}, "
                f"not serial_number {expected!r} (arms' IPs swapped?)"
            )

    def _on_safety_event(self, event: SafetyEvent) -> None:
        self._pending_events.append(event)

    def _publish_events(self) -> None:
        new = []
        while self._pending_events:
            event = self._pending_events.popleft()
            payload = {"kind": event.kind.value, "t": event.t, "detail": event.detail}
            self.events.publish(String(data=json.dumps(payload)))
            new.append((event.kind.value, str(event)))
        for line in self._event_summary.lines(new, time.monotonic()):
            self.get_logger().warning(line)

    # -- the servo thread ----------------------------------------------------------------

    def _servo_loop(self) -> None:
        last_stamp = None
        self._sample_at = time.monotonic()
        while self._running:
            try:
                last_stamp = self._servo_tick(time.monotonic(), last_stamp)
            except Exception as error:  # a dead servo thread must not leave a live-looking node
                if isinstance(error, RCLError) and not self.context.ok():
                    return  # shutting down (Ctrl-C reached rclpy first): shutdown() stops it
                self.get_logger().fatal(f"servo loop failed: {error!r}; stopping the arm")
                self.fatal_error = error
                self._running = False
                self._stop_arm()
                self.context.try_shutdown()
                return
            self.stats.ticker.wait()

    def _servo_tick(self, now: float, last_stamp: float | None) -> float:
        """One control period: read the arm, publish its state, filter and send the command.

        Returns the RTDE timestamp read, which tells the next tick whether data is fresh.
        Joint states are published for a new sample only: a stalled link must age them for
        every node downstream (the policy node's watchdog, the recorder), not be stamped
        afresh; after ``link_timeout`` s without one the link counts as lost (raised).
        """
        self.stats.tick(now)
        q = np.array(self.receive.getActualQ())
        qd = self.receive.getActualQd()
        stamp = self.receive.getTimestamp()
        fresh = stamp != last_stamp
        if fresh:
            self.safety.watchdog(now, now)
            self._sample_at = now
        elif now - self._sample_at > self.link_timeout:
            raise HardwareError(
                f"no new state from the UR controller for {now - self._sample_at:.2f} s "
                f"(link_timeout {self.link_timeout:g} s): the RTDE link is lost"
            )
        if fresh:
            self._publish_joint_state(q, qd)
        with self._lock:
            # Read and latched under the lock recovery releases under: a status read before
            # the controller reported the stop released cannot latch it after the release.
            if self.receive.isProtectiveStopped():
                self.safety.estop(PROTECTIVE_STOP)
                self.recovery.protective_stop()
            elif self.receive.isEmergencyStopped():
                self.safety.estop(EMERGENCY_STOP)
            self._measured = q
            if self._trajectory is not None:
                target, command_stamp = self._trajectory.sample(now)
            else:
                target, command_stamp = self._target, self._target_stamp
            if target is None:
                return stamp
            safe = self.safety.filter(
                target, q, now, command_stamp=command_stamp, qd_measured=np.asarray(qd)
            )
            if safe.command is None:  # not started: the arm's readings are not finite
                return stamp
            latched = self.safety.estopped
        accepted = self.control.servoJ(
            safe.command.tolist(), 0.0, 0.0, self.period, self.lookahead_time, self.gain
        )
        if not accepted and not latched:
            self._on_refused()
        return stamp

    def _on_refused(self) -> None:
        """``servoJ`` returned False with no stop latched: the arm is not following. A stop
        the controller reports latches by itself (this period or the next); without one its
        control program is not running, and the arm holds until recovery restarts it."""
        if self.receive.isProtectiveStopped() or self.receive.isEmergencyStopped():
            return
        with self._lock:  # latched and recorded as one, as recovery releases and forgets
            self.safety.estop(PROGRAM_STOPPED)
            self.recovery.program_stopped()

    def _publish_joint_state(self, q: np.ndarray, qd: list[float]) -> None:
        msg = self._joint_state_msg
        msg.header.stamp = self.get_clock().now().to_msg()
        gripper = None if self.gripper is None else self.gripper.state
        if gripper is None:
            msg.name, msg.position, msg.velocity = self.joint_names, q.tolist(), list(qd)
        else:
            msg.name = [*self.joint_names, self._gripper_joint]
            msg.position, msg.velocity = [*q.tolist(), gripper.closure], [*qd, 0.0]
        self.joint_states.publish(msg)

    def _stop_arm(self) -> None:
        """``servoStop`` and stop the RTDE script; over a lost link neither reaches the
        controller, whose script keeps the last servoJ target (the arm comes to rest there):
        that is logged, not raised, so the node still goes down."""
        try:
            self.control.servoStop()
            self.control.stopScript()
        except RuntimeError as error:  # ur_rtde's error for a lost connection
            log_or_print(
                self,
                f"cannot stop the arm over RTDE ({error}): it holds its last servoJ target",
                error=True,
            )

    def shutdown(self) -> None:
        """Stop the servo thread, then ``servoStop`` and stop the RTDE script."""
        self._command_reader.close()
        self._running = False
        self._thread.join(timeout=2.0)
        if self.fatal_error is None:  # else the servo thread tried as it failed
            self._stop_arm()
        self.control.disconnect()
        self.receive.disconnect()
        if self.gripper is not None:
            self.gripper.close()
        if self.fake_gripper is not None:
            self.fake_gripper.close()
        log_or_print(self, f"control loop: {json.dumps(self.stats.summary())}")
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """``ros2 run robot_il ur_rtde_bridge`` (or the ``ur_rtde_bridge`` console script)."""
    return run_node(UrRtdeBridge, args)
