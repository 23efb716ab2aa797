"""A policy node stopped while it starts: every start spends a second or more with its
inference fork server importing torch, and a stop of the process group (a terminal's Ctrl-C,
``robot-il launch`` stopping, a service manager) then must end it as quietly as a stop of the
running node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_helpers import DEADLINE_SCALE, group_runs, log_tail, stop, wait_for

pytestmark = pytest.mark.ros

FIXTURE = Path(__file__).with_name("fixtures") / "bc_reach"


def _fork_server_of(pid: int) -> bool:
    """Whether process ``pid`` has started multiprocessing's fork server (a child)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # the node ended: wait_for says so, with its log
        return False
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
            commands = [Path(f"/proc/{child}/cmdline").read_bytes() for child in children]
        except OSError:  # a thread or a child that just ended
            continue
        if any(b"multiprocessing.forkserver" in command for command in commands):
            return True
    return False


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_policy_node_stopped_while_its_fork_server_imports_torch_stops_quietly(
    ros_env, tmp_path, stop_signal: signal.Signals
) -> None:
    """The fork server ignored SIGINT only once its imports were done, and SIGTERM never: a
    stop of the group during them ended it with a KeyboardInterrupt traceback (SIGINT), or the
    node's start with an ``EOFError`` traceback and exit code 1 (SIGTERM), in most stops of a
    loop. The fork server now keeps both blocked and ends with the node."""
    log = tmp_path / "policy.log"
    argv = [str(Path(sys.executable).parent / "policy"), "--ros-args", "-p",
            f"checkpoint:={FIXTURE}"]  # fmt: skip
    with log.open("w") as output:
        policy = subprocess.Popen(argv, env=ros_env, stdout=output, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: _fork_server_of(policy.pid), 60, "the fork server", (policy,), (log,))
        time.sleep(0.3)  # into its imports (about 2 s of torch here)
        assert "inference in pid" not in log.read_text(), "the node started before the stop"
        os.killpg(policy.pid, stop_signal)
        code = policy.wait(30 * DEADLINE_SCALE)
    finally:
        stop(policy)
    assert code == 0, log_tail(log)
    assert "Traceback" not in log.read_text(), log_tail(log)
    wait_for(lambda: not group_runs(policy.pid), 30, "the end of the node's fork server")
