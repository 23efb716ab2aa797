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


def argparse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The error line argparse printed for ``argv`` (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]
