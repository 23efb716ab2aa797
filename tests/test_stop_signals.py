"""stops_deferred: a stop that lands in native code's call back into Python comes out as
the stop, once the native call is done."""

from __future__ import annotations

import ctypes
import os
import signal
import threading

import pytest

from robot_il.stop_signals import Terminated, sigterm_as_interrupt, stops_deferred


def _abs_converting_through(convert):
    """libc's ``abs``, its argument converted by ``convert`` in Python as ctypes calls it:
    the path of PyOpenGL's EGL calls, where a Ctrl-C landed in MuJoCo's import."""

    class Converted:
        @staticmethod
        def from_param(value: int) -> ctypes.c_int:
            convert()
            return ctypes.c_int(value)

    libc_abs = ctypes.CDLL(None).abs
    libc_abs.argtypes = [Converted]
    libc_abs.restype = ctypes.c_int
    return libc_abs


def test_a_stop_in_a_ctypes_conversion_is_lost_without_the_deferral() -> None:
    """The failure the deferral is for, on this Python: ctypes turns the interrupt into an
    ArgumentError that keeps only the exception's name, no chain."""
    libc_abs = _abs_converting_through(lambda: signal.raise_signal(signal.SIGINT))
    with pytest.raises(ctypes.ArgumentError, match="KeyboardInterrupt") as raised:
        libc_abs(-3)
    assert raised.value.__cause__ is None and raised.value.__context__ is None


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_in_a_ctypes_conversion_comes_out_as_the_stop_after_the_call(stop) -> None:
    libc_abs = _abs_converting_through(lambda: signal.raise_signal(stop))
    results = []
    with sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt) as raised, stops_deferred():
        results.append(libc_abs(-3))
        results.append("the block ran on")
    assert results == [3, "the block ran on"]
    assert isinstance(raised.value, Terminated) == (stop == signal.SIGTERM)


def test_a_second_stop_is_raised_at_once() -> None:
    ran_on = []
    with pytest.raises(KeyboardInterrupt), stops_deferred():
        signal.raise_signal(signal.SIGINT)
        ran_on.append("after the first")
        signal.raise_signal(signal.SIGINT)
        ran_on.append("after the second")
    assert ran_on == ["after the first"]


def test_the_stop_comes_before_an_error_of_the_block_which_it_keeps_as_context() -> None:
    with pytest.raises(KeyboardInterrupt) as raised, stops_deferred():
        signal.raise_signal(signal.SIGINT)
        raise ValueError("the block's own")
    assert isinstance(raised.value.__context__, ValueError)


def test_the_handlers_are_restored_and_an_ignored_stop_stays_ignored() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stops_deferred():
        pass
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stops_deferred():
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_the_block_runs_as_it_is() -> None:
    seen = []

    def run() -> None:
        with stops_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


def test_a_handler_installed_outside_python_is_put_back() -> None:
    """rclpy installs its SIGINT and SIGTERM handlers with ``sigaction``, past Python's
    record: a block that restored Python's record alone (``SIG_DFL`` for SIGTERM) left a
    node that SIGTERM killed outright, its recorder's line of what it kept lost. Here rclpy's
    handler must still take SIGTERM after a block: the context goes down, the process lives."""
    import subprocess
    import sys

    from robot_il.ros.dds import loopback_env

    script = (
        "import os, signal, time, rclpy\n"
        "from robot_il.stop_signals import stops_deferred\n"
        "rclpy.init()\n"
        "with stops_deferred():\n"
        "    pass\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "deadline = time.monotonic() + 10\n"
        "while rclpy.ok() and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print('context up:', rclpy.ok(), flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **loopback_env()},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "context up: False\n"), result.stderr
