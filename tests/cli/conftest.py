"""Fixtures the CLI journey tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from robot_il.cli import main


@pytest.fixture(scope="module")
def reach(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scripted reach demonstrations, recorded as a user records them (``robot-il
    record``)."""
    pytest.importorskip("mujoco")
    out = tmp_path_factory.mktemp("journey") / "reach.zarr"
    argv = ["record", "--task", "reach", "--expert", "--episodes", "2", "--no-fsync"]
    assert main([*argv, "--out", str(out)]) == 0
    return out
