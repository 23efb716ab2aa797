"""What a feedback front-end (web page, terminal UI) does when the person acts.

Front-ends know nothing of ROS: a node passes handlers that publish the feedback topics
(:mod:`robot_il.select.topics`); tests pass plain functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RATING_CHOICES = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The ratings the front-ends offer as one-press choices (0 = failed, 1 = perfect)."""


@dataclass(frozen=True)
class FeedbackHandlers:
    """The person's actions, and where the status and camera view come from.

    ``on_rate(episode, rating)`` and ``on_intervene(episode)`` get the number of the episode
    the front-end showed when the person acted, so feedback never closes an episode that opened
    meanwhile (an intervention closes one, and the selector opens the next, at once: a second
    press of intervene, or a rating after it, would close the new one). ``status()`` returns a
    JSON-able dict: ``episode``, ``candidate`` and optionally ``statistics`` (as
    :meth:`robot_il.select.Selector.statistics`). ``frame()`` returns the latest camera image
    as JPEG bytes, or None while there is none. A handler that raises
    :class:`robot_il.errors.RobotILError` has its message shown to the person.
    """

    on_rate: Callable[[int, float], None]
    on_intervene: Callable[[int], None]
    on_estop: Callable[[], None]
    status: Callable[[], dict[str, Any]]
    frame: Callable[[], bytes | None] | None = None
