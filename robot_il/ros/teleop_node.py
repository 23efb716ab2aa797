"""``teleop``: an operator's device (keyboard, gamepad, SpaceMouse) on ROS, and a servo.

Every ``1 / rate`` s it reads a robot_il teleop device (:mod:`robot_il.record.teleop`) and
publishes what the operator asks for:

- ``teleop/twist`` (geometry_msgs/Twist): tool velocity (m/s, rad/s) in the arm's base frame,
  the device's delta over one period divided by the period;
- ``teleop/gripper`` (std_msgs/Float64, 0 open .. 1 closed) and ``teleop/episode_event``
  (std_msgs/String: next, rerecord, discard, quit) for the recorder. An episode key pressed
  while no node subscribes to the events (a recorder started a moment ago may not be matched
  yet: sent then, the event is lost and the episode never closes) is held up to 5 s, sent
  once one does, else logged as not sent.

These are the topics robot_il's ROS teleop device reads, so ``robot-il record --teleop ros``
works with this node too. With ``servo:=true`` (default) it also drives the arm the way a
Cartesian servo does: it moves a tool-pose target by each delta (from the measured pose at
start), solves the closest inverse kinematics, and sends the joints through the safety layer on
``forward_position_controller/commands`` and the gripper on ``gripper/command``, the gripper
only while the safety layer does not hold the arm (stale observations: the gripper stays as it
is, as the policy node's does). ``servo_rate`` (Hz, 0: the device's ``rate``) sends the joints
more often than the device is read: the filter glides to each target in steps of its own
period, where at the device's 20 Hz a position controller at 500 Hz meets each target as one
step (the real-cell launch files set 125 Hz). A pose out of reach keeps the previous target.
Each device read's joint target also goes to ``teleop/joint_target`` (not while the e-stop is
latched): the pose the operator asked for that period, which the recorder takes as the step's
action (``teleop_target:=true``), where the newest command is part-way through the glide.
When the arm's joint states jump farther than the joint speed limits allow between two of them
(a simulator reset between episodes; a real arm cannot), the target and the safety filter start
again from the first joint state after the jump, rather than drive the arm back to where the
episode before ended. One arm (the first of ``task``'s scene).

``safety/estop`` (std_msgs/Bool, true latches) stops the operator's motion as it stops the
policy node's: while latched the servo sends the held position whatever the device asks,
``teleop/twist`` is zero and neither gripper topic is published (the gripper stays as it is),
so an arm driven by Universal Robots' driver (which has no robot_il safety layer) stops too.
``safety/reset_estop`` (std_srvs/Trigger) releases it: the servo starts again from where the
arm is, with the safe-start ramp, not towards a target the device moved during the stop.
Episode events still pass (an operator may discard the stopped episode).

``takeover:=true`` makes the node a correction device beside a deployed policy (human-gated
DAgger, Kelly et al. 2019): the servo sends nothing while the policy drives. The operator takes
over by moving the device: the node takes the arm from the policy node (``policy/takeover``
true, answered once the policy node publishes nothing; until the hand-back it refuses to
start again) and then servos from where the arm is, announcing ``teleop/takeover`` true
(std_msgs/Bool, latched); the gripper stays as the policy left it until the operator works
the device's gripper, which carries on from the command in force (a closed gripper's first
toggle opens it). The episode key ``next`` (Right arrow, the SpaceMouse's right button)
hands back: ``teleop/takeover`` false, and ``policy/takeover`` false starts the policy again
from where the arm is (a fresh history, the safe start); not while this node's e-stop is
latched (one sent before the policy node was discovered reached this node only, and the
policy would drive the stopped arm). The other episode keys pass to the
recorder as usual. A device moved while no policy node answers takes nothing over (said in
the log): the operator never drives an arm a policy drives too. The device is read on the
wall clock whatever ``use_sim_time`` says (a lock-step simulator's ``/clock`` stands still
while the policy is stopped; each command of the operator's steps it). On ``use_sim_time`` the
servo also paces such a simulator in real time: after each of its commands it sends the same
command again on every ``/clock`` until simulated time has advanced one period, since a
simulator that steps a few ms per command (``deploy_sim``'s lock-step: 2 ms) otherwise ran
the operator's arm at a 25th of their hand's speed, and recorded a 25th of the steps.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.clock import Clock, ClockType
from rclpy.context import Context
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock as ClockMessage
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from robot_il.envs.ur5e.description import JOINT_VEL_LIMITS
from robot_il.errors import ConfigError
from robot_il.record.control import EpisodeEvent
from robot_il.ros.node_main import LISTENER_WAIT, declare_float, declare_task
from robot_il.ros.observation import RobotObservation
from robot_il.ros.policy_node import TAKEOVER_SERVICE
from robot_il.ros.quiet_node import QuietNode
from robot_il.ros.selector_node import LATCHED
from robot_il.ros.subscription_reader import SubscriptionReader
from robot_il.ros.ur_topics import (
    ESTOP_TOPIC,
    RESET_ESTOP_SERVICE,
    TAKEOVER_TOPIC,
    TELEOP_TARGET_TOPIC,
    stamp_seconds,
)
from robot_il.safety import SafetyFilter, SafetyLimits

TWIST_TOPIC = "teleop/twist"
GRIPPER_TOPIC = "teleop/gripper"
EVENT_TOPIC = "teleop/episode_event"
TAKEOVER_MOTION = 1e-4
"""m (or rad) of device motion in one period that takes the arm over from the policy: above a
still device's noise, below any deliberate push."""
JUMP_SLACK = 0.005
"""s of stamp jitter the jump test allows: a joint that moves farther between two joint states
than its speed limit covers in their stamps' interval plus this was moved by no motor."""


class TeleopNode(QuietNode):
    """Publishes a teleop device's commands; see the module docstring."""

    def __init__(
        self,
        node_name: str = "teleop",
        *,
        context: Context | None = None,
        parameter_overrides: list[Parameter] | None = None,
        device=None,
    ) -> None:
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides)
        device_name = self.declare_parameter("device", "keyboard").value
        self.rate = declare_float(self, "rate", 20.0)
        task = declare_task(self)
        self.servo = bool(self.declare_parameter("servo", True).value)
        max_observation_age = declare_float(self, "max_observation_age", 0.1)
        self.takeover = bool(self.declare_parameter("takeover", False).value)
        servo_rate = declare_float(self, "servo_rate", 0.0)
        if not 1.0 <= self.rate <= 500.0:
            raise ConfigError(f"teleop: rate {self.rate} is not in [1, 500] Hz")
        if servo_rate and not self.rate <= servo_rate <= 500.0:
            raise ConfigError(
                f"teleop: servo_rate {servo_rate:g} is not in [rate {self.rate:g}, 500] Hz "
                "(0: the device's rate)"
            )
        if self.takeover and not self.servo:
            raise ConfigError("teleop: takeover:=true drives the arm; it needs servo:=true")
        self.period = 1.0 / self.rate
        self.servo_period = 1.0 / servo_rate if servo_rate else self.period
        """s between two joint commands of the servo: the device's period, or with
        ``servo_rate`` a shorter one, the filter gliding to each new target in steps a
        position controller at 125-500 Hz follows smoothly (at 20 Hz each target is a step)."""
        self._device_gripper = 0.0
        """The device's gripper command at its last read (0 open .. 1 closed)."""

        qos = QoSProfile(depth=10)
        self.twist_pub = self.create_publisher(Twist, TWIST_TOPIC, qos)
        self.gripper_pub = self.create_publisher(Float64, GRIPPER_TOPIC, qos)
        self.event_pub = self.create_publisher(String, EVENT_TOPIC, qos)
        self._held_events: list[tuple[EpisodeEvent, float]] = []
        """Episode events not sent yet for want of a subscriber, each with its deadline
        (monotonic s)."""
        self._estop_latched = False
        """Whether ``safety/estop`` latched and ``safety/reset_estop`` has not released it."""
        # (default QoS event handlers: an e-stop publisher it cannot hear is logged)
        self.create_subscription(
            Bool, ESTOP_TOPIC, self._on_estop, qos, event_callbacks=SubscriptionEventCallbacks()
        )
        self.create_service(Trigger, RESET_ESTOP_SERVICE, self._on_reset_estop)
        if self.servo:
            from robot_il.envs.arm import Arm
            from robot_il.envs.tasks import TASKS
            from robot_il.envs.ur5e.kinematics import tcp_point

            self.obs = RobotObservation(self, task, subscribe=set())
            if len(self.obs.arms) != 1:
                raise ConfigError(f"teleop: servo drives one arm; task {task!r} has two")
            self.arm = Arm(TASKS[task]().mounts()[0])
            limits = SafetyLimits.ur5e(max_observation_age=max_observation_age)
            self.safety = SafetyFilter(limits, tool_point=tcp_point, period=self.servo_period)
            (command_topic,) = self.obs.layout.command_topics()
            self.command_pub = self.create_publisher(Float64MultiArray, command_topic.name, qos)
            self.target_pub = self.create_publisher(Float64MultiArray, TELEOP_TARGET_TOPIC, qos)
            gripper_topic = self.obs.layout.gripper_topic(0)
            self.robot_gripper_pub = self.create_publisher(Float64, gripper_topic, qos)
            self._target_pose: np.ndarray | None = None
            self._target_joints: np.ndarray | None = None
            self._joint_names = self.obs.layout.joint_names(0)
            self._last_state: tuple[np.ndarray, float] | None = None
            """The arm's joints (rad) and stamp (s) in its last joint state."""
            self._jumped_at: float | None = None
            """Stamp (s) of a joint state that jumped, until the servo starts again from it."""
            self._jump_lock = threading.Lock()
            """Guards ``_last_state`` and ``_jumped_at``: the jump watch's thread sets them,
            the servo's callbacks take the jump in."""
            # 500 Hz joint states: taken by the executor, each held the interpreter for about
            # half a millisecond beside the servo's callbacks (subscription_reader).
            self._jump_watch = SubscriptionReader(self, f"{self.get_name()}-jump-watch")
            for topic, _ in self.obs.layout.joint_state_topics():
                self._jump_watch.subscribe(JointState, topic, self._on_joint_states, qos)
            self._jump_watch.start()
            self._paced: tuple[Float64MultiArray, float] | None = None
            """The servo's last command and the simulated time (s) until which every
            ``/clock`` sends it again (``use_sim_time``: a lock-step simulator's pace)."""
            if self.get_parameter("use_sim_time").value:
                self.create_subscription(ClockMessage, "/clock", self._on_clock, qos)
        self.holding = not self.takeover
        """Whether the operator drives the arm: always without ``takeover``; with it, from
        the policy's stop to the hand-back."""
        self._awaiting_policy = False
        """Whether a ``policy/takeover`` call (take or hand back) is not answered yet: the
        device neither takes over nor hands back meanwhile."""
        self._gripper_at_takeover: float | None = None
        """The device's gripper command when the operator took over: the gripper is left as
        the policy left it until the device's differs from this."""
        self._gripper_in_force: float | None = None
        """The arm's last gripper command (0..1), the policy's or this node's: a takeover
        starts the device's gripper from it."""
        if self.takeover:
            self.create_subscription(
                Float64, self.obs.layout.gripper_topic(0), self._on_gripper_command, qos
            )
            self.takeover_pub = self.create_publisher(Bool, TAKEOVER_TOPIC, LATCHED)
            self.takeover_pub.publish(Bool(data=False))
            self.policy_takeover = self.create_client(SetBool, TAKEOVER_SERVICE)
        # The device last, once nothing else can refuse the node: a device left open (the ROS
        # device's thread) aborted the process at exit, turning a one-line error into a crash.
        if device is None:
            from robot_il.record.teleop import make_teleop_device

            device = make_teleop_device(device_name, control_hz=self.rate)
        self.device = device
        try:
            # The operator's hand moves in wall time; a lock-step /clock waits for their commands.
            wall = Clock(clock_type=ClockType.STEADY_TIME)
            self.create_timer(self.period, self._tick, clock=wall)
            if self.servo and self.servo_period < self.period:
                self.create_timer(self.servo_period, self._servo_tick, clock=wall)
            self.get_logger().info(
                f"{device_name} teleop at {self.rate:g} Hz"
                f"{', servoing the arm' if self.servo else ''}"
            )
            self.get_logger().info(device.controls)
        except BaseException:
            # A stop meanwhile (SIGTERM: rclpy's handler shut the context down and the timer
            # failed; Ctrl-C) leaves run_node no node to shut down: the keyboard left the
            # operator's terminal in cbreak mode, without echo.
            device.close()
            raise

    def _tick(self) -> None:
        command = self.device.read()
        delta = np.asarray(command.eef_delta, dtype=np.float64)
        latched = self._estop_latched
        twist = Twist()
        if not latched:  # a latched e-stop: a zero twist, the gripper left as it is
            twist.linear.x, twist.linear.y, twist.linear.z = (delta[:3] / self.period).tolist()
            twist.angular.x, twist.angular.y, twist.angular.z = (delta[3:] / self.period).tolist()
            self.gripper_pub.publish(Float64(data=float(command.gripper)))
        self.twist_pub.publish(twist)
        events = command.events
        if self.takeover:
            events = self._take_over_or_hand_back(command)
        self._send_events(events)
        self._device_gripper = float(command.gripper)
        moved = self.servo and self.holding and self._move_target(delta)
        if moved and not latched:  # the pose asked for this period: a recorder's action
            self.target_pub.publish(Float64MultiArray(data=self._target_joints.tolist()))
        if moved and self.servo_period == self.period:  # else the servo's own timer sends it
            self._send_command()

    def _servo_tick(self) -> None:
        if self.holding and self._target_pose is not None:
            self._send_command()

    def _take_over_or_hand_back(self, command) -> tuple[EpisodeEvent, ...]:
        """With ``takeover``: take the arm over when the device moves, hand it back on
        ``next``; returns the episode events left for the recorder."""
        if self._awaiting_policy:
            return command.events
        if self.holding and EpisodeEvent.NEXT in command.events:
            events = tuple(event for event in command.events if event is not EpisodeEvent.NEXT)
            if self._estop_latched:  # the policy node may not have heard it: it would drive
                self.get_logger().error(
                    "the e-stop is latched: release it (safety/reset_estop) before handing "
                    "the arm back to the policy",
                    throttle_duration_sec=2.0,
                )
                return events
            self.holding = False  # no servo command from now on, before the policy restarts
            self._paced = None
            self.takeover_pub.publish(Bool(data=False))
            self._ask(take=False)
            return events
        moved = np.abs(np.asarray(command.eef_delta)).max() > TAKEOVER_MOTION
        if not self.holding and moved and not self._estop_latched:
            self._ask(take=True)
        return command.events

    def _ask(self, take: bool) -> None:
        """Ask the policy node to give the arm to the operator (``take``) or to take it back;
        the operator's servo starts once the policy node has answered that it stopped."""
        client = self.policy_takeover
        if not client.service_is_ready():
            self.get_logger().error(
                f"no policy node answers {client.srv_name}: "
                + ("the arm is not taken over" if take else "the policy is not restarted"),
                throttle_duration_sec=2.0,
            )
            return
        self._awaiting_policy = True
        client.call_async(SetBool.Request(data=take)).add_done_callback(
            lambda future: self._on_answer(take, future)
        )

    def _on_answer(self, take: bool, future) -> None:
        self._awaiting_policy = False
        reply = future.result()
        if reply is None or not reply.success:
            why = "no answer" if reply is None else reply.message
            self.get_logger().error(
                f"{self.policy_takeover.srv_name} failed ({why})", throttle_duration_sec=2.0
            )
            return
        if not take:
            self.get_logger().info(f"handed back: {reply.message}")  # the policy's new episode
            return
        self._target_pose = self._paced = None  # servo from where the policy left the arm
        self.safety.restart()
        if self._gripper_in_force is not None:  # the device's next toggle works from it
            self.device.hold_gripper(self._gripper_in_force)
        self._gripper_at_takeover = (
            self._device_gripper if self._gripper_in_force is None else self._gripper_in_force
        )
        self.holding = True
        self.takeover_pub.publish(Bool(data=True))
        self.get_logger().info("the operator has the arm (policy stopped)")

    def _on_gripper_command(self, msg: Float64) -> None:
        if np.isfinite(msg.data):
            self._gripper_in_force = min(max(float(msg.data), 0.0), 1.0)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self._estop_latched = True
            if self.servo:
                self.safety.estop()
            self.get_logger().warning("e-stop latched")

    def _on_reset_estop(self, request, response):
        """Release the e-stop: the servo's target and filter start again from the measured
        pose (the next tick), so the arm does not head for where the device moved meanwhile."""
        self._estop_latched = False
        if self.servo:
            self._target_pose = None
            self.safety.reset_estop()
        response.success, response.message = True, "e-stop reset"
        self.get_logger().info("e-stop reset")
        return response

    def _send_events(self, events: tuple[EpisodeEvent, ...]) -> None:
        """Publish the episode events once a node subscribes to them; drop, with an error,
        those none has subscribed to within :data:`~robot_il.ros.node_main.LISTENER_WAIT` s
        (a key pressed long ago, a quit above all, must not reach a recorder started later)."""
        now = time.monotonic()
        self._held_events += [(event, now + LISTENER_WAIT) for event in events]
        if self.event_pub.get_subscription_count() > 0:
            for event, _ in self._held_events:
                self.event_pub.publish(String(data=event.value))
            self._held_events = []
            return
        for event, deadline in self._held_events:
            if deadline < now:
                self.get_logger().error(
                    f"{event.value} not sent: no node subscribes to {EVENT_TOPIC}"
                )
        self._held_events = [
            (event, deadline) for event, deadline in self._held_events if deadline >= now
        ]

    def _on_joint_states(self, msg: JointState) -> None:
        """Watch for a jump of the arm's joints that no motor makes (see the module)."""
        index = {name: i for i, name in enumerate(msg.name)}
        joints = [index.get(name) for name in self._joint_names]
        if None in joints:
            return
        q = np.array(msg.position, dtype=np.float64)[joints]
        stamp = stamp_seconds(msg.header.stamp) or self.get_clock().now().nanoseconds * 1e-9
        with self._jump_lock:
            last, self._last_state = self._last_state, (q, stamp)
            if last is not None:
                reach = JOINT_VEL_LIMITS * (abs(stamp - last[1]) + JUMP_SLACK)
                if np.any(np.abs(q - last[0]) > reach):
                    self._jumped_at = stamp

    def _move_target(self, delta: np.ndarray) -> bool:
        """Move the tool-pose target by the device's ``delta`` (m, rad axis-angle; the closest
        IK solution, a pose out of reach keeping the previous target); False while there is
        nothing to servo from (no joint state yet, or a jump not taken in yet)."""
        from robot_il.envs.spatial import axis_angle_to_matrix

        with self.obs.lock:
            measured, stamp = self.obs.joint_pos, self.obs.stamp
        if measured is None:
            return False
        with self._jump_lock:
            jumped = self._jumped_at
            if jumped is not None and stamp < jumped:
                return False  # the observation has not taken in the jump yet
            self._jumped_at = None
        if jumped is not None:
            self._target_pose = self._paced = None
            self.safety.restart()
            self.get_logger().info("the arm jumped (a simulator reset?): servoing from where it is")
        if self._target_pose is None:
            if not np.isfinite(measured).all():
                return False  # nothing to servo from yet (the driver holds the arm)
            self._target_joints = measured.copy()
            self._target_pose = self.arm.tcp_transform(measured)
        pose = self._target_pose.copy()
        pose[:3, :3] = axis_angle_to_matrix(delta[3:]) @ pose[:3, :3]
        pose[:3, 3] += delta[:3]
        joints = self.arm.inverse(pose, self._target_joints)
        if joints is not None:
            self._target_pose, self._target_joints = pose, joints
        return True

    def _send_command(self) -> None:
        """Send the joint target through the safety filter (one servo period's step), and the
        device's gripper unless the arm is held."""
        if self._jumped_at is not None:
            return  # the next device read starts again from where the arm jumped to
        with self.obs.lock:
            measured, measured_velocity, stamp = (
                self.obs.joint_pos,
                self.obs.joint_vel,
                self.obs.stamp,
            )
        now = self.get_clock().now().nanoseconds * 1e-9
        self.safety.watchdog(stamp, now)
        safe = self.safety.filter(self._target_joints, measured, now, qd_measured=measured_velocity)
        if safe.command is None:  # not started: the measured joints are not finite
            return
        command = Float64MultiArray(data=safe.command.tolist())
        self.command_pub.publish(command)
        self._paced = (command, now + self.servo_period)
        gripper = self._device_gripper
        if self._gripper_at_takeover is not None and gripper != self._gripper_at_takeover:
            self._gripper_at_takeover = None  # the operator works the gripper from now on
        if not safe.held and self._gripper_at_takeover is None:
            self.robot_gripper_pub.publish(Float64(data=min(max(gripper, 0.0), 1.0)))

    def _on_clock(self, msg: ClockMessage) -> None:
        """Lock-step: step the simulator on with the servo's last command until one period
        of simulated time has passed since it was computed (see the module docstring)."""
        paced = self._paced
        if paced is None or not self.holding:
            return
        if stamp_seconds(msg.clock) < paced[1]:
            self.command_pub.publish(paced[0])

    def shutdown(self) -> None:
        """Release the device and destroy the node."""
        self.device.close()
        if self.servo:
            self._jump_watch.close()
            self.obs.close()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """``ros2 run robot_il teleop`` (or the ``teleop`` console script)."""
    from robot_il.ros.node_main import run_node

    return run_node(TeleopNode, args)
