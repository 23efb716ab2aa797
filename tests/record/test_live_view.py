"""The live view: Rerun's server and web viewer listen on 127.0.0.1 only, take the steps of a
real recording, and ``robot-il record --view`` records while it serves."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from robot_il.dataset import Dataset

pytest.importorskip("rerun")
pytest.importorskip("mujoco")


def test_live_view_serves_on_loopback_only() -> None:
    import psutil
    from robot_il.envs import make_env

    from robot_il.record.demos import env_frame
    from robot_il.record.live_view import LiveView

    env = make_env("reach", cameras=("front",), image_size=(32, 32))
    view = LiveView("test")
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(5):
            action = env.action_space.sample() * 0
            view.log_step(env_frame(obs, action))
            obs, *_ = env.step(action)
        assert view.steps == 5
        page = urllib.request.urlopen(f"http://127.0.0.1:{view.web_port}/", timeout=10)
        assert page.status == 200
        server = psutil.Process(view._server.pid)
        processes = (server, *server.children(recursive=True))
        listening = [c for p in processes for c in p.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN]  # fmt: skip
        assert {c.laddr.port for c in listening} >= {view.grpc_port, view.web_port}
        assert all(c.laddr.ip == "127.0.0.1" for c in listening), listening
    finally:
        view.close()
        env.close()
    assert view._server.poll() is not None  # the server is gone with the view
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", view.web_port)) != 0


def test_a_view_whose_server_died_closes_quietly() -> None:
    """A viewer's server gone beside the node (a Ctrl-C stopped it so, one process group,
    before it blocked SIGINT; a kill): the node's close then flushed to the dead server and
    ended in a RuntimeError."""
    from robot_il.record.live_view import LiveView

    view = LiveView("test")
    view.log_text("events", "before the Ctrl-C")
    view._server.kill()
    view._server.wait(timeout=10)
    view.log_text("events", "after it")
    view.close()


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_of_the_process_group_leaves_the_server_to_the_view(stop: str) -> None:
    """A terminal's Ctrl-C and a launcher's or a service manager's stop signal every process
    of the group. The viewer's server stopped at once, beside the node still logging: every
    live_view stop printed the SDK's "transport error" lines, and in a third of them the
    node's last flush raised (exit code 1). The server now waits for the view's close, which
    stops it."""
    import signal
    import time

    from robot_il.record.live_view import LiveView

    view = LiveView("test")
    try:
        os.kill(view._server.pid, getattr(signal, stop))
        time.sleep(2.0)  # the server stopped in well under that
        assert view._server.poll() is None
        view.log_text("events", "after the Ctrl-C")
    finally:
        view.close()
    assert view._server.poll() is not None  # the close stopped it


def test_a_view_never_closed_takes_its_server_with_it_at_exit() -> None:
    """A process that exits without closing its view (a live_view node whose start a stop cut
    short: no node, no shutdown) left the server running for good, and it now outlives the
    stop signals too."""
    import signal

    program = ("from robot_il.record.live_view import LiveView\n"
               "view = LiveView('test')\n"
               "print(view._server.pid, flush=True)\n"
               "raise KeyboardInterrupt  # a Ctrl-C before the node was built\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    server = int(result.stdout.split()[0])
    try:
        assert not Path(f"/proc/{server}").exists(), "the server outlived its process"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="no setpriv (util-linux)")
def test_a_view_s_server_ends_with_a_process_killed_outright() -> None:
    """The server ignores the stop signals, so a process that ended without its finalizers
    (SIGKILL to it alone, as a stop that timed out sends; a crash) left it running for good.
    The kernel now kills it with the thread that started it."""
    import signal
    import time

    program = ("import os, signal\n"
               "from robot_il.record.live_view import LiveView\n"
               "view = LiveView('test')\n"
               "print(view._server.pid, flush=True)\n"
               "os.kill(os.getpid(), signal.SIGKILL)\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    server = int(result.stdout.split()[0])

    def running() -> bool:  # (a zombie waiting for init to reap it is gone)
        try:
            return Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 10
        while running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(), "the server outlived its process"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)


def test_record_with_view_records_and_prints_the_viewer(tmp_path: Path) -> None:
    out = tmp_path / "demo.zarr"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("robot-il")), "record", "--task", "reach",
         "--expert", "--episodes", "1", "--view", "--out", str(out), "--no-fsync"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "live view: http://127.0.0.1:" in result.stdout
    assert Dataset.open(out).num_episodes == 1
    assert np.isfinite(Dataset.open(out).episode(0)["action"]).all()
