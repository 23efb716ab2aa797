"""Recording demonstrations: a fixed-rate multi-stream recorder, teleop devices, expert runs.

See :mod:`robot_il.record.recorder` for how timing is kept honest, :mod:`robot_il.record.sink`
for writer threads and processes, and :mod:`robot_il.record.demos` for recording from a
simulated env.
"""

from robot_il.record.control import EpisodeEvent
from robot_il.record.recorder import EpisodeReport, Recorder, StreamSpec, StreamStats
from robot_il.record.sink import WriterInProcess

__all__ = [
    "EpisodeEvent",
    "EpisodeReport",
    "Recorder",
    "StreamSpec",
    "StreamStats",
    "WriterInProcess",
]
