"""The policy node's control thread under faults, and its inference thread at an episode's
start and when slower than a policy period, over real rclpy and loopback DDS: the node runs in
this process (so the test sees its threads), a real checkpoint drives it, and the test plays
the robot driver, publishing the arm's joint states."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Iterator

import numpy as np
import pytest
from deploy_helpers import UR_JOINTS, Client, constant_checkpoint, spinning, wait_for
from robot_il.envs.ur5e.description import HOME_JOINT_POS

pytestmark = pytest.mark.ros


class Driver:
    """Joint states of one arm (joint names after ``tf_prefix``) at :attr:`position` (rad,
    from ``position``, home by default), stamped now, every 5 ms while not :attr:`paused`."""

    def __init__(
        self, client: Client, tf_prefix: str = "", position: np.ndarray = HOME_JOINT_POS
    ) -> None:
        from sensor_msgs.msg import JointState

        self.position = np.array(position, dtype=np.float64)
        self.paused = False
        self._publisher = client.publisher(JointState, "joint_states")
        self._clock = client.node.get_clock()
        self._msg = JointState(name=[tf_prefix + joint for joint in UR_JOINTS])
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            if not self.paused:
                self._msg.header.stamp = self._clock.now().to_msg()
                self._msg.position = self.position.tolist()
                self._publisher.publish(self._msg)
            time.sleep(0.005)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)


class FollowingDriver(Driver):
    """An arm that follows the node's commands as a servo with a lag of ``lag`` s (servoJ's
    lookahead), reporting its velocity: a moving arm trails its command by ``lag`` times its
    speed."""

    def __init__(self, client: Client, lag: float = 0.1) -> None:
        from std_msgs.msg import Float64MultiArray

        self.lag = lag
        self.commands = client.record(Float64MultiArray, "forward_position_controller/commands")
        super().__init__(client)

    def _run(self) -> None:
        last = time.monotonic()
        while self._running:
            now = time.monotonic()
            if self.commands:
                lead = np.array(self.commands[-1][1].data) - self.position
                self._msg.velocity = (lead / self.lag).tolist()
                self.position = self.position + lead * min(1.0, (now - last) / self.lag)
            last = now
            self._msg.header.stamp = self._clock.now().to_msg()
            self._msg.position = self.position.tolist()
            self._publisher.publish(self._msg)
            time.sleep(0.005)


class TimeTellingDriver(Driver):
    """Joint states whose wrist_3 position tells when each was published: home plus the
    seconds (system clock, the node's) since :attr:`started`."""

    def __init__(self, client: Client) -> None:
        self.started = time.time()
        super().__init__(client)

    def _run(self) -> None:
        while self._running:
            now = self._clock.now()
            self.position[5] = HOME_JOINT_POS[5] + now.nanoseconds * 1e-9 - self.started
            self._msg.header.stamp = now.to_msg()
            self._msg.position = self.position.tolist()
            self._publisher.publish(self._msg)
            time.sleep(0.005)


@contextlib.contextmanager
def policy_node(
    context,
    directory,
    tf_prefixes: tuple[str, ...] = (),
    steer: float = 0.2,
    n_obs_steps: int = 1,
    **parameter_values: object,
) -> Iterator[object]:
    """A policy node (100 Hz control, and ``parameter_values``) deploying a checkpoint that
    steers each arm's base joint ``steer`` rad from home (observing ``n_obs_steps`` steps),
    spun on its own thread; two arms with ``tf_prefixes`` (the per-arm controller layout),
    else one."""
    from rclpy.parameter import Parameter

    from robot_il.ros.policy_node import PolicyNode

    arm_target = np.append(HOME_JOINT_POS + [steer, 0, 0, 0, 0, 0], 0.0)
    parameters = [Parameter("control_rate", value=100.0)]
    parameters += [Parameter(name, value=value) for name, value in parameter_values.items()]
    if tf_prefixes:
        target = np.tile(arm_target, len(tf_prefixes))
        checkpoint = constant_checkpoint(directory / "steer", target, task="bimanual_handover")
        parameters += [
            Parameter("task", value="bimanual_handover"),
            Parameter("tf_prefixes", value=list(tf_prefixes)),
            Parameter("controller_layout", value="per_arm"),
        ]
    else:
        checkpoint = constant_checkpoint(directory / "steer", arm_target, n_obs_steps=n_obs_steps)
    parameters.append(Parameter("checkpoint", value=str(checkpoint)))
    node = PolicyNode(context=context, parameter_overrides=parameters)
    with spinning(node, context):
        yield node


def test_nonfinite_joint_readings_at_an_estop_reset_wait_for_finite_ones(
    ros_context, tmp_path
) -> None:
    """After an e-stop reset the filter restarts from the measured pose; a NaN reading then
    once raised in the control thread, which died while the node looked alive. The start now
    waits, publishing nothing, and starts from the first finite reading."""
    from std_msgs.msg import Bool, Float64MultiArray, String
    from std_srvs.srv import Trigger

    with policy_node(ros_context, tmp_path) as node:
        client = Client(ros_context)
        driver = Driver(client)
        try:
            commands = client.record(Float64MultiArray, "forward_position_controller/commands")
            events = client.record(String, "safety/events")
            estop = client.publisher(Bool, "safety/estop")

            def kinds(since: float) -> set[str]:
                return {json.loads(r[1].data)["kind"] for r in events if r.sent >= since}

            wait_for(lambda: len(commands) > 20, 60, "the policy's commands")
            pressed = time.time()
            estop.publish(Bool(data=True))
            wait_for(lambda: "estop" in kinds(pressed), 10, "the e-stop's event")
            nan_at = time.time()
            driver.position = HOME_JOINT_POS.copy()
            driver.position[3] = np.nan  # the driver reports a NaN wrist
            wait_for(lambda: "nonfinite_measurement" in kinds(nan_at), 10, "the NaN's event")
            assert client.call(Trigger, "safety/reset_estop").success
            released = time.time()
            time.sleep(0.3)
            assert node._control.is_alive(), "the control thread died"
            sent = [r for r in commands if r.sent > released + 0.05]
            assert not sent, "a command went out with no finite pose to start from"

            moved = HOME_JOINT_POS + [0.0, 0.0, 0.0, 0.1, 0.0, 0.0]  # moved by hand meanwhile
            finite = time.time()
            driver.position = moved
            wait_for(lambda: any(r.sent > finite for r in commands), 10, "commands again")
            first = next(np.array(r[1].data) for r in commands if r.sent > finite)
            np.testing.assert_allclose(first, moved, atol=1e-3)  # a safe start where it is
            wait_for(lambda: "safe_start" in kinds(finite), 10, "the safe start's event")
        finally:
            driver.close()
            client.close()


def test_a_failing_control_tick_shuts_the_node_down(own_context, tmp_path, capfd) -> None:
    """Whatever fails in the control thread ends the node with a fatal log line, as the RTDE
    bridge's servo thread does, and the process exits with code 1: a node whose control thread
    died and that went on looking alive left the robot without commands and its operator
    without a word."""

    def fail(now: float) -> None:  # an unforeseen error (none is known once defects are fixed)
        raise RuntimeError("injected failure")

    with policy_node(own_context, tmp_path) as node:
        time.sleep(0.1)
        assert node._control.is_alive()
        node._control_tick = fail
        wait_for(lambda: not node._control.is_alive(), 5, "the control thread to end")
        wait_for(lambda: not own_context.ok(), 5, "the node's context to shut down")
        assert isinstance(node.fatal_error, RuntimeError)  # run_node's exit code 1
    assert "control loop failed: RuntimeError('injected failure')" in capfd.readouterr().err


def test_an_arm_waiting_for_the_other_starts_again_where_it_was_moved(
    ros_context, tmp_path
) -> None:
    """Two arms, one with no finite pose yet (its driver not connected): nothing is sent,
    and the arm that could start must start again with it, from where it then is. Kept on
    its first anchor, an arm moved meanwhile (freedrive, the pendant) was commanded back
    there in one step, past every limit, with its safe-start ramp already spent."""
    from std_msgs.msg import Float64MultiArray, String

    with policy_node(ros_context, tmp_path, tf_prefixes=("alice_", "bob_")) as node:
        client = Client(ros_context)
        # bob's driver sends no finite pose from its first message (set after the start, a
        # home pose could reach the node first on a loaded machine and start bob)
        alice, bob = Driver(client, "alice_"), Driver(client, "bob_", np.full(6, np.nan))
        try:
            commands = client.record(
                Float64MultiArray, "alice_forward_position_controller/commands"
            )
            events = client.record(String, "safety/events")
            wait_for(
                lambda: any(
                    json.loads(r[1].data)["kind"] == "nonfinite_measurement" for r in events
                ),
                60,
                "bob's hold",
            )
            time.sleep(0.3)  # alice anchors and waits
            moved = HOME_JOINT_POS + [0.5, 0, 0, 0, 0, 0]
            alice.position = moved
            time.sleep(0.3)
            assert not commands, "a command went out while bob had no pose"
            bob.position = HOME_JOINT_POS.copy()
            wait_for(lambda: len(commands) > 0, 10, "alice's first command")
            first = np.array(commands[0][1].data)
            max_step = node._filters[0].limits.max_step  # rad in one period, at most
            assert np.all(np.abs(first - moved) <= max_step), first - moved
        finally:
            alice.close()
            bob.close()
            client.close()


def test_a_reset_during_motion_goes_on_from_the_command_the_arm_follows(
    ros_context, tmp_path
) -> None:
    """``policy/reset`` while the arm moves (a judge, a script, a checkpoint switch, a
    hand-back): the new episode's filters started from the measured pose, which trails the
    moving command by the servo's lag, so the command jumped back by it (0.028 rad at 1.3
    rad/s on the simulated arm, 0.3 rad at full speed on servoJ's 0.1 s lookahead),
    reversing the arm. They now go on from the command the arm follows."""
    from std_srvs.srv import Trigger

    with policy_node(ros_context, tmp_path, steer=2.0) as node:
        client = Client(ros_context)
        driver = FollowingDriver(client)
        commands = driver.commands
        try:

            def base_speed() -> float:  # rad/s of the base joint's command, over 0.1 s
                recent = [r for r in commands if r.sent > commands[-1].sent - 0.1]
                if len(recent) < 2:
                    return 0.0
                moved = recent[-1][1].data[0] - recent[0][1].data[0]
                return moved / max(recent[-1].sent - recent[0].sent, 1e-3)

            wait_for(lambda: len(commands) > 2 and base_speed() > 0.5, 60, "the arm moving")
            reset = time.time()
            lag = commands[-1][1].data[0] - driver.position[0]
            assert client.call(Trigger, "policy/reset").success
            wait_for(lambda: sum(r.sent > reset for r in commands) > 30, 10, "commands again")
            base = np.array([r[1].data[0] for r in commands if r.sent > reset - 0.2])
            back = -np.diff(base).min()
            assert back <= 1e-9, f"the command went back {back:.4f} rad (lag {lag:.4f} rad)"
            assert node._filters[0].started
        finally:
            driver.close()
            client.close()


def test_an_episodes_first_observation_is_taken_after_its_reset(ros_context, tmp_path) -> None:
    """In real time the inference thread observed at once after ``policy/reset``, whatever
    the observation still held: a simulator's reset returns before its new state arrives, so
    an episode's first observation (all a DMP plans its episode on) could be the old scene's.
    It now waits for joint states stamped after the reset; nothing is published meanwhile."""
    from std_srvs.srv import Trigger

    with policy_node(ros_context, tmp_path) as node:
        client = Client(ros_context)
        driver = Driver(client)
        try:
            wait_for(lambda: node._timeline is not None, 60, "the first episode's actions")
            driver.paused = True  # the simulator resets: its new state is not here yet
            time.sleep(0.05)
            assert client.call(Trigger, "policy/reset").success
            first: list[np.ndarray] = []

            def observed() -> bool:
                with node._state_lock:
                    history = list(node._history)
                if history and not first:
                    first.append(history[0]["joint_pos"].copy())
                return bool(first)

            end = time.monotonic() + 0.3  # six policy periods without the new state
            while time.monotonic() < end:
                observed()
                time.sleep(0.001)
            moved = HOME_JOINT_POS + [0.3, -0.2, 0.0, 0.0, 0.0, 0.0]
            driver.position, driver.paused = moved, False  # the new scene's state arrives
            wait_for(observed, 10, "the new episode's first observation")
            np.testing.assert_allclose(first[0], moved, atol=1e-6)
        finally:
            driver.close()
            client.close()


def test_a_policy_slower_than_its_period_observes_at_every_grid_time(ros_context, tmp_path) -> None:
    """A policy observing 2 steps 50 ms apart, in real time, with inference taking 150 ms (an
    image policy on a CPU). The inference thread took an observation only between inferences,
    so the histories the network got held observations 150-200 ms apart: its velocity-like
    features silently wrong. Every grid time is now observed whatever inference does, and
    each history is of two consecutive grid times, the newest one at most a period old."""
    period, delay = 0.05, 0.15  # the policy's period, each inference's duration (s)
    with policy_node(ros_context, tmp_path, n_obs_steps=2) as node:
        assert node.info.n_obs_steps == 2 and node.policy_hz == 1 / period
        predict = node.worker.predict
        received: list[tuple[float, np.ndarray]] = []  # (when, publish times of the history)

        def slow_predict(history: dict[str, np.ndarray], *args: object) -> np.ndarray:
            published = history["joint_pos"][:, 5] - HOME_JOINT_POS[5] + driver.started
            received.append((time.time(), published))
            time.sleep(delay)
            return predict(history, *args)

        node.worker.predict = slow_predict
        client = Client(ros_context)
        driver = TimeTellingDriver(client)
        try:
            wait_for(lambda: len(received) >= 10, 60, "ten inferences")
        finally:
            driver.close()
            client.close()
    first = received[0][1][0]  # the episode's first observation (taken when it began)
    histories = [(when, times) for when, times in received if first not in times]
    spacings = np.array([np.diff(times)[0] for _, times in histories]) / period
    ages = np.array([when - times[-1] for when, times in histories]) / period
    assert len(histories) >= 7, received
    # One stall of delivery on a loaded machine (the driver's thread, or DDS, late by a few
    # periods: CI once measured 2.75 periods then 0.19) spoils the two histories around it;
    # observing only between inferences spoils every history (3-4 periods apart).
    spoiled = (spacings <= 0) | (spacings >= 2)
    assert spoiled.sum() <= 2 and abs(np.median(spacings) - 1) < 0.2, f"periods: {spacings}"
    too_old = ages >= 2
    assert too_old.sum() <= 2, f"newest observation's age (periods) at inference: {ages}"


def test_a_grid_time_a_stalled_camera_leaves_unobserved_restarts_the_history(
    ros_context, tmp_path
) -> None:
    """A camera policy observing 2 steps 50 ms apart, its camera stalled for 0.6 s (no frame
    to pair past ``max_camera_lag``): the grid times meanwhile cannot be observed, and the
    first history after the stall held an observation from before it, 10 periods apart. The
    history now restarts (the newest observation repeated, as at an episode's start), which
    is logged, and then fills with consecutive grid times again. (Within ``max_camera_lag``
    the last frame still pairs, with the joint state of its own time: observations of one
    moment, closer than a period, ``RobotObservation.snapshot``.)"""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from robot_il.ros.policy_node import PolicyNode

    period = 0.05
    steer = np.append(HOME_JOINT_POS, 0.0)
    checkpoint = constant_checkpoint(tmp_path / "look", steer, camera="front", n_obs_steps=2)
    parameters = [
        Parameter("checkpoint", value=str(checkpoint)),
        Parameter("control_rate", value=100.0),
        Parameter("cameras", value="front"),
    ]
    node = PolicyNode(context=ros_context, parameter_overrides=parameters)
    received: list[np.ndarray] = []  # publish times (s) of each history's observations
    filming_again = math.inf  # when the camera's frames came again after the stall (s)
    with spinning(node, ros_context):
        predict = node.worker.predict

        def recording_predict(history: dict[str, np.ndarray], *args: object) -> np.ndarray:
            received.append(history["joint_pos"][:, 5] - HOME_JOINT_POS[5] + driver.started)
            return predict(history, *args)

        node.worker.predict = recording_predict
        client = Client(ros_context)
        log = client.record_log()
        camera = client.publisher(Image, "camera/front/image_raw")
        frame = Image(height=32, width=32, encoding="rgb8", step=96, data=bytes(32 * 32 * 3))
        driver = TimeTellingDriver(client)

        filming, running = threading.Event(), True

        def film() -> None:  # 100 Hz, stamped now, while filming
            while running:
                if filming.is_set():
                    frame.header.stamp = client.node.get_clock().now().to_msg()
                    camera.publish(frame)
                time.sleep(0.01)

        filmer = threading.Thread(target=film, daemon=True)
        filming.set()
        filmer.start()
        try:
            wait_for(lambda: len(received) >= 5, 60, "the camera policy's inferences")
            filming.clear()
            time.sleep(0.6)
            filming_again = time.time()
            filming.set()
            wait_for(lambda: received[-1][-1] > filming_again + 0.5, 10, "the policy after it")
            restarted = any("observation history restarted" in r[1].msg for r in list(log))
        finally:
            running = False
            filmer.join(timeout=2.0)
            driver.close()
            client.close()
    spacings = np.array([np.diff(times)[0] for times in received]) / period
    after = [s for times, s in zip(received, spacings, strict=True) if times[0] > filming_again]
    assert spacings.max() < 2, f"periods apart: {spacings}"
    assert len(after) >= 5 and 0.8 < np.median(after) < 1.2, f"after the stall: {after}"
    assert restarted, "the history's restart was not logged"


def test_a_chunk_arriving_within_a_period_continues_the_glide(ros_context, tmp_path) -> None:
    """With ``interpolate`` (the default) the targets glide to each action across its
    period. When the next chunk came 10 ms into a period, the glide restarted from the old
    chunk's action for that period: a perfect policy's ramp (0.0004 rad per 2 ms tick)
    jumped 0.0084 rad, 21 ticks' worth, and then stood still for the rest of the period. A
    new chunk now turns the glide from where the target is. The real node's ``_due_target``,
    driven tick by tick while it holds its state lock (no driver: its threads stay idle)."""
    from robot_il.deploy import ActionTimeline

    period, tick, speed = 0.05, 0.002, 0.01  # policy period (s), control period (s), rad/period
    handover = 0.36  # the second chunk, observed at 0.35, arrives 10 ms into that period

    def chunk(t_obs: float, offset: float = 0.0) -> ActionTimeline:
        steps = np.arange(8) + round(t_obs / period)
        actions = np.zeros((8, 7))
        actions[:, :6] = (speed * steps + offset)[:, None]
        return ActionTimeline(t_obs, period, actions)

    def targets(offset: float) -> np.ndarray:
        first, second = chunk(0.0), chunk(0.35, offset)
        joints = []
        with node._state_lock:
            node._start_episode()
            for k in range(300):
                now = k * tick
                node._timeline = first if now < handover - 1e-9 else second
                joints.append(node._due_target(now, HOME_JOINT_POS)[0][:6])
            node._start_episode()
        # per-tick steps from the first glide on (the first action is in force at once)
        return np.abs(np.diff(np.array(joints), axis=0)).max(axis=1)[round(period / tick) :]

    with policy_node(ros_context, tmp_path) as node:
        assert node.interpolate
        # the same plan: the glide goes on as if one chunk
        np.testing.assert_allclose(targets(0.0), speed * tick / period, rtol=1e-6)
        # a changed plan: turned to over the 40 ms left of the period, never in one step
        offset = 0.05
        steps = targets(offset)
        assert steps.max() <= (speed + offset) * tick / (period - 0.01) + 1e-9, steps.max()


def test_a_switch_to_another_control_rate_is_refused(ros_context, tmp_path) -> None:
    """The policy grid (the planner's period, the lock-step waits) is set by the first
    checkpoint's rate for the node's life: a 10 Hz checkpoint switched in for a 20 Hz one
    was played at 20 Hz, twice its speed. It is now refused with its rate named, and the
    running checkpoint stays."""
    from std_msgs.msg import String

    slow = constant_checkpoint(tmp_path / "slow", np.append(HOME_JOINT_POS, 0.0))
    config = json.loads((slow / "config.json").read_text())
    config["spec"]["control_hz"] = 10.0
    (slow / "config.json").write_text(json.dumps(config))
    with policy_node(ros_context, tmp_path) as node:
        running = node.checkpoint
        client = Client(ros_context)
        try:
            log = client.record_log()
            client.publisher(String, "policy/switch").publish(String(data=str(slow)))

            def refused() -> bool:
                return any("control_hz 20.0 != trained 10.0" in r[1].msg for r in log)

            wait_for(refused, 10, "the switch's refusal")
            assert node.checkpoint == running and node._pending is None
            assert node.policy_hz == 20.0
        finally:
            client.close()


def test_a_stop_hands_over_to_a_checkpoint_loaded_during_the_episode(ros_context, tmp_path) -> None:
    """``policy/stop`` answers which checkpoint the next episode runs, and one loaded by
    ``policy/switch`` while the episode ran takes over at the stop: ``episode_judge`` asks by
    stopping while a candidate loads (asked by ``policy/reset``, the old checkpoint ran on
    meanwhile, and a lock-step simulation with it)."""
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_il.ros.policy_node import read_stop_message

    other = constant_checkpoint(tmp_path / "other", np.append(HOME_JOINT_POS, 0.0))
    with policy_node(ros_context, tmp_path) as node:
        client = Client(ros_context)
        driver = Driver(client)
        try:
            wait_for(lambda: node._timeline is not None, 60, "the first episode's actions")
            running = node.checkpoint
            stopped = client.call(Trigger, "policy/stop").message
            assert read_stop_message(stopped)[0] == running
            assert client.call(Trigger, "policy/reset").success
            wait_for(lambda: node._episode_running, 10, "the next episode's actions")
            client.publisher(String, "policy/switch").publish(String(data=str(other)))
            wait_for(lambda: node._pending is not None, 60, "the switch's load")
            assert node.checkpoint == running  # the episode under way keeps its checkpoint
            stopped = client.call(Trigger, "policy/stop").message
            assert read_stop_message(stopped)[0] == str(other)
            assert node.checkpoint == str(other) and node._pending is None
        finally:
            driver.close()
            client.close()


def test_a_stop_in_motion_brakes_the_arm_to_rest_before_it_answers(ros_context, tmp_path) -> None:
    """``policy/stop`` (an episode judge closing an episode, a person's takeover) left the
    moving arm's last command standing: its servo was asked to stop in one period. The node
    now brakes at the acceleration limit (launch/params/policy.yaml's 10 rad/s^2), the
    command travelling v^2 / 2a on over v / a, and answers once it is at rest; nothing is
    published after the answer. v is the filter's fastest speed from the ask to the answer,
    and the travel counts from its command then: the policy goes on speeding the arm up until
    the stop reaches the control thread, later on a loaded machine (read at the ask, 0.86
    rad/s in a CI run whose command then travelled as from about 1.1)."""
    from std_srvs.srv import Trigger

    acceleration = 10.0
    with policy_node(ros_context, tmp_path, steer=2.0) as node:
        client = Client(ros_context)
        driver = FollowingDriver(client)
        commands = driver.commands

        def base_speed() -> float:  # rad/s of the base joint's command, as the filter has it
            return abs(node._filters[0]._velocity[0])

        motion: list[tuple[float, float]] = []  # (rad/s, rad) of the base joint's command
        stop_answered = threading.Event()

        def watch_speed() -> None:
            while not stop_answered.is_set():
                reference = node._filters[0]._reference  # None once the episode let go of it
                if reference is not None:
                    motion.append((base_speed(), reference[0]))
                time.sleep(0.0005)

        watcher = threading.Thread(target=watch_speed)
        try:
            wait_for(lambda: base_speed() > 0.8, 60, "the arm moving at 0.8 rad/s or more")
            asked = time.time()
            watcher.start()
            assert client.call(Trigger, "policy/stop").success
            answered = time.time()
            stop_answered.set()
            watcher.join()
            time.sleep(0.3)
        finally:
            stop_answered.set()
            driver.close()
            client.close()
    speed, brake_start = max(motion)
    after = [(r.sent, r[1].data[0]) for r in commands if r.sent > asked]
    pairs = zip(after[1:], after[:-1], strict=True)
    moved = [t for (t, q), (_, previous) in pairs if q != previous]
    assert moved, "no command moved after the stop was asked: it stopped in one period"
    travel = after[-1][1] - brake_start
    assert 0.5 * speed**2 / (2 * acceleration) <= travel <= 1.5 * speed**2 / (2 * acceleration)
    assert moved[-1] - asked >= 0.5 * speed / acceleration, "it stopped faster than the limit"
    assert after[-1][0] <= answered + 0.05, "a command after the answer"


class MeetingDeque(deque):
    """The node's queue of safety events, whose emptiness test, once :attr:`armed`, lets two
    threads through only together (or after ``timeout`` s): both then find the same events
    queued, as when ``policy/stop`` and the events timer publish them at the same moment."""

    def __init__(self, timeout: float = 2.0) -> None:
        super().__init__()
        self.armed = False
        self.met = False
        self._barrier = threading.Barrier(2, timeout=timeout)

    def __len__(self) -> int:
        length = super().__len__()
        if self.armed and length:
            try:
                self._barrier.wait()
                self.met = True
            except threading.BrokenBarrierError:  # one at a time: the other waits elsewhere
                pass
            self.armed = False
        return length


def test_a_stop_publishing_events_beside_the_events_timer_answers(ros_context, tmp_path) -> None:
    """``policy/stop`` publishes the ended episode's safety events before it answers, in its
    own callback group, while the 20 ms events timer may publish them too: both found the last
    event queued, and the second ``popleft`` raised IndexError, which ended the node's spin
    (``run_node``: the node shut down with a traceback) and left the stop unanswered."""
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_il.ros.policy_node import read_stop_message

    with policy_node(ros_context, tmp_path, steer=0.0) as node:
        client = Client(ros_context)
        events = client.record(String, "safety/events")
        driver = Driver(client)
        try:
            wait_for(lambda: node.command_log, 60, "the node's first command")
            assert client.call(Trigger, "policy/stop").success  # no more events meanwhile
            queue = MeetingDeque()
            node._events = queue
            queue.append({"kind": "late_command", "t": 0.0, "detail": "injected"})
            queue.armed = True
            stopped = client.call(Trigger, "policy/stop", timeout=10.0)
            assert stopped.success

            def injected() -> list[dict]:
                received = (json.loads(r[1].data) for r in events)
                return [event for event in received if event["detail"] == "injected"]

            wait_for(lambda: injected(), 10, "the injected event")
            time.sleep(0.1)  # a second copy would come meanwhile
            assert len(injected()) == 1
            # the answer numbers it, the last published (a judge waits until it has heard it)
            assert injected()[0]["seq"] == read_stop_message(stopped.message)[1]
        finally:
            driver.close()
            client.close()


class HeldPublisher:
    """The command publisher of a node, whose next publish, once :attr:`armed`, waits until
    ``policy/stop`` answers (it publishes the safety events last), or for ``grace`` s after
    the stop began (a stop that waits for this publish); records for each publish whether
    the stop was answering. It holds a command at rest: the stop then brakes nothing."""

    def __init__(self, node, grace: float = 1.0) -> None:
        self.node = node
        self.publisher, self.arms = node.command_pubs[0]
        node.command_pubs[0] = (self, self.arms)
        self.grace = grace
        self.armed = False
        self.holding = threading.Event()
        self.stop_began = threading.Event()
        self.stop_answering = threading.Event()
        self.after_answer: list[bool] = []
        brake, publish_events = node._brake_to_rest, node._publish_events

        def brake_to_rest() -> None:  # policy/stop's first step
            self.stop_began.set()
            brake()

        def publish_stop_events() -> None:  # its last (the events timer calls the original)
            self.stop_answering.set()
            publish_events()

        node._brake_to_rest, node._publish_events = brake_to_rest, publish_stop_events

    def publish(self, msg) -> None:
        if self.armed and not any(safety.moving for safety in self.node._filters):
            self.armed = False
            self.holding.set()
            assert self.stop_began.wait(10.0)
            self.stop_answering.wait(self.grace)
        self.after_answer.append(self.stop_answering.is_set())
        self.publisher.publish(msg)


def test_no_command_is_published_after_a_stop_has_answered(ros_context, tmp_path) -> None:
    """Once ``policy/stop`` has answered the node publishes nothing until ``policy/reset``.
    A control tick that had checked the episode before the stop came published its command
    after the answer (a takeover's teleop servo, a simulator reset, followed it)."""
    from std_srvs.srv import Trigger

    with policy_node(ros_context, tmp_path, steer=0.0) as node:
        client = Client(ros_context)
        driver = Driver(client)
        try:
            wait_for(lambda: node.command_log, 60, "the node's first command")
            held = HeldPublisher(node)
            held.armed = True
            assert held.holding.wait(10.0), "no command published"
            assert client.call(Trigger, "policy/stop").success
            time.sleep(0.1)  # ticks after the answer
            assert held.after_answer, "the held command was not published"
            assert not any(held.after_answer), "a command published after the stop answered"
        finally:
            driver.close()
            client.close()


def test_a_stop_braking_when_the_control_thread_ends_returns_at_once(
    own_context, ros_context, tmp_path
) -> None:
    """Ctrl-C (rclpy shuts the context down) or a fatal error ends the control thread; a
    ``policy/stop`` braking meanwhile waited for it the whole braking timeout (2 s plus four
    longest stops: 8.3 s at 2 rad/s^2), holding up the node's exit past run_node's 5 s
    grace for callbacks, and warned of a stalled control loop."""
    from std_srvs.srv import Trigger

    with policy_node(own_context, tmp_path, steer=2.0, acceleration_limit=2.0) as node:
        client = Client(ros_context)
        driver = FollowingDriver(client)
        tick, brake = node._control_tick, node._brake_to_rest
        shut_down, returned = threading.Event(), threading.Event()

        def control_tick(now: float) -> None:
            if node._braking is not None:  # Ctrl-C reaches rclpy while the arm brakes
                own_context.try_shutdown()
                shut_down.set()
                return
            tick(now)

        def brake_to_rest() -> None:
            brake()
            returned.set()

        try:
            wait_for(lambda: abs(node._filters[0]._velocity[0]) > 0.2, 60, "the arm moving")
            node._control_tick, node._brake_to_rest = control_tick, brake_to_rest
            client.node.create_client(Trigger, "policy/stop").call_async(Trigger.Request())
            assert shut_down.wait(10.0), "the stop did not brake"
            assert returned.wait(1.0), "the stop still waits for the ended control thread"
        finally:
            driver.close()
            client.close()


def test_a_failing_inference_brakes_the_arm_and_shuts_the_node_down(
    own_context, ros_context, tmp_path, capfd
) -> None:
    """An unforeseen error in the inference thread (one other than a checkpoint's) ended the
    thread and nothing else: the arm held as for late inference while the node looked alive,
    ``policy/reset`` and ``policy/stop`` answering success. The node now brakes the moving arm
    to rest at the acceleration limit, logs a fatal line and shuts down (exit code 1)."""
    acceleration = 10.0
    with policy_node(own_context, tmp_path, steer=2.0) as node:
        client = Client(ros_context)
        driver = FollowingDriver(client)
        commands = driver.commands

        def fail(*args: object) -> None:
            raise RuntimeError("injected inference failure")

        try:
            wait_for(lambda: abs(node._filters[0]._velocity[0]) > 0.8, 60, "the arm moving")
            speed, failed = abs(node._filters[0]._velocity[0]), time.time()
            from_command = commands[-1][1].data[0]
            node.worker.predict = fail
            wait_for(lambda: not own_context.ok(), 10, "the node's context to shut down")
            assert isinstance(node.fatal_error, RuntimeError)  # run_node's exit code 1
        finally:
            driver.close()
            client.close()
    after = [r[1].data[0] for r in commands if r.sent > failed]
    travel = abs(after[-1] - from_command)
    assert travel >= 0.5 * speed**2 / (2 * acceleration), "it stopped faster than the limit"
    assert abs(after[-1] - after[-2]) < 1e-6, "the last command still moved: not at rest"
    err = capfd.readouterr().err
    assert "inference failed: RuntimeError('injected inference failure')" in err


class SlowClosingWorker:
    """A loaded checkpoint's worker whose process takes ``seconds`` to end at ``close``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.closed = threading.Event()

    def close(self) -> None:
        time.sleep(self.seconds)
        self.closed.set()


def test_a_second_switch_in_an_episode_closes_the_first_off_the_control_loop(
    ros_context, tmp_path
) -> None:
    """A checkpoint loaded by ``policy/switch`` while another loaded one waited for the
    episode's end closed that one holding the state lock, which every control tick takes: the
    control loop stood still until the old worker's process had ended (up to 5 s)."""
    from std_msgs.msg import String

    other = constant_checkpoint(tmp_path / "other", np.append(HOME_JOINT_POS, 0.0))
    with policy_node(ros_context, tmp_path) as node:
        client = Client(ros_context)
        driver = Driver(client)
        try:
            wait_for(lambda: node._episode_running, 60, "the episode's actions")
            waiting = SlowClosingWorker(1.0)
            with node._state_lock:
                node._pending = ("waiting", waiting)
            client.publisher(String, "policy/switch").publish(String(data=str(other)))
            assert waiting.closed.wait(60), "the waiting checkpoint was not closed"
            closed_at = time.monotonic()
            ticks = [t for t in node.tick_times if closed_at - 1.0 <= t <= closed_at]
            assert len(ticks) > 10 and np.max(np.diff(ticks)) < 0.5, "the control loop stood still"
        finally:
            driver.close()
            client.close()


def test_a_worker_failing_as_a_switch_closes_it_leaves_the_node_running(
    own_context, ros_context, tmp_path
) -> None:
    """A checkpoint switched out while the inference thread waits on its answer may fail
    that request in any way its closed pipe does: the node goes on with the new checkpoint
    (a failure of the worker in use shuts it down)."""
    from robot_il.deploy.worker import CheckpointInfo, InferenceWorker

    other = constant_checkpoint(tmp_path / "other", np.append(HOME_JOINT_POS, 0.0))
    with policy_node(own_context, tmp_path) as node:
        client = Client(ros_context)
        driver = Driver(client)
        new_worker = InferenceWorker(CheckpointInfo.read(other))

        def switched_out_and_failed(*args: object) -> None:
            with node._state_lock:
                node._swap(str(other), new_worker)
            raise TypeError("'NoneType' object cannot be interpreted as an integer")

        try:
            wait_for(lambda: node._timeline is not None, 60, "the first episode's actions")
            node.worker.predict = switched_out_and_failed
            wait_for(lambda: node.checkpoint == str(other), 10, "the switch")
            time.sleep(0.3)
            assert own_context.ok() and node.fatal_error is None
            assert node._inference.is_alive()
        finally:
            driver.close()
            client.close()


def test_a_chunk_arriving_within_a_period_converts_its_tcp_delta_where_the_period_began(
    ros_context, tmp_path
) -> None:
    """An eef_delta action moves the TCP from where the arm was when its period began (as the
    env applies it at the step's start). A new chunk arriving 30 ms into a 50 ms period had
    that period's delta converted again at the arm's pose of that moment, 60% of the way along
    the glide: the target overshot by 60% of a step at every chunk switch in real time. The
    same plan, arriving late, now leaves every target as it was. The real node's
    ``_due_target``, driven tick by tick with the arm on its targets."""
    from rclpy.parameter import Parameter

    from robot_il.deploy import ActionTimeline
    from robot_il.ros.policy_node import PolicyNode

    period, tick = 0.05, 0.002  # policy period (s), control period (s)
    step = np.array([0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # 1 cm along x per period
    checkpoint = constant_checkpoint(tmp_path / "push_x", step, action_mode="eef_delta")
    parameters = [Parameter("checkpoint", value=str(checkpoint))]

    def chunk(t_obs: float) -> ActionTimeline:
        return ActionTimeline(t_obs, period, np.tile(step, (8, 1)))

    def targets(handover: float) -> np.ndarray:
        first, second = chunk(0.0), chunk(0.15)
        q, joints = HOME_JOINT_POS.copy(), []
        with node._state_lock:
            node._start_episode()
            for k in range(150):
                now = k * tick
                node._timeline = first if now < handover - 1e-9 else second
                target = node._due_target(now, q)[0][:6]
                joints.append(target)
                q = target  # the arm on its target
            node._start_episode()
        return np.array(joints)

    node = PolicyNode(context=ros_context, parameter_overrides=parameters)
    with spinning(node, ros_context):
        assert node.action_mode == "eef_delta"
        one_chunk = targets(handover=1.0)  # the first chunk alone (8 periods)
        switched = targets(handover=0.18)  # the second, observed at 0.15, comes 30 ms later
    np.testing.assert_allclose(switched, one_chunk, atol=1e-9)
