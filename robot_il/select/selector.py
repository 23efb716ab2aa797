"""A selector: which candidate policy to deploy next, learned from a person's feedback.

One episode is open at a time: :meth:`Selector.choose` opens it (the candidate to deploy),
:meth:`Selector.feedback` closes it with the person's rating in [0, 1] (an intervention is a
rating of 0 and counts as a failure). After every change the whole state (log of episodes and
the random generator's state) is written durably to the state file, so a selector killed at
any instant resumes with exactly the state of its last completed call and goes on making the
same choices an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_il.errors import FeedbackError, SelectionError
from robot_il.select.durable import write_json_atomic
from robot_il.select.rules import SelectionRule, empirical_means, rule_from_config

STATE_FORMAT = 1


def check_rating(rating: object, where: str) -> float:
    """``rating`` as a float if it is a real number in [0, 1], else :class:`FeedbackError`
    naming ``where`` (the episode, or the request it came in)."""
    if isinstance(rating, bool) or not isinstance(rating, numbers.Real):
        raise FeedbackError(f"{where}: rating {rating!r} is not a number in [0, 1]")
    rating = float(rating)
    if math.isnan(rating) or not 0.0 <= rating <= 1.0:
        raise FeedbackError(f"{where}: rating {rating} is not in [0, 1]")
    return rating


def check_episode(episode: object, where: str) -> int:
    """``episode`` as an int if it is an episode number (an integer >= 0), else
    :class:`FeedbackError` naming ``where``."""
    if isinstance(episode, bool) or not isinstance(episode, numbers.Integral) or episode < 0:
        raise FeedbackError(f"{where}: episode {episode!r} is not an episode number (>= 0)")
    return int(episode)


def check_budget(episodes: int, candidates: list[str], where: str) -> None:
    """``SelectionError`` naming ``where`` when ``episodes`` (0: no end) cannot deploy every
    candidate once: the winner would be named among the candidates that happened to run."""
    if 0 < episodes < len(candidates):
        raise SelectionError(
            f"{where} {episodes}: fewer episodes than the {len(candidates)} candidates, so some "
            f"would never be deployed; ask for at least {len(candidates)}"
        )


@dataclass(frozen=True)
class Choice:
    """An opened episode: its number and the candidate (index and name) to deploy in it."""

    episode: int
    arm: int
    candidate: str


@dataclass(frozen=True)
class EpisodeRecord:
    """A closed episode: who was deployed and what the person said (rating in [0, 1])."""

    episode: int
    arm: int
    rating: float
    intervened: bool


class Selector:
    """Chooses among named candidates (checkpoint paths or names) with a bandit rule.

    Create with :meth:`create`, resume with :meth:`load`, or :meth:`open` for either.
    ``state_path=None`` keeps everything in memory (simulations, benchmarks).
    """

    def __init__(
        self,
        candidates: list[str],
        rule: SelectionRule,
        *,
        seed: int,
        state_path: Path | None,
        rng_state: dict[str, Any] | None = None,
        log: list[EpisodeRecord] | None = None,
        pending: Choice | None = None,
    ) -> None:
        if not candidates or any(not isinstance(c, str) or not c for c in candidates):
            raise SelectionError(f"candidates must be non-empty names, got {candidates!r}")
        if len(set(candidates)) != len(candidates):
            raise SelectionError(f"candidate names must be unique, got {candidates!r}")
        rule.validate(len(candidates))
        self.candidates = list(candidates)
        self.rule = rule
        self.seed = seed
        self.state_path = None if state_path is None else Path(state_path)
        self._rng = np.random.default_rng(seed)
        if rng_state is not None:
            self._rng.bit_generator.state = rng_state
        self.log: list[EpisodeRecord] = []
        self.counts = np.zeros(len(candidates))
        self.sums = np.zeros(len(candidates))
        for record in log or []:
            self._add(record)
        self.pending = pending

    # ----------------------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        candidates: list[str],
        rule: SelectionRule,
        *,
        seed: int = 0,
        state_path: Path | None = None,
        overwrite: bool = False,
    ) -> Selector:
        """A fresh selector; its state file is written at once (refused if one exists)."""
        if state_path is not None and Path(state_path).exists() and not overwrite:
            raise SelectionError(
                f"selector state {state_path} already exists (resume it, or pass overwrite)"
            )
        selector = cls(candidates, rule, seed=seed, state_path=state_path)
        selector._save()
        return selector

    @classmethod
    def load(cls, state_path: Path) -> Selector:
        """Resume from a state file written by a previous selector."""
        state_path = Path(state_path)
        try:
            state = json.loads(state_path.read_text())
        except FileNotFoundError:
            raise SelectionError(f"selector state {state_path} does not exist") from None
        except (OSError, json.JSONDecodeError) as error:
            raise SelectionError(f"selector state {state_path} is unreadable: {error}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise SelectionError(f"selector state {state_path}: not a format-{STATE_FORMAT} file")
        try:
            pending = state["pending"]
            log = [EpisodeRecord(**record) for record in state["log"]]
            pending = None if pending is None else Choice(**pending)
            _check_records(state["candidates"], log, pending)
            return cls(
                state["candidates"],
                rule_from_config(state["rule"]),
                seed=state["seed"],
                state_path=state_path,
                rng_state=state["rng"],
                log=log,
                pending=pending,
            )
        except FeedbackError as error:  # a ValueError that says where
            raise SelectionError(f"selector state {state_path} is corrupt: {error}") from None
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise SelectionError(f"selector state {state_path} is corrupt: {error!r}") from None

    @classmethod
    def open(
        cls, state_path: Path, candidates: list[str], rule: SelectionRule, *, seed: int = 0
    ) -> Selector:
        """Resume ``state_path`` if it exists (it must be for the same candidates and rule),
        else create it."""
        if not Path(state_path).exists():
            return cls.create(candidates, rule, seed=seed, state_path=state_path)
        selector = cls.load(state_path)
        if selector.candidates != list(candidates) or selector.rule.config() != rule.config():
            raise SelectionError(
                f"selector state {state_path} is for candidates {selector.candidates} with "
                f"{selector.rule.config()}, not {list(candidates)} with {rule.config()}"
            )
        return selector

    # ----------------------------------------------------------------------------- episodes
    @property
    def next_episode(self) -> int:
        """Number the next opened episode gets (episodes count from 0)."""
        return len(self.log) + (self.pending is not None)

    def choose(self) -> Choice:
        """Open the next episode and return the candidate to deploy in it."""
        if self.pending is not None:
            raise SelectionError(
                f"episode {self.pending.episode} ({self.pending.candidate}) is still awaiting "
                "feedback; rate it before choosing the next candidate"
            )
        arm = int(self.rule.choose(self.counts, self.sums, self._rng))
        self.pending = Choice(self.next_episode, arm, self.candidates[arm])
        self._save()
        return self.pending

    def feedback(self, episode: int, rating: float, *, intervened: bool = False) -> EpisodeRecord:
        """Close ``episode`` with the person's ``rating`` in [0, 1]."""
        rating = check_rating(rating, f"episode {episode}")
        if self.pending is None or episode != self.pending.episode:
            if isinstance(episode, numbers.Integral) and 0 <= episode < len(self.log):
                raise FeedbackError(f"episode {episode} was already rated")
            waiting = "none is" if self.pending is None else f"{self.pending.episode} is"
            raise FeedbackError(f"episode {episode!r} is unknown (episode {waiting} open)")
        record = EpisodeRecord(int(episode), self.pending.arm, rating, bool(intervened))
        self._add(record)
        self.pending = None
        self._save()
        return record

    def intervene(self, episode: int) -> EpisodeRecord:
        """The person stopped ``episode``: it counts as a failure (rating 0)."""
        return self.feedback(episode, 0.0, intervened=True)

    # --------------------------------------------------------------------------- statistics
    def means(self) -> np.ndarray:
        """Mean rating per candidate (NaN where never rated)."""
        means = empirical_means(self.counts, self.sums)
        return np.where(self.counts > 0, means, np.nan)

    def best(self) -> str | None:
        """The candidate with the highest mean rating so far (None before any feedback)."""
        if not self.log:
            return None
        means = np.where(self.counts > 0, self.means(), -np.inf)
        return self.candidates[int(np.argmax(means))]

    def statistics(self) -> dict[str, Any]:
        """JSON-able summary for logs, the UI and the ROS statistics topic."""
        interventions = np.zeros(len(self.candidates), dtype=int)
        for record in self.log:
            interventions[record.arm] += record.intervened
        return {
            "rule": self.rule.config(),
            "episodes": len(self.log),
            "pending": None if self.pending is None else asdict(self.pending),
            "best": self.best(),
            "candidates": [
                {
                    "name": name,
                    "plays": int(self.counts[i]),
                    "mean_rating": None if self.counts[i] == 0 else float(self.means()[i]),
                    "interventions": int(interventions[i]),
                }
                for i, name in enumerate(self.candidates)
            ],
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: what the state file holds."""
        return {
            "format": STATE_FORMAT,
            "candidates": self.candidates,
            "rule": self.rule.config(),
            "seed": self.seed,
            "rng": self._rng.bit_generator.state,
            "log": [asdict(record) for record in self.log],
            "pending": None if self.pending is None else asdict(self.pending),
        }

    # ------------------------------------------------------------------------------ private
    def _add(self, record: EpisodeRecord) -> None:
        self.log.append(record)
        self.counts[record.arm] += 1
        self.sums[record.arm] += record.rating

    def _save(self) -> None:
        if self.state_path is None:
            return
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.state_path, self.state_dict())
        except OSError as error:
            message = f"cannot write selector state {self.state_path}: {error}"
            raise SelectionError(message) from None


def _check_records(candidates: Any, log: list[EpisodeRecord], pending: Choice | None) -> None:
    """``FeedbackError`` naming the first entry of a state's ``log`` or ``pending`` episode
    that no selector writes (a hand edit): episodes numbered 0, 1, ... in order, arms that
    index ``candidates``, ratings in [0, 1], ``intervened`` a boolean. Such an entry was counted
    for another candidate (arm -1), past the ratings' range, or numbered two episodes alike."""
    if not isinstance(candidates, list):
        raise FeedbackError(f"candidates {candidates!r} is not a list")
    entries: list[tuple[str, EpisodeRecord | Choice]] = [
        (f"log entry {index}", record) for index, record in enumerate(log)
    ]
    if pending is not None:
        entries.append(("pending episode", pending))
    for number, (where, entry) in enumerate(entries):
        if check_episode(entry.episode, where) != number:
            raise FeedbackError(f"{where}: episode {entry.episode}, expected {number}")
        arm = entry.arm
        if isinstance(arm, bool) or not isinstance(arm, int) or not 0 <= arm < len(candidates):
            raise FeedbackError(
                f"{where}: arm {arm!r} is not a candidate's index (0..{len(candidates) - 1})"
            )
        if isinstance(entry, EpisodeRecord):
            check_rating(entry.rating, where)
            if not isinstance(entry.intervened, bool):
                raise FeedbackError(
                    f"{where}: intervened {entry.intervened!r} is not true or false"
                )
        elif entry.candidate != candidates[arm]:
            raise FeedbackError(f"{where}: candidate {entry.candidate!r} is not arm {arm}'s")
