"""``episode_judge``: a simulated person who watches real simulated rollouts and gives feedback.

Where ``simulated_person`` draws outcomes from synthetic profiles, this node makes every
episode the selector opens really happen on the simulated robot and judges what it sees, as
the supervising person would:

1. it learns of the episode and its candidate from the selector's statistics
   (:data:`~robot_il.select.topics.STATISTICS_TOPIC`, latched);
2. it releases an e-stop it latched in an earlier episode (``safety/reset_estop``) and
   deploys the candidate: it stops the policy (``policy/stop``, std_srvs/Trigger: no command
   of the episode before reaches the new one, and a lock-step simulation stands still), which
   answers which checkpoint the next episode runs; until that is the candidate it publishes
   the candidate on ``policy/switch`` (std_msgs/String) and asks again (the policy node loads
   in the background);
3. it resets the simulation (``sim/reset``) and then the policy (``policy/reset``: a fresh
   history and a safe start from the reset pose), and the episode's clock starts;
4. it watches ``task/success`` (std_msgs/Bool) and ``safety/events`` (JSON per intervention of
   the safety layer) until the task is solved or ``time_limit`` seconds pass;
5. an unsafe episode (a safety event of a kind in ``unsafe_events``) is stopped at once:
   e-stop (``safety/estop``) and an intervention in it (std_msgs/String ``{"episode": N}``),
   a failure. Otherwise it rates the episode by :class:`~robot_il.select.SimulatedPerson`:
   task success plus noise, clipped to [0, 1] (std_msgs/String ``{"episode": N, "rating": r}``),
   with noise drawn from ``seed`` and the episode number.

With ``rates`` false the person rates (on the feedback page): the judge still runs every
episode and stops an unsafe one, but publishes no rating; the episode then waits, the policy
stopped and the simulation still, for the person's rating or intervention, however long it
takes (the log says so every :data:`RATING_REMINDER` s).

A person who takes the arm over with the teleop device (``teleop/takeover`` true, ``teleop``
with ``takeover:=true``, recording corrections) intervenes: the judge sends the intervention for
the episode at once, and starts the next episode only once the person has handed back (the
correction is recorded in the scene the policy led the arm into).

Feedback from anyone else (the person's intervene button, or a rating given early) closes the
episode: the selector announces the next one, and the judge stops the policy at once and
starts that one, publishing nothing for the closed episode.

A candidate the policy node cannot load within ``switch_timeout`` seconds counts as a failure
(an intervention), so a broken checkpoint is avoided rather than stalling the selection.
Feedback and e-stops wait (up to 5 s) for a node to subscribe to their topic: sent before
discovery has matched one, a message on these volatile topics is lost for good; if none does,
the error is logged and the episode is run again.

Episode times (``time_limit``, ``success_guard``) are on the node's ROS clock: with
``use_sim_time`` and a lock-step simulation they are simulated seconds, so a loaded machine
slows the episodes down without judging the policies unfairly. The judgement is read from the
messages' own times, never from when this node happens to look: each ``task/success`` is
timed by the simulated step that published it (the ``/clock`` the simulator published just
before it, by DDS source timestamp; without ``use_sim_time`` the source timestamp itself), the
episode ends at the first "solved" within ``time_limit`` or at the first message past it (a
reach is solved for two or three 50 ms policy periods and then overshot: polled every 10 ms of
wall time, a fast simulation's success was missed, or timed a period late), and the policy is
stopped then (``policy/stop``, which publishes its queued safety events first), so that an
unsafe event counts exactly when its time (the policy's control tick) comes before the end.
The stop's answer says how many safety events the policy node has published (each carries its
number, ``seq``), and the judge judges once it has heard the last of them: an event and the
answer travel apart, and the executor may run the answer's callback first. An episode whose
events were not all heard (a number skipped, or the last not heard within
:data:`EVENTS_WAIT` s) is a failure (an intervention, also with ``rates`` false), logged with
how many were lost and on which topic: a lost event may have been the unsafe one, so the
episode's safety cannot be vouched for. The policy node keeps its last 100 events for resending
and this subscription its last 1000 untaken (a burst beyond them, or this node's executor held
up, loses the oldest); an event is published when an intervention begins, not at every
control tick it lasts.

Parameters: ``time_limit`` (s), ``noise_std``, ``seed``, ``unsafe_events`` (safety event
kinds, see :class:`robot_il.safety.events.Intervention`), ``switch_timeout`` (s),
``success_guard`` (s after the policy's reset before ``task/success`` counts), ``rates``
(true: rate each episode; false: leave the ratings to the person). A success
counts only after the task was seen unsolved in this episode, so a "solved" sent before the
simulation's reset can never be taken for this episode's.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any

import numpy as np
from rclpy._rclpy_pybind11 import RCLError
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from robot_il.errors import ConfigError, SelectionError
from robot_il.ros.node_main import declare_float, run_node, wait_for_subscriber
from robot_il.ros.policy_node import (
    CLOCK_TOLERANCE,
    SWITCH_TOPIC,
    read_stop_message,
    reset_message,
)
from robot_il.ros.selector_node import FEEDBACK_QOS, LATCHED
from robot_il.ros.step_times import BACKLOG, StepTimes
from robot_il.ros.ur_topics import (
    ESTOP_TOPIC,
    RESET_ESTOP_SERVICE,
    SAFETY_EVENTS_TOPIC,
    SUCCESS_TOPIC,
    TAKEOVER_TOPIC,
)
from robot_il.safety.events import Intervention
from robot_il.select import SimulatedPerson
from robot_il.select.topics import (
    INTERVENE_TOPIC,
    RATING_TOPIC,
    STATISTICS_TOPIC,
    intervention_message,
    rating_message,
)

DEFAULT_UNSAFE = ["nonfinite_command", "position_limit", "workspace"]
"""Safety events a watching person would stop the robot for: a policy commanding NaN, driving
a joint into its limit or the tool out of the workspace. Speed and acceleration limiting and
the safe start are the safety layer doing its routine job, not misbehaviour."""

SIM_RESET_SERVICE = "sim/reset"
POLICY_RESET_SERVICE = "policy/reset"
POLICY_STOP_SERVICE = "policy/stop"
RATING_REMINDER = 60.0
"""s between two log lines saying the selection waits for the person's rating (``rates``
false): a person who stepped away, or closed the page, comes back to a selection that says
why it stands still."""
DEPLOY_POLL = 0.05
"""s between two asks whether the candidate has loaded (an ask only stops the stopped policy)."""
EVENTS_WAIT = 5.0
"""s the judge waits, after the stop that ends an episode, for the safety events published
before the stop answered (they come within milliseconds; not heard: the episode failed)."""


class EpisodeJudge(Node):
    """Runs and judges every episode the selector opens; see the module docstring."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("episode_judge", **node_kwargs)
        self.time_limit = declare_float(self, "time_limit", 4.0)
        self.person = SimulatedPerson(declare_float(self, "noise_std", 0.15))
        self.seed = int(self.declare_parameter("seed", 0).value)
        self.switch_timeout = declare_float(self, "switch_timeout", 60.0)
        self.success_guard = declare_float(self, "success_guard", 0.1)
        self.rates = bool(self.declare_parameter("rates", True).value)
        unsafe = list(self.declare_parameter("unsafe_events", DEFAULT_UNSAFE).value)
        kinds = {kind.value for kind in Intervention}
        unknown = [kind for kind in unsafe if kind not in kinds]
        if unknown:
            raise ConfigError(
                f"episode_judge: unsafe_events {unknown} are not safety event kinds "
                f"({', '.join(sorted(kinds))})"
            )
        self.unsafe_kinds = frozenset(unsafe)
        if self.time_limit <= 0 or self.switch_timeout <= 0:
            raise ConfigError("episode_judge: time_limit and switch_timeout must be > 0")

        qos = QoSProfile(depth=10)
        self.rating_pub = self.create_publisher(String, RATING_TOPIC, FEEDBACK_QOS)
        self.intervene_pub = self.create_publisher(String, INTERVENE_TOPIC, FEEDBACK_QOS)
        self.switch_pub = self.create_publisher(String, SWITCH_TOPIC, qos)
        self.estop_pub = self.create_publisher(Bool, ESTOP_TOPIC, qos)
        self.sim_reset = self.create_client(Trigger, SIM_RESET_SERVICE)
        self.policy_reset = self.create_client(Trigger, POLICY_RESET_SERVICE)
        self.policy_stop = self.create_client(Trigger, POLICY_STOP_SERVICE)
        self.reset_estop = self.create_client(Trigger, RESET_ESTOP_SERVICE)
        self.create_subscription(String, STATISTICS_TOPIC, self.on_statistics, LATCHED)
        self.events_sub = self.create_subscription(
            String, SAFETY_EVENTS_TOPIC, self.on_safety_event, BACKLOG
        )
        self.create_subscription(Bool, TAKEOVER_TOPIC, self.on_takeover, LATCHED)
        self._taken_over = False
        """Whether a person drives the arm with the teleop device (``teleop/takeover``)."""
        self.sim_time = bool(self.get_parameter("use_sim_time").value)
        self._steps = StepTimes(self.sim_time)
        self._steps.subscribe(self, SUCCESS_TOPIC)

        self._changed = threading.Condition()
        """Held to change or read together what the subscriptions change."""
        self._announced: tuple[int, str] | None = None  # (episode number, candidate)
        self._episode_start_ros: float | None = None
        """ROS time (s) the episode under way began; None between episodes, so that no
        event before an episode's start is taken for it (set with :attr:`_unsafe` emptied)."""
        self._unsafe: list[tuple[float, str]] = []  # (tick time s, what) of the episode
        self._events_heard = 0
        """``seq`` of the newest safety event heard (the policy node's come in order)."""
        self._events_skipped: list[tuple[int, int]] = []
        """(first, last) ``seq`` of each run of safety events skipped over, lost for good."""
        self._estop_latched = False
        self._judged: int | None = None  # the last episode run (and given feedback)
        self._remind_at = math.inf  # monotonic s of the next "waits for your rating" line
        self._running = True
        self._thread = threading.Thread(target=self._episode_loop, name="episodes", daemon=True)
        self._thread.start()

    # -- subscriptions -------------------------------------------------------------------

    def on_statistics(self, msg: String) -> None:
        pending = json.loads(msg.data).get("pending")
        with self._changed:
            self._announced = (
                (pending["episode"], pending.get("checkpoint", pending["candidate"]))
                if pending
                else None
            )
            self._changed.notify_all()

    def on_safety_event(self, msg: String) -> None:
        event = json.loads(msg.data)
        with self._changed:
            if "seq" in event:
                self._hear_seq(event["seq"])
            self._changed.notify_all()
            start = self._episode_start_ros
            if start is None or event["kind"] not in self.unsafe_kinds or event["t"] < start:
                return
            self._unsafe.append((event["t"], f"{event['kind']}: {event['detail']}"))

    def _hear_seq(self, seq: int) -> None:
        """Count the safety event numbered ``seq`` heard (``_changed`` held). The numbers
        skipped since the newest heard are lost for good: a topic delivers one publisher's
        messages in order, never one it dropped after a newer one. A number not above the
        newest heard is a restarted policy node's, which numbers from 1 again."""
        if seq <= self._events_heard:
            self._events_heard, self._events_skipped = 0, []
        if seq > self._events_heard + 1:
            self._events_skipped.append((self._events_heard + 1, seq - 1))
        self._events_heard = seq

    def on_takeover(self, msg: Bool) -> None:
        with self._changed:
            self._taken_over = bool(msg.data)
            self._changed.notify_all()

    # -- episodes (worker thread) --------------------------------------------------------

    def _episode_loop(self) -> None:
        try:
            self._judge_episodes()
        except RCLError:
            if self.context.ok():
                raise  # else: shutting down (Ctrl-C reached rclpy first)

    def _judge_episodes(self) -> None:
        while self._running:
            with self._changed:
                self._changed.wait_for(self._new_episode_or_stop, timeout=0.5)
                job = self._announced
            if not self._running or job is None:
                continue
            if job[0] == self._judged:
                self._remind(job[0])
                continue
            try:
                self._run_episode(*job)
                self._judged = job[0]
            except SelectionError as error:
                if not self._running:
                    return
                self.get_logger().error(f"episode {job[0]}: {error}; trying again")
                time.sleep(1.0)

    def _remind(self, number: int) -> None:
        """Say, every ``RATING_REMINDER`` s, that episode ``number`` waits for the person."""
        if time.monotonic() < self._remind_at:
            return
        self._remind_at = time.monotonic() + RATING_REMINDER
        self.get_logger().info(
            f"episode {number} still waits for your rating or intervention on the feedback "
            "page; the selection goes on once it comes (Ctrl-C stops it; the same command "
            "goes on from the ratings given)"
        )

    def _closed_elsewhere(self, number: int) -> bool:
        """Whether the selector closed episode ``number`` on feedback the judge did not give
        (it announced another episode, or none)."""
        announced = self._announced
        return announced is None or announced[0] != number

    def _new_episode_or_stop(self) -> bool:
        announced = self._announced
        return not self._running or (announced is not None and announced[0] != self._judged)

    def _run_episode(self, number: int, candidate: str) -> None:
        """Deploy ``candidate``, run one episode and publish the feedback."""
        self._await_hand_back(number)
        if self._estop_latched:
            self._call(self.reset_estop)
            self._estop_latched = False
        published = self._deploy(candidate)
        if published is None:
            self.get_logger().error(
                f"episode {number}: the policy node did not load {candidate!r} within "
                f"{self.switch_timeout:g} s; counted as a failure"
            )
            self._publish(
                self.intervene_pub, String(data=intervention_message(number)), "intervention"
            )
            return
        self._await_hand_back(number)  # (taken over while the candidate loaded)
        reset_called = time.time_ns()
        self._call(self.sim_reset)
        self._steps.restart(reset_called)
        start = self._reset_time()
        try:
            solved_at, end, lost = self._run_policy(number, candidate, start, published)
        finally:  # None between episodes, after a failed attempt too
            with self._changed:
                self._episode_start_ros = None
        if not self._running:
            return
        unsafe = [event for event in self._unsafe if event[0] < end]
        if self._taken_over and not self._closed_elsewhere(number):
            self._publish(
                self.intervene_pub, String(data=intervention_message(number)), "intervention"
            )
            self.get_logger().info(
                f"episode {number} ({candidate}): the person took the arm over after "
                f"{self._now_ros() - start:.2f} s; intervened"
            )
            return
        if self._closed_elsewhere(number):
            self.get_logger().info(
                f"episode {number} ({candidate}): closed by the person's feedback after "
                f"{self._now_ros() - start:.2f} s; policy stopped"
            )
            return
        if unsafe:
            self._publish(self.estop_pub, Bool(data=True), "e-stop")
            self._estop_latched = True
            self._publish(
                self.intervene_pub, String(data=intervention_message(number)), "intervention"
            )
            t, what = unsafe[0]
            self.get_logger().info(
                f"episode {number} ({candidate}): unsafe after {t - start:.2f} s ({what}); "
                "e-stop, intervened"
            )
            return
        if lost is not None:
            self._publish(
                self.intervene_pub, String(data=intervention_message(number)), "intervention"
            )
            self.get_logger().error(
                f"episode {number} ({candidate}): {lost}; its safety cannot be vouched for: "
                "counted as a failure, intervened"
            )
            return
        what = (
            f"solved in {solved_at - start:.2f} s"
            if solved_at is not None
            else f"not solved in {self.time_limit:g} s"
        )
        if not self.rates:
            self._remind_at = time.monotonic() + RATING_REMINDER
            self.get_logger().info(
                f"episode {number} ({candidate}): {what}; rate it on the feedback page (the "
                "selection waits for your rating)"
            )
            return
        rng = np.random.default_rng([self.seed, number])
        feedback = self.person.feedback(solved_at is not None, False, rng)
        rating = String(data=rating_message(number, feedback.rating))
        self._publish(self.rating_pub, rating, "rating")
        self.get_logger().info(
            f"episode {number} ({candidate}): {what}, rated {feedback.rating:.2f}"
        )

    def _run_policy(
        self, number: int, candidate: str, start: float, published: int
    ) -> tuple[float | None, float, str | None]:
        """Run episode ``number`` of ``candidate`` from ``start`` (ROS s, the simulator's
        reset) until it is decided (:meth:`_watch`, whose answer this returns), stop the
        policy and wait for the safety events it published until then (``published``: the
        number published before the episode); the third value says which of them were lost
        (None: none)."""
        # The episode starts before the policy's reset: a safety event in its first
        # milliseconds (a NaN action) is reported only once, and must count.
        with self._changed:
            self._episode_start_ros, self._unsafe = start, []
        reply = self._call(self.policy_reset)
        if reply.message != reset_message(candidate):
            raise SelectionError(f"the policy node switched away from {candidate!r}")
        solved_at, end = self._watch(number, start)
        lost = None
        if self._running:  # the stop publishes its queued safety events before answering
            lost = self._await_events(
                published, read_stop_message(self._call(self.policy_stop).message)[1]
            )
        return solved_at, end, lost

    def _await_events(self, before: int, published: int) -> str | None:
        """Wait, at most :data:`EVENTS_WAIT` s, until the safety event numbered ``published``
        (the last the policy node published before its stop answered) has been heard, if the
        episode published any (``before``: the number published before it); returns which of
        the episode's events were never heard (skipped over, or still not heard), None if
        every one was."""
        if published <= before:
            return None
        with self._changed:
            self._changed.wait_for(
                lambda: self._events_heard >= published or not self._running, EVENTS_WAIT
            )
            missing = [*self._events_skipped, (self._events_heard + 1, published)]
            self._events_skipped = [run for run in self._events_skipped if run[1] > published]
        runs = [(max(a, before + 1), min(b, published)) for a, b in missing]
        runs = [(a, b) for a, b in runs if a <= b]
        if not runs:
            return None
        count = sum(b - a + 1 for a, b in runs)
        seqs = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
        return (
            f"{count} of the episode's {published - before} safety events (seq {seqs}) were "
            f"lost on {self.events_sub.topic_name} (a burst beyond the topic's depth, or this "
            "node's executor held up)"
        )

    def _reset_time(self) -> float:
        """ROS time (s) of the simulator's reset: in lock-step its clock's
        (:meth:`StepTimes.start_time`), else now."""
        if not self.sim_time:
            return self._now_ros()
        deadline = time.monotonic() + 15.0
        while self._running and time.monotonic() < deadline:
            start = self._steps.start_time()
            if start is not None:
                return start
            time.sleep(0.002)
        raise SelectionError("the simulator announced no clock after its reset")

    def _watch(self, number: int, start: float) -> tuple[float | None, float]:
        """Wait until episode ``number``, begun at ``start`` (ROS s), is decided; returns the
        time it was solved (None if not) and its end: safety events of control ticks before
        the end count. Solved: "solved" after a "not solved" later than ``success_guard``,
        within ``time_limit``. Decided early by an unsafe event once every ``task/success`` up
        to its time has come unsolved (a policy solving before it was unsafe is judged
        solved), or at once by feedback from elsewhere closing it."""
        limit = start + self.time_limit
        guard = start + self.success_guard
        unsolved_seen = False
        while self._running:
            if self._closed_elsewhere(number) or self._taken_over:
                return None, math.inf
            for t, solved in self._steps.timed_successes():
                if t > limit + CLOCK_TOLERANCE:
                    return None, limit - CLOCK_TOLERANCE
                if not solved:
                    unsolved_seen = unsolved_seen or t > guard
                elif unsolved_seen:
                    return t, t
                if self._unsafe and t >= self._unsafe[0][0]:
                    return None, math.inf
            if not self.sim_time and self._now_ros() > limit:
                return None, limit
            time.sleep(0.01)
        return None, limit

    def _await_hand_back(self, number: int) -> None:
        """Wait, before episode ``number``, until the person who took the arm over hands it
        back (their correction happens in the scene of the episode before)."""
        with self._changed:
            if self._taken_over:
                self.get_logger().info(
                    f"episode {number} waits until the person hands the arm back (next key)"
                )
            self._changed.wait_for(lambda: not self._taken_over or not self._running)

    def _deploy(self, candidate: str) -> int | None:
        """Stop the policy node with ``candidate`` for its next episode; returns the number of
        safety events it had published then, None if it has not loaded the candidate within
        the timeout. Asked by ``policy/stop``, the policy runs nothing while the candidate
        loads (each ``policy/reset`` ran the old checkpoint on, and a lock-step simulation
        with it: hundreds of steps of a loaded machine's cores a load)."""
        deadline = time.monotonic() + self.switch_timeout
        next_request = 0.0
        while self._running and time.monotonic() < deadline:
            checkpoint, published = read_stop_message(self._call(self.policy_stop).message)
            if checkpoint == candidate:
                return published
            if time.monotonic() >= next_request and self.switch_pub.get_subscription_count():
                self.switch_pub.publish(String(data=candidate))
                next_request = time.monotonic() + 5.0  # a message lost to a late start: again
            time.sleep(DEPLOY_POLL)
        return None

    def _publish(self, publisher: Publisher, msg: Any, what: str) -> None:
        """Publish the one-shot ``msg`` once a node subscribes (the topics are volatile: sent
        before the match, it is lost and the selector waits for that episode's feedback for
        good); ``SelectionError`` (the episode is run again) if none does within
        :data:`~robot_il.ros.node_main.LISTENER_WAIT` s."""
        if not wait_for_subscriber(publisher, cancelled=lambda: not self._running):
            raise SelectionError(f"{what} not sent: no node subscribes to {publisher.topic_name}")
        publisher.publish(msg)

    def _call(self, client, timeout: float = 15.0) -> Trigger.Response:
        """Call a Trigger service (waiting for it to appear); raises SelectionError."""
        while not client.wait_for_service(timeout_sec=1.0):
            if not self._running:
                raise SelectionError("shutting down")
            self.get_logger().info(f"waiting for the service {client.srv_name}", once=True)
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done():
            if not self._running or time.monotonic() > deadline:
                raise SelectionError(f"service {client.srv_name} did not answer")
            time.sleep(0.002)
        response = future.result()
        if not response.success:
            raise SelectionError(f"service {client.srv_name} failed: {response.message}")
        return response

    def _now_ros(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def shutdown(self) -> None:
        """Stop the episode thread and destroy the node."""
        self._running = False
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=2.0)
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console script ``episode_judge``; parameters via ``--ros-args -p name:=value``."""
    return run_node(EpisodeJudge, args)


if __name__ == "__main__":
    sys.exit(main())
