"""The ``selector`` node: before each episode it picks the candidate policy to deploy.

It publishes the chosen candidate (checkpoint name or path) on
:data:`~robot_il.select.topics.CANDIDATE_TOPIC` for the policy node, closes the episode when
the person's rating (std_msgs/String ``{"episode": N, "rating": r}`` on ``RATING_TOPIC``) or
intervention (std_msgs/String ``{"episode": N}`` on ``INTERVENE_TOPIC``, a failure) arrives,
then at once picks and publishes the next candidate. Feedback names its episode and closes
only that one: feedback for an episode already closed (by an intervention, say, after which
the next one opened at once: a second press of intervene, or a rating after it) is logged and
ignored, as is a malformed message.
Candidates therefore switch only between episodes, or immediately on intervention. After
every change it publishes :meth:`Selector.statistics` as JSON on ``STATISTICS_TOPIC``
(the open episode is ``pending``). Candidate and statistics are latched (transient local),
so nodes that start later see the current ones.

The selection state file (``state_path``) is rewritten durably after every change; a
restarted node resumes from it, re-publishing the episode that was open.

Parameters: ``candidates`` (string list), ``rule`` (ucb1 | conservative_ucb |
epsilon_greedy | uniform), ``default_candidate`` and ``default_mean`` (the known-safe policy
and its mean rating, for conservative_ucb), ``alpha``, ``delta``, ``epsilon``, ``seed``,
``state_path`` ("" keeps the state in memory), ``episodes`` (stop after this many rated
episodes and print the winner; 0 runs until shut down; fewer than the candidates is refused,
as some would never run).

Online fine-tuning (off unless ``finetune_corrections`` is set): ``finetune_corrections``
(the corrections dataset the teleoperation recorder appends to), ``finetune_out`` (folder of
the fine-tuned checkpoints ``<candidate>-<hash of its path>-ftNNN``; required with it),
``finetune_demos`` (original demonstrations mixed into each update; "" uses corrections only),
``finetune_steps`` (optimizer steps per update), ``candidates_dir`` (folder the candidate
names are in, as for the policy node). After each closed episode the candidate just deployed
is fine-tuned on the corrections recorded so far, if new ones arrived (see
:class:`~robot_il.select.online_finetune.OnlineFinetuner`), in a worker thread (seconds of
CPU) so the node keeps spinning; only then is the next candidate announced. A candidate is
announced as its latest fine-tuned checkpoint path, while its bandit arm and statistics stay
keyed by the original name: the paper's deployed model is updated, not replaced. Feedback
that arrives during a fine-tuning finds no open episode and is ignored. A correction recorded
after the intervention that closed an episode is used the next time that candidate's episode
closes. The statistics JSON gains ``finetune``: ``count`` (updates by this run), ``last``
(episode, candidate, checkpoint, seconds of the latest) and ``deployed`` (candidate ->
checkpoint announced for it). Its ``pending`` episode always names the ``checkpoint``
announced for it (the candidate itself when nothing was fine-tuned).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from robot_il.errors import ConfigError, FeedbackError, RobotILError, SelectionError
from robot_il.ros.node_main import declare_float, run_node
from robot_il.select import (
    UCB1,
    ConservativeUCB,
    EpsilonGreedy,
    SelectionRule,
    Selector,
    Uniform,
    check_budget,
)
from robot_il.select.topics import (
    CANDIDATE_TOPIC,
    INTERVENE_TOPIC,
    RATING_TOPIC,
    STATISTICS_TOPIC,
    read_intervention,
    read_rating,
)

if TYPE_CHECKING:  # torch comes with it: imported only when fine-tuning is on
    from robot_il.select.online_finetune import OnlineFinetuner

LATCHED = QoSProfile(
    depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE
)
"""QoS of the candidate and statistics topics: late subscribers get the latest message."""

FEEDBACK_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
"""QoS of the feedback topics: no rating may be dropped."""


def make_rule(
    rule: str,
    candidates: list[str],
    *,
    default_candidate: str,
    default_mean: float,
    alpha: float,
    delta: float,
    epsilon: float,
) -> SelectionRule:
    """The selection rule named ``rule``, with the parameters that rule uses."""
    if rule == "ucb1":
        return UCB1()
    if rule == "uniform":
        return Uniform()
    if rule == "epsilon_greedy":
        return EpsilonGreedy(epsilon)
    if rule == "conservative_ucb":
        if default_candidate not in candidates:
            raise SelectionError(
                f"conservative_ucb: default_candidate {default_candidate!r} is not one of "
                f"{candidates}"
            )
        return ConservativeUCB(candidates.index(default_candidate), default_mean, alpha, delta)
    raise SelectionError(
        f"unknown rule {rule!r}; use ucb1, conservative_ucb, epsilon_greedy or uniform"
    )


class SelectorNode(Node):
    """Chooses a candidate per episode from the person's feedback."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("selector", **node_kwargs)
        candidates = list(self.declare_parameter("candidates", [""]).value)
        rule = make_rule(
            self.declare_parameter("rule", "ucb1").value,
            candidates,
            default_candidate=self.declare_parameter("default_candidate", "").value,
            default_mean=declare_float(self, "default_mean", 0.5),
            alpha=declare_float(self, "alpha", 0.1),
            delta=declare_float(self, "delta", 0.05),
            epsilon=declare_float(self, "epsilon", 0.1),
        )
        seed = int(self.declare_parameter("seed", 0).value)
        state_path = self.declare_parameter("state_path", "").value
        self.episodes = int(self.declare_parameter("episodes", 0).value)
        check_budget(self.episodes, candidates, "selector: episodes")
        if state_path:
            self.selector = Selector.open(state_path, candidates, rule, seed=seed)
        else:
            self.selector = Selector.create(candidates, rule, seed=seed)
        self.finished = False
        self.candidates_dir = self.declare_parameter("candidates_dir", "").value
        self.finetuner = self._make_finetuner()
        self.finetune_status: dict = {"count": 0, "last": None, "deployed": {}}
        # Guards the selector between the executor's callbacks and the fine-tuning worker.
        self._lock = threading.Lock()
        self._closing = False  # set on shutdown: the worker then publishes nothing

        self.candidate_pub = self.create_publisher(String, CANDIDATE_TOPIC, LATCHED)
        self.statistics_pub = self.create_publisher(String, STATISTICS_TOPIC, LATCHED)
        self.create_subscription(String, RATING_TOPIC, self.on_rating, FEEDBACK_QOS)
        self.create_subscription(String, INTERVENE_TOPIC, self.on_intervene, FEEDBACK_QOS)
        # The first episode opens once spinning (a finished state shuts down from there).
        self._first = self.create_timer(0.0, self.on_first_episode)

    def _make_finetuner(self) -> OnlineFinetuner | None:
        """The online fine-tuner the ``finetune_*`` parameters ask for (None: off)."""
        corrections = self.declare_parameter("finetune_corrections", "").value
        out = self.declare_parameter("finetune_out", "").value
        demos = self.declare_parameter("finetune_demos", "").value
        steps = int(self.declare_parameter("finetune_steps", 300).value)
        if not corrections:
            return None
        from robot_il.select.online_finetune import OnlineFinetuner
        from robot_il.train.finetune import FinetuneSettings

        if not out:
            raise ConfigError("selector: finetune_corrections is set but finetune_out is empty")
        settings = FinetuneSettings(steps=steps)
        settings.check()
        finetuner = OnlineFinetuner(corrections, out, demos=demos or None, settings=settings)
        for candidate in self.selector.candidates:
            finetuner.check(self._resolve(candidate))
        if not demos:
            self.get_logger().warning(
                "fine-tuning on the corrections alone (finetune_demos is empty): a short "
                "correction, trained on for finetune_steps updates, can overwrite what a "
                "candidate did well elsewhere (one corrected step moved a BC policy's actions "
                "by up to 4 rad at unrelated states); finetune_demos:= mixes its demonstrations in"
            )
        return finetuner

    def _resolve(self, candidate: str) -> Path:
        """A candidate's checkpoint path (a bare name is looked up in ``candidates_dir``)."""
        return candidate_path(candidate, self.candidates_dir)

    def deployed(self, candidate: str) -> str:
        """What to announce for ``candidate``: its latest fine-tuned checkpoint, or itself."""
        if self.finetuner is None:
            return candidate
        path = self._resolve(candidate)
        checkpoint = self.finetuner.checkpoint_for(path)
        return candidate if checkpoint == path else str(checkpoint)

    def on_first_episode(self) -> None:
        self._first.cancel()
        with self._lock:  # a resumed pending episode's rating may start one meanwhile
            self.start_episode()

    def on_rating(self, msg: String) -> None:
        try:
            episode, rating = read_rating(msg.data)
        except FeedbackError as error:
            self.get_logger().warning(f"{error}: ignored")
            return
        self.close_episode(rating, intervened=False, episode=episode)

    def on_intervene(self, msg: String) -> None:
        try:
            episode = read_intervention(msg.data)
        except FeedbackError as error:
            self.get_logger().warning(f"{error}: ignored")
            return
        self.close_episode(0.0, intervened=True, episode=episode)

    def close_episode(self, rating: float, *, intervened: bool, episode: int) -> None:
        """Record the feedback of ``episode``, which must be the open one (feedback for any
        other is logged and ignored), and start the next episode."""
        with self._lock:
            pending = self.selector.pending
            feedback = "intervention" if intervened else f"rating {rating:g}"
            if self.finished or pending is None:
                self.get_logger().warning(f"{feedback} of episode {episode} ignored: none is open")
                return
            if episode != pending.episode:
                self.get_logger().warning(
                    f"{feedback} of episode {episode} ignored: episode {pending.episode} is open "
                    "(feedback closes only the episode it names)"
                )
                return
            try:
                self.selector.feedback(pending.episode, rating, intervened=intervened)
            except FeedbackError as error:
                self.get_logger().warning(str(error))
                return
            what = "intervened" if intervened else f"rated {rating:.2f}"
            self.get_logger().info(f"episode {pending.episode} ({pending.candidate}): {what}")
            if self.finetuner is None or self._finished():
                self.start_episode()
                return
            threading.Thread(
                target=self._finetune_then_start,
                args=(pending.episode, pending.candidate),
                name="selector-finetune",
                daemon=True,  # an update killed half-way leaves no checkpoint behind
            ).start()

    def _finetune_then_start(self, episode: int, candidate: str) -> None:
        """Worker: fine-tune the candidate just deployed, then open the next episode."""
        assert self.finetuner is not None
        started = time.monotonic()
        try:
            checkpoint = self.finetuner.after_episode(self._resolve(candidate))
        except Exception as error:  # a failed update must not stall the selection
            kind = "" if isinstance(error, RobotILError) else f"{type(error).__name__}: "
            self.get_logger().error(
                f"fine-tuning {candidate} failed, deploying it unchanged: {kind}{error}"
            )
            checkpoint = None
        seconds = time.monotonic() - started
        with self._lock:
            if self._closing:
                return
            if checkpoint is not None:
                self.finetune_status["count"] += 1
                self.finetune_status["last"] = {
                    "episode": episode,
                    "candidate": candidate,
                    "checkpoint": str(checkpoint),
                    "seconds": round(seconds, 3),
                }
                self.get_logger().info(
                    f"fine-tuned {candidate} into {checkpoint} in {seconds:.1f} s"
                )
            self.start_episode()

    def _finished(self) -> bool:
        return bool(self.episodes) and len(self.selector.log) >= self.episodes

    def start_episode(self) -> None:
        """Open the next episode (or re-announce the open one) and publish it (call with the
        lock held: the executor and the fine-tuning thread both start episodes)."""
        finished = self._finished()
        if not finished:
            choice = self.selector.pending or self.selector.choose()
            announced = self.deployed(choice.candidate)
            if announced != choice.candidate:
                self.finetune_status["deployed"][choice.candidate] = announced
            self.candidate_pub.publish(String(data=announced))
        statistics = self.selector.statistics()
        if not finished:
            statistics["pending"]["checkpoint"] = announced
        if self.finetuner is not None:
            statistics["finetune"] = self.finetune_status
        self.statistics_pub.publish(String(data=json.dumps(statistics)))
        if finished:
            self.finish(statistics)

    def finish(self, statistics: dict) -> None:
        """Print the winner and shut the node down (``episodes`` reached)."""
        self.finished = True
        best = next(c for c in statistics["candidates"] if c["name"] == statistics["best"])
        print(
            f"selection finished after {statistics['episodes']} episodes: best candidate "
            f"{best['name']} (mean rating {best['mean_rating']:.3f} over {best['plays']} "
            "episodes)",
            flush=True,
        )
        self.context.try_shutdown()

    def shutdown(self) -> None:
        """Destroy the node; a fine-tuning under way finishes or dies with the process (it
        leaves no partial checkpoint) but announces nothing."""
        with self._lock:
            self._closing = True
        self.destroy_node()


def candidate_path(name: str, candidates_dir: str) -> Path:
    """The checkpoint ``name`` names: a path, or where there is none, a bare name in the
    folder ``candidates_dir`` ("" for none), as the deploy_select launch passes candidates."""
    path = Path(name)
    if not path.exists() and candidates_dir:
        path = Path(candidates_dir) / name
    return path


def main(args: list[str] | None = None) -> int:
    """Console script ``selector``; ROS parameters via ``--ros-args -p name:=value``."""
    return run_node(SelectorNode, args)


if __name__ == "__main__":
    sys.exit(main())
