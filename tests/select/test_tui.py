"""The terminal UI, driven through a real pseudo-terminal: each key calls its handler."""

from __future__ import annotations

import io
import os
import pty
import queue
import threading

from rich.console import Console

from robot_il.errors import FeedbackError
from robot_il.select import UCB1, Selector
from robot_il.select.handlers import FeedbackHandlers
from robot_il.select.tui import FeedbackTUI


def test_keys_in_a_pty_call_the_handlers():
    events: queue.Queue = queue.Queue()
    selector = Selector.create(["ckpt/bc", "ckpt/diffusion"], UCB1(), seed=0)
    choice = selector.choose()

    def rate(episode: int, rating: float) -> None:
        if rating == 0.5:
            raise FeedbackError("episode 0 was already rated")
        events.put(("rate", episode, rating))

    handlers = FeedbackHandlers(
        on_rate=rate,
        on_intervene=lambda episode: events.put(("intervene", episode)),
        on_estop=lambda: events.put(("estop",)),
        status=lambda: {
            "episode": choice.episode,
            "candidate": choice.candidate,
            "statistics": selector.statistics(),
        },
    )
    screen = io.StringIO()
    master, slave = pty.openpty()
    tui = FeedbackTUI(
        handlers,
        input_fd=slave,
        console=Console(file=screen, width=120),
        refresh_s=0.05,
        settle_s=0.0,  # (the wait after an episode opens has a test of its own)
    )
    thread = threading.Thread(target=tui.run)
    thread.start()
    try:
        for key, event in [
            (b"1", ("rate", 0, 0.0)),  # a rating names the episode on screen
            (b"2", ("rate", 0, 0.25)),
            (b"4", ("rate", 0, 0.75)),
            (b"5", ("rate", 0, 1.0)),
            (b"i", ("intervene", 0)),  # so does an intervention
            (b"e", ("estop",)),
            (b" ", ("estop",)),
        ]:
            os.write(master, key)
            assert events.get(timeout=5) == event, key
        os.write(master, b"3x")  # a refused rating and an unknown key publish nothing
        os.write(master, b"q")
        thread.join(timeout=5)
        assert not thread.is_alive()
    finally:
        os.close(master)
        os.close(slave)
    assert events.empty()
    assert "episode 0 was already rated" in tui.message.plain
    output = screen.getvalue()
    assert choice.candidate in output and "ckpt/bc" in output and "E-STOP" in output


def test_a_feedback_key_before_any_episode_is_shown_sends_nothing():
    sent: list = []
    handlers = FeedbackHandlers(
        on_rate=lambda episode, rating: sent.append((episode, rating)),
        on_intervene=lambda episode: sent.append(episode),
        on_estop=lambda: None,
        status=lambda: {"episode": None, "candidate": None},
    )
    tui = FeedbackTUI(handlers, input_fd=0, console=Console(file=io.StringIO()))
    assert tui.handle_key("5")
    assert tui.message.plain == "no episode is open: nothing to rate" and not sent
    assert tui.handle_key("i")
    assert tui.message.plain == "no episode is open: nothing to stop" and not sent
    tui.render()  # still none open
    assert tui.handle_key("5") and tui.handle_key("i") and not sent


def test_a_key_as_the_episode_changes_does_not_act_on_the_new_one():
    """The screen redraws every 0.25 s and a key acted on the episode drawn last: a key meant
    for the episode before, pressed as the next one came on screen, rated or stopped that one.
    For a second after the episode on screen changes, rating and intervene keys do nothing;
    the e-stop goes out at once."""
    now, episode, sent = [100.0], [0], []
    handlers = FeedbackHandlers(
        on_rate=lambda episode, rating: sent.append(("rate", episode, rating)),
        on_intervene=lambda episode: sent.append(("intervene", episode)),
        on_estop=lambda: sent.append(("estop",)),
        status=lambda: {"episode": episode[0], "candidate": "a"},
    )
    tui = FeedbackTUI(handlers, input_fd=0, console=Console(file=io.StringIO()),
                      clock=lambda: now[0])  # fmt: skip
    tui.render()
    now[0] += 1.5
    assert tui.handle_key("4") and sent == [("rate", 0, 0.75)]
    episode[0] = 1
    tui.render()  # episode 1 comes on screen
    now[0] += 0.3
    assert tui.handle_key("1") and tui.handle_key("i") and tui.handle_key("e")
    assert sent == [("rate", 0, 0.75), ("estop",)]
    assert tui.message.plain.startswith("E-STOP")
    now[0] += 0.8
    assert tui.handle_key("i") and sent[-1] == ("intervene", 1)
