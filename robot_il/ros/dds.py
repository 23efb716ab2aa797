"""The environment that keeps ROS 2 (Fast DDS) traffic on 127.0.0.1.

Every robot_il process that talks ROS 2 in simulation, tests and CI uses this: the project's
Fast DDS profile (``fastdds_loopback.xml`` next to this module) binds every socket to
127.0.0.1 and discovers peers by unicast on 127.0.0.1, so no packet leaves the machine.
Deploying on a real robot network is an explicit choice: skip this environment there.

Child processes get it through ``env={**os.environ, **loopback_env(domain_id)}``; a process
that calls ``rclpy.init`` itself calls :func:`apply_loopback_env` first (Fast DDS reads the
profile file when the first participant is created).

Two sets of nodes on one domain see each other's topics: a second simulator's joint states
reach the first one's policy node, and an evaluation counts episodes another process played.
Every robot_il process that starts nodes therefore claims its domain (:func:`claim_domain`,
:func:`claim_free_domain`): a lock file per domain in the temporary directory, held while the
process runs, shared by launches, evaluations over ROS 2 and the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from robot_il.errors import ConfigError

LOOPBACK_PROFILE = Path(__file__).with_name("fastdds_loopback.xml")
"""The Fast DDS XML profile file (default participant profile, UDPv4 on 127.0.0.1 only)."""

MAX_DOMAIN_ID = 101
"""Largest ROS_DOMAIN_ID whose DDS ports stay clear of Linux's ephemeral port range."""

# rcl's own discovery switches would rewrite the participant's locators and transports on top
# of the profile (LOCALHOST still opens sockets on external interfaces); SYSTEM_DEFAULT and
# empty values leave the profile in charge.
_RCL_DISCOVERY_OVERRIDES = {
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT",
    "ROS_STATIC_PEERS": "",
    "ROS_LOCALHOST_ONLY": "",
    "ROS_DISCOVERY_SERVER": "",
}


def loopback_env(domain_id: int | None = None) -> dict[str, str]:
    """Environment variables that select the loopback Fast DDS profile.

    ``domain_id`` (0..101) sets ``ROS_DOMAIN_ID``; ``None`` leaves the caller's domain as it is.
    Merge the result over ``os.environ`` for a child process.
    """
    env = {
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        # Fast DDS 2 (ROS 2 Jazzy) reads the first name, Fast DDS 3 (Kilted on) the second.
        "FASTRTPS_DEFAULT_PROFILES_FILE": str(LOOPBACK_PROFILE),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(LOOPBACK_PROFILE),
        **_RCL_DISCOVERY_OVERRIDES,
    }
    if domain_id is not None:
        if not 0 <= domain_id <= MAX_DOMAIN_ID:
            raise ConfigError(f"ROS domain id {domain_id} is outside 0..{MAX_DOMAIN_ID}")
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def apply_loopback_env(domain_id: int | None = None) -> dict[str, str]:
    """Set :func:`loopback_env` in this process's environment; call it before ``rclpy.init``.

    Returns the variables it set.
    """
    env = loopback_env(domain_id)
    os.environ.update(env)
    return env


DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "robot_il_ros_domains"
"""One lock file per ROS domain id, locked by the robot_il process whose nodes use it."""


def claim_domain(domain_id: int, holder: str) -> tuple[BinaryIO | None, str | None]:
    """Lock ROS domain ``domain_id`` for this process, ``holder`` saying what runs on it.

    Returns the open lock file (the claim lasts while it is open; None where the lock cannot
    be taken) and, where another process holds the domain, what that one wrote (its pid and
    what it runs) so the caller can say so.
    """
    DOMAIN_LOCKS.mkdir(exist_ok=True)
    path = DOMAIN_LOCKS / f"{domain_id}.lock"
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    except PermissionError:  # another user's lock file, not writable here
        return None, f"a lock file of another user ({path})"
    lock = os.fdopen(fd, "r+b")
    with contextlib.suppress(PermissionError):  # another user's file: theirs to share
        os.fchmod(fd, 0o666)  # other users' processes claim domains too
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = lock.read().decode(errors="replace").strip() or "unknown"
        lock.close()
        return None, other
    lock.truncate(0)
    lock.write(f"pid {os.getpid()}: {holder}".encode())
    lock.flush()
    return lock, None


def claim_free_domain(holder: str) -> tuple[int, BinaryIO]:
    """Lock a domain id in 1..MAX_DOMAIN_ID no other robot_il process holds (0, ROS's
    default, is left to users); returns the id and the open lock file (the claim lasts while
    it is open). The search starts at an offset from the pid, so that processes started
    together rarely contend for the same file."""
    start = os.getpid() % MAX_DOMAIN_ID
    for step in range(MAX_DOMAIN_ID):
        domain_id = 1 + (start + step) % MAX_DOMAIN_ID
        lock, _ = claim_domain(domain_id, holder)
        if lock is not None:
            return domain_id, lock
    raise ConfigError(
        f"every ROS domain id 1..{MAX_DOMAIN_ID} is held by another robot_il process "
        f"({DOMAIN_LOCKS}); pass --domain-id N"
    )


def hold_domain(domain_id: int | None, holder: str) -> tuple[int, BinaryIO]:
    """The ROS domain for ``holder``'s nodes, claimed: ``domain_id`` when given (a
    :class:`ConfigError` naming the process that holds it, whose nodes would mix with these),
    else a free one (:func:`claim_free_domain`). Returns the id and the open lock file, which
    holds the domain until it is closed (or the process ends)."""
    if domain_id is None:
        return claim_free_domain(holder)
    lock, other = claim_domain(domain_id, holder)
    if lock is None:
        raise ConfigError(
            f"ROS domain {domain_id}: another robot_il process runs on it ({other}); its nodes "
            "would mix with these: pick another domain or leave it out"
        )
    return domain_id, lock
