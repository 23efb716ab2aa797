"""How ``episode_judge`` hears the safety events of its episode: every unsafe event of the
episode, however late the judge's executor runs its callback, and none of the time before; an
episode whose events were not all heard is a failure, never a success.

The cell here stands in for the policy node and the lock-step simulator, speaking their
protocol over DDS (``policy/stop`` and ``policy/reset``, ``sim/reset``, ``safety/events``
numbered by ``seq``, ``/clock`` and ``task/success``). It delivers one safety event late, as a
loaded machine may: an event and a service answer travel apart, and the judge's executor may
run the answer's callback before the event's; or it numbers events it never publishes, as a
topic loses them to a burst beyond its depth."""

from __future__ import annotations

import json
import threading
import time

import pytest
from deploy_helpers import Client, spinning, wait_for

pytestmark = pytest.mark.ros

EVENT_DELAY = 0.3
"""s by which the cell delivers its late safety event after the answer it was published before."""
TIME_LIMIT = 0.5
"""s of an episode (the judge's ``time_limit``)."""
STEP = 0.05
"""s of simulated time per step of the cell's simulation (one policy period)."""


def cell_node(
    context,
    late_after: str | None = None,
    failed_resets: int = 0,
    lock_step: bool = False,
    stop_events: int = 0,
    lost: frozenset[int] = frozenset(),
    solves: bool = False,
    restarted: bool = False,
):
    """The policy node's and the simulator's services and topics for one candidate, and the
    selector's latched announcement of episode 0 of it.

    One unsafe ``workspace`` event is numbered (``seq``) as published when ``late_after``
    happens, and delivered :data:`EVENT_DELAY` s after that answer: ``"episode"``, the stop
    that ends an episode (the event is of the episode's middle), or ``"sim/reset"``, the
    second reset of the simulation (the event is of the time between the two resets: the
    policy ran meanwhile, as after a person's hand-back). The first ``failed_resets``
    ``policy/reset`` are refused, as the policy node refuses one while a person holds the
    arm. With ``lock_step`` the cell publishes ``/clock`` (after each reset, held until the
    late event is out) and each step's clock and ``task/success`` (unsolved) while an episode
    runs; without, its times are the system clock's.

    ``stop_events`` routine (``velocity_limit``) events of the episode are numbered at each
    stop that ends one and published before its answer, except those numbered in ``lost``.
    With ``solves`` the task is solved from half the time limit on. With ``restarted`` the
    first stop (the judge's deploy) publishes, once the judge subscribes, events 1, 2, 4 and 5
    of an earlier run of the policy node (3 lost), which then numbers from 1 again."""
    from builtin_interfaces.msg import Time
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Bool, String
    from std_srvs.srv import Trigger

    from robot_il.ros.policy_node import TAKEN_OVER, reset_message, stop_message
    from robot_il.ros.selector_node import LATCHED
    from robot_il.ros.ur_topics import (
        ESTOP_TOPIC,
        RESET_ESTOP_SERVICE,
        SAFETY_EVENTS_TOPIC,
        SUCCESS_TOPIC,
    )
    from robot_il.select.topics import STATISTICS_TOPIC

    class Cell(Node):
        def __init__(self) -> None:
            super().__init__("cell", context=context)
            self.published = 0
            """Safety events published (the ``seq`` of the last)."""
            self.failed_resets = failed_resets
            self.earlier_run = restarted
            """Whether the next stop publishes the earlier run's events."""
            self.sim_resets = 0
            self.episodes: list[float] = []
            """Time (s, the cell's clock) of every accepted ``policy/reset``."""
            self.estops: list[bool] = []
            self.sim_t = 0.0
            """Simulated time (s) of the cell's clock."""
            self.stepping = threading.Event()
            """Set while an episode runs (between ``policy/reset`` and ``policy/stop``)."""
            self._running = True
            self.events = self.create_publisher(String, SAFETY_EVENTS_TOPIC, 100)
            self.clock = self.create_publisher(Clock, "/clock", 1000)
            self.success = self.create_publisher(Bool, SUCCESS_TOPIC, 1000)
            self.create_subscription(Bool, ESTOP_TOPIC, lambda m: self.estops.append(m.data), 10)
            self.create_service(Trigger, "policy/stop", self.on_stop)
            self.create_service(Trigger, "policy/reset", self.on_policy_reset)
            self.create_service(Trigger, "sim/reset", self.on_sim_reset)
            self.create_service(Trigger, RESET_ESTOP_SERVICE, self.on_reset_estop)
            statistics = self.create_publisher(String, STATISTICS_TOPIC, LATCHED)
            pending = {"pending": {"episode": 0, "candidate": "candidate"}}
            statistics.publish(String(data=json.dumps(pending)))
            self._stepper = threading.Thread(target=self._step, daemon=True)
            self._stepper.start()

        def now(self) -> float:
            return self.sim_t if lock_step else time.time()

        def publish_clock(self) -> None:
            if lock_step:
                ns = round(self.sim_t * 1e9)
                stamp = Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
                self.clock.publish(Clock(clock=stamp))

        def deliver_late(self, t: float, then=lambda: None) -> None:
            """Number an unsafe event of time ``t`` as published now, deliver it
            :data:`EVENT_DELAY` s later, and call ``then`` once its callback has run."""
            self.published += 1
            event = {"kind": "workspace", "t": t, "detail": "tool out", "seq": self.published}

            def deliver() -> None:
                time.sleep(EVENT_DELAY)
                self.events.publish(String(data=json.dumps(event)))
                time.sleep(EVENT_DELAY)
                then()

            threading.Thread(target=deliver, daemon=True).start()

        def on_stop(self, request, response):
            if self.earlier_run:
                self.earlier_run = False
                wait_for(lambda: self.events.get_subscription_count() > 0, 10, "the judge")
                for seq in (1, 2, 4, 5):
                    event = {"kind": "velocity_limit", "t": self.now(), "detail": "earlier run"}
                    self.events.publish(String(data=json.dumps({**event, "seq": seq})))
            if self.stepping.is_set() and late_after == "episode":
                self.deliver_late(self.episodes[-1] + TIME_LIMIT / 2)
            for _ in range(stop_events if self.stepping.is_set() else 0):
                self.published += 1
                if self.published not in lost:
                    event = {"kind": "velocity_limit", "t": self.episodes[-1], "detail": "fast"}
                    self.events.publish(String(data=json.dumps({**event, "seq": self.published})))
            self.stepping.clear()
            response.success, response.message = True, stop_message("candidate", self.published)
            return response

        def on_sim_reset(self, request, response):
            self.sim_resets += 1
            self.sim_t += 1.0  # time went on between the episodes
            if self.sim_resets == 2 and late_after == "sim/reset":
                self.deliver_late(self.sim_t - 0.5, then=self.publish_clock)
            else:  # after the answer, as a lock-step simulator announces its reset state
                threading.Timer(0.01, self.publish_clock).start()
            response.success = True
            return response

        def on_policy_reset(self, request, response):
            if self.failed_resets > 0:
                self.failed_resets -= 1
                response.success, response.message = False, TAKEN_OVER
                return response
            self.episodes.append(self.now())
            self.stepping.set()
            response.success, response.message = True, reset_message("candidate")
            return response

        def on_reset_estop(self, request, response):
            response.success = True
            return response

        def _step(self) -> None:
            """While an episode runs, a step every 10 ms: its clock, then its ``task/success``
            (unsolved, or with ``solves`` solved from half the time limit on)."""
            while self._running:
                if self.stepping.wait(0.05):
                    self.sim_t += STEP
                    self.publish_clock()
                    solved = solves and self.now() > self.episodes[-1] + TIME_LIMIT / 2
                    self.success.publish(Bool(data=solved))
                    time.sleep(0.01)

        def shutdown(self) -> None:
            self._running = False
            self._stepper.join(timeout=2.0)
            self.destroy_node()

    return Cell()


def judged(context, cell, lock_step: bool = False) -> tuple[list[dict], list[dict], list[str]]:
    """Run the real judge beside ``cell`` until it has judged episode 0, and 0.3 s more;
    returns the ratings and the interventions it sent, and the lines it logged."""
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from robot_il.ros.episode_judge import EpisodeJudge
    from robot_il.select.topics import INTERVENE_TOPIC, RATING_TOPIC

    parameters = [Parameter("time_limit", value=TIME_LIMIT)]
    if lock_step:
        parameters.append(Parameter("use_sim_time", value=True))
    judge = EpisodeJudge(context=context, parameter_overrides=parameters)
    client = Client(context)
    try:
        ratings = client.record(String, RATING_TOPIC)
        interventions = client.record(String, INTERVENE_TOPIC)
        logs = client.record_log()
        with spinning(cell, context), spinning(judge, context):
            wait_for(lambda: ratings or interventions, 20, "the judgement of episode 0")
            time.sleep(0.3)
        return (
            [json.loads(r[1].data) for r in ratings],
            [json.loads(r[1].data) for r in interventions],
            [r[1].msg for r in logs if r[1].name == "episode_judge"],
        )
    finally:
        client.close()


def test_an_unsafe_event_heard_after_the_stops_answer_fails_the_episode(ros_context) -> None:
    """The policy node publishes an episode's last safety events as ``policy/stop`` ends it,
    just before it answers; the judge read them as soon as the answer came, and its executor
    may run the answer's callback before the event's. An unsafe event of the episode (here in
    its middle, its callback late) was missed and the episode rated. The stop's answer now
    numbers the events published, and the judge waits until it has heard the last of them:
    the episode is stopped as unsafe."""
    cell = cell_node(ros_context, late_after="episode")
    ratings, interventions, _ = judged(ros_context, cell)
    assert len(cell.episodes) == 1
    assert ratings == [] and [i["episode"] for i in interventions] == [0]
    assert cell.estops == [True]


def test_a_failed_policy_reset_leaves_no_episode_start_behind(ros_context) -> None:
    """The judge begins an episode's clock before ``policy/reset`` (an unsafe event of its
    first milliseconds must count); a refused reset left that start set, and until the next
    attempt began its own, every unsafe event from the failed attempt's start on was taken for
    the episode's. Here the policy ran between the attempts (as after a person's hand-back),
    and its event was heard as the second attempt reset the simulation: the good episode was
    stopped as unsafe for it. A failed attempt now ends its episode."""
    cell = cell_node(ros_context, late_after="sim/reset", failed_resets=1, lock_step=True)
    ratings, interventions, _ = judged(ros_context, cell, lock_step=True)
    assert cell.sim_resets == 2 and len(cell.episodes) == 1
    assert interventions == [] and [r["episode"] for r in ratings] == [0]
    assert cell.estops == []


@pytest.mark.parametrize(
    ("lost", "where"),
    [(frozenset({2}), "seq 2"), (frozenset({3}), "seq 3")],
    ids=["a gap in seq", "the last not heard"],
)
def test_an_episode_whose_safety_events_were_lost_is_a_failure(ros_context, lost, where) -> None:
    """The policy node publishes its safety events on a topic of depth 100: a burst beyond it,
    or a subscriber held up, loses some, and a lost event may have been the unsafe one. Here
    the episode is solved, and of its three events (numbered by ``seq``, the stop's answer
    says three) one never comes: in the middle, the judge heard the last and rated the
    episode solved; at the end, it waited in vain and ran the episode again. Either way the
    judge now cannot vouch for the episode's safety: a failure (an intervention, no rating,
    not run again), and one line saying how many events were lost, which, and on what topic."""
    cell = cell_node(ros_context, stop_events=3, lost=lost, solves=True)
    ratings, interventions, logs = judged(ros_context, cell)
    assert len(cell.episodes) == 1
    assert ratings == [] and [i["episode"] for i in interventions] == [0]
    assert cell.estops == []  # nothing unsafe was seen: the stopped policy needs no e-stop
    said = [line for line in logs if "lost" in line]
    assert len(said) == 1, logs
    assert f"1 of the episode's 3 safety events ({where})" in said[0]
    assert "/safety/events" in said[0] and "failure" in said[0]


def test_a_restarted_policy_nodes_events_are_counted_from_its_restart(ros_context) -> None:
    """A policy node restarted beside a running judge numbers its events from 1 again: an
    event its earlier run lost (seq 3 here, before the restart) is no event of the new run's
    episodes, which are judged as usual (solved, rated), all their events heard."""
    cell = cell_node(ros_context, stop_events=3, solves=True, restarted=True)
    ratings, interventions, logs = judged(ros_context, cell)
    assert [r["episode"] for r in ratings] == [0] and interventions == []
    assert not [line for line in logs if "lost" in line]
