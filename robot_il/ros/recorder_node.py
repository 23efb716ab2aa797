"""``recorder``: writes demonstrations from ROS topics into a zarr dataset, crash-safely.

Every ``1 / record_hz`` s (the rate a policy will act at) it samples the newest observation
of the robot (:class:`robot_il.ros.observation.RobotObservation`: the env's keys for the arms
of ``task``; with ``robot_state:=true`` also a real arm's speed scaling and wrench) and the
newest command as the step's ``action`` in the env's joint mode: the 6 joint targets of
``forward_position_controller/commands`` and the gripper command (0..1) per arm (topics in
the node's arm layout, :mod:`robot_il.ros.arm_layout`); before an arm's first command it
holds, so its action is its measured pose. The step also stores ``timestamp`` (s since the
episode's first step, from the joint states' stamps).

``gripper`` names the arms' gripper as the RTDE bridge's parameter does: ``robotiq`` (the
default; also the simulated arm's 2F-85, or any gripper whose closure the joint states carry
as ``<tf_prefix>gripper_joint``) records ``<arm>_gripper``; ``''`` (arms without a gripper,
whose joint states carry none) records no such key, and an arm's gripper action before its
first gripper command is 0 (open). The action keeps its 7 values per arm either way, the
env's joint action, so a policy trained on it deploys unchanged. ``task_inputs`` (default
true) records the task's inputs (``target_pos`` from ``task/target``, ``object_pose`` from
``task/object_pose``, ...), which a simulator publishes; on a real cell only a perception node
does, so a cell without one records with ``task_inputs:=false`` (the robot's keys and
cameras).

A step is recorded once every key has a value (each camera a frame within
``camera_tolerance`` of the joint state; a NaN, an inf or a value of another shape counts as
none, as the dataset cannot hold it); until then the recorder says, every
:data:`WAIT_WARNING_S` s, which keys it waits for and where they come from. A key that stops
mid-episode (a stalled camera) leaves the episode without steps meanwhile: said while it
lasts, so that the operator can discard the episode, and in the commit's message.

Episodes go through :class:`robot_il.dataset.DatasetWriter`'s streaming writer: an episode is
visible only once committed, so a crash loses at most the episode under way; an episode the
disk does not take (full, read-only), or whose dataset folder was moved or removed meanwhile,
is discarded and said, in the log and the service's answer, and recording goes on (into a
moved folder once it is back; until then each start says why it cannot). An existing dataset
is appended to only at its own rate, task and keys (another ``record_hz``, ``task``, other
cameras or another ``gripper`` is a ``ConfigError``: one dataset has one step period, one task
and one set of keys). Control:

- services ``recorder/start``, ``recorder/stop`` (commit) and ``recorder/discard``
  (std_srvs/Trigger); ``recorder/start`` refuses (success false, the missing keys in its
  message) until every observation key has arrived, so an operator who moves the arm
  right after a successful start never loses the motion's beginning to DDS discovery or a
  late driver (``autostart`` starts at once and records from the first complete sample);
- ``teleop/episode_event`` (std_msgs/String: next, rerecord, discard, quit), what the teleop
  node publishes for the operator's episode keys: the episode is committed or discarded,
  then ``sim/reset`` is called (when a simulator offers it) and the next episode begins when
  the reset is done, with the first step whose every key was taken after it, and takes
  ``task/success`` and commands published after it only (the old scene's last ones may
  still be on their way; each arm holds until its first new command); a reset unanswered
  for :data:`RESET_TIMEOUT_S` s (a simulator that died mid-reset) is given up, said in the
  log, and a start then begins the episode; after quit the node exits.

The dataset's attrs carry ``task`` and ``action_mode`` (joint), so ``robot-il train`` reads it
like a simulated recording.

``teleop_target:=true`` (the teleoperation launch files) takes the joint action from
``teleop/joint_target``, the teleop servo's target of each device read, instead of the newest
command: the pose the operator asked for by the end of the period, as a policy's action is.
With the servo's ``servo_rate`` above the record rate (a real cell's 125 Hz) the newest command
is a point part-way through the servo's glide to that target, a label that lags it by up to a
period's motion at the phase the two timers happen to have. One arm, as the teleop servo.

``corrections:=true`` records a person's corrections of a deployed policy instead of
demonstrations (human-gated DAgger; :mod:`robot_il.select.corrections`): one episode per
takeover, from ``teleop/takeover`` true (``teleop`` with ``takeover:=true`` has stopped the
policy) to false (the hand-back), whose actions are the operator's commands only (each arm
holds until the operator's first; the gripper's action is the command in force until the
operator's first). The dataset is a corrections dataset (attrs ``kind``
``corrections``), which ``robot-il select`` fine-tunes on and which is never mixed with
demonstrations (appending one to the other is refused). No simulator reset is asked for:
the episode keys ``discard`` (drop the takeover's steps) and ``quit`` act, ``next`` and
``rerecord`` are the teleop node's own in this mode. ``checkpoint`` (the deployed one, as the
deploy launch files pass it; a bare name is looked up in ``candidates_dir``) is checked at
start: corrections it could not be fine-tuned on (another rate than ``record_hz``, an
``eef_delta`` or task-frame checkpoint, a camera it observes that is not recorded) are
refused at start, before the person corrects anything;
without a camera or image size of its own the recorder records the checkpoint's frame size.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.task import Future
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from robot_il.dataset.durability import os_error_reason
from robot_il.dataset.validate import GAP_PERIODS
from robot_il.errors import ConfigError, DatasetError, RecordingError, RobotILError
from robot_il.record.control import EpisodeEvent, parse_event
from robot_il.ros.node_main import declare_float, declare_task, log_or_print
from robot_il.ros.observation import (
    STAMP_PREFIX,
    RobotObservation,
    camera_parameters,
    is_camera_key,
    policy_image_size,
)
from robot_il.ros.quiet_node import QuietNode
from robot_il.ros.selector_node import LATCHED, candidate_path
from robot_il.ros.subscription_reader import SubscriptionReader
from robot_il.ros.ur_rtde_bridge import GRIPPERS
from robot_il.ros.ur_topics import (
    OBJECT_POSE_TOPIC,
    SUCCESS_TOPIC,
    TAKEOVER_TOPIC,
    TARGET_TOPIC,
    TELEOP_TARGET_TOPIC,
    task_input_topic,
    tf_prefix,
)

EVENT_TOPIC = "teleop/episode_event"
"""std_msgs/String: the operator's episode events (next, rerecord, discard, quit)."""
WAIT_WARNING_S = 5.0
"""s between two warnings that no step could be recorded (first after one second)."""
RESET_TIMEOUT_S = 15.0
"""s the recorder waits for ``sim/reset``'s answer before it gives the reset up (a simulator
that died or hangs mid-reset never answers, and every start then waited for it): over
sim_robot's own 10 s limit on a reset, after which it answers that the reset failed, so a live
simulator's answer always comes first; the episode judge waits as long for it."""


class RecorderNode(QuietNode):
    """Records episodes; see the module docstring for topics, services and parameters."""

    def __init__(
        self,
        node_name: str = "recorder",
        *,
        context: Context | None = None,
        parameter_overrides: list[Parameter] | None = None,
    ) -> None:
        super().__init__(node_name, context=context, parameter_overrides=parameter_overrides)
        path = self.declare_parameter("path", "").value
        checkpoint = str(self.declare_parameter("checkpoint", "").value)
        task = declare_task(self)
        self.record_hz = declare_float(self, "record_hz", 20.0)
        self.corrections = bool(self.declare_parameter("corrections", False).value)
        candidates_dir = str(self.declare_parameter("candidates_dir", "").value)
        trained = None
        if self.corrections and checkpoint:
            from robot_il.policies import read_checkpoint

            trained = read_checkpoint(candidate_path(checkpoint, candidates_dir))[1]["spec"]
        # The checkpoint's frame size, unless image_size says otherwise (as the policy node).
        frame = policy_image_size(trained.get("observation") or {}) if trained else None
        cameras = camera_parameters(self, frame)
        image_codec = str(self.declare_parameter("image_codec", "jpegxl").value)
        image_quality = int(self.declare_parameter("image_quality", 0).value)
        overwrite = bool(self.declare_parameter("overwrite", False).value)
        fsync = bool(self.declare_parameter("fsync", True).value)
        autostart = bool(self.declare_parameter("autostart", False).value)
        gripper = str(self.declare_parameter("gripper", "robotiq").value)
        task_inputs = bool(self.declare_parameter("task_inputs", True).value)
        teleop_target = bool(self.declare_parameter("teleop_target", False).value)
        if not path:
            what = (
                "the corrections dataset to write: corrections:= on deploy_sim and "
                "deploy_ur5e, finetune_corrections:= on deploy_select_sim"
                if self.corrections
                else "the zarr dataset to write"
            )
            raise ConfigError(f"recorder: set the parameter path ({what})")
        if not 0 < self.record_hz <= 500:
            raise ConfigError(f"recorder: record_hz {self.record_hz} is not in (0, 500]")
        if self.corrections and autostart:
            raise ConfigError(
                "recorder: corrections:=true records the takeovers only; autostart:=true "
                "would record the policy's own steps as corrections (set it false)"
            )
        if gripper not in GRIPPERS:
            raise ConfigError(
                f"recorder: gripper {gripper!r} is not one of {GRIPPERS} ('': arms without one)"
            )

        from robot_il.dataset import Dataset, DatasetWriter, ImageStorage

        append = Path(path).exists() and not overwrite
        from robot_il.select.corrections import CORRECTIONS_KIND

        attrs = {"task": task, "action_mode": "joint", "source": "ros"}
        if self.corrections:
            attrs["kind"] = CORRECTIONS_KIND
        if append:
            held = Dataset.open(path)
            control_hz = held.control_hz
            if control_hz is None or not math.isclose(control_hz, self.record_hz):
                raise ConfigError(
                    f"recorder: record_hz {self.record_hz:g} Hz, but {path} holds steps of "
                    f"{control_hz} Hz; record at record_hz:={control_hz} to append, or into "
                    "another dataset (one dataset has one rate)"
                )
            for name in ("task", "action_mode", "kind"):  # one set of keys; never mixed
                if held.attrs.get(name) != attrs.get(name):
                    raise ConfigError(
                        f"recorder: {path} holds {name} {held.attrs.get(name)!r}, this recorder "
                        f"records {name} {attrs.get(name)!r}; record into another dataset (one "
                        "dataset has one task and one action mode, and corrections are kept "
                        "apart from demonstrations)"
                    )
        robot_state = bool(self.declare_parameter("robot_state", False).value)
        self.obs = RobotObservation(self, task, **cameras, robot_state=robot_state)
        self.arms = self.obs.arms
        if teleop_target and len(self.arms) != 1:
            raise ConfigError(
                f"recorder: teleop_target:=true takes the action from the teleop servo, which "
                f"drives one arm; task {task!r} has {len(self.arms)}"
            )
        self.has_gripper = bool(gripper)
        self._gripper_keys = {tf_prefix(arm) + "gripper" for arm in self.arms}
        from robot_il.envs.tasks import TASKS

        self._task_keys = set(TASKS[task]().task_keys)
        left_out = (set() if self.has_gripper else self._gripper_keys) | (
            set() if task_inputs else self._task_keys
        )
        self.keys = {key: shape for key, shape in self.obs.keys.items() if key not in left_out}
        """The observation keys of a step: the robot's, but a gripper's only if it has one,
        and the task's inputs only with ``task_inputs``."""
        if self.corrections:  # checked against the candidates before anything is recorded
            attrs["spec"] = {
                "robot": "ur5e",
                "control_hz": self.record_hz,
                "action_mode": "joint",
                "action_dim": 7 * len(self.arms),
                "observation": {key: list(shape) for key, shape in self.keys.items()},
            }
            if trained is not None:  # before the person corrects, not at the fine-tuning
                from robot_il.select.corrections import check_corrections_fit

                check_corrections_fit(
                    attrs["spec"], trained, f"recorder: the deployed checkpoint {checkpoint}"
                )
        try:  # a read-only folder or a file on the path: one line, not a traceback
            if append:
                self.writer = DatasetWriter.open(path, fsync=fsync)
            else:
                self.writer = DatasetWriter.create(
                    path,
                    robot="ur5e",
                    control_hz=self.record_hz,
                    attrs=attrs,
                    overwrite=overwrite,
                    fsync=fsync,
                    image_storage=ImageStorage(image_codec, image_quality or None),
                )
        except OSError as error:
            raise RecordingError(f"recorder: cannot write {path}: {error.strerror}") from error
        if append:
            self._refuse_other_keys(path)
            try:  # the meta every commit writes (a bool success, a str task)
                self.writer.check_meta({"task": task, "success": False})
            except DatasetError as error:
                raise ConfigError(
                    f"recorder: appending to {path}: {error}; record into another dataset"
                ) from None
        self._episodes_before = self.writer.num_episodes
        """The dataset's episodes when the node started (its summary at shutdown)."""
        self.task = task
        self.path = path
        self._lock = threading.Lock()
        self._episode = None
        self._skipped = 0
        """Samples in a row that could not be recorded (a key missing or stale)."""
        self._last_stamp: float | None = None
        """Stamp (s) of the episode's last recorded step."""
        self._gap: tuple[float, float, list[str]] | None = None
        """The episode's longest gap between recorded steps, if over ``GAP_PERIODS`` periods
        (as robot-il data validate notes it): its length (s), its start (s into the episode)
        and the keys it waited for."""
        self._gap_keys: list[str] = []
        """The keys the samples skipped since the last recorded step waited for."""
        self._joint_commands: list[np.ndarray | None] = [None] * len(self.arms)
        self._grippers: list[float | None] = [None] * len(self.arms)
        self._success = False
        self._since_ns = 0
        """DDS source time (ns, the system clock) from which ``task/success`` and the
        commands count: the end of a simulator's reset (which drops commands sent before it
        too), else 0."""
        self._reset_future: Future | None = None
        """The ``sim/reset`` call in flight, whose end begins the next episode."""
        self._reset_deadline = 0.0
        """Monotonic time (s) at which the ``sim/reset`` call in flight is given up."""
        self._reset_mark: tuple[float, dict[str, np.ndarray]] | None = None
        """The node's time (s) and observation when a simulator's reset ended, until the
        episode's first step: every key of a step must have been taken after it."""
        self._t0: float | None = None

        qos = QoSProfile(depth=10)
        # Commands come at up to 500 Hz (a policy node's control loop, the teleop servo's
        # joints and gripper): taken by the executor, each held the interpreter for half a
        # millisecond (subscription_reader). Their callbacks hold the lock for all they share.
        self._command_reader = SubscriptionReader(self, f"{self.get_name()}-commands")
        # The joint action's source: the teleop servo's target, or each command topic's arms.
        sources = (
            [(TELEOP_TARGET_TOPIC, (0,))]
            if teleop_target
            else [(topic.name, topic.arms) for topic in self.obs.layout.command_topics()]
        )
        for name, arms in sources:
            self._command_reader.subscribe(
                Float64MultiArray,
                name,
                lambda m, info, a=arms: self._on_command(a, m, info),
                qos,
            )
        for index in range(len(self.arms)):
            self._command_reader.subscribe(
                Float64,
                self.obs.layout.gripper_topic(index),
                lambda m, info, i=index: self._on_gripper(i, m, info),
                qos,
            )
        self.create_subscription(Bool, SUCCESS_TOPIC, self._on_success, qos)
        self.create_subscription(String, EVENT_TOPIC, self._on_event, qos)
        if self.corrections:
            self.create_subscription(Bool, TAKEOVER_TOPIC, self._on_takeover, LATCHED)
        self.create_service(Trigger, "recorder/start", self._service(self.start_observed))
        self.create_service(Trigger, "recorder/stop", self._service(self.stop))
        self.create_service(Trigger, "recorder/discard", self._service(self.discard))
        # Its own group: a reset call made from an event callback is answered meanwhile.
        self.sim_reset = self.create_client(
            Trigger, "sim/reset", callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.create_timer(1.0 / self.record_hz, self._sample)
        self.create_timer(1.0, self._give_up_lost_reset)
        if autostart:
            self.start()
        self._command_reader.start()
        self.get_logger().info(
            f"recording {task} at {self.record_hz:g} Hz into {path} "
            f"({self.writer.num_episodes} episodes so far)"
        )

    def _refuse_other_keys(self, path: str) -> None:
        """``ConfigError`` unless the steps of the dataset being appended to (if any) have
        the keys this recorder writes, of its shapes: a step with other keys or shapes (frames
        of another size) fails at its first append."""
        held = self.writer.keys
        stamps = {STAMP_PREFIX + key for key in self.keys if is_camera_key(key)}
        written = {*self.keys, *stamps, "action", "timestamp"}
        if held and set(held) != written:
            differ = {"adding": written - set(held), "dropping": set(held) - written}
            changes = [f"{change} {sorted(keys)}" for change, keys in differ.items() if keys]
            raise ConfigError(
                f"recorder: appending to {path} would change its keys ({', '.join(changes)}); "
                "record with its cameras, robot_state and gripper, or into another dataset "
                "(one dataset has one set of keys)"
            )
        for key, shape in self.keys.items():  # one shape per key: a step of another fails
            if key in held and held[key].shape != tuple(shape):
                raise ConfigError(
                    f"recorder: appending to {path} would change the shape of {key} from "
                    f"{held[key].shape} to {tuple(shape)}; record with its image_size, or into "
                    "another dataset"
                )

    # -- topics --------------------------------------------------------------------------

    def _on_command(self, arms: tuple[int, ...], msg: Float64MultiArray, info: dict) -> None:
        values = np.array(msg.data, dtype=np.float64)
        if values.shape != (6 * len(arms),) or not np.all(np.isfinite(values)):
            return
        # Checked and stored in one hold of the lock: the end of a simulator's reset (an
        # executor's thread) moves the cut-off and empties the commands between the two.
        with self._lock:
            if info["source_timestamp"] < self._since_ns:
                return  # the old scene's, sent before the simulator's reset
            for i, a in enumerate(arms):
                self._joint_commands[a] = values[6 * i : 6 * i + 6]

    def _on_gripper(self, index: int, msg: Float64, info: dict) -> None:
        with self._lock:  # as _on_command
            if info["source_timestamp"] >= self._since_ns and np.isfinite(msg.data):
                self._grippers[index] = min(max(float(msg.data), 0.0), 1.0)

    def _on_success(self, msg: Bool, info: dict) -> None:
        with self._lock:
            if info["source_timestamp"] >= self._since_ns:
                self._success = self._success or bool(msg.data)

    def _on_event(self, msg: String) -> None:
        try:
            event = parse_event(msg.data)
        except ValueError as error:
            self.get_logger().error(f"{EVENT_TOPIC}: {error}")
            return
        if self.corrections and event in (EpisodeEvent.NEXT, EpisodeEvent.RERECORD):
            return  # the teleop node's hand-back; takeovers begin and end the episodes
        keep = event in (EpisodeEvent.NEXT, EpisodeEvent.QUIT)
        self._say(f"{event.value}: ", self.stop if keep else self.discard)
        if event is EpisodeEvent.QUIT:
            self.context.try_shutdown()  # the session is over: the node exits (and the launch)
            return
        if not self.corrections:  # a takeover begins the next correction
            self._next_episode(same_scene=event is EpisodeEvent.RERECORD)

    def _on_takeover(self, msg: Bool) -> None:
        """Corrections: a takeover begins an episode, the hand-back commits it. The arms hold
        until the operator's first command: a joint command sent before (the policy's last
        one) is not the operator's action. The gripper command in force stays the action
        until the operator's first: the teleop node leaves the gripper as the policy left it,
        and its measured opening (part-way, closed on an object) is no command."""
        if not msg.data:
            if self._episode is not None:  # (the teleop node announces none at its start)
                self._say("hand-back: ", self.stop)
            return
        self._say("takeover: ", self._begin_takeover)

    def _begin_takeover(self) -> str:
        """Begin a correction's episode, whose commands are the operator's from now on."""
        with self._lock:
            message = self._begin()
            self._since_ns = time.time_ns()
            self._joint_commands = [None] * len(self.arms)
        return message

    def _say(self, what: str, action: Callable[[], str]) -> None:
        """Log the answer of ``action`` (an episode's begin, commit or discard, run from a
        callback) after ``what``; a ``RobotILError`` (a commit the disk did not take, a
        dataset folder moved away) is logged as an error and the session goes on, where
        raised it would end the node's spin."""
        try:
            self.get_logger().info(f"{what}{action()}")
        except RobotILError as error:
            self.get_logger().error(f"{what}{error}")

    def _next_episode(self, same_scene: bool) -> None:
        """Begin the next episode: at once on a real robot; with a simulator that offers
        ``sim/reset``, when its reset of the scene is done (:meth:`_on_reset_done`).
        ``same_scene`` cannot be honoured by the simulator's reset and is logged."""
        if not self.sim_reset.service_is_ready():
            self._say("", self.start)
            return
        if same_scene:
            self.get_logger().info("re-record: the simulator starts a new scene")
        future = self.sim_reset.call_async(Trigger.Request())
        with self._lock:
            self._reset_future = future
            self._reset_deadline = time.monotonic() + RESET_TIMEOUT_S
        future.add_done_callback(self._on_reset_done)

    def _give_up_lost_reset(self) -> None:
        """Give up a ``sim/reset`` call unanswered for :data:`RESET_TIMEOUT_S` s (the
        simulator died or hangs mid-reset), saying so once: no episode begins by itself, and
        a start begins one (without the reset), "next" asks for a reset again."""
        with self._lock:
            future = self._reset_future
            if future is None or future.done() or time.monotonic() < self._reset_deadline:
                return  # none, answered (its callback begins the episode), or not yet due
            self._reset_future = None
        self.sim_reset.remove_pending_request(future)  # a late answer then begins nothing
        self.get_logger().error(
            f"{self.sim_reset.srv_name} has not answered in {RESET_TIMEOUT_S:g} s (the "
            "simulator died or hangs mid-reset); no episode begins: recorder/start begins "
            "one, next asks for a reset again"
        )

    def _on_reset_done(self, future: Future) -> None:
        """Begin the episode of the scene the simulator has just reset to. Its old scene's
        last messages may still be on their way (queued behind the commit, or sent before
        the reset and not yet delivered): the episode takes steps whose every key was taken
        after this moment, and ``task/success`` published after it."""
        response = future.result()
        if response is None or not response.success:
            why = "no answer" if response is None else response.message
            self.get_logger().error(f"sim/reset failed ({why}); the episode begins anyway")
        with self._lock:
            if future is not self._reset_future:
                return  # an event or stop since: the episode is a later reset's, or none
            self._reset_future = None
            try:
                message = self._begin()
            except RobotILError as error:  # raised, it would end the node's spin
                message = None
                self.get_logger().error(str(error))
            else:
                self._since_ns = time.time_ns()
                self._reset_mark = (self._now(), self.obs.snapshot()[0])
                # The simulator dropped its targets: each arm holds until its first command.
                self._joint_commands = [None] * len(self.arms)
                self._grippers = [None] * len(self.arms)
        if message is not None:
            self.get_logger().info(message)

    # -- episodes ------------------------------------------------------------------------

    def _service(self, action):
        def call(request, response):
            try:
                response.message = action()
                response.success = True
            except RobotILError as error:
                response.success, response.message = False, str(error)
            return response

        return call

    def start(self) -> str:
        """Begin an episode (the episode under way, if any, goes on; while the simulator
        resets, its reset's end begins the next one)."""
        with self._lock:
            if self._reset_future is not None:
                return "the next episode begins when the simulator's reset is done"
            return self._begin()

    def _begin(self) -> str:
        """Begin an episode, unless one is under way (call with the lock held)."""
        if self._episode is not None:
            episode = self._episode
            return f"episode {episode.episode} is already recording ({episode.num_steps} steps)"
        self._episode = self.writer.begin_episode()
        self._success, self._skipped, self._t0 = False, 0, None
        self._last_stamp, self._gap, self._gap_keys = None, None, []
        self._since_ns, self._reset_mark = 0, None
        return f"recording episode {self._episode.episode}"

    def start_observed(self) -> str:
        """``start`` once every observation key has arrived; ``RecordingError`` naming the
        missing ones before that (the ``recorder/start`` service)."""
        values, stamp = self.obs.snapshot()
        missing = self._missing(values, stamp)
        if missing:
            raise RecordingError(f"recorder: nothing recorded yet, observation keys {missing} "
                                 "have not arrived; start again once they do"
                                 f"{self._hint(missing, stamp)}")  # fmt: skip
        return self.start()

    def _missing(self, values: dict[str, np.ndarray], stamp: float | None) -> list[str]:
        """The keys of a step that ``values`` (a snapshot of ``stamp``) cannot fill: no value
        yet, or for a camera no frame within ``camera_tolerance`` of ``stamp``."""
        return sorted(key for key in self.keys if self.obs.select(values, (key,), stamp) is None)

    def _hint(self, missing: list[str], stamp: float | None) -> str:
        """Why the ``missing`` keys of a step of ``stamp`` (s, the joint state's) are missing,
        when that is not the robot's joint states: a camera's frames too far behind them (a
        stalled camera), ahead of them (another clock) or in a hole of them, arms without a
        gripper, a cell without the task's inputs."""
        hints = []
        newest_state = self.obs.stamp if self.obs.stamp is not None else stamp
        for key in missing:
            newest = self.obs.frames[key].newest if key in self.obs.frames else None
            if newest is not None and newest_state is not None:
                hints.append(f"the newest frame of {key} is "
                             f"{self._frame_lag(newest_state - newest.stamp)}")  # fmt: skip
        if self._gripper_keys & set(missing):
            hints.append("no gripper_joint in the joint states: record arms without one with "
                         "gripper:=''")  # fmt: skip
        inputs = sorted(self._task_keys & set(missing))
        if inputs:
            topics = ", ".join(f"{key} on {_input_topic(key)}" for key in inputs)
            hints.append(f"the task's inputs come from a simulator or a perception node "
                         f"({topics}): record a cell without them with "
                         "task_inputs:=false")  # fmt: skip
        return f" ({'; '.join(hints)})" if hints else ""

    def _frame_lag(self, lag: float) -> str:
        """Why a camera's newest frame, ``lag`` s older than the newest joint state, is paired
        with none (:class:`RobotObservation`'s pairing)."""
        obs = self.obs
        if lag > obs.max_camera_lag:
            return (f"{lag:.3f} s behind the joint states, over max_camera_lag "
                    f"{obs.max_camera_lag:g} s (a stalled camera)")  # fmt: skip
        if lag < -obs.camera_tolerance:
            return (f"stamped {-lag:.3f} s ahead of the joint states (the camera's clock and "
                    "theirs differ)")  # fmt: skip
        return (f"not within camera_tolerance {obs.camera_tolerance:g} s of a joint state (a "
                "hole in the joint states, or cameras out of step)")  # fmt: skip

    def stop(self) -> str:
        """Commit the episode under way (a simulator reset under way then begins none)."""
        with self._lock:
            episode, self._episode, self._reset_future = self._episode, None, None
            if episode is None:
                return "no episode under way"
            if episode.num_steps == 0:
                episode.discard()
                return "empty episode discarded"
            try:
                index = episode.commit({"task": self.task, "success": self._success})
            except (OSError, DatasetError) as error:
                raise self._write_failed(episode, error) from error
            committed = f"episode {index} committed ({episode.num_steps} steps)"
            if self._gap is None:
                return committed
            length, at, keys = self._gap
            return (f"{committed}, with a gap: no step for {length:.2f} s from t={at:.2f} s, "
                    f"waiting for {keys}; if the arm moved meanwhile, drop it with robot-il "
                    f"data drop-episode {self.path} {index}")  # fmt: skip

    def _write_failed(self, episode, error: OSError | DatasetError) -> RecordingError:
        """Discard ``episode``, which the disk did not take (full, read-only, a lost mount)
        or the writer refused (its folder moved away), and say so: the episodes committed
        before it are intact, and the next one is written afresh (the writer holds no
        episode in flight). An episode the writer counts was committed and only the disk's
        flush after it failed: said as the writer says it, never as discarded."""
        episode.discard()
        if self.writer.num_episodes > episode.episode:  # visible: only its last flush failed
            return RecordingError(f"recorder: {error}")
        # What the disk refused, said once: the writer's error (the episode is not committed)
        # wraps the OSError, and this line says the rest.
        cause = error.__cause__ if isinstance(error, DatasetError) else error
        why = (
            os_error_reason(cause, self.path) or cause.strerror
            if isinstance(cause, OSError)
            else str(error)
        )
        return RecordingError(
            f"recorder: episode {episode.episode} could not be written to {self.path} "
            f"({why}); it is discarded, the committed episodes are intact"
        )

    def discard(self) -> str:
        """Drop the episode under way (a simulator reset under way then begins none)."""
        with self._lock:
            episode, self._episode, self._reset_future = self._episode, None, None
            if episode is None:
                return "no episode under way"
            episode.discard()
            return f"episode {episode.episode} discarded"

    def _now(self) -> float:
        """Seconds on the node's clock (the joint states' stamps' clock: system or /clock)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _sample(self) -> None:
        with self._lock:
            mark = self._reset_mark
        stale = [] if mark is None else self.obs.stale_keys(self.keys, *mark)
        values, stamp = self.obs.snapshot()
        frame = None if stale else self.obs.select(values, self.keys, stamp, with_stamps=True)
        with self._lock:
            if self._episode is None or self._reset_mark is not mark:
                return  # none under way, or one begun meanwhile (checked against another scene)
            if frame is None or stamp is None:
                self._skip(stale or self._missing(values, stamp), bool(stale), stamp)
                return
            if self._last_stamp is not None and stamp <= self._last_stamp:
                return  # nothing new since the last step (a camera slower than record_hz)
            unfit = self._unfit(frame)
            if unfit:  # appending it would raise, and end the spin with the episode under way
                why = "; ".join(f"{key} {reason}" for key, reason in sorted(unfit.items()))
                self._skip(sorted(unfit), False, stamp, f" ({why})")
                return
            self._reset_mark = None  # the new scene's, every key: it is recorded from here on
            frame["action"] = self._action(values)
            if self._t0 is None:
                self._t0 = stamp
            self._note_gap(stamp)
            frame["timestamp"] = np.array(stamp - self._t0, dtype=np.float64)
            for key in [k for k in frame if k.startswith(STAMP_PREFIX)]:  # capture times
                frame[key] = np.array(frame[key] - self._t0, dtype=np.float64)
            try:
                self._episode.append(frame)
            except (OSError, DatasetError) as error:  # camera frames are written as they come
                episode, self._episode = self._episode, None
                self.get_logger().error(str(self._write_failed(episode, error)))

    def _skip(
        self, waiting: list[str], stale: bool, stamp: float | None, why: str | None = None
    ) -> None:
        """Count a sample of ``stamp`` (s) that could not be recorded for want of ``waiting``
        (``stale``: the keys hold the old scene's values; ``why``: the warning's reason, by
        default :meth:`_hint`'s), and warn once no step has been recorded for a second, then
        every ``WAIT_WARNING_S`` s while it lasts (call with the lock held)."""
        self._skipped += 1
        self._gap_keys = sorted({*self._gap_keys, *waiting})
        if self._skipped < self.record_hz:
            return
        after = " taken after the simulator's reset" if stale else ""
        if self._last_stamp is not None:  # mid-episode: the operator may not want a gap
            waited = self._skipped / self.record_hz
            after += (f"; the episode under way has no step for {waited:.1f} s: discard it "
                      "if the arm moves meanwhile")  # fmt: skip
        self.get_logger().warning(
            f"waiting for observation keys {waiting}{after}"
            f"{self._hint(waiting, stamp) if why is None else why}",
            throttle_duration_sec=WAIT_WARNING_S,
        )

    def _unfit(self, frame: dict[str, np.ndarray]) -> dict[str, str]:
        """The observation keys of ``frame`` whose value a dataset cannot hold, and why: a
        NaN or inf (a perception node that lost the object) or another shape than the key's
        (a task input of another length)."""
        unfit = {}
        for key, shape in self.keys.items():
            value = frame[key]
            if value.shape != tuple(shape):
                unfit[key] = f"has shape {value.shape}, not {tuple(shape)}"
            elif value.dtype.kind == "f" and not np.isfinite(value).all():
                unfit[key] = "holds NaN or inf"
        return unfit

    def _note_gap(self, stamp: float) -> None:
        """Keep the episode's longest gap between recorded steps ending at ``stamp`` (s)."""
        last, self._last_stamp = self._last_stamp, stamp
        gap, keys, self._skipped, self._gap_keys = stamp - (last or stamp), self._gap_keys, 0, []
        if gap > GAP_PERIODS / self.record_hz and (self._gap is None or gap > self._gap[0]):
            self._gap = (gap, last - self._t0, keys)

    def _action(self, values: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        for index, arm in enumerate(self.arms):
            p = tf_prefix(arm)
            q = self._joint_commands[index]
            if q is None:
                q = values[p + "joint_pos"]
            gripper = self._grippers[index]
            if gripper is None:  # no command yet: as it is, open without a gripper
                gripper = float(values[p + "gripper"][0]) if self.has_gripper else 0.0
            parts.append(np.append(q, gripper))
        return np.concatenate(parts).astype(np.float32)

    def shutdown(self) -> None:
        """Discard the episode under way (it was never committed), say what the dataset
        holds (a Ctrl-C must not drop an episode's steps without a word), and close it."""
        self._command_reader.close()
        with self._lock:
            episode = self._episode
        self.discard()
        lost = ""
        if episode is not None and episode.num_steps:
            lost = (f"episode {episode.episode} under way discarded ({episode.num_steps} steps; "
                    "next or quit commits an episode, recorder/stop too), ")  # fmt: skip
        kept = self.writer.num_episodes
        summary = (f"stopped: {lost}{kept} episodes in {self.path}, "
                   f"{kept - self._episodes_before} of them recorded now")  # fmt: skip
        log_or_print(self, summary)
        self.writer.close()
        self.obs.close()
        self.destroy_node()


def _input_topic(key: str) -> str:
    """The topic the task input ``key`` is read from (:class:`RobotObservation`)."""
    return {"target_pos": TARGET_TOPIC, "object_pose": OBJECT_POSE_TOPIC}.get(
        key, task_input_topic(key)
    )


def main(args: list[str] | None = None) -> int:
    """``ros2 run robot_il recorder`` (or the ``recorder`` console script)."""
    from robot_il.ros.node_main import run_node

    return run_node(RecorderNode, args)
