"""Where a stream's frames go: a dataset writer served by a thread, or by a separate process.

Both kinds take frames without blocking (``offer``; a full queue is reported, not waited on),
take frames blocking (``put``, for pushed streams), and carry control requests (begin, check,
commit, discard, close) through the *same* FIFO queue, so a commit is applied after every frame
queued before it. ``check`` returns how many frames the open episode holds, or raises the
error a frame's append met or the one committing with the given meta would meet (where the
episode handle has ``check_meta``): the recorder asks every stream before it commits any.

Every control is numbered and its reply carries the number: a request that an interrupt
(Ctrl-C) cut short, before its control was queued or while its reply was awaited, leaves no
reply slot unfilled and no reply for the next request to take as its own. A writer thread's
replies are also looked for on a period, not only when their wakeup comes: a wakeup a Ctrl-C
lost would otherwise leave the next request waiting for ever with its reply queued.

Why a process: a writer thread shares the interpreter lock with the sampling threads. While it
compresses and writes it holds that lock in stretches, and on a busy machine the OS may
deschedule it mid-stretch, so a sampler due at its tick waits for the lock. A writer process
has its own interpreter; the recording process is left with the samplers and the queue's
feeder thread. A killed recording process takes its writer process down with it (the writer
notices its parent is gone); as with threads, only the episode in flight is lost.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import Any

import numpy as np

from robot_il.errors import RecordingError
from robot_il.stop_signals import leave_stops_to_the_parent, stop_signals_blocked

RESERVED_KEYS = ("timestamp", "tick")
"""Keys the recorder adds to every frame; a source may not produce them itself."""

_PARENT_POLL_S = 0.5
_WAKEUP_POLL_S = 0.5
"""How often each side of a thread sink looks again while it waits (its queue's wakeup aside):
a Ctrl-C in the main thread can lose either side's wakeup (``ThreadSink._serve``,
``ThreadSink._next_reply``)."""
_FRAMES_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class WriterInProcess:
    """Ask the recorder to serve this stream's writer from a separate process.

    ``open_writer`` is called in that process to make the writer; it must be picklable (a
    module-level function or a ``functools.partial`` of one, e.g. of
    ``DatasetWriter.open`` with the dataset's path). The process is started with ``spawn``,
    which imports the main script again: guard a script's work with
    ``if __name__ == "__main__":``.
    """

    open_writer: Callable[[], Any]


@dataclass(frozen=True)
class _Control:
    kind: str  # "begin", "check", "commit", "discard" or "close"
    meta: dict[str, Any] | None = None
    frames: int = 0
    """Frames the sink has sent before this control, counted from its start (the process
    sink's child waits until it has taken that many). A running total, not a count since the
    previous control: an interrupt between sending a control and resetting such a count made
    the next control claim frames already counted, and the child waited 60 s for them."""
    number: int = 0
    """The request's number, which its reply carries (the process sink's ready message: 0)."""


def _reply_to(number: int, next_reply: Callable[[], tuple[int, bool, Any]]) -> Any:
    """The value of the reply to request ``number`` (or raise its error), skipping replies to
    earlier requests that an interrupt left unread."""
    while True:
        replied_to, ok, value = next_reply()
        if replied_to != number:
            continue
        if not ok:
            raise value
        return value


class _WriterServer:
    """Applies queue items to a dataset writer: frames are appended to the open episode,
    controls return ``(ok, value)``. A failed append is remembered and reported at commit.
    ``close`` closes the writer (if it has a ``close``): a DatasetWriter holds the dataset's
    writer lock until then, and a recorder made again on the same path must get it."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.episode: Any = None
        self.error: BaseException | None = None
        self.appended = 0  # frames appended to the open episode

    def handle(self, item: Any) -> tuple[bool, Any] | None:
        if not isinstance(item, _Control):  # (tick, timestamp, frame)
            if self.episode is not None and self.error is None:
                tick, stamp, frame = item
                try:
                    self.episode.append(_stamped(frame, tick, stamp))
                    self.appended += 1
                except BaseException as error:
                    self.error = error
            return None
        try:
            if item.kind == "begin":
                self.error = None
                self.appended = 0
                self.episode = self.writer.begin_episode()
                return True, None
            if item.kind == "check":
                if self.error is not None:
                    raise self.error
                check_meta = getattr(self.episode, "check_meta", None)  # a DatasetWriter's
                if self.appended and check_meta is not None:
                    check_meta(item.meta)
                return True, self.appended
            if item.kind == "commit":
                if self.error is not None:
                    raise self.error
                return True, int(self.episode.commit(item.meta))
            if item.kind == "discard":
                if self.episode is not None:
                    self.episode.discard()
                return True, None
            close = getattr(self.writer, "close", None)  # a DatasetWriter's frees its lock
            if close is not None:
                close()
            return True, None
        except BaseException as error:
            if item.kind == "commit" and self.episode is not None:
                with contextlib.suppress(BaseException):  # already reporting the first error
                    self.episode.discard()
            return False, error
        finally:
            if item.kind in ("commit", "discard"):
                self.episode = None


class ThreadSink:
    """A bounded queue drained by a writer thread in this process."""

    def __init__(self, name: str, writer: Any, queue_size: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._server = _WriterServer(writer)
        self._replies: queue.Queue[tuple[int, bool, Any]] = queue.Queue()
        self._requests = 0  # controls numbered so far
        self._thread = threading.Thread(target=self._serve, name=f"recorder-write-{name}")
        self._thread.daemon = True
        self._thread.start()

    def _serve(self) -> None:
        """Writes what the queue brings; also looks every ``_WAKEUP_POLL_S`` unwoken. A Ctrl-C
        in the main thread's ``put`` between ``Condition.notify``'s release of this thread's
        waiter and its removal from the waiters leaves that waiter first in line, and locked
        again once this thread woke on it: the next item's wakeup goes to it. ``robot-il
        record`` then waited for ever in Recorder.close, its discard in the queue and this
        thread asleep (1 of 30 Ctrl-Cs under load)."""
        while True:
            try:
                item = self._queue.get(timeout=_WAKEUP_POLL_S)
            except queue.Empty:
                continue
            reply = self._server.handle(item)
            if reply is None:
                continue
            self._replies.put((item.number, *reply))
            if item.kind == "close":
                return

    @property
    def error(self) -> BaseException | None:
        """A frame that failed to append this episode (known early only with threads)."""
        return self._server.error

    def offer(self, item: tuple[int, float, Any]) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def put(self, item: tuple[int, float, Any]) -> None:
        self._queue.put(item)

    def request(self, kind: str, meta: dict[str, Any] | None = None) -> Any:
        """Queue a control behind the frames; wait for and return its result (or raise)."""
        self._requests += 1
        self._queue.put(_Control(kind, meta, number=self._requests))
        return _reply_to(self._requests, self._next_reply)

    def _next_reply(self) -> tuple[int, bool, Any]:
        """The next reply, looked for every ``_WAKEUP_POLL_S`` as well as when woken. A Ctrl-C
        that lands in ``threading.Condition.wait`` after it queued its waiter and before it
        released the lock (CPython 3.11 checks for signals there) leaves that waiter behind,
        and the next reply's wakeup goes to it: the request waited for ever with its reply in
        the queue (``robot-il record`` hung in Recorder.close after Ctrl-C, 1 of 15 runs)."""
        while True:
            with contextlib.suppress(queue.Empty):
                return self._replies.get(timeout=_WAKEUP_POLL_S)
            if not self._thread.is_alive() and self._replies.empty():
                raise RecordingError(f"{self._thread.name}: the writer thread has ended")

    def close(self) -> None:
        if self._thread.is_alive():
            self.request("close")
            self._thread.join()


class ProcessSink:
    """A bounded inter-process queue drained by a writer in a child process (``spawn``).

    Frames and control requests travel on separate queues, so that frames are only ever put
    by the stream's sampling thread and the queue's feeder thread, which that thread starts,
    inherits its real-time priority. Every control carries the number of frames the sink has
    sent so far, and the child applies it once it has taken that many off the frame queue.
    """

    def __init__(self, name: str, open_writer: Callable[[], Any], queue_size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._frames = context.Queue(maxsize=queue_size)
        self._controls = context.Queue()
        self._results = context.Queue()
        self._process = context.Process(
            target=_serve_in_process,
            args=(open_writer, self._frames, self._controls, self._results),
            name=f"recorder-write-{name}",
            daemon=True,
        )
        # A terminal's Ctrl-C reaches the whole process group: the writer ignores it and is
        # left to the recorder (it died with a traceback, and every later request failed). The
        # resource tracker first: it starts itself with the stop signals blocked, then unblocks
        # them in the caller, which a writer started after would not inherit.
        resource_tracker.ensure_running()
        with stop_signals_blocked():
            self._process.start()
        self._sent = 0  # frames sent since the start
        self._requests = 0  # controls numbered so far
        self._ready = False

    error = None
    """Append failures surface at commit: the child cannot flag them sooner."""

    @property
    def pid(self) -> int | None:
        """The writer process's id (for CPU accounting)."""
        return self._process.pid

    def wait_ready(self) -> None:
        """Wait until the child has opened its writer; raise what opening it raised."""
        if not self._ready:
            _reply_to(0, self._next_reply)
            self._ready = True

    def offer(self, item: tuple[int, float, Any]) -> bool:
        try:
            self._frames.put_nowait(item)
        except queue.Full:
            return False
        self._sent += 1
        return True

    def put(self, item: tuple[int, float, Any]) -> None:
        self._frames.put(item)
        self._sent += 1

    def request(self, kind: str, meta: dict[str, Any] | None = None) -> Any:
        self.wait_ready()
        self._requests += 1
        self._controls.put(_Control(kind, meta, self._sent, self._requests))
        return _reply_to(self._requests, self._next_reply)

    def _next_reply(self) -> tuple[int, bool, Any]:
        """The next reply; every second without one, the queues' feeder threads are woken. A
        queue's ``put`` hands its item to a feeder thread, which sends it to the child, and
        wakes it by ``Condition.notify``: a Ctrl-C in that notify loses the next put's wakeup
        (see ``ThreadSink._serve``), and a control left in this process's buffer was never
        answered."""
        while True:
            try:
                return self._results.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    raise RecordingError(
                        f"{self._process.name}: writer process died "
                        f"(exit code {self._process.exitcode})"
                    ) from None
            for channel in (self._frames, self._controls):
                with channel._notempty:  # a feeder woken with nothing to send waits again
                    channel._notempty.notify()

    def close(self) -> None:
        if self._process.is_alive():
            self.request("close")
            self._process.join()
        for channel in (self._frames, self._controls, self._results):
            channel.close()


def _serve_in_process(
    open_writer: Callable[[], Any], frames: Any, controls: Any, results: Any
) -> None:
    """The writer process: a thread appends frames as they come, the main thread applies
    controls in order. It exits when told to close, or when the recording process is gone
    (then the episode in flight is simply never committed)."""
    leave_stops_to_the_parent()
    parent = multiprocessing.parent_process()
    try:
        server = _WriterServer(open_writer())
    except BaseException as error:
        results.put((0, False, _picklable(error)))
        return
    results.put((0, True, None))
    appended = threading.Condition()
    count = 0  # frames taken off the queue since the start

    def drain() -> None:
        nonlocal count
        while True:
            item = frames.get()
            with appended:
                server.handle(item)
                count += 1
                appended.notify_all()

    threading.Thread(target=drain, name="drain-frames", daemon=True).start()
    while True:
        try:
            control: _Control = controls.get(timeout=_PARENT_POLL_S)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return
            continue
        with appended:
            deadline = time.monotonic() + _FRAMES_TIMEOUT_S
            while count < control.frames and time.monotonic() < deadline:
                appended.wait(timeout=_PARENT_POLL_S)
            if count < control.frames:
                server.error = RecordingError(
                    f"writer process: only {count} of the {control.frames} frames sent arrived"
                )
            reply = server.handle(control)
        ok, value = reply if reply is not None else (True, None)
        results.put((control.number, ok, value if ok else _picklable(value)))
        if control.kind == "close":
            return


def _picklable(error: BaseException | None) -> BaseException | None:
    """``error`` itself if it survives pickling, else a RecordingError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        text = " ".join(str(error).split())[:300]
        return RecordingError(f"{type(error).__name__}: {text}")
    return error


def _stamped(frame: Any, tick: int, stamp: float) -> dict[str, np.ndarray]:
    clash = [key for key in RESERVED_KEYS if key in frame]
    if clash:
        raise RecordingError(f"recorder: the source's frame has reserved key(s) {clash}")
    return {**frame, "timestamp": np.float64(stamp), "tick": np.int64(tick)}
