"""argparse ``type`` checks for numeric flags, so that a value out of range fails as the flag
is read, with argparse's one-line usage error, before a verb creates a file or builds an env
(``--seed -1`` used to fail inside gymnasium after ``record`` had created its dataset)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from robot_il.errors import ConfigError
from robot_il.ros.dds import MAX_DOMAIN_ID


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """A ``type=`` for an int in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"in {low}..{high}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


SEED = integer(0)
"""An env or RNG seed: gymnasium and numpy take seeds >= 0."""
COUNT = integer(1)
"""A number of episodes or steps, at least one."""
DOMAIN_ID = integer(0, MAX_DOMAIN_ID)
"""A ``ROS_DOMAIN_ID`` (``robot_il.ros.dds.MAX_DOMAIN_ID``)."""
PORT = integer(0, 65535)
"""A TCP port (0: any free one)."""


def refuse_file_out(out: str | Path, what: str) -> None:
    """``ConfigError`` when ``--out`` names an existing file, where ``what`` (a folder: "the
    checkpoint", "results") is to be written: a verb would fail on it half-way, or write
    beside it."""
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out}: is a file, not a directory for {what}")


def refuse_unwritable(path: str | Path, what: str, *, file: bool = False) -> None:
    """``ConfigError`` when ``what`` (a folder of results; with ``file``, a file) cannot be
    written at ``path``: its nearest existing folder is a file, read-only, or not this
    user's. The verb would fail there only when it writes, after its rollouts, in a
    traceback. Probed with a nameless file made and dropped there, so it leaves nothing."""
    folder = Path(path).absolute()
    folder = folder.parent if file else folder
    while not folder.exists():
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(f"{path}: cannot write {what} there ({error.strerror})") from None
