"""Runs a launch plan's processes and supervises them until the launch ends.

The launch ends when every process has exited (its code: the first non-zero one, else 0),
when a process marked ``on_exit: shutdown`` exits (its code), or on SIGINT/SIGTERM (130/143).
Ending stops what still runs as ``ros2 launch`` does: SIGINT, then SIGTERM after
``sigterm_timeout`` s, then SIGKILL. Each process runs in its own process group, so a
process's own children stop with it. Output lines are prefixed ``[name]``; ``log`` output goes
to ``<log_dir>/<name>.log``.

Every process gets the loopback DDS environment (:mod:`robot_il.ros.dds`) unless the caller
turns it off (deploying on a real robot network is an explicit choice). A ``ROS_DOMAIN_ID`` the
processes would inherit outside 0..101 is refused before any starts (each DDS participant would
fail on its own). Two launches on one ROS domain see each other's topics (a second simulator's
joint states reach the first policy): a launch that finds another robot_il process (a launch,
an evaluation over ROS 2, a test) on its domain says so, naming it
(:func:`robot_il.ros.dds.claim_domain`).

A terminal on the launcher's standard input is every process's standard input too, so that a
keyboard ``teleop`` node reads the operator's keys (``record_teleop.launch.yaml``; ``ros2
launch`` gives its processes none, and such a node needs a terminal of its own there). Ctrl-C
still reaches the launcher alone (the processes run in sessions of their own), which stops
them all. Other input (a pipe, a file) is no process's: each gets ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from robot_il.errors import LaunchError
from robot_il.launch.description import LaunchPlan, ProcessSpec
from robot_il.ros.dds import MAX_DOMAIN_ID, claim_domain, loopback_env

_POLL_S = 0.02
_SIGNAL_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass
class _Running:
    spec: ProcessSpec
    process: subprocess.Popen
    pump: threading.Thread | None


def _pump(stream: TextIO, name: str, screen: TextIO | None, log: TextIO | None) -> None:
    """Copies a child's output line by line to the screen (prefixed) and/or its log file."""
    with stream:
        for line in stream:
            if screen is not None:
                screen.write(f"[{name}] {line}")
                screen.flush()
            if log is not None:
                log.write(line)
                log.flush()
    if log is not None:
        log.close()


class LaunchRunner:
    """Starts the processes of ``plan`` and supervises them; :meth:`run` returns the exit code.

    ``env`` is merged over ``os.environ`` for every process (then the process's own ``env``).
    ``loopback`` adds the loopback DDS environment, on ``domain_id`` if given.
    """

    def __init__(
        self,
        plan: LaunchPlan,
        *,
        loopback: bool = True,
        domain_id: int | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        sigterm_timeout: float = 5.0,
        sigkill_timeout: float = 5.0,
        screen: TextIO | None = None,
    ) -> None:
        self.plan = plan
        self.base_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        if loopback:
            self.base_env.update(loopback_env(domain_id))
        elif domain_id is not None:
            self.base_env["ROS_DOMAIN_ID"] = str(domain_id)
        self.domain_id = _domain_of(self.base_env)
        self.log_dir = log_dir
        self.sigterm_timeout = sigterm_timeout
        self.sigkill_timeout = sigkill_timeout
        self.screen = screen or sys.stdout
        self._running: list[_Running] = []
        self._terminal_input = os.isatty(0)
        """Whether standard input is a terminal, which the processes then share."""
        self._signal: int | None = None

    def run(self) -> int:
        """Start everything, supervise, stop everything; the launch's exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNAL_CODES}
        domain_lock = self._claim_domain()
        try:
            for spec in self.plan.processes:
                self._start(spec)
            return self._supervise()
        finally:
            self._stop_all()
            if domain_lock is not None:
                domain_lock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _claim_domain(self) -> BinaryIO | None:
        """Claim this ROS domain (:func:`robot_il.ros.dds.claim_domain`), or warn that another
        robot_il process holds it; the open lock file (None when not claimed)."""
        names = ", ".join(spec.name for spec in self.plan.processes)
        lock, other = claim_domain(self.domain_id, f"robot-il launch of {names}")
        if other is not None:
            self._say(
                f"warning: another robot_il process runs on ROS domain {self.domain_id} "
                f"({other}): its nodes and these see each other's topics; "
                f"give one of them --domain-id N"
            )
        return lock
        names = ", ".join(spec.name for spec in self.plan.processes)
        lock.truncate(0)
        lock.write(f"pid {os.getpid()}: {names}")
        lock.flush()
        return lock

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signal = signum

    def _say(self, message: str) -> None:
        self.screen.write(f"[launch] {message}\n")
        self.screen.flush()

    def _start(self, spec: ProcessSpec) -> None:
        log = None
        if spec.output in ("log", "both"):
            self.log_dir = self.log_dir or _default_log_dir()
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = (self.log_dir / f"{spec.name}.log").open("a")
        try:
            process = subprocess.Popen(
                spec.argv,
                env={**self.base_env, **spec.env},
                cwd=spec.cwd,
                stdin=None if self._terminal_input else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        except OSError as error:
            raise LaunchError(f"{spec.source}: cannot start {spec.name}: {error}") from None
        screen = self.screen if spec.output in ("screen", "both") else None
        pump = threading.Thread(
            target=_pump, args=(process.stdout, spec.name, screen, log), daemon=True
        )
        pump.start()
        self._running.append(_Running(spec, process, pump))
        self._say(f"started {spec.name} (pid {process.pid})")

    def _supervise(self) -> int:
        first_failure = 0
        reported: set[int] = set()
        while True:
            if self._signal is not None:
                self._say(f"received {signal.Signals(self._signal).name}, stopping")
                return _SIGNAL_CODES[self._signal]
            for running in self._running:
                code = running.process.poll()
                if code is None or running.process.pid in reported:
                    continue
                reported.add(running.process.pid)
                running.pump.join(timeout=1.0)
                self._say(f"{running.spec.name} exited with code {code}")
                if running.spec.shutdown_on_exit:
                    self._say(f"{running.spec.name} has on_exit: shutdown, stopping the launch")
                    return code
                if code != 0 and first_failure == 0:
                    first_failure = code
            if len(reported) == len(self._running):
                return first_failure
            time.sleep(_POLL_S)

    def _stop_all(self) -> None:
        alive = [r for r in self._running if r.process.poll() is None]
        for sig, timeout in (
            (signal.SIGINT, self.sigterm_timeout),
            (signal.SIGTERM, self.sigkill_timeout),
            (signal.SIGKILL, None),
        ):
            for running in alive:
                _signal_group(running.process, sig)
            deadline = time.monotonic() + (timeout or 5.0)
            while alive and time.monotonic() < deadline:
                alive = [r for r in alive if r.process.poll() is None]
                time.sleep(_POLL_S)
            if not alive:
                break
            names = ", ".join(r.spec.name for r in alive)
            self._say(f"{names} still running after {signal.Signals(sig).name}")
        for running in self._running:
            running.process.wait()
            running.pump.join(timeout=1.0)


def _domain_of(env: Mapping[str, str]) -> int:
    """The ROS domain a process with environment ``env`` joins (unset or empty: 0)."""
    text = env.get("ROS_DOMAIN_ID", "").strip() or "0"
    if not text.isdigit() or int(text) > MAX_DOMAIN_ID:
        raise LaunchError(
            f"ROS_DOMAIN_ID={text} in the environment is not a ROS domain id in "
            f"0..{MAX_DOMAIN_ID} (unset it or pass --domain-id)"
        )
    return int(text)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    """Signals the process's group (it leads its own session), so its children stop too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _default_log_dir() -> Path:
    root = Path(os.environ.get("ROS_LOG_DIR") or Path.home() / ".ros" / "log")
    return root / time.strftime(f"robot_il_launch_%Y%m%d_%H%M%S_{os.getpid()}")
