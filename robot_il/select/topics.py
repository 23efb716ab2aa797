"""ROS 2 topic names shared by the selector node and the feedback front-ends (web, terminal),
and the feedback messages' text.

Kept here, free of rclpy, so the front-ends can be used and tested without ROS and every
publisher and subscriber agrees on one spelling. Names are relative, like those of
:mod:`robot_il.ros.ur_topics` (where the e-stop topic is): a namespace moves them all.
"""

from __future__ import annotations

import json

from robot_il.errors import FeedbackError
from robot_il.select.selector import check_episode, check_rating

CANDIDATE_TOPIC = "selector/candidate"
"""std_msgs/String: the candidate (checkpoint name or path) deployed in the current episode."""

STATISTICS_TOPIC = "selector/statistics"
"""std_msgs/String: JSON of :meth:`robot_il.select.Selector.statistics` after every change."""

RATING_TOPIC = "selector/feedback/rating"
"""std_msgs/String: the person's rating in [0, 1] of the episode they watched, as JSON
``{"episode": N, "rating": r}`` (:func:`rating_message`). The number keeps a rating from
closing another episode: an intervention closes one at once and the selector opens the next,
so a rating sent after it would otherwise land on the new episode."""

INTERVENE_TOPIC = "selector/feedback/intervene"
"""std_msgs/String: the person stopped the episode they watched, a failure (rating 0), as JSON
``{"episode": N}`` (:func:`intervention_message`). The number keeps a repeated press (a double
click, or presses in a hurry while the robot misbehaves) from closing the next episode, which
the selector opens at once on the first."""


def rating_message(episode: int, rating: float) -> str:
    """The ``RATING_TOPIC`` text rating episode number ``episode`` with ``rating``."""
    return json.dumps({"episode": int(episode), "rating": float(rating)})


def read_rating(text: str) -> tuple[int, float]:
    """(episode, rating) of a ``RATING_TOPIC`` text; ``FeedbackError`` saying what is wrong."""
    where = f"rating message {text!r}"
    message = _json_object(text, where, '{"episode": N, "rating": r}')
    return check_episode(message.get("episode"), where), check_rating(message.get("rating"), where)


def intervention_message(episode: int) -> str:
    """The ``INTERVENE_TOPIC`` text stopping episode number ``episode``."""
    return json.dumps({"episode": int(episode)})


def read_intervention(text: str) -> int:
    """The episode an ``INTERVENE_TOPIC`` text stops; ``FeedbackError`` saying what is wrong."""
    where = f"intervention message {text!r}"
    return check_episode(_json_object(text, where, '{"episode": N}').get("episode"), where)


def _json_object(text: str, where: str, expected: str) -> dict:
    """``text`` parsed as a JSON object; ``FeedbackError`` naming ``where`` and ``expected``."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        raise FeedbackError(f"{where}: expected JSON {expected}")
    return message
