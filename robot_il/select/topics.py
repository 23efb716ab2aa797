"""ROS 2 topic names shared by the selector node and the feedback front-ends (web, terminal).

Kept here, free of rclpy, so the front-ends can be used and tested without ROS and every
publisher and subscriber agrees on one spelling. Names are relative, like those of
:mod:`robot_il.ros.ur_topics` (where the e-stop topic is): a namespace moves them all.
"""

CANDIDATE_TOPIC = "selector/candidate"
"""std_msgs/String: the candidate (checkpoint name or path) deployed in the current episode."""

STATISTICS_TOPIC = "selector/statistics"
"""std_msgs/String: JSON of :meth:`robot_il.select.Selector.statistics` after every change."""

RATING_TOPIC = "selector/feedback/rating"
"""std_msgs/Float64: the person's rating of the current episode, in [0, 1]."""

INTERVENE_TOPIC = "selector/feedback/intervene"
"""std_msgs/Bool (true): the person stopped the episode; it counts as a failure (rating 0)."""
