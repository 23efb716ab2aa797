"""``robot-il train dmp`` and ``train dmp-rl`` as a roboticist meets them first: their
``--help``."""

from __future__ import annotations

import re

import pytest

from robot_il.cli import main


@pytest.mark.parametrize(
    ("family", "flags"),
    [("dmp", {"--dataset", "--out", "--search"}), ("dmp-rl", {"--dmp", "--out", "--seed"})],
)
def test_help_describes_every_flag_and_where_the_checkpoint_goes(
    family: str, flags: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``train dmp --help`` had no description (where its checkpoint goes, what takes
    it next), and ``--search`` (train dmp) and ``--seed`` (train dmp-rl) no help at all."""
    with pytest.raises(SystemExit):
        main(["train", family, "--help"])
    text = capsys.readouterr().out
    assert "OUT/policy" in text.partition("options:")[0]
    options = text.partition("show this help message and exit")[2]
    # each option: its flag and metavar, then its help on the same line or the next
    entries = re.findall(r"^  (--\S+)(?: \S+)?(.*\n(?: {6,}.*\n)*)", options, re.M)
    assert flags <= {flag for flag, _ in entries}
    for flag, described in entries:
        assert described.strip(), f"{flag} has no help"
