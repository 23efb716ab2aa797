"""ROS 2 test fixtures: each test gets its own DDS domain on loopback.

Tests of several helpers run at once on this machine, so a domain id is claimed with an
exclusive lock file (``robot_il.ros.dds.claim_free_domain``, held for the test's duration)
rather than guessed: two tests never share a domain, nor a test and a robot_il launch or
evaluation, and a crashed test's lock goes away with its process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from robot_il.ros.dds import claim_free_domain, loopback_env


@pytest.fixture(autouse=True)
def collect_at_teardown() -> Iterator[None]:
    """A full garbage collection after each test (its other fixtures torn down): an rclpy task
    that failed unread prints "The following exception was never retrieved" only when
    collected, so it shows in the test that made it, not in a later test's output (one broke an
    exact-stderr assertion)."""
    yield
    gc.collect()


@pytest.fixture
def ros_domain_id() -> Iterator[int]:
    """A ROS_DOMAIN_ID no other running test (nor robot_il launch or evaluation) uses."""
    domain_id, lock = claim_free_domain("a test")
    with lock:
        yield domain_id


@pytest.fixture
def ros_env(ros_domain_id: int) -> dict[str, str]:
    """A full environment for child processes: this one plus loopback DDS on the test's domain."""
    return {**os.environ, **loopback_env(ros_domain_id)}


def loopback_context(domain_id: int) -> object:
    """A new initialised ``rclpy`` context in this process, on loopback DDS and ``domain_id``."""
    from robot_il.ros.dds import apply_loopback_env

    apply_loopback_env()
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    return context


@pytest.fixture
def ros_context(ros_domain_id: int) -> Iterator[object]:
    """An initialised ``rclpy`` context in this process, on loopback DDS and the test's domain."""
    context = loopback_context(ros_domain_id)
    try:
        yield context
    finally:
        context.shutdown()


@pytest.fixture
def own_context(ros_domain_id: int) -> Iterator[object]:
    """A second ``rclpy`` context on the test's domain: its own DDS participant, which meets
    ``ros_context``'s through discovery over loopback as another process's does (the
    endpoints of one context match at once), and which a node may shut down (as a fatal error
    or Ctrl-C does) without breaking ``ros_context``'s teardown."""
    context = loopback_context(ros_domain_id)
    try:
        yield context
    finally:
        context.try_shutdown()
