"""The loopback Fast DDS profile: two real processes talk, and every socket is on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robot_il.errors import ConfigError
from robot_il.ros.dds import LOOPBACK_PROFILE, MAX_DOMAIN_ID, apply_loopback_env, loopback_env

pytestmark = pytest.mark.ros

# Echoes every std_msgs/String on "ping" back on "pong" until killed.
_ECHO_NODE = textwrap.dedent(
    """
    import rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node("echo")
    pong = node.create_publisher(String, "pong", 10)
    node.create_subscription(String, "ping", pong.publish, 10)
    print("ready", flush=True)
    rclpy.spin(node)
    """
)

# Pings until it has 20 echoes (or 20 s), prints the median round trip in ms, then sleeps.
_PING_NODE = textwrap.dedent(
    """
    import statistics, sys, time
    import rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node("ping")
    ping = node.create_publisher(String, "ping", 10)
    sent, rtts = {}, []
    def on_pong(msg):
        if msg.data in sent:
            rtts.append(time.perf_counter() - sent.pop(msg.data))
    node.create_subscription(String, "pong", on_pong, 10)
    deadline, i = time.monotonic() + 20.0, 0
    while len(rtts) < 20 and time.monotonic() < deadline:
        key = str(i); i += 1
        sent[key] = time.perf_counter()
        ping.publish(String(data=key))
        rclpy.spin_once(node, timeout_sec=0.05)
    print(len(rtts), 1e3 * statistics.median(rtts) if rtts else -1.0, flush=True)
    time.sleep(float(sys.argv[1]))
    """
)


# 127.0.0.1, ::ffff:127.0.0.1 and ::1 as /proc/net/{udp,tcp}{,6} write them.
_LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def _socket_addresses(pid: int) -> list[str]:
    """Local addresses ("ip:port", ip in hex as the kernel writes it) of the UDP/TCP sockets
    that process ``pid`` holds, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    addresses = []
    for table in ("udp", "udp6", "tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                addresses.append(f"{table}:{fields[1]}")
    return addresses


def test_loopback_env_selects_profile_and_domain() -> None:
    env = loopback_env(7)
    assert env["ROS_DOMAIN_ID"] == "7"
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert Path(env["FASTRTPS_DEFAULT_PROFILES_FILE"]) == LOOPBACK_PROFILE
    assert LOOPBACK_PROFILE.is_file()
    assert "ROS_DOMAIN_ID" not in loopback_env()
    with pytest.raises(ConfigError, match="outside"):
        loopback_env(MAX_DOMAIN_ID + 1)


def test_apply_loopback_env_sets_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.setenv("ROS_DOMAIN_ID", "3")
    apply_loopback_env(9)
    assert os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(LOOPBACK_PROFILE)
    assert os.environ["ROS_DOMAIN_ID"] == "9"


def test_two_processes_talk_and_bind_only_loopback(ros_env: dict[str, str]) -> None:
    echo = subprocess.Popen(
        [sys.executable, "-c", _ECHO_NODE], env=ros_env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert echo.stdout.readline().strip() == "ready"
        ping = subprocess.Popen(
            [sys.executable, "-c", _PING_NODE, "3.0"],
            env=ros_env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            received, median_ms = ping.stdout.readline().split()
            assert int(received) == 20, "the ping node heard too few echoes over loopback"
            assert 0 < float(median_ms) < 50
            # Both participants are alive and discovered: every socket they hold is loopback.
            for pid in (echo.pid, ping.pid):
                addresses = _socket_addresses(pid)
                assert addresses, f"process {pid} holds no sockets: the check saw nothing"
                for address in addresses:
                    ip = address.split(":")[1]
                    assert ip in _LOOPBACK_HEX, f"process {pid} binds {address}, not loopback"
        finally:
            ping.kill()
            ping.wait()
    finally:
        echo.kill()
        echo.wait()
