"""The ``feedback_web`` node: the supervising person's web page (and terminal UI) on ROS 2.

Serves :class:`robot_il.select.web.FeedbackServer` and turns its buttons into messages: a
rating of the episode the page showed as std_msgs/String (``{"episode": N, "rating": r}``)
on :data:`~robot_il.select.topics.RATING_TOPIC`, an intervention in it as std_msgs/String
(``{"episode": N}``) on ``INTERVENE_TOPIC``, the e-stop as std_msgs/Bool (true) on
:data:`~robot_il.ros.ur_topics.ESTOP_TOPIC`. The page shows the selector's statistics
(``STATISTICS_TOPIC``) and the latest image of ``camera_topic`` (sensor_msgs/Image, rgb8 or
bgr8). Only the open episode can be rated or stopped, once: feedback for an episode that is no
longer open, was rated, or was stopped by an intervention from here is refused (an
intervention closes its episode at once and the selector opens the next one meanwhile, so a
second press of intervene would stop that one); e-stops always go out. The page keeps its
rating and intervene buttons disabled for 1 s after the episode it shows changes, so a press
meant for the episode before (landing just after the page polled, or from a second tab) does
not rate or stop the one that just opened. A button whose topic no node subscribes to (after
up to 5 s, :data:`~robot_il.ros.node_main.LISTENER_WAIT`, as a node started a moment ago may
not be matched yet) is refused on the page instead of published into the void: the topics are
volatile, so that a restarted selector never receives an old intervention, and a message sent
before the match is lost.

Parameters: ``host`` (127.0.0.1; a loopback address only, any other is a ``ConfigError``
before the node starts: from another machine, open the page through an SSH tunnel,
``ssh -L 8080:127.0.0.1:8080 robot-pc`` with ``port:=8080``), ``port`` (0: any free port),
``token`` ("" for none; when set, every request must carry it), ``camera_topic`` ("" for
none), ``terminal`` (also run the terminal UI in this terminal). The page's address is printed
as ``feedback page: URL``.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.publisher import Publisher
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String

from robot_il.errors import FeedbackError, SelectionError
from robot_il.ros.node_main import run_node, wait_for_subscriber
from robot_il.ros.selector_node import FEEDBACK_QOS, LATCHED
from robot_il.ros.ur_topics import ESTOP_TOPIC
from robot_il.select.handlers import FeedbackHandlers
from robot_il.select.topics import (
    INTERVENE_TOPIC,
    RATING_TOPIC,
    STATISTICS_TOPIC,
    intervention_message,
    rating_message,
)
from robot_il.select.web import FeedbackServer, encode_jpeg


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB view of a sensor_msgs/Image in rgb8 or bgr8."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise SelectionError(f"camera image encoding {msg.encoding!r}: expected rgb8 or bgr8")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    rgb = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return rgb if msg.encoding == "rgb8" else rgb[..., ::-1]


class FeedbackWebNode(Node):
    """Publishes the person's feedback from the web page; see the module docstring."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("feedback_web", **node_kwargs)
        host = self.declare_parameter("host", "127.0.0.1").value
        port = int(self.declare_parameter("port", 0).value)
        token = self.declare_parameter("token", "").value or None
        camera_topic = self.declare_parameter("camera_topic", "").value
        self.terminal = bool(self.declare_parameter("terminal", False).value)
        self.handlers = FeedbackHandlers(
            on_rate=self.rate,
            on_intervene=self.intervene,
            on_estop=self.estop,
            status=self.status,
            frame=self.frame,
        )
        # Bound first, served last: a host other than loopback is refused before anything else.
        self.server = FeedbackServer(self.handlers, host=host, port=port, token=token)

        self.rating_pub = self.create_publisher(String, RATING_TOPIC, FEEDBACK_QOS)
        self.intervene_pub = self.create_publisher(String, INTERVENE_TOPIC, FEEDBACK_QOS)
        self.estop_pub = self.create_publisher(Bool, ESTOP_TOPIC, FEEDBACK_QOS)
        self.create_subscription(String, STATISTICS_TOPIC, self.on_statistics, LATCHED)
        if camera_topic:
            self.create_subscription(Image, camera_topic, self.on_image, 1)
        self._lock = threading.Lock()
        self._statistics: dict[str, Any] = {}
        self._image: Image | None = None
        self._jpeg: tuple[Image, bytes] | None = None
        self._closed: tuple[int, str] | None = None
        """The episode last closed from here and how ("rated", "stopped by an intervention")."""

        self.server.start()
        print(f"feedback page: {self.server.url}", flush=True)
        if self.terminal:
            threading.Thread(target=self.run_terminal, daemon=True).start()

    def on_statistics(self, msg: String) -> None:
        with self._lock:
            self._statistics = json.loads(msg.data)

    def on_image(self, msg: Image) -> None:
        with self._lock:
            self._image = msg

    def status(self) -> dict[str, Any]:
        """Open episode and candidate, and the selector's statistics, for the page."""
        with self._lock:
            statistics = self._statistics
        pending = statistics.get("pending") or {}
        return {
            "episode": pending.get("episode"),
            "candidate": pending.get("candidate"),
            "statistics": statistics,
        }

    def rate(self, episode: int, rating: float) -> None:
        """Publish ``rating`` for ``episode`` (the one the person watched) if it is the open
        one and was not closed from here; ``FeedbackError`` saying why not."""
        message = rating_message(episode, rating)
        self._close(episode, "rated", "rating", self.rating_pub, message)

    def intervene(self, episode: int) -> None:
        """Publish an intervention stopping ``episode`` (the one the person watched) if it is
        the open one and was not closed from here; ``FeedbackError`` saying why not. A second
        press is thus refused rather than sent for the episode the first one opened."""
        how = "stopped by an intervention"
        message = intervention_message(episode)
        self._close(episode, how, "intervention", self.intervene_pub, message)

    def _close(self, episode: int, how: str, what: str, publisher: Publisher, message: str) -> None:
        """Publish ``message`` (the ``what``) closing ``episode`` and remember it closed here
        (``how``: "rated", "stopped by an intervention"), so further feedback the person gives
        it is refused rather than sent for the next episode; ``FeedbackError`` if it is not the
        open episode or was closed from here already. The open episode is read after the wait
        for a listener (up to 5 s), in which another's feedback may close it."""
        self.wait_for_listener(publisher, what)
        with self._lock:
            open_episode = (self._statistics.get("pending") or {}).get("episode")
            if self._closed is not None and self._closed[0] == episode:
                raise FeedbackError(f"episode {episode} was already {self._closed[1]}")
            if episode != open_episode:
                now = "none is" if open_episode is None else f"episode {open_episode} is"
                raise FeedbackError(f"episode {episode} is not open ({now}): not {how}")
            self._closed = (episode, how)
        publisher.publish(String(data=message))

    def estop(self) -> None:
        """Publish the e-stop; refused (the person reaches for the cell's own) if no node
        listens."""
        self.wait_for_listener(self.estop_pub, "e-stop", "press the cell's e-stop button")
        self.estop_pub.publish(Bool(data=True))

    def wait_for_listener(self, publisher: Publisher, what: str, advice: str = "") -> None:
        """Return once ``publisher`` is matched with a subscriber; ``FeedbackError`` saying
        ``what`` was not sent if none is within ``LISTENER_WAIT`` s."""
        if not wait_for_subscriber(publisher):
            hint = f": {advice}" if advice else ""
            raise FeedbackError(
                f"{what} not sent: no node subscribes to {publisher.topic_name}{hint}"
            )

    def frame(self) -> bytes | None:
        """The latest camera image as JPEG (encoded once per image)."""
        with self._lock:
            image, cached = self._image, self._jpeg
        if image is None:
            return None
        if cached is None or cached[0] is not image:
            cached = (image, encode_jpeg(image_to_rgb(image)))
            with self._lock:
                self._jpeg = cached
        return cached[1]

    def run_terminal(self) -> None:
        """The terminal UI on this process's terminal; quitting it stops the node."""
        from robot_il.select.tui import FeedbackTUI

        FeedbackTUI(self.handlers).run()
        self.context.try_shutdown()

    def shutdown(self) -> None:
        """Stop the web server, then the node (called by ``run_node``)."""
        self.server.close()
        self.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console script ``feedback_web``; parameters via ``--ros-args -p name:=value``."""
    return run_node(FeedbackWebNode, args)


if __name__ == "__main__":
    sys.exit(main())
