"""The recorder: samples streams at fixed rates, stamps every frame, and writes without stalling.

Why it is built this way:

- **One sampling thread per stream.** A 500 Hz joint-state stream must not wait behind a camera
  read; each stream keeps its own clock. A thread sleeps until its next nominal tick
  ``t0 + k / rate``, reads the source, and stamps the frame with the monotonic clock.
- **The sampling thread never touches disk.** It hands each frame to a bounded queue; a writer
  per stream (a thread, or a process of its own: :mod:`robot_il.record.sink`) appends frames
  to the dataset and commits or discards the episode. When the writer cannot keep up and the
  queue is full, the frame is dropped *and counted* (``dropped_backpressure``): the sampler
  does not slow down to hide it.
- **Honest timing.** A frame read more than ``late_tolerance`` periods after its nominal tick is
  counted late. When the sampler wakes so late that a later tick is already due, the ticks in
  between are never sampled and are counted as ``dropped_ticks`` (no burst of catch-up reads).
  Every frame carries ``timestamp`` (s since the episode started, float64: the monotonic time
  at which the sampler asked the source for the frame) and ``tick`` (its nominal tick index,
  int64; nominal time = tick / rate), so gaps are visible in the data too.
- **Crash safety** comes from the dataset writer: an episode becomes visible only at commit.
  ``stop_episode`` returns once the commit is durable; a process killed before loses only the
  episode in flight. It checks every stream before committing any (a stream with no frame, a
  failed write, or meta its dataset cannot take discards the episode everywhere); a kill
  between two streams' commits can still leave the episode in some streams' datasets only.

Streams run at different rates, so each stream writes its own dataset (one time axis per
dataset, as the format requires), e.g. ``joint.zarr`` at 500 Hz and ``cam_front.zarr`` at 30 Hz;
all of one recording's streams share a ``recording_start_unix`` episode meta value to pair them.

A stream whose ``read`` is ``None`` is *pushed*: the caller supplies each frame with
:meth:`Recorder.push` (a simulator stepping faster than real time). Its ``timestamp`` is the
nominal time ``tick / rate`` (simulated time), and a full queue makes ``push`` wait (counted as
``backpressure_waits``) instead of dropping, since nothing is lost by pausing a simulator.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from robot_il.errors import DISK_FULL, RecordingError, RobotILError
from robot_il.record.sink import ProcessSink, ThreadSink, WriterInProcess

Frame = Mapping[str, np.ndarray]
"""One sample of a stream: key -> per-step array (no time axis)."""


@dataclass(frozen=True)
class StreamSpec:
    """A stream of frames at a fixed rate.

    ``rate_hz``: nominal sampling rate (Hz). ``read``: returns one frame (arrays the source will
    not mutate afterwards), or ``None`` once the source has ended the episode (sampling of this
    stream then stops until the next episode); ``read=None`` makes a pushed stream.
    ``queue_seconds``: how much data the writer may fall behind by before frames are dropped.
    ``late_tolerance``: lateness, as a fraction of the period, from which a frame counts late.
    """

    name: str
    rate_hz: float
    read: Callable[[], Frame | None] | None = None
    queue_seconds: float = 2.0
    late_tolerance: float = 0.5

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def queue_size(self) -> int:
        return max(2, int(np.ceil(self.queue_seconds * self.rate_hz)))


@dataclass
class StreamStats:
    """Timing of one stream over one episode. Times in seconds."""

    name: str
    rate_hz: float
    ticks: int = 0
    """Nominal ticks the episode went through: always ``frames + dropped``."""
    frames: int = 0
    """Frames handed to the writer (the episode's length when committed)."""
    late: int = 0
    dropped_ticks: int = 0
    """Nominal ticks never sampled because the sampler woke after a later tick was due."""
    dropped_backpressure: int = 0
    """Frames sampled but dropped because the writer's queue was full."""
    backpressure_waits: int = 0
    """Pushed frames that had to wait for room in the queue (pushed streams drop nothing)."""
    max_lateness_s: float = 0.0
    duration_s: float = 0.0
    realtime: bool = False
    """Whether the sampling thread ran with real-time (SCHED_FIFO) priority."""

    @property
    def dropped(self) -> int:
        """Every frame the stream should have had but does not."""
        return self.dropped_ticks + self.dropped_backpressure

    @property
    def achieved_hz(self) -> float:
        return self.frames / self.duration_s if self.duration_s > 0 else 0.0

    def as_meta(self) -> dict[str, Any]:
        """Per-episode meta values (JSON scalars), named ``rec_<field>``."""
        return {f"rec_{key}": value for key, value in asdict(self).items() if key != "name"}

    def summary(self) -> str:
        return (
            f"{self.name}: {self.frames} frames at {self.achieved_hz:.1f}/{self.rate_hz:g} Hz, "
            f"{self.late} late, {self.dropped} dropped "
            f"({self.dropped_ticks} missed ticks, {self.dropped_backpressure} writer backlog), "
            f"max lateness {self.max_lateness_s * 1e3:.2f} ms"
            + (", real-time priority" if self.realtime else "")
        )


@dataclass(frozen=True)
class EpisodeReport:
    """What became of one episode: per stream, its index in the dataset (None if discarded)
    and its timing statistics."""

    committed: bool
    episode_index: dict[str, int | None]
    stats: dict[str, StreamStats]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return sum(stat.dropped for stat in self.stats.values())

    @property
    def late(self) -> int:
        return sum(stat.late for stat in self.stats.values())

    def summary(self) -> str:
        return "; ".join(stat.summary() for stat in self.stats.values())


class _StreamRunner:
    """A stream's sink (writer thread or process) and, for sampled streams, its per-episode
    sampler thread."""

    def __init__(self, spec: StreamSpec, writer: Any, realtime: bool) -> None:
        self.spec = spec
        self.realtime = realtime
        if isinstance(writer, WriterInProcess):
            self.sink: ThreadSink | ProcessSink = ProcessSink(
                spec.name, writer.open_writer, spec.queue_size
            )
        else:
            self.sink = ThreadSink(spec.name, writer, spec.queue_size)
        self.stats = StreamStats(spec.name, spec.rate_hz)
        self.read_error: BaseException | None = None
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        self._t0 = 0.0
        self._pushed_ticks = 0

    @property
    def write_error(self) -> BaseException | None:
        return self.sink.error

    # -- sampling ------------------------------------------------------------------------------

    def start(self, t0: float) -> None:
        self.stats = StreamStats(self.spec.name, self.spec.rate_hz)
        self.read_error = None
        self._t0 = t0
        self._pushed_ticks = 0
        if self.spec.read is not None:
            self._stop_sampling.clear()
            self._sampler = threading.Thread(
                target=self._sample_loop, name=f"recorder-sample-{self.spec.name}", daemon=True
            )
            self._sampler.start()

    def stop(self, t_end: float) -> None:
        if self._sampler is not None:
            self._stop_sampling.set()
            self._sampler.join()
            self._sampler = None
        if self.spec.read is not None:
            self.stats.duration_s = t_end - self._t0
        else:  # simulated time
            self.stats.duration_s = self._pushed_ticks / self.spec.rate_hz

    def _sample_loop(self) -> None:
        spec, stats, t0 = self.spec, self.stats, self._t0
        period = spec.period_s
        tolerance = spec.late_tolerance * period
        read = spec.read
        assert read is not None
        stats.realtime = self.realtime and _request_realtime_priority()
        tick = 0
        while True:
            due = t0 + tick * period
            now = time.monotonic()
            while now < due:  # a timed wait may return a hair early: never sample before the tick
                if self._stop_sampling.wait(due - now):
                    return
                now = time.monotonic()
            if self._stop_sampling.is_set():
                return
            latest_due = int((now - t0) / period)
            if latest_due > tick:  # woke after a later tick was due: those between are lost
                stats.dropped_ticks += latest_due - tick
                tick = latest_due
                due = t0 + tick * period
            lateness = now - due
            if lateness > tolerance:
                stats.late += 1
            stats.max_lateness_s = max(stats.max_lateness_s, lateness)
            try:
                frame = read()
            except BaseException as error:  # the source failed: stop this stream, report at stop
                self.read_error = error
                return
            if frame is None:  # the source ended the episode (e.g. the env terminated)
                return
            if self.sink.offer((tick, now - t0, frame)):
                stats.frames += 1
            else:
                stats.dropped_backpressure += 1
            tick += 1
            stats.ticks = tick

    def push(self, frame: Frame) -> None:
        if self.write_error is not None:
            raise _as_recording_error(self.spec.name, "writing", self.write_error)
        tick = self._pushed_ticks
        item = (tick, tick / self.spec.rate_hz, frame)
        if not self.sink.offer(item):
            self.stats.backpressure_waits += 1
            self.sink.put(item)
        self._pushed_ticks += 1
        self.stats.frames += 1
        self.stats.ticks += 1


class Recorder:
    """Records episodes from several fixed-rate streams, each into its own dataset writer.

    ``writers`` maps each stream name to an object with the streaming API of
    :class:`robot_il.dataset.DatasetWriter` (``begin_episode()`` returning a handle with
    ``append(frame)``, ``commit(meta) -> int``, ``discard()``; ``close()`` if it has one),
    served by a thread, or to a :class:`~robot_il.record.sink.WriterInProcess`, served by a
    process of its own. The recorder owns them: use it as a context manager, or call
    :meth:`close`, which closes them; an episode still running at close is discarded, never
    half-committed.

    Two measures keep the sampling threads on time (without them a 500 Hz stream misses ticks
    whenever the machine is busy):

    - ``realtime=True`` asks Linux for ``SCHED_FIFO`` priority for each sampling thread (as
      robot drivers do), so that a waking sampler preempts other processes' work. It needs
      root or an ``rtprio`` limit (``/etc/security/limits.conf``); without the permission the
      thread runs at normal priority and its stats say ``realtime=False``. A sampler sleeps
      between ticks, and Linux caps real-time threads at 95% of a core by default; still, pass
      ``realtime=False`` when a source's ``read`` is heavy computation (stepping a simulator).
    - While an episode runs, the interpreter's thread switch interval is shortened to a quarter
      of the fastest sampled stream's period (restored afterwards): with the default 5 ms a
      writer thread holding the GIL would make a sampler wait past its tick.
    """

    def __init__(
        self,
        streams: Sequence[StreamSpec],
        writers: Mapping[str, Any],
        *,
        realtime: bool = True,
    ) -> None:
        names = [spec.name for spec in streams]
        if not names:
            raise RecordingError("recorder: no streams given")
        if len(set(names)) != len(names):
            raise RecordingError(f"recorder: stream names repeat: {names}")
        missing = [name for name in names if name not in writers]
        if missing:
            raise RecordingError(f"recorder: no dataset writer for stream(s) {missing}")
        for spec in streams:
            if not spec.rate_hz > 0:
                raise RecordingError(f"recorder: stream {spec.name} rate {spec.rate_hz} Hz <= 0")
        self._runners = {
            spec.name: _StreamRunner(spec, writers[spec.name], realtime) for spec in streams
        }
        for runner in self._runners.values():  # writer processes start in parallel; wait here
            if isinstance(runner.sink, ProcessSink):
                runner.sink.wait_ready()
        sampled = [spec.period_s for spec in streams if spec.read is not None]
        self._switch_interval = min(sampled) / 4 if sampled else None
        self._saved_switch_interval = sys.getswitchinterval()
        self._active = False
        self._t0 = 0.0
        self._start_unix = 0.0
        self._closed = False

    @classmethod
    def to_directory(
        cls,
        root: str | Path,
        streams: Sequence[StreamSpec],
        *,
        robot: str,
        attrs: dict[str, Any] | None = None,
        overwrite: bool = False,
        fsync: bool = True,
        realtime: bool = True,
        writer_processes: bool = False,
    ) -> Recorder:
        """A recorder writing stream ``s`` to ``root/<s>.zarr`` (a new dataset at its rate).

        ``fsync=False`` skips flushing at commit (still safe against a killed process, not
        against power loss): for tests and scratch recordings. ``writer_processes=True`` serves
        each dataset from its own process (see :mod:`robot_il.record.sink`): the choice for
        high-rate streams beside cameras. The datasets are created here either way, so a bad
        path or an existing dataset fails at once.
        """
        from robot_il.dataset import DatasetWriter

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        writers = {
            spec.name: DatasetWriter.create(
                root / f"{spec.name}.zarr",
                robot=robot,
                control_hz=spec.rate_hz,
                attrs={**(attrs or {}), "stream": spec.name},
                overwrite=overwrite,
                fsync=fsync,
            )
            for spec in streams
        }
        if writer_processes:  # each process opens its dataset again, taking the lock
            for writer in writers.values():
                writer.close()
            writers = {
                name: WriterInProcess(partial(DatasetWriter.open, writer.path, fsync=fsync))
                for name, writer in writers.items()
            }
        return cls(streams, writers, realtime=realtime)

    @property
    def active(self) -> bool:
        """True between :meth:`start_episode` and :meth:`stop_episode`."""
        return self._active

    @property
    def streams(self) -> list[str]:
        return list(self._runners)

    def start_episode(self) -> None:
        """Open a new episode in every stream's dataset and start the sampling threads."""
        if self._closed:
            raise RecordingError("recorder: closed")
        if self._active:
            raise RecordingError("recorder: an episode is already being recorded")
        for runner in self._runners.values():
            runner.sink.request("begin")
        if self._switch_interval is not None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved_switch_interval, self._switch_interval))
        self._start_unix = time.time()
        self._t0 = time.monotonic()
        self._active = True
        for runner in self._runners.values():
            runner.start(self._t0)

    def push(self, stream: str, frame: Frame) -> None:
        """Add the next frame of the pushed stream ``stream`` (waits if its writer lags)."""
        if not self._active:
            raise RecordingError("recorder: push outside an episode (call start_episode first)")
        runner = self._runners.get(stream)
        if runner is None:
            raise RecordingError(f"recorder: no stream named {stream!r}; have {self.streams}")
        if runner.spec.read is not None:
            raise RecordingError(f"recorder: stream {stream!r} is sampled, not pushed")
        runner.push(frame)

    def failed_stream(self) -> str | None:
        """The name of a stream whose source or writer has failed this episode, if any."""
        for name, runner in self._runners.items():
            if runner.read_error is not None or runner.write_error is not None:
                return name
        return None

    def stop_episode(self, *, commit: bool, meta: dict[str, Any] | None = None) -> EpisodeReport:
        """Stop sampling and commit (or discard) the episode in every stream's dataset.

        Returns once the writers have finished, so a committed episode is durable on return.
        ``meta`` (JSON scalars) is stored with the episode, with each stream's timing
        statistics (``rec_*``) and ``recording_start_unix`` added. If a source or writer
        failed, a stream has no frame this episode, or a stream's dataset cannot take the
        meta, every stream's episode is discarded and an error is raised. Every stream is
        checked before any commits, so such an episode lands in no dataset; the per-stream
        commits themselves still run one after another, so a kill, or a commit failing on
        disk, between two of them leaves the episode in the streams committed so far (pair
        streams by ``recording_start_unix``).
        """
        if not self._active:
            raise RecordingError("recorder: no episode is being recorded")
        t_end = time.monotonic()
        for runner in self._runners.values():
            runner.stop(t_end)
        self._active = False
        sys.setswitchinterval(self._saved_switch_interval)
        stats = {name: runner.stats for name, runner in self._runners.items()}
        failure = self._failure()
        if failure is not None:
            self._discard_all()
            raise failure
        indices: dict[str, int | None] = dict.fromkeys(self._runners)
        episode_meta = {**(meta or {}), "recording_start_unix": self._start_unix}
        if not commit:
            self._discard_all()
            return EpisodeReport(False, indices, stats, episode_meta)
        metas = {name: {**episode_meta, **runner.stats.as_meta()}
                 for name, runner in self._runners.items()}  # fmt: skip
        for name, runner in self._runners.items():  # all streams fit to commit, or none commits
            with self._discarding_on_failure(name, "writing"):
                frames = runner.sink.request("check", metas[name])
            if frames == 0:
                self._discard_all()
                raise RecordingError(
                    f"stream {name}: no frame this episode; the episode is discarded in every "
                    "stream"
                )
        for name, runner in self._runners.items():
            with self._discarding_on_failure(name, "committing"):
                indices[name] = runner.sink.request("commit", metas[name])
        return EpisodeReport(True, indices, stats, episode_meta)

    @contextlib.contextmanager
    def _discarding_on_failure(self, stream: str, doing: str) -> Iterator[None]:
        """Discard the episode in every stream if the body fails. An error is raised again as
        a RecordingError naming ``stream``; an interrupt (Ctrl-C while waiting for a writer)
        propagates as itself, so that the caller stops as interrupted, not as failed."""
        try:
            yield
        except BaseException as error:
            self._discard_all()
            if not isinstance(error, Exception):
                raise
            raise _as_recording_error(stream, doing, error) from error

    def _failure(self) -> RobotILError | None:
        for name, runner in self._runners.items():
            if runner.read_error is not None:
                return _as_recording_error(name, "reading the source", runner.read_error)
            if runner.write_error is not None:
                return _as_recording_error(name, "writing", runner.write_error)
        return None

    def _discard_all(self) -> None:
        """Ask every stream to discard, whatever one's request raised; an interrupt (Ctrl-C,
        SIGTERM as ``Terminated``) while one waited is raised once all were asked. It was
        swallowed with the errors: a failed expert attempt or a teleop re-record that a person
        stopped went on to the next episode, and the session recorded on."""
        interrupt: BaseException | None = None
        for runner in self._runners.values():
            try:
                runner.sink.request("discard")
            except Exception:  # the episode is thrown away regardless
                continue
            except BaseException as error:
                interrupt = interrupt or error
        if interrupt is not None:
            raise interrupt

    def close(self) -> None:
        """Discard an episode still running, then close every writer and stop its thread or
        process: on return the datasets are free for another writer."""
        if self._closed:
            return
        try:
            if self._active:
                for runner in self._runners.values():
                    runner.stop(time.monotonic())
                self._active = False
                sys.setswitchinterval(self._saved_switch_interval)
                self._discard_all()
        finally:  # a second Ctrl-C during the discard: the writers still close
            for runner in self._runners.values():
                runner.sink.close()
            self._closed = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


REALTIME_PRIORITY = 10
"""SCHED_FIFO priority of sampling threads: above normal work, below the kernel's own (50+)."""


def _request_realtime_priority() -> bool:
    """Give the calling thread SCHED_FIFO priority; False where the OS or permissions refuse."""
    try:  # on Linux, pid 0 means the calling thread
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except (AttributeError, OSError):
        return False
    return True


def _as_recording_error(stream: str, doing: str, error: BaseException) -> RobotILError:
    if isinstance(error, RobotILError):
        return type(error)(f"stream {stream}: {error}")
    if isinstance(error, OSError) and error.errno in DISK_FULL:
        where = f" writing {error.filename}" if error.filename else ""
        return RecordingError(f"{doing} the episode failed: no space left on the disk{where}")
    text = " ".join(str(error).split())[:300]
    return RecordingError(f"stream {stream}: {doing} failed: {type(error).__name__}: {text}")
