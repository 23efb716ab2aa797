"""A terminal UI for the supervising person: single key presses rate, intervene and e-stop.

Keys: ``1``..``5`` rate the episode on screen 0, 0.25, 0.5, 0.75, 1 (:data:`RATING_CHOICES`);
``i`` intervenes in the episode on screen (stops the robot, the episode counts as a failure);
``e`` or space is the e-stop; ``q`` quits. The screen (rich) shows the episode, the candidate
deployed and the statistics. For :data:`SETTLE_S` after the episode on screen changes, rating
and intervene keys wait (as the feedback page's buttons do): a key meant for the episode before
must not rate or stop the one that just opened. The e-stop never waits.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from robot_il.errors import FeedbackError, RobotILError
from robot_il.select.handlers import RATING_CHOICES, FeedbackHandlers

SETTLE_S = 1.0
"""s after the episode on screen changes during which rating and intervene keys do nothing."""
KEY_HELP = (
    "  ".join(f"[{i + 1}] rate {r:g}" for i, r in enumerate(RATING_CHOICES))
    + "   [i] intervene   [e/space] E-STOP   [q] quit"
)


class FeedbackTUI:
    """Reads keys from ``input_fd`` (a terminal) and calls ``handlers``; draws on ``console``."""

    def __init__(
        self,
        handlers: FeedbackHandlers,
        *,
        input_fd: int | None = None,
        console: Console | None = None,
        refresh_s: float = 0.25,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handlers = handlers
        self.input_fd = sys.stdin.fileno() if input_fd is None else input_fd
        self.console = console or Console()
        self.refresh_s = refresh_s
        self.settle_s = settle_s
        self.clock = clock
        self.message = Text("ready")
        self.shown_episode: int | None = None
        """The episode number on screen (drawn last): a rating key rates it, ``i`` stops it."""
        self._shown_since = -float("inf")
        """When (``clock``, s) :attr:`shown_episode` came on screen."""

    def handle_key(self, key: str) -> bool:
        """Act on one key press; returns False when the person quits."""
        try:
            if key and key in "12345i" and self.clock() - self._shown_since < self.settle_s:
                raise FeedbackError(
                    f"episode {self.shown_episode} just came on screen: rating and intervene "
                    f"wait {self.settle_s:g} s (E-STOP never waits)"
                )
            if key and key in "12345":
                rating = RATING_CHOICES[int(key) - 1]
                if self.shown_episode is None:
                    raise FeedbackError("no episode is open: nothing to rate")
                self.handlers.on_rate(self.shown_episode, rating)
                self.message = Text(f"rated episode {self.shown_episode} {rating:g}", style="green")
            elif key == "i":
                if self.shown_episode is None:
                    raise FeedbackError("no episode is open: nothing to stop")
                self.handlers.on_intervene(self.shown_episode)
                self.message = Text(
                    f"intervened in episode {self.shown_episode}: robot stopped",
                    style="bold yellow",
                )
            elif key in ("e", " "):
                self.handlers.on_estop()
                self.message = Text("E-STOP sent", style="bold red")
            elif key == "q":
                return False
        except RobotILError as error:
            self.message = Text(str(error), style="red")
        return True

    def render(self) -> Group:
        """The screen: status line, statistics table, last message, key help."""
        status: dict[str, Any] = self.handlers.status()
        if status.get("episode") != self.shown_episode:
            self.shown_episode, self._shown_since = status.get("episode"), self.clock()
        header = Text.assemble(
            "episode ",
            (str(status.get("episode", "-")), "bold"),
            "   candidate ",
            (str(status.get("candidate", "-")), "bold cyan"),
        )
        table = Table("candidate", "plays", "mean rating", "interventions")
        for candidate in (status.get("statistics") or {}).get("candidates", []):
            mean = candidate["mean_rating"]
            table.add_row(
                candidate["name"],
                str(candidate["plays"]),
                "-" if mean is None else f"{mean:.2f}",
                str(candidate["interventions"]),
            )
        return Group(
            Panel(header, title="robot_il supervision"), table, self.message, Text(KEY_HELP)
        )

    def run(self) -> None:
        """Until ``q``: redraw every ``refresh_s`` and act on keys as they are pressed."""
        saved = termios.tcgetattr(self.input_fd)
        # TCSANOW: keys typed while the UI starts are acted on, not flushed away.
        tty.setcbreak(self.input_fd, termios.TCSANOW)
        try:
            with Live(self.render(), console=self.console, auto_refresh=False) as live:
                while True:
                    ready, _, _ = select.select([self.input_fd], [], [], self.refresh_s)
                    if ready:
                        key = os.read(self.input_fd, 1).decode(errors="replace").lower()
                        if not self.handle_key(key):
                            break
                    live.update(self.render(), refresh=True)
        finally:
            termios.tcsetattr(self.input_fd, termios.TCSADRAIN, saved)
