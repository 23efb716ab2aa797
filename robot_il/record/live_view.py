"""A live view of what is being recorded: cameras, joints and actions in Rerun's web viewer.

While a person teleoperates (or the expert records), each step's camera frames, joint
positions, gripper and action are streamed to Rerun (``rerun-sdk``), and its web viewer shows
them on a shared ``step`` timeline. The Rerun server is the ``rerun`` binary the SDK ships,
started with ``--bind 127.0.0.1`` (the SDK's own ``serve_grpc`` listens on every interface),
so the view is reachable only from this machine: ``http://127.0.0.1:<web_port>``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robot_il.errors import RecordingError
from robot_il.stop_signals import stop_signals_blocked

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _rerun_binary() -> str:
    """The viewer binary rerun-sdk ships (not the ``rerun`` script in bin/, a Python launcher
    whose child would outlive a terminate)."""
    from importlib import resources

    try:
        binary = Path(str(resources.files("rerun_cli").joinpath("rerun")))
    except ModuleNotFoundError:
        binary = None
    if binary is None or not binary.is_file():
        raise RecordingError("--view needs rerun-sdk (pip install 'robot_il[view]')")
    return str(binary)


_DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
"""The command prefix that has the kernel SIGKILL the server when the thread that started it
ends (empty where util-linux's ``setpriv`` is missing)."""


def _kill(server: subprocess.Popen) -> None:
    """Stop a view's Rerun server (it blocks SIGTERM; it keeps nothing) and reap it."""
    server.kill()
    server.wait()


class LiveView:
    """A Rerun server on 127.0.0.1 and a recording stream logging steps to it."""

    def __init__(self, name: str = "robot_il", *, memory_limit: str = "1GiB") -> None:
        try:
            import rerun as rr
        except ImportError:
            raise RecordingError("--view needs rerun-sdk (pip install 'robot_il[view]')") from None
        self._rr = rr
        self.grpc_port, self.web_port = _free_port(), _free_port()
        # The server starts with SIGINT and SIGTERM blocked (a child inherits the mask, the
        # binary keeps it): a terminal's Ctrl-C and a launcher's or a service manager's stop
        # reach every process of the group, and a server stopped beside this one cut the last
        # steps off and made the stop noisy (the SDK's "transport error" lines at every
        # live_view stop, a flush that raised in a third of them: exit code 1). The view kills
        # it (_kill_server); so does a SIGKILL to the group (a launcher's last resort), and
        # the end of the thread that started it, however this process ends (a crash, a
        # SIGKILL to it alone: a stop that timed out), through the kernel's parent-death
        # signal (``setpriv``, util-linux). Without it such an end left the server running for
        # good, holding its ports and up to its memory limit.
        with stop_signals_blocked():
            self._server = subprocess.Popen(
                [*_DIE_WITH_PARENT, _rerun_binary(), "--serve-web", "--bind", HOST,
                 "--port", str(self.grpc_port), "--web-viewer-port", str(self.web_port),
                 "--server-memory-limit", memory_limit],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        self._kill_server = weakref.finalize(self, _kill, self._server)
        """Kills the server: at :meth:`close`, or once this view is collected or the
        interpreter exits without it (a node's start cut short by a stop): the server outlives
        the stop signals themselves."""
        self._wait_for(self.grpc_port)
        self._wait_for(self.web_port)
        self.stream = rr.RecordingStream(name)
        self.stream.connect_grpc(f"rerun+http://{HOST}:{self.grpc_port}/proxy")
        self.steps = 0

    @property
    def url(self) -> str:
        """The web viewer, connected to this view's server."""
        proxy = f"rerun%2Bhttp://{HOST}:{self.grpc_port}/proxy"
        return f"http://{HOST}:{self.web_port}/?url={proxy}"

    def _wait_for(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RecordingError(f"the rerun server exited with code {self._server.returncode}")
            with socket.socket() as probe:
                if probe.connect_ex((HOST, port)) == 0:
                    return
            time.sleep(0.05)
        raise RecordingError(f"the rerun server did not listen on {HOST}:{port} in {timeout} s")

    def log_step(self, frame: Mapping[str, Any]) -> None:
        """Log one recorded step: ``rgb_*`` images, vectors (joints in rad, gripper, poses,
        ``action``) as one scalar series per component."""
        rr, stream = self._rr, self.stream
        stream.set_time("step", sequence=self.steps)
        for key, value in frame.items():
            value = np.asarray(value)
            if key.startswith("rgb_") and value.ndim == 3:
                stream.log(f"cameras/{key[4:]}", rr.Image(value))
            elif value.dtype.kind in "fiu" and value.ndim <= 1 and value.size <= 32:
                stream.log(key, rr.Scalars(value.astype(np.float64).reshape(-1)))
        self.steps += 1

    def log_text(self, entity: str, text: str) -> None:
        """A line of text (a safety event, an episode boundary) at the current step."""
        self.stream.set_time("step", sequence=self.steps)
        self.stream.log(entity, self._rr.TextLog(text))

    def close(self) -> None:
        """Send the steps logged, then stop the server (killed: it blocks SIGTERM, and a live
        view keeps nothing)."""
        if self._server.poll() is None:
            self.stream.flush()
        # else the viewer's server is gone (it failed, or was killed), and flushing to it
        # raised; a live view keeps nothing
        self.stream.disconnect()
        self._kill_server()
