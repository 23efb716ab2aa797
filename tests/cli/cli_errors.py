"""What a ``robot-il`` verb refused, for the CLI tests."""

from __future__ import annotations

import pytest

from robot_il.cli import main


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line ``robot-il`` printed for ``argv`` (exit status 2)."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err
