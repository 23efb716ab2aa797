"""A backstop behind pytest-timeout, for a test it cannot stop: the test's stacks on record,
its worker ended, so that the run goes on and says which test hung.

pytest-timeout (signal method) fails a test past its timeout from a SIGALRM handler, and
Python runs that handler only when the main thread next runs Python code. A main thread
stuck in native code (a DDS wait, a native lock), or a thread that holds the GIL and waits
for ever, outlasts the timeout: CI then waited out its 90 minutes with no word of the test.

``hang_backstop_grace_s`` after the timeout, a thread of this plugin writes every thread's
stack to ``.pytest-hangs/<worker>-<pid>.txt`` under the rootdir (``scripts/test.sh`` prints
it), kills the processes the test started, and ends the worker; pytest-xdist then reports
the test as "crashed".
Where no Python thread can run (the GIL held for ever), faulthandler writes the stacks and
ends the worker 30 s later. Run pytest-xdist with ``--max-worker-restart=0``: with
``--dist loadfile`` it reruns the test on a fresh worker and then waits for ever (pytest-xdist
#1323).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import threading
from pathlib import Path
from typing import IO

import pytest

HANG_REPORTS = ".pytest-hangs"
"""Where, under the rootdir, a hung test's stacks go: a file per worker process, removed if it
stayed empty."""

NATIVE_FALLBACK_S = 30.0
"""After the backstop, how long faulthandler waits before it ends a worker no Python thread
could end."""

_reports: Path | None = None
_report: IO[str] | None = None
_backstop: threading.Timer | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "hang_backstop_grace_s",
        "seconds past a test's timeout before the hang backstop ends its worker",
        default="120",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _reports
    _reports = config.rootpath / HANG_REPORTS


@pytest.hookimpl(hookwrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings) -> object:
    """Arms the backstop beside pytest-timeout's own timer (``settings.timeout`` in s)."""
    yield
    if not settings.timeout:
        return
    global _backstop
    after_s = settings.timeout + float(item.config.getini("hang_backstop_grace_s"))
    _backstop = threading.Timer(after_s, _end_hung_worker, (item.nodeid, settings.timeout))
    _backstop.daemon = True
    _backstop.start()
    faulthandler.dump_traceback_later(after_s + NATIVE_FALLBACK_S, exit=True, file=_report_file())


@pytest.hookimpl(hookwrapper=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> object:
    yield
    global _backstop
    if _backstop is not None:
        _backstop.cancel()
        _backstop.join()  # gone before the next test, which may count threads
        _backstop = None
        faulthandler.cancel_dump_traceback_later()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _report is not None:
        _report.close()
        if os.path.getsize(_report.name) == 0:
            os.remove(_report.name)


def _report_file() -> IO[str]:
    """This worker's report, opened before any hang: a hung process may not open files."""
    global _report
    if _report is None:
        _reports.mkdir(exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _report = open(_reports / f"{worker}-{os.getpid()}.txt", "a")  # noqa: SIM115 (kept open)
    return _report


def _end_hung_worker(nodeid: str, timeout_s: float) -> None:
    report = _report_file()
    report.write(f"{nodeid} ran past its {timeout_s:g} s timeout, which could not stop it\n")
    report.flush()
    faulthandler.dump_traceback(report, all_threads=True)
    for pid in _descendants(os.getpid()):
        report.write(f"killed process {pid}: {_command_line(pid)}\n")
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.kill(pid, signal.SIGKILL)
    report.flush()
    os._exit(70)


def _descendants(root: int) -> list[int]:
    """The processes below ``root`` in the process tree (from /proc), nearest first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])  # after "pid (comm) state"
        children.setdefault(parent, []).append(int(entry.name))
    found, frontier = [], [root]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"
