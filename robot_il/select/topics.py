"""ROS 2 topic names shared by the selector node and the feedback front-ends (web, terminal),
and the rating message's text.

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
"""std_msgs/Bool (true): the person stopped the episode; it counts as a failure (rating 0)."""


def rating_message(episode: int, rating: float) -> str:
    """The ``RATING_TOPIC`` text rating episode number ``episode`` with ``rating``."""
    return json.dumps({"episode": int(episode), "rating": float(rating)})


def read_rating(text: str) -> tuple[int, float]:
    """(episode, rating) of a ``RATING_TOPIC`` text; ``FeedbackError`` saying what is wrong."""
    where = f"rating message {text!r}"
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        raise FeedbackError(f'{where}: expected JSON {{"episode": N, "rating": r}}')
    return check_episode(message.get("episode"), where), check_rating(message.get("rating"), where)
