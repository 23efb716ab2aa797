"""The environment that keeps ROS 2 (Fast DDS) traffic on 127.0.0.1.

Every robot_il process that talks ROS 2 in simulation, tests and CI uses this: the project's
Fast DDS profile (``fastdds_loopback.xml`` next to this module) binds every socket to
127.0.0.1 and discovers peers by unicast on 127.0.0.1, so no packet leaves the machine.
Deploying on a real robot network is an explicit choice: skip this environment there.

Child processes get it through ``env={**os.environ, **loopback_env(domain_id)}``; a process
that calls ``rclpy.init`` itself calls :func:`apply_loopback_env` first (Fast DDS reads the
profile file when the first participant is created).
"""

from __future__ import annotations

import os
from pathlib import Path

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
