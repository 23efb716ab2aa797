"""``sim_robot``: a simulated UR5e (one or two arms) behind the UR driver's ROS interface.

Runs a robot_il env (MuJoCo or PyBullet) with physics at ``PHYSICS_HZ`` (500 Hz, the UR5e
controller rate) and speaks the topics of ``ur_robot_driver`` (:mod:`robot_il.ros.ur_topics`),
so a client written for the real arm drives the simulation unchanged:

- publishes ``joint_states`` (UR joint names with a tf_prefix per arm, plus each gripper's
  joint, closure 0..1) every ``publish_every`` physics steps;
- follows ``forward_position_controller/commands`` (6 targets per arm, rad; the latest holds)
  and ``scaled_joint_trajectory_controller/joint_trajectory`` (linear in time from the
  message's arrival), and ``<tf_prefix>gripper/command`` (std_msgs/Float64, 0..1);
- with two arms, in the layout of the parameters ``tf_prefixes``, ``controller_layout``
  (``combined``, ``per_arm`` as Universal Robots' dual-arm tutorial, ``namespaced``),
  ``arm_namespaces`` and the controller names (:mod:`robot_il.ros.arm_layout`): per arm, a
  joint state message of its own joints and its own controllers' topics;
- publishes the task's state for tests and the policy's task inputs: ``task/success``
  (std_msgs/Bool), ``task/object_pose`` (PoseStamped) and ``task/target`` (PointStamped), in
  the world frame, at ``task_hz``; and one camera as ``camera/<name>/image_raw`` (rgb8),
  ``image_size`` [H, W] px, by default the frame size of the camera policy ``checkpoint``
  (as ``robot-il eval`` renders), else 96x96;
- ``sim/reset`` (std_srvs/Trigger) starts a new episode (env seed ``seed + episode``). The
  scene at start-up is episode 0, unless ``reset_first:=true``: a client that begins every
  episode with ``sim/reset`` (the selection's episode judge, ``robot-il eval --ros``) has its
  first reset start episode 0 (env seed ``seed``, the start-up scene's too) rather than 1.
  With ``dataset`` (the zarr dataset a recorder appends this session's episodes to, as
  ``record_teleop.launch.yaml`` passes it), episode 0 is the first scene after those the
  dataset holds: env seed ``seed`` + its episode count, so a second session continues the
  scenes instead of recording the first ones again. (Episodes discarded or re-recorded in an
  earlier session used seeds too: its last scenes may then come again.)

Like the real controller it refuses commands that are not finite or not of the right size
(logged, ignored) and clips targets to the joint limits; it does not filter speed: that is the
safety layer's job, upstream.

Time: ``lock_step:=false`` (default) runs physics in real time and stamps with the system
clock. ``lock_step:=true`` publishes ``/clock`` (sim time from 0) and, after every
``steps_per_command`` physics steps, waits for the next joint command on every command topic
(one per arm in the per-arm layouts), so a client on ``use_sim_time`` that commands once per
period sees the same physics however loaded the machine is. Each command then moves the arm
as one ``robot-il eval`` env step moves it: the simulated servo plans one move per command, a
straight line in joint space that arrives at the end of the command's period (within the
speed and acceleration limits; ``robot_il.envs.backends.common``), and ``/clock``, joint
states and task topics are published at the period's end (the task topics with every joint
state, whatever ``task_hz``: a client acts on both of one state). (Stepped one physics step at a
time, the servo would plan every 2 ms and brake into each held target: a different arm from
the one the policy was trained and evaluated on; a two-arm handover policy that solves 8 of
10 seeds in the env solved 0 of 10 that way.) Should no command come within
``lock_step_timeout`` s of wall time (a client gone), it steps on and warns that lock-step
broke. Time stays at 0 (the initial state announced every 0.1 s) until the first command
arrives, and stands still after a reset (the new state announced) until the next command.
While lock-step runs the node asks Linux to keep the CPUs awake (``keep_cpus_awake``,
default true: :func:`robot_il.ros.node_main.keep_cpus_awake`; 8x the exchange rate on an
idle virtual machine here).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PointStamped, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_il.envs.backends.base import PHYSICS_HZ
from robot_il.errors import CheckpointError, ConfigError
from robot_il.ros.arm_layout import ArmLayout
from robot_il.ros.node_main import (
    declare_float,
    declare_task,
    declare_text,
    freeze_startup_objects,
    keep_cpus_awake,
    use_realtime_priority,
)
from robot_il.ros.observation import DEFAULT_IMAGE_SIZE, image_size_value
from robot_il.ros.quiet_node import QuietNode
from robot_il.ros.subscription_reader import SubscriptionReader
from robot_il.ros.ur_topics import (
    OBJECT_POSE_TOPIC,
    POSE_INPUTS,
    SUCCESS_TOPIC,
    TARGET_TOPIC,
    image_topic,
    seconds_to_stamp,
    task_input_topic,
    tf_prefix,
    trajectory_points,
)

WORLD_FRAME = "world"
ANNOUNCE_PERIOD = 0.1
"""Lock-step: while waiting for a command, the state is published again this often (s)."""


def _recorded_episodes(dataset: str) -> int:
    """The episodes the zarr ``dataset`` holds (0 where there is none yet, or no path)."""
    if not dataset or not Path(dataset).exists():
        return 0
    from robot_il.dataset import Dataset

    return Dataset.open(dataset).num_episodes


def _reached_multiple(before: int, after: int, every: int) -> bool:
    """Whether stepping from ``before`` to ``after`` physics steps reached a multiple of
    ``every``: a topic published every ``every`` steps is due after this env step."""
    return after // every > before // every


class JointTrajectoryTrack:
    """A joint trajectory sampled linearly in time; before its first point it blends from the
    targets held when it arrived (as the UR trajectory controller starts from the current
    state). Times are seconds on the node's clock."""

    def __init__(self, start: float, q0: np.ndarray, times: np.ndarray, points: np.ndarray):
        if times[0] > 0:
            times = np.concatenate([[0.0], times])
            points = np.vstack([q0, points])
        self.start, self.times, self.points = start, times, points

    def sample(self, now: float) -> np.ndarray:
        """Targets (n,) rad at ``now``; the last point once the trajectory has ended."""
        elapsed = now - self.start
        return np.array(
            [np.interp(elapsed, self.times, self.points[:, j]) for j in range(self.points.shape[1])]
        )


class SimRobot(QuietNode):
    """The simulated arm(s); see the module docstring for topics and parameters."""

    def __init__(
        self,
        node_name: str = "sim_robot",
        *,
        context: Context | None = None,
        parameter_overrides: list[Parameter] | None = None,
    ) -> None:
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides)
        checkpoint = declare_text(self, "checkpoint", "")
        task = declare_task(self)
        backend = self.declare_parameter("backend", "mujoco").value
        self.seed = int(self.declare_parameter("seed", 0).value)
        if self.seed < 0:  # the env's generator takes none, and said so in a traceback
            raise ConfigError(f"sim_robot: seed {self.seed} is negative; env seeds are 0 or more")
        dataset = str(self.declare_parameter("dataset", "").value)
        recorded = _recorded_episodes(dataset)
        self.seed += recorded
        reset_first = bool(self.declare_parameter("reset_first", False).value)
        self.publish_every = int(self.declare_parameter("publish_every", 1).value)
        task_hz = declare_float(self, "task_hz", 50.0)
        camera = self.declare_parameter("camera", "").value
        camera_hz = declare_float(self, "camera_hz", 10.0)
        image_size = self._render_size(camera, checkpoint)
        self.lock_step = bool(self.declare_parameter("lock_step", False).value)
        self.steps_per_command = int(self.declare_parameter("steps_per_command", 1).value)
        self.lock_step_timeout = declare_float(self, "lock_step_timeout", 30.0)
        self.realtime_priority = int(self.declare_parameter("realtime_priority", 0).value)
        keep_awake = bool(self.declare_parameter("keep_cpus_awake", True).value)
        if self.publish_every < 1 or self.steps_per_command < 1:
            raise ConfigError("sim_robot: publish_every and steps_per_command must be >= 1")
        if not 0 < task_hz <= PHYSICS_HZ or not 0 < camera_hz <= PHYSICS_HZ:
            raise ConfigError(f"sim_robot: task_hz and camera_hz must be in (0, {PHYSICS_HZ}]")

        from robot_il.envs import make_env

        render = {"render_mode": "rgb_array", "render_camera": camera} if camera else {}
        self.block = self.steps_per_command if self.lock_step else 1
        """Physics steps per env step: a lock-step command period, else one."""
        self.env = make_env(
            task,
            backend,
            control_hz=PHYSICS_HZ / self.block,
            terminate_on_success=False,
            max_episode_steps=2**62,
            render_size=image_size,
            **render,
        )
        self.camera = camera
        self.arms = [arm.name for arm in self.env.arms]
        self.layout = ArmLayout.declare(self, self.arms)
        self.command_topics = self.layout.command_topics()
        self.task_every = max(1, round(PHYSICS_HZ / task_hz))
        self.camera_every = max(1, round(PHYSICS_HZ / camera_hz))
        self.physics_dt = 1.0 / PHYSICS_HZ

        self._lock = threading.Lock()
        self._targets = np.zeros(6 * len(self.arms))
        self._grippers = np.zeros(len(self.arms))
        self._trajectories: list[JointTrajectoryTrack | None] = [None] * len(self.command_topics)
        """Per command topic: the trajectory its arms follow, if its last command was one."""
        self._reset_requested = threading.Event()
        self._command_arrived = threading.Event()
        """Lock-step: set once every command topic has had a command since the last step."""
        self._arrived: set[int] = set()
        self._reset_wall_ns = 0
        """System time (ns) of the last ``sim/reset``: commands sent before it are dropped."""
        self._command_lock = threading.Lock()
        """Held by each command callback (the command reader's thread) and by ``sim/reset``
        from its cut-off until the physics thread has reset (an executor's thread): a command
        is checked against the cut-off and stored wholly before the reset or wholly after it,
        as when the executor's one callback group ran them all; one sent during the reset is
        the new episode's first. (Checked before the cut-off and stored after the reset, a
        command of the old episode moved the new one's arm to its target; stored under the
        reset, it was lost with its lock-step arrival.)"""
        self.episode = -1 if reset_first else 0
        """The episode under way (-1: the start-up scene, before the first reset)."""
        self.sim_time = 0.0
        self.steps = 0
        self._obs: dict[str, np.ndarray] = {}
        self._success = False
        self._reset_env()

        qos = QoSProfile(depth=10)
        publishers: dict[str, object] = {}
        self._joint_states = []
        """(publisher, message, arm indices): one joint state message per broadcaster."""
        for topic, arms in self.layout.joint_state_topics():
            if topic not in publishers:
                publishers[topic] = self.create_publisher(JointState, topic, qos)
            names = [name for a in arms for name in self.layout.joint_names(a)]
            names += [self.layout.gripper_joint(a) for a in arms]
            self._joint_states.append((publishers[topic], JointState(name=names), arms))
        self.success_pub = self.create_publisher(Bool, SUCCESS_TOPIC, qos)
        self.object_pub = self.create_publisher(PoseStamped, OBJECT_POSE_TOPIC, qos)
        self.target_pub = self.create_publisher(PointStamped, TARGET_TOPIC, qos)
        self.input_pubs = {
            key: self.create_publisher(Float64MultiArray, task_input_topic(key), qos)
            for key in self.env.unwrapped.task.task_keys
            if key not in POSE_INPUTS
        }
        """The task's other inputs (e.g. bimanual_cross's goals and delays), one topic each."""
        self.image_pub = (
            self.create_publisher(Image, image_topic(camera), QoSProfile(depth=2))
            if camera
            else None
        )
        self.clock_pub = self.create_publisher(Clock, "/clock", qos) if self.lock_step else None
        # Commands come at up to 500 Hz (a policy node's control loop, the teleop servo's
        # joints and gripper): taken by the executor, each held the interpreter for half a
        # millisecond beside the physics thread (subscription_reader). Every kind on one
        # reader, one at a time, as the executor's one callback group took them; the grippers
        # first (of the messages waiting together: DDS orders no two topics), as a policy node
        # sends a tick's gripper before the joint command that steps lock-step.
        self._command_reader = SubscriptionReader(self, f"{self.get_name()}-commands")
        for index in range(len(self.arms)):
            self._command_reader.subscribe(
                Float64,
                self.layout.gripper_topic(index),
                lambda msg, info, i=index: self._on_gripper(i, msg, info),
                qos,
            )
        for i, topic in enumerate(self.command_topics):
            self._command_reader.subscribe(
                Float64MultiArray,
                topic.name,
                lambda msg, info, i=i: self._on_command(i, msg, info),
                qos,
            )
        for i, topic in enumerate(self.layout.trajectory_topics()):
            self._command_reader.subscribe(
                JointTrajectory,
                topic.name,
                lambda msg, info, i=i: self._on_trajectory(i, msg, info),
                qos,
            )
        self.create_service(Trigger, "sim/reset", self._on_reset)

        freeze_startup_objects()  # no garbage-collector pauses in the physics loop
        self._running = True
        # Threads started from here on (physics, commands, the executor's) inherit it.
        use_realtime_priority(self, self.realtime_priority)
        self._wake_request = keep_cpus_awake(self) if self.lock_step and keep_awake else None
        """Held while lock-step runs: every exchange with the client wakes a CPU."""
        self._thread = threading.Thread(target=self._physics_loop, name="physics", daemon=True)
        self._thread.start()
        self._command_reader.start()
        self.get_logger().info(
            f"{task} on {backend}, arms {self.arms or ['(one)']} ({self.layout.describe()}), "
            f"physics {PHYSICS_HZ} Hz, "
            f"{'lock-step on /clock' if self.lock_step else 'real time'}"
            + (f", camera {camera} {image_size[0]}x{image_size[1]} px" if camera else "")
        )
        if recorded:
            self.get_logger().info(
                f"{dataset} holds {recorded} episodes: its next scenes are seeds from {self.seed}"
            )

    def _render_size(self, camera: str, checkpoint: str) -> tuple[int, int]:
        """[H, W] (px) the camera renders at: ``image_size`` if given, else the frame size that
        ``checkpoint`` (the camera policy the frames are for) observes ``camera`` at, as
        ``robot-il eval`` renders them, so that the policy node need not resize them; else
        ``DEFAULT_IMAGE_SIZE``. ``image_size`` takes "" too, for "not given" (a launch file
        passes every parameter it has an argument for); an unreadable checkpoint falls back
        to the default, the policy node says why it cannot load it."""
        from robot_il.policies import read_checkpoint

        given = self.declare_parameter(
            "image_size", "", ParameterDescriptor(dynamic_typing=True)
        ).value
        if given != "":
            return image_size_value(self, given)
        if camera and checkpoint:
            try:
                shape = read_checkpoint(checkpoint)[1]["spec"]["observation"].get(f"rgb_{camera}")
            except CheckpointError:
                shape = None
            if shape:
                return int(shape[0]), int(shape[1])
        return DEFAULT_IMAGE_SIZE

    # -- commands ------------------------------------------------------------------------

    def _now(self) -> float:
        """Seconds on this node's time base: sim time in lock-step, else wall (monotonic)."""
        return self.sim_time if self.lock_step else time.monotonic()

    def _joints(self, topic: int) -> np.ndarray:
        """Indices into the targets of the joints of command topic ``topic``'s arms."""
        return np.concatenate(
            [np.arange(6 * a, 6 * a + 6) for a in self.command_topics[topic].arms]
        )

    def _sent_before_reset(self, info: dict, topic: str) -> bool:
        """Whether a command was published before the last ``sim/reset`` (its DDS source
        timestamp, the publisher's system clock in ns, on this machine): it was meant for the
        episode before, and is dropped (call with the command lock held)."""
        if info["source_timestamp"] >= self._reset_wall_ns:
            return False
        self.get_logger().info(f"{topic}: dropped a command sent before the reset")
        return True

    def _on_command(self, topic: int, msg: Float64MultiArray, info: dict) -> None:
        values = np.array(msg.data, dtype=np.float64)
        joints = self._joints(topic)
        with self._command_lock:
            if self._sent_before_reset(info, self.command_topics[topic].name):
                return
            if values.shape != joints.shape or not np.all(np.isfinite(values)):
                self.get_logger().error(
                    f"{self.command_topics[topic].name}: expected {joints.size} finite joint "
                    f"positions, got {values.tolist()}; ignored"
                )
                return
            with self._lock:
                self._trajectories[topic] = None
                self._targets[joints] = values
            self._arrive(topic)

    def _on_trajectory(self, topic: int, msg: JointTrajectory, info: dict) -> None:
        joints = self._joints(topic)
        names = [n for a in self.command_topics[topic].arms for n in self.layout.joint_names(a)]
        with self._command_lock:
            if self._sent_before_reset(info, self.command_topics[topic].name):
                return
            parsed = trajectory_points(msg, names, self.get_logger())
            if parsed is None:
                return
            times, points = parsed
            with self._lock:
                self._trajectories[topic] = JointTrajectoryTrack(
                    self._now(), self._targets[joints], times, points
                )
            self._arrive(topic)

    def _arrive(self, topic: int) -> None:
        """Lock-step: a command came on ``topic``; the step waits for every topic's."""
        with self._lock:
            self._arrived.add(topic)
            if len(self._arrived) == len(self.command_topics):
                self._command_arrived.set()

    def _consume_commands(self) -> None:
        with self._lock:
            self._arrived.clear()
            self._command_arrived.clear()

    def _on_gripper(self, index: int, msg: Float64, info: dict) -> None:
        with self._command_lock:
            if self._sent_before_reset(info, self.layout.gripper_topic(index)):
                return
            if not np.isfinite(msg.data):
                self.get_logger().error(f"{self.layout.gripper_topic(index)}: not finite; ignored")
                return
            with self._lock:
                self._grippers[index] = min(max(msg.data, 0.0), 1.0)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        with self._command_lock:  # commands taken meanwhile wait for the new episode
            self._reset_wall_ns = time.time_ns()
            self._reset_requested.set()
            self._command_arrived.set()  # lock-step: wake the physics thread to reset now
            deadline = time.monotonic() + 10.0
            while self._reset_requested.is_set() and time.monotonic() < deadline:
                time.sleep(0.002)
        response.success = not self._reset_requested.is_set()
        response.message = f"episode {self.episode} (seed {self.seed + self.episode})"
        return response

    # -- physics -------------------------------------------------------------------------

    def _reset_env(self) -> None:
        obs, info = self.env.reset(seed=self.seed + max(self.episode, 0))
        prefixes = [tf_prefix(arm) for arm in self.arms]
        with self._lock:
            self._targets = np.concatenate([obs[p + "joint_pos"] for p in prefixes]).astype(float)
            self._grippers = np.array([float(obs[p + "gripper"][0]) for p in prefixes])
            self._trajectories = [None] * len(self.command_topics)
        self._obs, self._success = obs, bool(info["is_success"])

    def _action(self) -> np.ndarray:
        with self._lock:
            for topic, trajectory in enumerate(self._trajectories):
                if trajectory is not None:
                    # the point due at the end of this env step, reached by its end
                    end = self._now() + self.block * self.physics_dt
                    self._targets[self._joints(topic)] = trajectory.sample(end)
            targets, grippers = self._targets.copy(), self._grippers.copy()
        parts = [np.append(targets[6 * i : 6 * i + 6], grippers[i]) for i in range(len(grippers))]
        low, high = self.env.action_space.low, self.env.action_space.high
        return np.clip(np.concatenate(parts), low, high).astype(np.float32)

    def _physics_loop(self) -> None:
        try:
            self._run_physics()
        except RCLError:
            if self.context.ok():
                raise  # else: shutting down (Ctrl-C reached rclpy first)

    def _run_physics(self) -> None:
        next_tick = time.monotonic()
        if self.lock_step:
            self._await_first_command()
        while self._running:
            # One env step is one command period in lock-step (a reset comes between two, so
            # the new episode's time stays on the command grid the client ticks on), else one
            # physics step.
            if self._reset_requested.is_set():
                self.episode += 1
                self._reset_env()
                if self.lock_step:  # the old episode's commands go before the reset's answer:
                    self._consume_commands()  # one sent after it is the new episode's first
                self._reset_requested.clear()
                if self.lock_step:  # the new episode's time starts with its first command
                    self._await_first_command()
            self._obs, _, _, _, info = self.env.step(self._action())
            self._success = bool(info["is_success"])
            before, self.steps = self.steps, self.steps + self.block
            self.sim_time = self.steps * self.physics_dt
            stamp = self._stamp()
            if self.clock_pub is not None:
                clock = Clock()
                clock.clock = stamp
                self.clock_pub.publish(clock)
            joint_state_due = _reached_multiple(before, self.steps, self.publish_every)
            if joint_state_due:
                self._publish_joint_state(stamp)
            # lock-step: the task inputs of every state a client may act on come with it
            if _reached_multiple(before, self.steps, self.task_every) or (
                self.lock_step and joint_state_due
            ):
                self._publish_task(stamp)
            if self.image_pub is not None and _reached_multiple(
                before, self.steps, self.camera_every
            ):
                self._publish_image(stamp)
            if self.lock_step:
                if not self._await_command(self.lock_step_timeout):
                    self.get_logger().warning(
                        f"lock-step broken at t={self.sim_time:.3f} s: no command within "
                        f"{self.lock_step_timeout:g} s of wall time; stepping on"
                    )
                self._consume_commands()
                continue
            next_tick += self.physics_dt
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:  # far behind (a camera frame, a loaded machine): resync
                next_tick = time.monotonic()

    def _await_first_command(self) -> None:
        """Lock-step: hold time, announcing the state at once and then every 0.1 s, until the
        first command (of the run, or after a reset), so that discovery delays and the
        client's own reset cannot add steps before it."""
        self._announce_state()
        self._await_command(math.inf)
        self._consume_commands()  # the first step consumes this command

    def _await_command(self, timeout: float) -> bool:
        """Lock-step: wait at most ``timeout`` s of wall time (``math.inf``: until it comes or
        the node stops) for the step's command, announcing the state again every 0.1 s: a
        client that began an episode after the state came (``policy/reset`` without
        ``sim/reset``) waits for a state received after that."""
        deadline = time.monotonic() + timeout
        while self._running:
            if self._command_arrived.wait(
                min(ANNOUNCE_PERIOD, max(deadline - time.monotonic(), 0.0))
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            self._announce_state()
        return False

    def _announce_state(self) -> None:
        """Publish the clock, joint state, task inputs and camera frame (a camera policy
        observes it) of the present time."""
        stamp = self._stamp()
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp))
        self._publish_joint_state(stamp)
        self._publish_task(stamp)
        if self.image_pub is not None:
            self._publish_image(stamp)

    def _stamp(self):
        if self.lock_step:
            from builtin_interfaces.msg import Time

            stamp = Time()
            seconds_to_stamp(self.sim_time, stamp)
            return stamp
        return self.get_clock().now().to_msg()

    def _publish_joint_state(self, stamp) -> None:
        obs = self._obs
        for publisher, msg, arms in self._joint_states:
            prefixes = [tf_prefix(self.arms[a]) for a in arms]
            msg.header.stamp = stamp
            msg.position = [
                *np.concatenate([obs[p + "joint_pos"] for p in prefixes]).tolist(),
                *(float(obs[p + "gripper"][0]) for p in prefixes),
            ]
            msg.velocity = [
                *np.concatenate([obs[p + "joint_vel"] for p in prefixes]).tolist(),
                *(0.0 for _ in prefixes),
            ]
            publisher.publish(msg)

    def _publish_task(self, stamp) -> None:
        obs = self._obs
        self.success_pub.publish(Bool(data=self._success))
        if "object_pose" in obs:
            pose = PoseStamped()
            pose.header.stamp, pose.header.frame_id = stamp, WORLD_FRAME
            x, y, z, qw, qx, qy, qz = (float(v) for v in obs["object_pose"])
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = x, y, z
            o = pose.pose.orientation
            o.w, o.x, o.y, o.z = qw, qx, qy, qz
            self.object_pub.publish(pose)
        for key, publisher in self.input_pubs.items():
            if key in obs:
                publisher.publish(Float64MultiArray(data=np.ravel(obs[key]).astype(float).tolist()))
        if "target_pos" in obs:
            point = PointStamped()
            point.header.stamp, point.header.frame_id = stamp, WORLD_FRAME
            point.point.x, point.point.y, point.point.z = (float(v) for v in obs["target_pos"])
            self.target_pub.publish(point)

    def _publish_image(self, stamp) -> None:
        frame = self.env.render()
        msg = Image()
        msg.header.stamp, msg.header.frame_id = stamp, f"{self.camera}_camera"
        msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
        msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, int(frame.shape[1]) * 3
        msg.data = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
        self.image_pub.publish(msg)

    def shutdown(self) -> None:
        """Stop physics, close the simulator and destroy the node. The simulator is closed
        only once the physics thread has ended: closing it under a step in flight (a loaded
        machine may take longer than the join's first seconds) can crash or hang the exit."""
        self._command_reader.close()
        self._running = False
        self._command_arrived.set()
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self.env.close()
        if self._wake_request is not None:
            self._wake_request.close()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """``ros2 run robot_il sim_robot`` (or the ``sim_robot`` console script)."""
    from robot_il.ros.node_main import run_node

    return run_node(SimRobot, args)
