"""A small local web page for the person supervising a deployment: live camera view, the
candidate now deployed, and buttons to rate the episode, intervene and e-stop."""

from robot_il.select.handlers import FeedbackHandlers
from robot_il.select.web.server import FeedbackServer
from robot_il.web import encode_jpeg

__all__ = ["FeedbackHandlers", "FeedbackServer", "encode_jpeg"]
