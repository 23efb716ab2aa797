"""Stop signals: blocked while a node starts a helper process, SIGTERM taken as Ctrl-C by a
command, and the threads' stacks of a process that does not stop.

A terminal's Ctrl-C (SIGINT) and a launcher's or a service manager's stop (SIGTERM) reach
every process of the group. A helper process that a node starts (the inference fork server,
the live view's Rerun server) and that they stopped beside the node cut the node's work off
under it: tracebacks, lost steps, exit code 1. Started with them blocked, the helper inherits
the mask (through ``exec`` too) and is left to its node, which ends it.

A command that is no node (``robot-il``) takes SIGTERM as Ctrl-C: :func:`sigterm_as_interrupt`.
Native code that runs Python inside it (MuJoCo's import and its renderer) turns the exception a
stop raises there into another error; :func:`stops_deferred` holds the stop until it returns.
A process that does not stop writes its threads' stacks on SIGUSR1:
:func:`write_stacks_on_request`.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import signal
import sys
import threading
from collections.abc import Iterator

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
"""What a terminal's Ctrl-C, a launcher's and a service manager's stop send every process of
the group."""


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """:data:`STOP_SIGNALS` blocked in the calling thread only, for the block: a process
    started in it inherits the mask; this process still gets them (another thread takes
    one, and Python raises ``KeyboardInterrupt`` in the main thread as ever)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def leave_stops_to_the_parent() -> None:
    """In a helper process started under :func:`stop_signals_blocked`: ignore SIGINT (a
    terminal's Ctrl-C to the group; the parent ends the helper) and take SIGTERM again
    (multiprocessing ends its daemon children by it at exit, then joins them: a child that
    kept it blocked hung its parent's exit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, ``docker stop``, a service manager's stop), raised where
    Ctrl-C raises ``KeyboardInterrupt`` so that the command stops by the same path."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread for the block, as SIGINT raises
    ``KeyboardInterrupt``: its default ended the process at once, with no word of what the
    dataset kept, the empty dataset of a session stopped at its start left in place, and a
    keyboard teleop's terminal without echo. A SIGTERM the process inherited as ignored stays
    ignored, as Python leaves an ignored SIGINT; outside the main thread (where Python cannot
    set a handler) the block runs under the handler already set."""
    ignored = signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # as Python keeps SIGINT's
    if ignored or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """A stop signal (:data:`STOP_SIGNALS`) that lands in the block takes effect as it ends;
    a second one, at once (a block that never returns can still be stopped).

    Why: a stop's exception raised in Python code that native code called comes out of it as
    another error, the stop lost. MuJoCo's pybind11 modules turn it into ``ImportError:
    initialization failed``; PyOpenGL's ctypes calls (MuJoCo's EGL set-up, and each render
    making its context current) into ``ctypes.ArgumentError: argument 1: KeyboardInterrupt``,
    no chain: a traceback and exit code 1 where a person pressed Ctrl-C. Held here, the stop
    is sent again once the block is done (the last one, if two came), to the handlers it
    would have reached (Ctrl-C's ``KeyboardInterrupt``, :class:`Terminated`, a node's rclpy
    handlers, or the default's end of the process). An ignored signal stays ignored; outside
    the main thread (where Python cannot set a handler) the block runs as it is. About 60 µs
    a block (a render takes milliseconds)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        stop: (handler, _kernel_action(stop))
        for stop in STOP_SIGNALS
        if (handler := signal.getsignal(stop)) not in (signal.SIG_IGN, None)
    }  # None: a handler not set from Python, which Python cannot restore
    held: list[int] = []

    def restore() -> None:
        for stop, (handler, action) in previous.items():
            signal.signal(stop, handler)  # Python's record of it, then what the kernel had
            _set_kernel_action(stop, action)

    def hold(signum: int, frame: object) -> None:
        held.append(signum)
        if len(held) > 1:  # a second stop: now (sent again as the block ends too)
            restore()
            signal.raise_signal(signum)

    for stop in previous:
        signal.signal(stop, hold)
    try:
        yield
    finally:
        restore()
        if held:  # over an error of the block's own too: the person's stop comes first
            signal.raise_signal(held[-1])


_LIBC = ctypes.CDLL(None, use_errno=True)
_SIGACTION_BYTES = 256
"""Room for libc's ``struct sigaction``, held opaque (glibc's on x86-64 and arm64: 152 bytes)."""


def _kernel_action(signum: int) -> ctypes.Array:
    """What the process does on ``signum``, as ``sigaction`` reads it: a handler installed
    outside Python's ``signal`` module included (rclpy's, in a node), which Python neither
    sees (``signal.getsignal`` says ``SIG_DFL``) nor puts back; restoring Python's record
    alone left a node that SIGTERM killed outright (its recorder's episode and line lost)."""
    action = ctypes.create_string_buffer(_SIGACTION_BYTES)
    if _LIBC.sigaction(signum, None, action) != 0:
        raise OSError(ctypes.get_errno(), f"sigaction({signum}) failed")
    return action


def _set_kernel_action(signum: int, action: ctypes.Array) -> None:
    if _LIBC.sigaction(signum, action, None) != 0:
        raise OSError(ctypes.get_errno(), f"sigaction({signum}) failed")


def write_stacks_on_request() -> None:
    """SIGUSR1 writes every thread's Python stack to stderr, for a process that does not stop
    (``stop_process`` sends it before killing one), and a crash in native code (SIGSEGV,
    SIGABRT) writes them before the process ends. Nothing where stderr has no file (closed,
    or replaced by an object without one): faulthandler writes to its descriptor."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # None, closed, or no descriptor
        return
    faulthandler.register(signal.SIGUSR1, file=descriptor, all_threads=True)
    faulthandler.enable(file=descriptor, all_threads=True)
