"""ROS 2 test fixtures: each test gets its own DDS domain on loopback.

Tests of several helpers run at once on this machine, so a domain id is claimed with an
exclusive lock file (held for the test's duration) rather than guessed: two tests never share
a domain, and a crashed test's lock goes away with its process.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from robot_il.ros.dds import MAX_DOMAIN_ID, loopback_env

_LOCK_DIR = Path(tempfile.gettempdir()) / "robot_il_ros_domains"


def _claim_domain_id() -> tuple[int, int]:
    """Lock a free domain id in 1..MAX_DOMAIN_ID (0, the ROS default, is left to users).

    Returns the id and the open lock file descriptor; closing the descriptor frees the id.
    The search starts at an offset from the pid so that parallel runs rarely contend.
    """
    _LOCK_DIR.mkdir(exist_ok=True)
    start = os.getpid() % MAX_DOMAIN_ID
    for step in range(MAX_DOMAIN_ID):
        domain_id = 1 + (start + step) % MAX_DOMAIN_ID
        fd = os.open(_LOCK_DIR / f"{domain_id}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return domain_id, fd
    raise RuntimeError(f"all ROS domain ids 1..{MAX_DOMAIN_ID} are in use by other tests")


@pytest.fixture
def ros_domain_id() -> Iterator[int]:
    """A ROS_DOMAIN_ID no other running test uses."""
    domain_id, fd = _claim_domain_id()
    try:
        yield domain_id
    finally:
        os.close(fd)


@pytest.fixture
def ros_env(ros_domain_id: int) -> dict[str, str]:
    """A full environment for child processes: this one plus loopback DDS on the test's domain."""
    return {**os.environ, **loopback_env(ros_domain_id)}


@pytest.fixture
def ros_context(ros_domain_id: int) -> Iterator[object]:
    """An initialised ``rclpy`` context in this process, on loopback DDS and the test's domain."""
    from robot_il.ros.dds import apply_loopback_env

    apply_loopback_env()
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)
