"""Episode control: the few commands an operator gives between and during demonstrations.

The keys follow ``lerobot-record``'s, so its users need not relearn them: right arrow ends the
episode and keeps it, left arrow throws it away and records the same scene again, Escape stops
the session. robot_il adds Backspace, which throws the episode away and moves on to a new
scene (a fresh seed in simulation), for scenes that cannot be demonstrated well.
"""

from __future__ import annotations

import enum


class EpisodeEvent(enum.Enum):
    """What the operator wants done with the episode under way."""

    NEXT = "next"
    """End the episode, commit it, and start the next one."""
    RERECORD = "rerecord"
    """Discard the episode and record the same scene again (same seed in simulation)."""
    DISCARD = "discard"
    """Discard the episode and move on to a new scene."""
    QUIT = "quit"
    """End the episode as NEXT does (it is kept, as in lerobot-record), then stop the session."""


EPISODE_KEYS_HELP = (
    "episode keys: Right arrow = next (keep), Left arrow = re-record, "
    "Backspace = discard, Esc or q = keep and quit"
)
"""One line for the operator, printed when a keyboard session starts."""


def parse_event(name: str) -> EpisodeEvent:
    """The event named ``name`` (``next``, ``rerecord``, ``discard``, ``quit``; any case).

    Used by text channels such as the ROS ``std_msgs/String`` event topic. Raises ``ValueError``
    naming the accepted words.
    """
    try:
        return EpisodeEvent(name.strip().lower().replace("-", "").replace("_", ""))
    except ValueError:
        accepted = ", ".join(event.value for event in EpisodeEvent)
        raise ValueError(f"unknown episode event {name!r}; expected one of {accepted}") from None
