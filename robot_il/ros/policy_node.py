"""``policy``: runs a robot_il checkpoint on a robot that speaks the UR driver's topics.

Four activities, each on its own thread so none waits for another:

- **Observations** arrive by subscription (joint states on a reader thread of their own,
  :mod:`robot_il.ros.subscription_reader`; the rest on executor threads): joint states (joint
  positions and velocities, grippers as ``<tf_prefix>gripper_joint``; topics, joint names and
  command topics follow the arm layout's parameters, :mod:`robot_il.ros.arm_layout`), the
  task inputs ``task/target`` and ``task/object_pose``, camera images
  ``camera/<name>/image_raw``, and with ``robot_state:=true`` a real arm's speed scaling and
  wrench, when the policy was trained on them. The tool pose
  ``eef_pose`` is computed by forward kinematics at the arm's mount, as the env computes it.
  ``gripper:=''`` declares arms without a gripper (as on the RTDE bridge and the recorder): a
  checkpoint that observes ``gripper`` is then refused at start, as it would wait forever.
- **The policy's observations** (observer thread) are taken on the policy's grid (its
  training rate, e.g. every 50 ms at 20 Hz): at each grid time, whatever inference is doing,
  the observation of that moment (camera frames paired with the joint states by their stamps,
  :meth:`RobotObservation.snapshot`) joins the history of the episode's last ``n_obs_steps``
  observations. The history holds consecutive grid times only, as the policy's training
  windows do: taken between predictions, as it once was, a prediction slower than a period
  (an image policy on a CPU) left a policy trained on observations 50 ms apart with ones
  100-200 ms apart, its velocity-like features silently wrong. A grid time that cannot be
  observed (a stalled camera's frames cannot be paired) restarts the history (logged). An
  episode's first observation is taken at once, once every key is of the new scene, as of
  the grid time under way.
- **Inference** (a thread feeding a child process, :mod:`robot_il.deploy.worker`) predicts
  an action chunk from the history whenever it gains an observation and the planner asks for
  one (:class:`robot_il.deploy.ChunkPlanner`): the chunk's first action is of the newest
  observation's grid time, and chunks are computed ahead of time, so they follow one another
  without pauses; after a prediction slower than a period it goes on at once from the newest
  history. With ``inpaint_committed:=true`` (off by default) a
  policy that can (Diffusion) samples each chunk around the actions the previous one still
  executes while it is computed (real-time chunking, :meth:`ChunkPlanner.committed`), so that
  it goes on from them; other policies' chunks ignore them (said once per checkpoint).
- **Control** (control thread) at ``control_rate`` (500 Hz: the UR5e's rate) takes the action
  due now on the timeline (past actions are dropped); a checkpoint trained in the env's
  ``eef_delta`` action mode has each action turned into joint targets once, when it becomes
  due, from the measured joints of that moment, exactly as the env does
  (:class:`robot_il.deploy.eef_delta.TcpDeltaConverter`; where IK fails the previous targets
  stay and an ``ik_failure`` event is published; a TCP target outside the workspace box is put
  on the box, a ``workspace_clamp`` event, since the filter would hold the arm and the next
  delta, relative to the held pose, would ask the same). It passes the joint targets through one
  :class:`robot_il.safety.SafetyFilter` per arm, and publishes
  ``forward_position_controller/commands`` and each gripper's command. Until an episode's
  first action exists it publishes nothing, leaving the robot to its driver's hold; on
  ``use_sim_time`` (a lock-step simulator waits for every period's command) it publishes the
  held pose instead.

Safety: the filter limits joint positions, speed, acceleration, the tool's workspace box and
stops the arm on NaN/inf, stale observations (``max_observation_age``, each arm by the stamp of
its own joint states) or late inference (``max_command_age``), slowing at the acceleration
limit, and at once on a latched e-stop (``safety/estop`` std_msgs/Bool, released by the
``safety/reset_estop`` Trigger); it starts with
a ramp from the measured pose (while an arm's measured joints are not finite it waits, and until
every arm has started nothing is published). With two arms a
:class:`robot_il.safety.ClearanceGuard` then holds the arm whose command would bring the arms'
links closer than ``clearance`` (m), command to command and command to the other arm's measured
pose (an arm stopped at its controller is where it stopped); the grippers' own capsule pairs
keep ``gripper_clearance`` (m) instead, which a handover cell sets below zero (see
:mod:`robot_il.safety.clearance`). Every intervention is published on ``safety/events`` (JSON)
when it begins, as is each run of IK failures of an eef_delta policy (kind ``ik_failure``); the
log shows each kind's first event and then counts per kind per second, printed off the control
thread. A control thread that fails logs a fatal error and shuts the node down (the robot holds
its last command) rather than leaving a node that looks alive and sends nothing; an inference
thread that fails does the same once the arms have braked to rest.

Episodes: ``policy/reset`` (Trigger) starts a new one (fresh history, the policy reset in
its worker, safe start, camera frames received before dropped; its first observation waits
until every key the policy observes was taken after the reset, in real time as in lock-step,
so it is never the old scene's); ``policy/stop`` (Trigger) ends one, answering once the
moving arms have braked to rest at the acceleration limit: nothing is published after it
until the next reset, so that a simulator reset in between gets no command of the old episode
(``robot-il eval --ros``: stop, ``sim/reset``, reset); ``policy/takeover`` (SetBool, the
teleop node's ``takeover:=true``) stops it for a person who corrects the policy with the teleop
device, refusing ``policy/reset`` from anyone until the person hands back, which begins an
episode from where the arm is. With ``seed`` >= 0 the node's
``i``-th reset (from 0) seeds the episode's samples (Diffusion's noise) with ``seed + i``, as
``robot-il eval`` seeds episode ``i``'s and ``sim_robot`` resets to env seed ``seed + i``, so
an evaluation over ROS 2 repeats; -1 (the default) leaves them to the worker's stream. A
checkpoint path on ``policy/switch``
(std_msgs/String; a bare name is looked up in ``candidates_dir``) is loaded in the background
and takes over at the next reset or stop, or at once while no episode runs; one trained at
another rate than the first checkpoint is refused (the policy grid keeps the first one's
rate), as is one observing a camera the node lacks (``cameras``, ``image_size``: the node's
frame size, by default the first checkpoint's). Both services answer which checkpoint the
(next) episode runs.
``use_sim_time:=true`` runs every clock on ``/clock``.

Lock-step (``use_sim_time`` with a simulator that waits for every command) deploys exactly
what ``robot-il eval`` evaluates: inference takes no simulated time (the control thread waits,
at most ``lock_step_timeout`` s of wall time, for the history to hold each grid time's
observation and for the chunk due, and the observer thread for the observation of its grid
time, camera frames included: a camera policy needs the simulator's camera at its rate), and a
chunk of n actions executes all n before the next observation.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from robot_il.deploy import ActionBlend, ActionTimeline, ChunkPlanner
from robot_il.deploy.eef_delta import ACTION_MODES, TcpDeltaConverter
from robot_il.deploy.ticker import Ticker
from robot_il.deploy.worker import CheckpointInfo, InferenceProcessGone, InferenceWorker
from robot_il.envs.ur5e.description import JOINT_VEL_LIMITS
from robot_il.errors import CheckpointError, ConfigError
from robot_il.provenance import describe
from robot_il.ros.node_main import (
    declare_float,
    declare_text,
    freeze_startup_objects,
    use_realtime_priority,
)
from robot_il.ros.observation import (
    RobotObservation,
    camera_parameters,
    is_camera_key,
    policy_image_size,
)
from robot_il.ros.quiet_node import QuietNode
from robot_il.ros.ur_rtde_bridge import GRIPPERS
from robot_il.ros.ur_topics import (
    ESTOP_TOPIC,
    POSE_INPUTS,
    RESET_ESTOP_SERVICE,
    SAFETY_EVENTS_TOPIC,
    fill_command,
    tf_prefix,
)
from robot_il.safety import ClearanceGuard, SafetyEvent, SafetyFilter, SafetyLimits
from robot_il.safety.events import EventSummary

SWITCH_INTERVAL = 0.0002
"""Python's thread switch interval (s) in a deploy node: how long a thread waiting for the
interpreter lock lets the holder run before asking for it."""
CLOCK_TOLERANCE = 1e-6
"""s: a time on the node's clock counts as reached this close before it (``/clock`` comes in
integer nanoseconds, a period's end is a float sum: they may differ in the last bit)."""
STILL_CLOCK_WAIT = 2.0
"""s of wall time a lock-step clock may stand still before a tick's command counts as lost."""
NEW_SCENE_WAIT = 2.0
"""s an episode may wait for its first observation of the new scene before that is logged."""
STOP_GRACE = 0.5
"""s of wall time an inference process found gone waits for the node to stop before that is
fatal: a SIGTERM to the process group ends the process as it reaches rclpy's signal thread."""
SWITCH_TOPIC = "policy/switch"
"""std_msgs/String: checkpoint (path, or name under ``candidates_dir``) for the next episode."""
CELL_LAUNCH_FILES = {
    1: "deploy it with deploy_sim.launch.yaml or deploy_ur5e.launch.yaml",
    2: "deploy it with deploy_two_arm_sim.launch.yaml or deploy_two_arm_ur5e.launch.yaml",
}
"""What to launch for a checkpoint of that many arms."""
DMP_LAUNCH_FILES = (
    "deploy it with deploy_dmp_rl_sim.launch.yaml (its bimanual_cross cell, command rate and "
    "clearance) or deploy_two_arm_ur5e.launch.yaml"
)
"""What to launch for a (two-arm) DMP or DMP + RL checkpoint."""


class PolicyNode(QuietNode):
    """Deploys one policy at a time; see the module docstring for topics and parameters."""

    def __init__(
        self,
        node_name: str = "policy",
        *,
        context: Context | None = None,
        parameter_overrides: list[Parameter] | None = None,
    ) -> None:
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides)
        checkpoint = self.declare_parameter("checkpoint", "").value
        self.candidates_dir = self.declare_parameter("candidates_dir", "").value
        task = self.declare_parameter("task", "").value
        self.seed = int(self.declare_parameter("seed", -1).value)
        self.control_rate = declare_float(self, "control_rate", 500.0)
        max_observation_age = declare_float(self, "max_observation_age", 0.1)
        max_command_age = declare_float(self, "max_command_age", 0.5)
        self.ramp_duration = declare_float(self, "ramp_duration", 1.0)
        acceleration = declare_float(self, "acceleration_limit", 10.0)
        self.clearance = declare_float(self, "clearance", 0.05)
        self.gripper_clearance = declare_float(self, "gripper_clearance", self.clearance)
        max_step = declare_float(self, "max_step", 0.0)
        workspace_lower = self.declare_parameter("workspace_lower", [-0.9, -0.9, 0.0]).value
        workspace_upper = self.declare_parameter("workspace_upper", [0.9, 0.9, 1.1]).value
        self.inference_margin = declare_float(self, "inference_margin", 0.005)
        self.interpolate = bool(self.declare_parameter("interpolate", True).value)
        self.inpaint_committed = bool(self.declare_parameter("inpaint_committed", False).value)
        self.lock_step_timeout = declare_float(self, "lock_step_timeout", 30.0)
        torch_threads = int(self.declare_parameter("torch_threads", 1).value)
        self.realtime_priority = int(self.declare_parameter("realtime_priority", 0).value)
        self.inference_nice = int(self.declare_parameter("inference_nice", 0).value)
        gripper = declare_text(self, "gripper", "robotiq")
        if gripper not in GRIPPERS:
            raise ConfigError(
                f"policy node: gripper {gripper!r} is not one of {GRIPPERS} ('': arms without one)"
            )
        self.has_gripper = bool(gripper)
        """Whether the arms have grippers whose closure the joint states carry (``gripper`` as
        the RTDE bridge's and the recorder's: ``robotiq``, also the simulated arm's; ``''``)."""
        if int(self.declare_parameter("inference_priority", 0).value):
            raise ConfigError(
                "policy node: inference_priority is gone, inference never runs in a real-time "
                "class (it would use up the kernel's real-time budget and stall the control "
                "loop); set inference_nice (e.g. -10) for a larger share of the cores"
            )
        if not checkpoint:
            raise ConfigError("policy node: set the parameter checkpoint (a checkpoint dir)")
        if not 1.0 <= self.control_rate <= 1000.0:
            raise ConfigError(f"policy node: control_rate {self.control_rate} is not 1..1000 Hz")

        # The control thread must get the interpreter at once whatever the rate: at 0.8 ms
        # (a tenth of a 125 Hz period, as this once was) it lost dozens of periods at a time
        # to the executor and inference threads on a loaded machine (rate 0.81-0.93, gaps of
        # 7-15 periods), at 0.2 ms none (the default is 5 ms).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.torch_threads = torch_threads
        self.info = CheckpointInfo.read(self._resolve(checkpoint))
        spec = self.info.spec
        # frames are resized to the checkpoint's own size unless image_size says otherwise
        cameras = camera_parameters(self, policy_image_size(spec["observation"]))
        self.task = task or spec.get("task") or ""
        """The task whose inputs this robot offers (default: the checkpoint's)."""
        # the node's cameras and the task's inputs too: a checkpoint switched to (a
        # selection's candidate) may observe them where the first one did not, and would wait
        # for ever for a topic the node never subscribed to
        served = [f"rgb_{name}" for name in cameras["cameras"]]
        served += [f"depth_{name}" for name in cameras["depth_cameras"]]
        served += task_input_keys(self.task)
        self.obs = RobotObservation(
            self,
            self.task,
            subscribe={*self.info.obs_keys, *served},
            **cameras,
            robot_state=bool(self.declare_parameter("robot_state", False).value),
        )
        self.arms = self.obs.arms
        self._gripper_keys = {tf_prefix(arm) + "gripper" for arm in self.arms}
        self.policy_hz = self.info.control_hz
        """Hz of the policy grid (observations, chunks), the first checkpoint's rate for the
        node's life: the observer's and the planner's grid and the lock-step waits run on it."""
        self.offered_spec = {
            "robot": "ur5e",
            "action_dim": 7 * len(self.arms),
            "observation": {
                key: shape
                for key, shape in self.obs.keys.items()
                if self.has_gripper or key not in self._gripper_keys
            },
            "control_hz": self.policy_hz,
        }
        """What this robot offers a checkpoint; ``action_mode`` is any of ``ACTION_MODES``.
        A checkpoint of another rate is refused on ``policy/switch``: played on this grid it
        would run at the wrong speed."""
        self._check(self.info, str(checkpoint))
        self.checkpoint = str(checkpoint)
        self.sim_time = bool(self.get_parameter("use_sim_time").value)
        self.worker = InferenceWorker(self.info, torch_threads, self.inference_nice)
        self._say_inpainting(self.worker)
        # Threads started from here on (control, inference, the executor's) inherit it.
        use_realtime_priority(self, self.realtime_priority)

        self.period = 1.0 / self.control_rate
        # A command may step as far as the velocity limit allows in one period of this node's
        # rate (20 Hz commands: 0.16 rad); the 0.05 rad default cap is for 500 Hz streams.
        max_step = max_step or max(0.05, float(np.max(JOINT_VEL_LIMITS)) * self.period)
        self.limits = SafetyLimits.ur5e(
            acceleration=np.full(6, acceleration),
            max_step=max_step,
            workspace_lower=workspace_lower,
            workspace_upper=workspace_upper,
            max_observation_age=max_observation_age,
            max_command_age=max_command_age,
            ramp_duration=self.ramp_duration,
        )
        # eef_delta targets are put into the filter's workspace box (which holds the arm on a
        # command leaving it): see robot_il.deploy.eef_delta
        self._tcp_delta = TcpDeltaConverter(
            self.obs.arm_kinematics,
            workspace=(self.limits.workspace_lower, self.limits.workspace_upper)
            if self.limits.has_workspace
            else None,
        )
        self._state_lock = threading.Lock()
        self._estop_latched = False
        self._events: deque[dict] = deque()
        """Payloads for ``safety/events``: the filters' interventions and IK failures."""
        self._events_publishing = threading.Lock()
        """Held while one thread publishes the events (the events timer, ``policy/stop`` in
        its own callback group): both found the last one queued, and the second ``popleft``
        raised IndexError, which ended the node's spin."""
        self._events_published = 0
        """Safety events published so far: each carries its number (``seq``), and
        ``policy/stop`` answers the last one's, so that a judge can wait for it."""
        self._event_summary = EventSummary()
        self._ik_failing = [False] * len(self.arms)
        self._clamping = [False] * len(self.arms)
        self._filters = self._make_filters()
        self._guard = self._make_guard()
        if self._guard is not None and self.gripper_clearance < self.clearance:
            self.get_logger().warning(
                f"two-arm clearance {self.clearance:g} m for every pair with a link; the "
                f"grippers' own capsules may come to {self.gripper_clearance:g} m "
                "(gripper_clearance: a handover cell; negative lets the capsules overlap)"
            )
        self._timeline: ActionTimeline | None = None
        self._blend = ActionBlend()
        self._due: tuple[ActionTimeline, float] | None = None
        """The timeline and time of the action in force (a change starts a new glide)."""
        self._due_from: np.ndarray | None = None
        """Measured joints (rad) where the period of the action in force began: an eef_delta
        action moves the TCP from there, also when a new chunk replaces it mid-period."""
        self._planner = ChunkPlanner(
            1.0 / self.policy_hz, margin=self.inference_margin, lock_step=self.sim_time
        )
        """The policy grid (the observer thread's) and when to infer (the inference thread's:
        its latency estimate is that thread's alone)."""
        self._history: deque[dict[str, np.ndarray]] = deque()
        """The episode's last ``n_obs_steps`` observations, of consecutive grid times, the
        newest of :attr:`_observed_grid` (the observer thread's, under the state lock)."""
        self._observed_grid = -math.inf
        """Policy grid time (s) of the newest observation in the history."""
        self._history_changed = threading.Event()
        """Set when the history gains an observation: wakes the lock-step control thread
        (:meth:`_await_history`), which clears it."""
        self._observation_taken = threading.Event()
        """Set likewise: wakes the inference thread, which clears it."""
        self._episode_id = 0
        self._tick_episode = 0
        """The episode the latest control tick began in (its command is dropped if another
        began before it was sent)."""
        self._resets = 0
        self._episode_seed: int | None = None
        """What seeds the samples of the episode the last reset began (None: unseeded)."""
        self._reset_messages = 0
        """Joint state messages taken in when the episode began."""
        self._reset_values: dict[str, np.ndarray] = {}
        """The observation's arrays when the episode began (each message replaces its own)."""
        self._reset_stamp: float | None = None
        """The node's time (s) when the episode began (None: the first, begun at start-up)."""
        self._timeline_changed = threading.Event()
        self._pending: tuple[str, InferenceWorker] | None = None
        self._episode_running = False
        self._stopped = False
        """``policy/stop`` ended the episode: nothing is published until ``policy/reset``."""
        self._taken_over = False
        """A person holds the arm (``policy/takeover``): stopped, and ``policy/reset`` refused."""
        self._braking: threading.Event | None = None
        """Set while ``policy/stop`` waits for the control thread to bring the moving arms to
        rest (the control thread sets it once they are), else None."""
        self._last_gripper: list[float | None] = [None] * len(self.arms)
        """Each arm's gripper command sent last this episode (only a change is sent)."""
        self.command_log: deque[tuple[float, float]] = deque(maxlen=100_000)
        """(observation stamp, command publish time) per control tick, for latency figures."""
        self.tick_times: deque[float] = deque(maxlen=100_000)
        """Monotonic time (s) of every control tick, for rate and jitter figures."""
        self.starved_ticks = 0
        """Control ticks after the action timeline had run out (the next chunk was late)."""
        self.longest_starved = 0.0
        """Longest time (s) a tick came after the end of the timeline in force."""

        qos = QoSProfile(depth=10)
        layout = self.obs.layout
        self.command_pubs = [
            (self.create_publisher(Float64MultiArray, topic.name, qos), topic.arms)
            for topic in layout.command_topics()
        ]
        self._command_msgs = [Float64MultiArray() for _ in self.command_pubs]
        """One message per command topic, refilled every tick (publishing copies it out)."""
        self.gripper_pubs = [
            self.create_publisher(Float64, layout.gripper_topic(a), qos)
            for a in range(len(self.arms))
        ]
        # Transient local: a subscriber that asks for it gets the last 100 events on matching,
        # and an event published at once (a lock-step cell at its clearance in its first
        # second) reaches one whose discovery came after it; volatile subscribers (the judge,
        # the live view) are served as before.
        self.events_pub = self.create_publisher(
            String,
            SAFETY_EVENTS_TOPIC,
            QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL),
        )
        # The e-stop keeps rclpy's default QoS event handlers (two waitables): an e-stop
        # publisher whose QoS (best effort) or type cannot reach this node is logged here.
        self.create_subscription(
            Bool, ESTOP_TOPIC, self._on_estop, qos, event_callbacks=SubscriptionEventCallbacks()
        )
        self.create_service(Trigger, RESET_ESTOP_SERVICE, self._on_reset_estop)
        self.create_service(Trigger, "policy/reset", self._on_reset)
        # A stop waits for the arms to brake to rest: in a group of its own, the node's
        # other callbacks (joint states, /clock for a lock-step simulator) go on meanwhile.
        stopping = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, "policy/stop", self._on_stop, callback_group=stopping)
        self.create_service(SetBool, TAKEOVER_SERVICE, self._on_takeover, callback_group=stopping)
        self.create_subscription(String, SWITCH_TOPIC, self._on_switch, qos)
        self.create_timer(0.02, self._publish_events)

        freeze_startup_objects()  # no 100 ms garbage-collector pauses in the control loop
        self._running = True
        self.fatal_error: Exception | None = None
        """Set when the control, observer or inference thread failed and shut the node down
        (exit code 1)."""
        self._observer = threading.Thread(
            target=self._run_beside_control,
            args=("observing", self._observe_loop),
            name="observer",
            daemon=True,
        )
        self._inference = threading.Thread(
            target=self._run_beside_control,
            args=("inference", self._inference_loop),
            name="inference",
            daemon=True,
        )
        self._control = threading.Thread(target=self._control_loop, daemon=True)
        self._observer.start()
        self._inference.start()
        self._control.start()
        self.get_logger().info(
            f"{self.info.policy_type} policy "
            f"{f'({self.info.controller}) ' if self.info.controller else ''}from {checkpoint} at "
            f"{self.policy_hz:g} Hz (chunks of {self.info.n_action_steps}), inference in pid "
            f"{self.worker.pid}, "
            f"commands at {self.control_rate:g} Hz; checkpoint {describe(self.info.provenance)}"
        )

    # -- set-up --------------------------------------------------------------------------

    def _resolve(self, name: str) -> Path:
        from robot_il.ros.selector_node import candidate_path

        return candidate_path(name, self.candidates_dir)

    def _check(self, info: CheckpointInfo, where: str) -> None:
        from robot_il.policies.spec import check_spec

        trained = info.spec.get("task")
        other_task = bool(trained) and trained != self.task
        if other_task:  # the usual cause of a misfit: say it first
            where = f"{where} (trained on task {trained!r}, deployed on task {self.task!r})"
        mode = info.spec.get("action_mode", "joint")
        if mode not in ACTION_MODES:
            modes = ", ".join(ACTION_MODES)
            raise CheckpointError(f"{where}: cannot deploy action_mode {mode!r}; modes: {modes}")
        arms = int(info.spec.get("action_dim", 7)) // 7
        if arms != len(self.arms):  # the wrong launch file, most likely: name the right ones
            launch = CELL_LAUNCH_FILES.get(arms, "")
            if info.policy_type == "dmp":
                launch = DMP_LAUNCH_FILES
            raise CheckpointError(f"{where}: acts for {arms} arm(s), this node drives "
                                  f"{len(self.arms)}; {launch}")  # fmt: skip
        offered = self.offered_spec["observation"]
        unserved = [k for k in info.spec.get("observation") or {} if k not in offered]
        if any(is_camera_key(key) for key in unserved):  # cameras are node parameters
            raise CheckpointError(
                f"{where}: observes {', '.join(filter(is_camera_key, unserved))}, which this "
                f"node has no camera for; start it with {camera_settings(info.spec)} "
                f"(a deploy launch file's argument: {camera_settings(info.spec, 'camera')})"
            )
        if any(key in self._gripper_keys for key in unserved):  # waiting would never end
            raise CheckpointError(
                f"{where}: observes {', '.join(sorted(self._gripper_keys & set(unserved)))}, but "
                "this cell has no gripper (parameter gripper:=''); deploy it with "
                "gripper:=robotiq where the joint states carry the gripper_joint"
            )
        check_spec(info.spec, {**self.offered_spec, "action_mode": mode}, where)
        if other_task:
            self.get_logger().warning(f"{where}: it fits this robot's inputs, deploying it")

    @property
    def action_mode(self) -> str:
        """The deployed checkpoint's action mode (``joint`` or ``eef_delta``)."""
        return self.info.spec.get("action_mode", "joint")

    def _make_filters(self, previous: Sequence[SafetyFilter] = ()) -> list[SafetyFilter]:
        """One filter per arm; each goes on from ``previous``'s where the arm still follows
        its command (a new episode begun during motion), else starts where the arm is."""
        from robot_il.envs.ur5e.kinematics import tcp_point

        filters = [
            SafetyFilter(
                self.limits,
                tool_point=tcp_point,
                period=self.period,
                on_event=self._arm_events(a),
                log_events=False,  # summarised by the events timer, off the control thread
            )
            for a in range(len(self.arms))
        ]
        for safety, before in zip(filters, previous, strict=False):
            safety.continue_from(before)
        if self._estop_latched:
            for safety in filters:
                safety.estop()
        return filters

    def _make_guard(self) -> ClearanceGuard | None:
        """The inter-arm clearance check of a two-arm cell (None for one arm)."""
        if len(self.arms) != 2:
            return None
        bases = [kinematics.world_from_base for kinematics in self.obs.arm_kinematics]
        return ClearanceGuard(
            bases, self.clearance, self._on_event, gripper_clearance=self.gripper_clearance
        )

    def _now(self) -> float:
        """Seconds on the node's clock (ROS time: system or ``/clock``). Without
        ``use_sim_time`` ROS time is the system clock, read directly: rclpy's ``Clock.now``
        builds a ``Time`` under a lock, 40 times the cost, at every control tick."""
        if self.sim_time:
            return self.get_clock().now().nanoseconds * 1e-9
        return time.time_ns() * 1e-9

    # -- subscriptions -------------------------------------------------------------------

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            with self._state_lock:
                self._estop_latched = True
                for safety in self._filters:
                    safety.estop()
            self.get_logger().warning("e-stop latched")

    def _on_reset_estop(self, request, response):
        with self._state_lock:
            self._estop_latched = False
            for safety in self._filters:
                safety.reset_estop()
        response.success, response.message = True, "e-stop reset"
        return response

    def _on_reset(self, request, response):
        with self._state_lock:
            if self._taken_over:
                response.success, response.message = False, TAKEN_OVER
                return response
            self._reset()
        response.success = True
        response.message = reset_message(self.checkpoint)
        self.get_logger().info(response.message)
        return response

    def _reset(self) -> None:
        """Begin an episode (``policy/reset``; call with the state lock held)."""
        if self._pending is not None:
            self._swap(*self._pending)
            self._pending = None
        self._start_episode()
        self._stopped = False
        self._episode_seed = self.seed + self._resets if self.seed >= 0 else None
        self._resets += 1

    def _on_takeover(self, request, response):
        """A person takes the arm over with the teleop device (``data`` true) or hands it
        back (false). Taken over, the node stops as on ``policy/stop`` and refuses
        ``policy/reset`` (an episode judge, a script) until the hand-back, so that nothing
        restarts the policy under the person's hands; the hand-back begins an episode from
        where the arm is, as ``policy/reset`` does. A takeover is refused while the e-stop is
        latched here (the teleop node may not have heard it: sent before it was discovered)."""
        with self._state_lock:
            if request.data and self._estop_latched:
                response.success, response.message = False, ESTOP_LATCHED
                return response
            if request.data:
                self._taken_over = True
            elif not self._taken_over:  # nothing to hand back: the node goes on as it was
                response.success, response.message = True, NOT_TAKEN_OVER
                return response
            else:
                self._taken_over = False
                self._reset()
        if request.data:
            self._on_stop(Trigger.Request(), Trigger.Response())
        response.success = True
        response.message = "taken over" if request.data else reset_message(self.checkpoint)
        self.get_logger().info(
            "a person holds the arm (teleop takeover): policy stopped"
            if request.data
            else f"handed back: {response.message}"
        )
        return response

    def _on_stop(self, request, response):
        """End the episode: the moving arms brake to rest at the acceleration limit (a
        controlled stop; a command that stood still from one period to the next asked the
        robot's servo for up to 1,570 rad/s^2 at pi rad/s), and once this answers the node
        publishes nothing (the robot holds its last command; a lock-step simulator waits)
        until ``policy/reset``. A simulator reset between the two cannot receive a command
        of the old episode (one published before its reset, ``sim_robot`` drops). A
        checkpoint loaded meanwhile takes over, and the answer names the checkpoint the next
        episode runs: ``episode_judge`` asks so while a candidate loads, with the simulation
        standing still (asked by ``policy/reset``, each ask ran the old checkpoint on,
        hundreds of steps a load). The safety events of the ended episode are published
        before the answer, so the judge, which stops the policy as it closes an episode, has
        every one of them (they wait up to the 20 ms events timer otherwise, hundreds of
        lock-step periods on a fast machine, none on a slow one)."""
        self._brake_to_rest()
        with self._state_lock:
            self._braking = None
            if self._pending is not None:
                self._swap(*self._pending)
                self._pending = None
            self._start_episode()
            self._stopped = True
        self._publish_events()
        response.success = True
        response.message = stop_message(self.checkpoint, self._events_published)
        return response

    def _brake_to_rest(self) -> None:
        """Have the control thread bring the moving arms to rest (their filters' controlled
        stop, no policy action), and wait until it has, at most a few times the longest
        stop, or until the control thread has ended."""
        with self._state_lock:
            filters = self._filters
            if self._stopped or not any(safety.moving for safety in filters):
                return
            braking = self._braking = threading.Event()
        timeout = 2.0 + 4.0 * max(safety.longest_stop for safety in filters)
        deadline = time.monotonic() + timeout
        while not braking.wait(timeout=0.05):
            if not self._control.is_alive():
                return  # Ctrl-C or a fatal error ended it: nothing brakes any more
            if time.monotonic() < deadline:
                continue
            self.get_logger().warning(
                f"policy/stop: the arms were not at rest after {timeout:.1f} s of braking "
                "(control loop stalled?); stopping anyway"
            )
            return

    def _start_episode(self) -> None:
        """Fresh history and timeline, fresh safety filters (safe start, from the command the
        arm still follows if it moves); e-stop stays."""
        self._timeline = None
        self._blend = ActionBlend()
        self._due = None
        self._ik_failing = [False] * len(self.arms)
        self._clamping = [False] * len(self.arms)
        self._last_gripper = [None] * len(self.arms)
        self._history.clear()
        self._observed_grid = -math.inf
        self._filters = self._make_filters(self._filters)
        self._guard = self._make_guard()
        self._episode_id += 1  # the observer thread observes at once, not at the next grid
        self._reset_stamp = self._now()
        with self.obs.lock:
            self._reset_messages = self.obs.messages
            self._reset_values = dict(self.obs.values)
        self.obs.drop_frames()  # they show the scene before the reset
        self._timeline_changed.set()
        self._episode_running = False

    def _on_switch(self, msg: String) -> None:
        name = msg.data

        def load() -> None:
            from robot_il.errors import RobotILError

            try:
                info = CheckpointInfo.read(self._resolve(name))
                self._check(info, name)
                worker = InferenceWorker(info, self.torch_threads, self.inference_nice)
            except RobotILError as error:
                self.get_logger().error(f"{SWITCH_TOPIC}: {error}; keeping {self.checkpoint}")
                return
            self._say_inpainting(worker)
            with self._state_lock:
                replaced = None if self._pending is None else self._pending[1]
                if self._episode_running:
                    self._pending = (name, worker)
                else:
                    self._swap(name, worker)
                    self._start_episode()
            if replaced is not None:  # out of the lock: closing waits for its process to end
                replaced.close()
            self.get_logger().info(f"{SWITCH_TOPIC}: loaded {name}")

        threading.Thread(target=load, daemon=True).start()

    def _say_inpainting(self, worker: InferenceWorker) -> None:
        """Warn when ``inpaint_committed`` is asked of a policy whose chunks ignore it."""
        if self.inpaint_committed and not worker.inpaints_committed:
            self.get_logger().warning(
                f"inpaint_committed: a {worker.info.policy_type} policy cannot condition its "
                f"chunks on the actions still executing ({worker.info.directory}); it ignores them"
            )

    def _swap(self, name: str, worker: InferenceWorker) -> None:
        """Deploy ``worker``'s checkpoint from now on (call with the state lock held)."""
        old = self.worker
        self.checkpoint, self.info, self.worker = name, worker.info, worker
        threading.Thread(target=old.close, daemon=True).start()  # may wait on its answer

    def _on_event(self, event: SafetyEvent) -> None:
        self._events.append({"kind": event.kind.value, "t": event.t, "detail": event.detail})

    def _arm_events(self, a: int) -> Callable[[SafetyEvent], None]:
        """What receives the events of arm ``a``'s filter: in a two-arm cell each names its
        arm (a safe start's or a limit's joints are one arm's six)."""
        if len(self.arms) == 1:
            return self._on_event
        arm = self._arm_label(a)

        def on_event(event: SafetyEvent) -> None:
            self._events.append(
                {"kind": event.kind.value, "t": event.t, "detail": f"arm {arm}: {event.detail}"}
            )

        return on_event

    def _arm_label(self, a: int) -> str:
        """How events name arm ``a``: its name in the task, with the joint-name prefix the
        cell gives it where that differs (``left (alice_)``)."""
        arm, prefix = self.arms[a], self.obs.layout.tf_prefixes[a]
        return arm or "single" if prefix in ("", tf_prefix(arm)) else f"{arm} ({prefix})"

    def _publish_events(self) -> None:
        """Publish the control thread's events and log them summarised (executor threads)."""
        with self._events_publishing:
            new = []
            while self._events:
                event = self._events.popleft()
                self._events_published += 1
                event["seq"] = self._events_published
                self.events_pub.publish(String(data=json.dumps(event)))
                line = f"[safety t={event['t']:.4f}s] {event['kind']}: {event['detail']}"
                new.append((event["kind"], line))
            for line in self._event_summary.lines(new, time.monotonic()):
                self.get_logger().warning(line)

    # -- observer and inference (threads; the policy runs in the worker process) ------------

    def _run_beside_control(self, what: str, loop: Callable[[], None]) -> None:
        """The observer or inference thread (``what`` it does): ``loop``, and when that fails,
        what a failed control thread does (a fatal line, shutdown, exit code 1), once the
        control thread has braked the arms to rest. A node whose inference thread had died
        looked alive: the arm held as for late inference while ``policy/reset`` and
        ``policy/stop`` answered success."""
        try:
            loop()
        except Exception as error:  # noqa: BLE001 (whatever it is, the node must not look alive)
            if isinstance(error, RCLError) and not self.context.ok():
                return  # shutting down (Ctrl-C reached rclpy first)
            self.get_logger().fatal(
                f"{what} failed: {error!r}; braking the arms to rest and shutting down"
            )
            self.fatal_error = error
            self._brake_to_rest()
            self._running = False
            self.context.try_shutdown()

    def _observe_loop(self) -> None:
        """The observer thread: at every policy grid time, the policy's observation of that
        time into the history, whatever inference is doing (a prediction may take several
        periods); the first of an episode at once, once every key is of the new scene. A grid
        time it cannot observe (a camera with no frame to pair, a thread late by a period)
        restarts the history, which holds consecutive grid times only, as in training; that is
        logged. Its work per grid time is a snapshot and a select (tens of microseconds)."""
        planner = self._planner
        period = planner.period
        last_grid: float | None = None
        last_episode = self._episode_id
        while self._running:
            grid_t = planner.grid_time(self._now())
            if grid_t == last_grid and self._episode_id == last_episode:
                self._sleep_until(grid_t + period, episode=last_episode)
                continue
            # Read together: policy/reset numbers the new episode, then clears the stop. Read
            # apart, the new number with the old stop skipped this grid time as stopped and
            # never came back to it; in lock-step the control thread then waited 30 s for
            # its observation (once in some 40 episodes of the demo's deployment).
            with self._state_lock:
                last_grid, last_episode, stopped = grid_t, self._episode_id, self._stopped
            if stopped:
                self._sleep_until(grid_t + period, wall_timeout=0.01)
                continue
            if self.sim_time:
                self._await_observation(grid_t, policy_observation=True)
            elif not self._history:  # the episode's first: of the grid time when it comes
                if not self._await_new_scene(last_episode):
                    continue
                grid_t = last_grid = planner.grid_time(self._now())
            values, stamp = self.obs.snapshot()
            with self._state_lock:
                info = self.worker.info
            obs = self.obs.select(values, info.obs_keys, stamp)
            if obs is None or stamp is None:
                continue
            with self._state_lock:
                if self._episode_id != last_episode:
                    continue  # an episode began since: this may be the old scene's observation
                skipped = (
                    bool(self._history)
                    and abs(grid_t - self._observed_grid - period) > 0.5 * period
                )
                if skipped:
                    missed = round((grid_t - self._observed_grid) / period) - 1
                    self._history.clear()
                self._history.append(obs)
                while len(self._history) > info.n_obs_steps:
                    self._history.popleft()
                self._observed_grid = grid_t
            self._history_changed.set()
            self._observation_taken.set()
            if skipped and info.n_obs_steps > 1:
                self.get_logger().warning(
                    f"observation history restarted at t={grid_t:.3f} s: {missed} grid time(s) "
                    "before it not observed (no camera frame to pair, or the observer thread "
                    "late); the policy sees the newest observation repeated",
                    throttle_duration_sec=10.0,
                )

    def _inference_loop(self) -> None:
        """The inference thread: whenever the observer adds an observation, a chunk for the
        history ending in it if the planner asks for one at its grid time, which is the chunk's
        first action's time. A prediction slower than a period goes on from the newest
        observation the observer took meanwhile."""
        planner = self._planner
        considered: tuple[float, int] | None = None  # (grid time, episode) planned for last
        free_since = -math.inf  # node time the last prediction ended
        while self._running:
            self._observation_taken.clear()
            with self._state_lock:  # a history and the episode and worker it belongs to
                grid_t, episode = self._observed_grid, self._episode_id
                steps = list(self._history)
                worker, timeline, seed = self.worker, self._timeline, self._episode_seed
            if not steps or (grid_t, episode) == considered:
                self._observation_taken.wait(0.05)  # (and looks at _running)
                continue
            considered = (grid_t, episode)
            if not planner.needs_chunk(timeline, grid_t):
                continue
            info = worker.info
            steps = [steps[0]] * (info.n_obs_steps - len(steps)) + steps
            history = {key: np.stack([s[key] for s in steps]) for key in info.obs_keys}
            committed = None
            if self.inpaint_committed:  # actions 0.. of the new chunk that the old one executes
                committed = planner.committed(timeline, grid_t, info.n_action_steps)
            could_start = max(grid_t, free_since)  # a grid time observed while one ran: its end
            try:
                actions = worker.predict(history, episode, seed, committed)  # a new one resets it
            except Exception as error:
                with self._state_lock:
                    swapped = worker is not self.worker
                if swapped:  # closed by a switch while it answered: its chunk was moot
                    continue
                if not isinstance(error, CheckpointError):
                    raise  # _run_beside_control: brake to rest and shut down
                gone = isinstance(error, InferenceProcessGone)
                if self._stops_within(STOP_GRACE if gone else 0.0):
                    # The node stops: shutdown() closed the worker under the prediction, or a
                    # SIGTERM to the process group (systemd, a launcher's escalation) ended it.
                    continue
                if gone:  # no prediction comes again: the arms held while the node looked
                    raise  # alive, logging this at every grid time; now brake and shut down
                self.get_logger().error(f"inference failed: {error}")
                continue
            finally:
                free_since = self._now()
            # How long after its grid time a chunk arrives (node time: a lock-step simulator
            # waits meanwhile), the observer's hand-over included, or the next chunk is asked
            # for too late and the current one runs out first. A grid time observed while an
            # earlier prediction ran counts from that one's end: the wait behind it says
            # nothing of how early to ask. Counted, it fed itself: a high estimate has chunks
            # asked for at every grid time, each waiting up to a period for the one before,
            # which kept the estimate high.
            planner.record_latency(free_since - could_start)
            with self._state_lock:
                if worker is self.worker and episode == self._episode_id:
                    self._timeline = ActionTimeline(grid_t, planner.period, actions)
                    self._episode_running = True
            self._timeline_changed.set()

    def _stops_within(self, seconds: float) -> bool:
        """Whether the node is stopping, or stops within ``seconds`` of wall time."""
        deadline = time.monotonic() + seconds
        while self._running and self.context.ok():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _await_observation(self, grid_t: float, policy_observation: bool = False) -> None:
        """Lock-step: wait (at most ``lock_step_timeout`` s of wall time) for the joint state of
        grid time ``grid_t``, the newest the simulator can have published by then (it steps a
        command period at a time), so the policy observes what ``robot-il eval`` would. With
        ``policy_observation`` also for the rest of the policy's observation of that time,
        which comes in messages of its own (the joint state of a step may arrive first): the
        stamped task inputs (``task/object_pose``, ``task/target``) and a frame of each camera.
        A camera policy thus needs the simulator's camera at its rate (``sim_robot``'s
        ``camera_hz`` a multiple of the policy's), as the env renders at every step."""
        deadline = time.monotonic() + self.lock_step_timeout
        newest_possible = grid_t - self.period + 1e-6
        obs_keys = self.info.obs_keys
        inputs = [key for key in POSE_INPUTS if policy_observation and key in obs_keys]
        cameras = [key for key in obs_keys if policy_observation and is_camera_key(key)]
        replaced = [key for key in obs_keys if not is_camera_key(key)]
        missing: list[str] = []
        while self._running and time.monotonic() < deadline:
            with self.obs.lock:
                stamp, messages = self.obs.stamp, self.obs.messages
                values = self.obs.values
                inputs_ready = all(
                    self.obs.input_stamps.get(key, -math.inf) >= newest_possible for key in inputs
                )
            # After a reset, the simulator's time stands still: only messages that arrived
            # since show the new episode, for the joints and the task's inputs alike (camera
            # frames taken before it were dropped at the reset).
            fresh = messages > self._reset_messages and all(
                values.get(key) is not self._reset_values.get(key) for key in replaced
            )
            missing = self.obs.frames_missing(cameras, newest_possible)
            ready = fresh and inputs_ready and not missing
            if stamp is not None and stamp >= newest_possible and ready:
                return
            time.sleep(0.0005)
        frames = (
            f" (no frame of {', '.join(missing)} that new: a camera must publish at the "
            f"policy's {self.policy_hz:g} Hz)"
            if missing
            else ""
        )
        self._warn_lock_step_broken(f"no observation of t={grid_t:.3f} s{frames}")

    def _await_new_scene(self, episode: int) -> bool:
        """Real time: before an episode's first observation, wait until every key the policy
        observes holds a value taken after the episode began (stamped after it, or replaced
        since: :meth:`RobotObservation.stale_keys`; the node's first episode, any value). A
        simulator's reset returns before its new state reaches this node, and a policy that
        plans its episode on its first observation (a DMP) would plan it on the old scene;
        meanwhile nothing is published. Logs the keys it waits for once the wait passes
        ``NEW_SCENE_WAIT`` s: at start-up, with the joint names and topics it reads, as a
        driver of another ``tf_prefix`` or layout leaves it waiting for ever. False when the
        episode ends or the node stops first."""
        with self._state_lock:
            since, before = self._reset_stamp, self._reset_values
            obs_keys = self.worker.info.obs_keys
        taken = " taken after the episode began"
        if since is None:  # the first episode: every key's first value will do
            since, before, taken = -math.inf, {}, ""
        started = time.monotonic()
        while self._running and episode == self._episode_id:
            stale = self.obs.stale_keys(obs_keys, since, before)
            if not stale:
                return True
            if time.monotonic() - started > NEW_SCENE_WAIT:
                hint = ""
                if self._gripper_keys & set(stale):
                    hint = (
                        " (no gripper_joint in the joint states? a cell without a gripper is "
                        "gripper:='', which refuses a checkpoint that observes one)"
                    )
                elif self.obs.stamp is None:  # no arm's joints yet: say where they are read
                    layout = self.obs.layout
                    topics = list(dict.fromkeys(t for t, _ in layout.joint_state_topics()))
                    joints = [layout.joint_names(a)[0] for a in range(layout.num_arms)]
                    hint = (
                        f" (no joint state on {topics} names {joints}: do tf_prefixes and "
                        "controller_layout match the driver's?)"
                    )
                self.get_logger().warning(
                    f"waiting for observation keys {stale}{taken}{hint}",
                    throttle_duration_sec=NEW_SCENE_WAIT,
                )
            time.sleep(0.002)
        return False

    def _await_history(self, now: float) -> None:
        """Lock-step: at a policy grid time, wait (at most ``lock_step_timeout`` s of wall time)
        until the observer thread has put that time's observation into the history. The
        simulator steps as fast as commands come, so without this wait a chunk's commands
        would run it past grid times the observer never saw, and a policy observing
        ``n_obs_steps`` > 1 steps would get observations further apart than in training (and
        in ``robot-il eval``)."""
        grid_t = self._planner.grid_time(now)
        if abs(now - grid_t) > 1e-6:
            return
        deadline = time.monotonic() + self.lock_step_timeout
        while self._running and time.monotonic() < deadline:
            with self._state_lock:
                observed = self._observed_grid
                self._history_changed.clear()
            if observed >= grid_t - 1e-6:
                return
            self._history_changed.wait(0.002)

    def _await_action(self, now: float) -> bool:
        """Lock-step: the simulator waits for this tick's command, so wait (at most
        ``lock_step_timeout`` s of wall time) for the chunk holding the action due at ``now``:
        inference takes no simulated time, as in ``robot-il eval``.

        False when the simulator's clock passes ``now`` meanwhile: it stepped on the command
        sent for ``now`` by the tick before, which an episode's start cut short
        (:meth:`_await_next_period` returns at once for a new episode, possibly before the
        clock of that step arrived), so this tick is over. The new episode's first chunk
        observes the later time and would never hold an action for ``now``: waiting for one
        stalled every episode start that came as the simulator stepped."""
        deadline = time.monotonic() + self.lock_step_timeout
        while self._running and time.monotonic() < deadline:
            with self._state_lock:
                timeline = self._timeline
                self._timeline_changed.clear()
            if timeline is not None and timeline.t_obs <= now + 1e-9 < timeline.end:
                return True
            if self._now() > now + CLOCK_TOLERANCE:
                return False
            self._timeline_changed.wait(0.002)
        self._warn_lock_step_broken(f"no action due at t={now:.3f} s")
        return True

    def _warn_lock_step_broken(self, what: str) -> None:
        if self._running:
            self.get_logger().warning(
                f"lock-step broken: {what} within {self.lock_step_timeout:g} s of wall time"
            )

    def _sleep_until(
        self, t: float, wall_timeout: float = math.inf, episode: int | None = None
    ) -> None:
        """Sleep until ``t`` on the node's clock (polls while the clock is /clock), for at
        most ``wall_timeout`` s of wall time, or until the episode is no longer ``episode``."""
        deadline = time.monotonic() + wall_timeout
        while self._running and time.monotonic() < deadline:
            delay = t - self._now()
            if delay <= CLOCK_TOLERANCE or (episode is not None and episode != self._episode_id):
                return
            time.sleep(min(delay, 0.002))

    def _await_next_period(self, now: float, episode: int) -> None:
        """Lock-step: tick again when the simulator's clock has passed this period (it stepped
        on this tick's command), at once when the episode is no longer ``episode``, the one
        the tick began in (the simulator may have been reset, and the tick then sent nothing:
        waiting for the clock to move cost every episode begun during a tick
        ``STILL_CLOCK_WAIT`` s), or when its clock has stood still for ``STILL_CLOCK_WAIT`` s
        of wall time: it waits for a command, so this one was lost (a simulator that had not
        yet matched the command topic), or it steps less than a period per command (warned),
        and the next tick is at its time. A clock that moves, however slowly (a loaded
        machine), is waited for: a second command for the same period would count as the
        next period's and put the simulator a period ahead of the policy's observations.
        """
        end = now + self.period - CLOCK_TOLERANCE
        clock, still_since = now, time.monotonic()
        while self._running and episode == self._episode_id:
            time.sleep(0.0005)
            latest = self._now()
            if latest >= end:
                return
            if latest != clock:
                clock, still_since = latest, time.monotonic()
            elif time.monotonic() - still_since > STILL_CLOCK_WAIT:
                if clock != now:
                    self.get_logger().warning(
                        f"lock-step: the simulator stopped at t={clock:.4f} s, short of this "
                        f"period's end {now + self.period:.4f} s: its steps_per_command does "
                        f"not match control_rate {self.control_rate:g} Hz",
                        throttle_duration_sec=10.0,
                    )
                return

    # -- control (control thread) --------------------------------------------------------

    def _control_loop(self) -> None:
        # Deadlines on a fixed grid: a late tick is caught up, not carried into every later
        # one (robot_il.deploy.ticker).
        ticker = Ticker(self.period)
        sim_time = self.sim_time
        while self._running and self.context.ok():
            now = self._now()
            self.tick_times.append(time.monotonic())
            try:
                self._control_tick(now)
            except Exception as error:  # a dead control thread must not leave a live-looking node
                if isinstance(error, RCLError) and not self.context.ok():
                    return  # shutting down (Ctrl-C reached rclpy first)
                self.get_logger().fatal(
                    f"control loop failed: {error!r}; shutting down (the robot holds its last "
                    "command)"
                )
                self.fatal_error = error
                self._running = False
                self.context.try_shutdown()
                return
            if sim_time:  # a lock-step simulator waits for this tick's command
                self._await_next_period(now, self._tick_episode)
                continue
            ticker.wait()

    def _due_target(self, now: float, q_measured: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The joint-mode action for ``now`` and the time it belongs to, or None before the
        first. An eef_delta action is converted when it becomes due, at ``q_measured`` (rad);
        one that replaces it within its period (a new chunk) at the same joints, where the
        period began, as the env applies a step's delta from the pose at its start.

        With ``interpolate``, joint targets glide to each action across its period
        (:class:`robot_il.deploy.ActionBlend`), also when a new chunk replaces the action of
        the period under way. Once the timeline has run out (late inference) its last action
        stays, stamped with its own time, and the filter holds when that is older than
        ``max_command_age``.
        """
        timeline = self._timeline
        if timeline is None:
            return None
        due = timeline.action_at(now)
        if due is None:
            if now < timeline.t_obs:
                return None
            self.starved_ticks += 1
            self.longest_starved = max(self.longest_starved, now - timeline.end)
            last = len(timeline.actions) - 1
            due = timeline.actions[last], timeline.t_obs + last * timeline.period
        action, t_action = due
        # A new period, or a new chunk arrived (timelines compare by identity).
        if self._due is None or self._due[0] is not timeline or self._due[1] != t_action:
            # (the same period in two chunks may differ by a rounding: 3 * 0.05 != 0.15)
            if self._due is None or abs(self._due[1] - t_action) > 0.5 * timeline.period:
                self._due_from = q_measured
            if self.action_mode == "eef_delta":
                action = self._joint_action(action, self._due_from, now)
            self._blend.set(action, now, t_action + timeline.period)
            self._due = (timeline, t_action)
        if not self.interpolate:
            return self._blend.action, t_action
        return self._blend.at(now), t_action

    def _joint_action(self, action: np.ndarray, q_measured: np.ndarray, now: float) -> np.ndarray:
        """Joint targets for an eef_delta ``action`` applied at ``q_measured``; an arm whose IK
        fails keeps its previous targets, and the start of a run of failures is reported, as
        is the start of a run of TCP targets put into the workspace box (``workspace_clamp``)."""
        converter = self._tcp_delta
        joint_action, failed = converter.to_joint_action(action, q_measured, self._blend.action)
        for a in range(len(self.arms)):
            failing, clamping = a in failed, a in converter.clamped
            started = []
            if failing and not self._ik_failing[a]:
                started.append(("ik_failure", "no IK solution for TCP delta {}; holding"))
            if clamping and not self._clamping[a]:
                started.append(("workspace_clamp", "TCP delta {} leaves the workspace box; its "
                                "target is put on the box"))  # fmt: skip
            for kind, what in started:
                delta = np.round(action[7 * a : 7 * a + 6], 4).tolist()
                detail = f"arm {self._arm_label(a)}: {what.format(delta)}"
                self._events.append({"kind": kind, "t": now, "detail": detail})
            self._ik_failing[a], self._clamping[a] = failing, clamping
        return joint_action

    def _control_tick(self, now: float) -> None:
        episode = self._tick_episode = self._episode_id
        if self.obs.joint_pos is None or self._stopped:
            return
        braking = self._braking
        if self.sim_time and braking is not None:
            self._await_observation(now)  # braking acts on no action: none is waited for
        elif self.sim_time:
            # Lock-step: the simulator has stepped to ``now`` and waits; act on its state of
            # ``now`` for every arm (in the per-arm layout each arm's joint states come in a
            # message of their own, after /clock), as the env converts an eef_delta action
            # at the joints of its step, not at those of the step before.
            self._await_observation(now)
            self._await_history(now)
            if not self._await_action(now):
                return
        with self.obs.lock:
            q_measured, qd_measured, stamp = self.obs.joint_pos, self.obs.joint_vel, self.obs.stamp
            arm_stamps = list(self.obs.arm_stamps)
        with self._state_lock:
            if episode != self._episode_id:
                # An episode began during this tick's waits (policy/stop, then reset: the
                # lock-step wait for the action ends with the new episode's first chunk).
                # Filtering here would start the new episode's filters from this tick, a
                # second safe start of the same period when the next tick comes.
                return
            filters, guard = self._filters, self._guard
            obs_keys = self.worker.info.obs_keys
            due = None if braking is not None else self._due_target(now, q_measured)
        # No action yet this episode: leave the robot to its driver's hold, unless the episode
        # began during motion: the arms then slow down at the acceleration limit until its
        # first action comes (the last command standing asked the servo to stop in one
        # period), and go on from there.
        idle = due is None and not self.sim_time and braking is None
        if idle and not any(safety.moving for safety in filters):  # (asked only when idle)
            return
        for a, safety in enumerate(filters):
            # None until every camera has sent a frame (the filter then holds); a stalled
            # camera ages the arm's stamp
            arm_stamp = self.obs.fresh_stamp(obs_keys, arm_stamps[a])
            if arm_stamp is not None:
                safety.watchdog(arm_stamp, now)
        waiting = [
            a
            for a, safety in enumerate(filters)
            if not safety.started and not np.isfinite(q_measured[6 * a : 6 * a + 6]).all()
        ]
        if waiting:
            # An arm with no finite pose to start from has nothing to send, so nothing is
            # published. The others start again with it (a fresh anchor and ramp each): they
            # may be moved meanwhile, and a reference kept from before would let their first
            # command jump by as much. Filtering the waiting arm reports its hold.
            for a, safety in enumerate(filters):
                if a in waiting:
                    safety.filter(None, q_measured[6 * a : 6 * a + 6], now)
                else:
                    safety.restart()
            return
        commands, held = [], []
        for a, safety in enumerate(filters):
            target = None if due is None else due[0][7 * a : 7 * a + 6]
            stamp_a = None if due is None else due[1]
            safe = safety.filter(
                target,
                q_measured[6 * a : 6 * a + 6],
                now,
                command_stamp=stamp_a,
                qd_measured=qd_measured[6 * a : 6 * a + 6],
            )
            commands.append(safe.command)
            held.append(safe.held)
        if guard is not None:
            arms_at = [q_measured[6 * a : 6 * a + 6] for a in range(len(filters))]
            commands = guard.check(commands, filters, now, arms_at)
            held = [h or g for h, g in zip(held, guard.held, strict=True)]
        # Checked and published under the lock policy/stop and policy/reset take: a command
        # checked before a stop and published after its answer went out after it.
        with self._state_lock:
            if self._stopped or episode != self._episode_id:
                return  # the episode ended during this tick: its command is the old one's
            last_gripper = self._last_gripper
            for a in range(len(filters)):
                if due is not None and not held[a]:
                    gripper = float(due[0][7 * a + 6])
                    if math.isfinite(gripper) and gripper != last_gripper[a]:
                        gripper = min(max(gripper, 0.0), 1.0)
                        self.gripper_pubs[a].publish(Float64(data=gripper))
                        last_gripper[a] = gripper
            pubs = zip(self.command_pubs, self._command_msgs, strict=True)
            for (publisher, arms), msg in pubs:
                fill_command(msg, [commands[a] for a in arms])
                publisher.publish(msg)
        self.command_log.append((stamp, now))
        if braking is not None and not any(safety.moving for safety in filters):
            braking.set()

    def shutdown(self) -> None:
        """Stop the node's threads (the robot holds its last command) and destroy it."""
        self._running = False
        self._control.join(timeout=1.0)
        self.worker.close()
        if self._pending is not None:
            self._pending[1].close()
        self._inference.join(timeout=5.0)
        self._observer.join(timeout=1.0)
        self.obs.close()
        self.destroy_node()


def task_input_keys(task: str) -> list[str]:
    """The observation keys ``task`` gives beside the arms' (``target_pos``, ``object_pose``,
    ...: each has a topic of its own); none for a task name that is not one (the observation
    refuses it)."""
    from robot_il.envs.tasks import TASKS

    return list(TASKS[task]().task_keys) if task in TASKS else []


TAKEOVER_SERVICE = "policy/takeover"
"""std_srvs/SetBool: true, a person takes the arm over with the teleop device (the policy
stops, and ``policy/reset`` is refused until the hand-back); false, the hand-back (the policy
begins an episode from where the arm is)."""
ESTOP_LATCHED = "the e-stop is latched: release it (safety/reset_estop) before taking over"
"""What ``policy/takeover`` answers (success false) to a takeover while the e-stop is latched."""
TAKEN_OVER = "a person holds the arm (teleop takeover); no episode begins until the hand-back"
"""What ``policy/reset`` answers (success false) while the arm is taken over."""
NOT_TAKEN_OVER = "not taken over: nothing handed back, no episode begun"
"""What ``policy/takeover`` answers to a hand-back while nobody holds the arm."""


def reset_message(checkpoint: str) -> str:
    """What ``policy/reset`` answers: the checkpoint the new episode runs."""
    return f"new episode with {checkpoint}"


def stop_message(checkpoint: str, events: int) -> str:
    """What ``policy/stop`` answers: the checkpoint the next episode runs, and how many safety
    events were published before the answer (the last one's ``seq``: events and answer travel
    apart, and ``episode_judge`` waits until it has heard that one)."""
    return f"episode stopped; the next runs {checkpoint}; safety events published: {events}"


def read_stop_message(message: str) -> tuple[str, int]:
    """The checkpoint and the number of safety events in ``policy/stop``'s answer."""
    stopped, _, events = message.rpartition("; safety events published: ")
    return stopped.removeprefix("episode stopped; the next runs "), int(events)


def camera_settings(spec: dict, colour: str = "cameras") -> str:
    """The node parameters that serve every camera a checkpoint of ``spec`` observes, e.g.
    ``cameras:=front,wrist``; ``colour`` names the colour cameras' setting (the deploy launch
    files' argument is ``camera``)."""
    observed = spec.get("observation") or {}
    settings = []
    for parameter, prefix in ((colour, "rgb_"), ("depth_cameras", "depth_")):
        names = [key.removeprefix(prefix) for key in observed if key.startswith(prefix)]
        if names:
            settings.append(f"{parameter}:={','.join(names)}")
    return " ".join(settings)


def main(args: list[str] | None = None) -> int:
    """``ros2 run robot_il policy`` (or the ``policy`` console script)."""
    from robot_il.ros.node_main import run_node

    return run_node(PolicyNode, args)
