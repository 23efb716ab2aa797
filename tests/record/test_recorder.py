"""The recorder with real threads and real zarr datasets on disk, fed by synthetic sources.

Timing on a shared 2-core machine is noisy, so these tests check *accounting* (every nominal
tick is either stored or counted as dropped; stored ticks and timestamps agree with the
counts), which must hold however loaded the machine is, and rates only loosely.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from functools import partial

import numpy as np
import pytest

from robot_il.dataset import Dataset, DatasetWriter
from robot_il.errors import DatasetError, RecordingError
from robot_il.record import Recorder, StreamSpec
from robot_il.record.sink import ProcessSink, ThreadSink, WriterInProcess


class JointSource:
    """A fake 6-joint arm whose reading changes every call (so frames are distinguishable)."""

    def __init__(self, stall_every: int = 0, stall_s: float = 0.0) -> None:
        self.calls = 0
        self.stall_every = stall_every
        self.stall_s = stall_s

    def read(self) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.stall_every and self.calls % self.stall_every == 0:
            time.sleep(self.stall_s)  # a source that sometimes blocks, like a slow driver
        return {"joint_pos": np.full(6, self.calls, dtype=np.float32)}


def camera_source(height: int = 48, width: int = 64):
    counter = iter(range(1 << 30))

    def read() -> dict[str, np.ndarray]:
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[..., 0] = next(counter) % 256
        return {"rgb_front": image}

    return read


def check_accounting(dataset: Dataset, episode: int, stats) -> np.ndarray:
    """Stored frames, stored ticks and the stream's counters must all agree."""
    steps = dataset.episode(episode)
    ticks = steps["tick"]
    assert len(ticks) == stats.frames
    assert np.all(np.diff(ticks) >= 1), "ticks must strictly increase"
    assert stats.ticks == stats.frames + stats.dropped, "a tick is either stored or dropped"
    missing_ticks = int(ticks[-1] + 1 - len(ticks))
    # Drops after the last stored frame leave no gap in the stored ticks, so <= rather than ==.
    assert missing_ticks <= stats.dropped
    assert stats.dropped - missing_ticks == stats.ticks - 1 - ticks[-1]
    assert np.all(np.diff(steps["timestamp"]) > 0), "timestamps must strictly increase"
    lateness = steps["timestamp"] - ticks / stats.rate_hz
    assert lateness.min() >= -1e-6, "a frame is never sampled before its nominal tick"
    assert lateness.max() <= stats.max_lateness_s + 1e-6
    stored_late = int((lateness > 0.5 / stats.rate_hz).sum())
    # Late frames may also be among those the writer's backlog dropped.
    assert stored_late <= stats.late <= stored_late + stats.dropped_backpressure
    return steps


def test_two_rates_are_sampled_stamped_and_accounted(tmp_path):
    joint = JointSource()
    streams = [StreamSpec("joint", 500.0, joint.read), StreamSpec("cam", 30.0, camera_source())]
    with Recorder.to_directory(tmp_path, streams, robot="ur5e", fsync=False) as recorder:
        recorder.start_episode()
        time.sleep(1.0)
        report = recorder.stop_episode(commit=True, meta={"operator": "test"})
    assert report.committed and report.episode_index == {"joint": 0, "cam": 0}

    for name, rate in (("joint", 500.0), ("cam", 30.0)):
        stats = report.stats[name]
        dataset = Dataset.open(tmp_path / f"{name}.zarr")
        assert dataset.num_episodes == 1
        assert dataset.attrs["control_hz"] == rate
        check_accounting(dataset, 0, stats)
        # Every nominal tick in the episode's duration was sampled or counted as dropped.
        expected_ticks = stats.duration_s * rate
        assert abs(stats.ticks - expected_ticks) <= 2
        assert stats.frames >= 0.5 * expected_ticks, stats.summary()
        meta = dataset.meta(0)
        assert meta["operator"] == "test"
        assert meta["rec_frames"] == stats.frames
        assert meta["rec_dropped_ticks"] == stats.dropped_ticks
    # The joint stream read the source once per stored frame, in order.
    joint_steps = Dataset.open(tmp_path / "joint.zarr").episode(0)
    np.testing.assert_array_equal(joint_steps["joint_pos"][:, 0], np.arange(1, joint.calls + 1))


def test_a_stalling_source_shows_as_dropped_ticks_not_catch_up_bursts(tmp_path):
    # Every 25th read blocks for 5 periods: the ticks it sleeps through must be dropped.
    source = JointSource(stall_every=25, stall_s=0.05)
    streams = [StreamSpec("joint", 100.0, source.read)]
    with Recorder.to_directory(tmp_path, streams, robot="ur5e", fsync=False) as recorder:
        recorder.start_episode()
        time.sleep(1.0)
        report = recorder.stop_episode(commit=True)
    stats = report.stats["joint"]
    # 3 stalls in the first 88 reads, each sleeping through at least 4 ticks.
    assert stats.dropped_ticks >= 3 * 4, stats.summary()
    steps = check_accounting(Dataset.open(tmp_path / "joint.zarr"), 0, stats)
    assert np.diff(steps["tick"]).max() >= 4


class SlowDiskWriter:
    """A real DatasetWriter on a disk that takes ``delay_s`` per frame (a saturated disk)."""

    def __init__(self, writer: DatasetWriter, delay_s: float) -> None:
        self._writer = writer
        self._delay_s = delay_s

    def begin_episode(self):
        episode = self._writer.begin_episode()
        append = episode.append

        def slow_append(frame):
            time.sleep(self._delay_s)
            append(frame)

        episode.append = slow_append
        return episode


class FullDiskWriter:
    """A real DatasetWriter on a disk that fills up as the episode is committed."""

    def __init__(self, writer: DatasetWriter) -> None:
        self._writer = writer

    def begin_episode(self):
        episode = self._writer.begin_episode()

        def commit(meta=None):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "env.zarr/data/action/c/3")

        episode.commit = commit
        return episode


def test_a_full_disk_at_commit_is_said_as_such_and_the_episode_discarded(tmp_path):
    """A full disk read "stream env: committing failed: OSError: [Errno 28] ...", an error's
    type name where the person needs to hear the disk is full."""
    writer = DatasetWriter.create(tmp_path / "env.zarr", robot="ur5e", control_hz=20, fsync=False)
    spec = StreamSpec("env", 20.0, read=None)
    with Recorder([spec], {"env": FullDiskWriter(writer)}) as recorder:
        recorder.start_episode()
        recorder.push("env", {"action": np.zeros(7, dtype=np.float32)})
        with pytest.raises(RecordingError) as refused:
            recorder.stop_episode(commit=True)
    assert str(refused.value) == (
        "committing the episode failed: no space left on the disk writing env.zarr/data/action/c/3"
    )
    assert Dataset.open(tmp_path / "env.zarr").num_episodes == 0


def test_writer_backlog_drops_frames_and_counts_them_without_slowing_the_sampler(tmp_path):
    writer = DatasetWriter.create(tmp_path / "cam.zarr", robot="ur5e", control_hz=100, fsync=False)
    spec = StreamSpec("cam", 100.0, camera_source(), queue_seconds=0.05)  # room for 5 frames
    with Recorder([spec], {"cam": SlowDiskWriter(writer, delay_s=0.1)}) as recorder:
        recorder.start_episode()
        time.sleep(0.6)
        report = recorder.stop_episode(commit=True)
    stats = report.stats["cam"]
    # The writer manages ~10 frames/s of the 100 offered, so it can take at most ~6 frames plus
    # the queue's 5 in 0.6 s. A sampler that kept sampling while the writer was stuck drops
    # more than it stores; one throttled to the writer's pace would drop none. The margin holds
    # on a loaded machine too, where the sampler itself misses some ticks.
    assert stats.frames <= 13, stats.summary()
    assert stats.dropped_backpressure >= 20, stats.summary()
    assert stats.dropped_backpressure > stats.frames, stats.summary()
    check_accounting(Dataset.open(tmp_path / "cam.zarr"), 0, stats)


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "discard"])
def test_ctrl_c_while_the_episode_is_written_is_an_interrupt_not_a_write_failure(tmp_path, commit):
    """Ctrl-C while ``stop_episode`` waits for the writer reaches the caller as itself (the CLI
    says "interrupted"), not as "writing failed: KeyboardInterrupt", and the episode is gone.
    While it waited to discard (``commit=False``) the Ctrl-C was swallowed with the writers'
    errors: a failed expert attempt or a teleop re-record went on to the next episode, and the
    session recorded on."""
    writer = DatasetWriter.create(tmp_path / "env.zarr", robot="ur5e", control_hz=20, fsync=False)
    spec = StreamSpec("env", 20.0, read=None)
    with Recorder([spec], {"env": SlowDiskWriter(writer, delay_s=0.1)}) as recorder:
        recorder.start_episode()
        for step in range(20):  # two seconds of writing queued before the commit or discard
            recorder.push("env", {"action": np.full(7, step, dtype=np.float32)})
        threading.Timer(0.2, signal.raise_signal, (signal.SIGINT,)).start()  # the person
        with pytest.raises(KeyboardInterrupt):
            recorder.stop_episode(commit=commit)
    assert Dataset.open(tmp_path / "env.zarr").num_episodes == 0


def open_slow_writer(path, delay_s: float) -> SlowDiskWriter:
    """A SlowDiskWriter on the dataset at ``path``, made where it is called (a writer process)."""
    return SlowDiskWriter(DatasetWriter.open(path, fsync=False), delay_s)


@pytest.mark.timeout(120)  # the thread sink's hang, before the fix, fails here
@pytest.mark.parametrize("writer_processes", [False, True])
def test_a_ctrl_c_that_cuts_a_writer_request_short_leaves_the_next_ones_answered(
    tmp_path, writer_processes
):
    """Ctrl-C while ``stop_episode`` waited to queue its check behind a full frame queue (a
    writer thread) left a reply slot no request would fill: discarding the episode then waited
    for ever (``robot-il record`` hung after Ctrl-C in CI). Ctrl-C while it waited for the
    check's answer (a writer process) left that answer to be read as the next request's."""
    path = tmp_path / "env.zarr"
    DatasetWriter.create(path, robot="ur5e", control_hz=20, fsync=False).close()
    opener = partial(open_slow_writer, path, 0.6)
    writer = WriterInProcess(opener) if writer_processes else opener()
    spec = StreamSpec("env", 20.0, read=None, queue_seconds=0.1)  # room for two frames
    recorder = Recorder([spec], {"env": writer})
    recorder.start_episode()
    for step in range(3):  # one being written, two waiting: the queue is full
        recorder.push("env", {"action": np.full(7, step, dtype=np.float32)})
    threading.Timer(0.2, signal.raise_signal, (signal.SIGINT,)).start()  # the person
    with pytest.raises(KeyboardInterrupt):
        recorder.stop_episode(commit=True)
    recorder.start_episode()
    recorder.push("env", {"action": np.full(7, 9, dtype=np.float32)})
    report = recorder.stop_episode(commit=True)
    recorder.close()
    assert report.episode_index == {"env": 0}
    steps = Dataset.open(path).episode(0)
    np.testing.assert_array_equal(steps["action"][:, 0], [9])


@pytest.mark.timeout(60)  # before the fix the check waits for ever
def test_a_reply_whose_wakeup_a_ctrl_c_lost_is_still_taken(tmp_path):
    """Ctrl-C in ``threading.Condition.wait`` after it queued its waiter and before it released
    the lock leaves that waiter behind, and the next reply's wakeup went to it: ``robot-il
    record`` waited for ever in Recorder.close for its discard's reply (1 of 15 Ctrl-Cs of an
    appending session), the writer thread idle. The waiter left behind is made here as the
    interrupted wait leaves it: locked, in the reply queue's waiters."""
    path = tmp_path / "env.zarr"
    DatasetWriter.create(path, robot="ur5e", control_hz=20, fsync=False).close()
    sink = ThreadSink("env", open_slow_writer(path, 0.3), queue_size=4)
    sink.request("begin")
    sink.put((0, 0.0, {"action": np.zeros(7, dtype=np.float32)}))  # written for 0.3 s
    left_behind = threading.Lock()
    left_behind.acquire()
    sink._replies.not_empty._waiters.append(left_behind)
    assert sink.request("check") == 1  # its reply's wakeup goes to the waiter left behind
    assert sink.request("commit", {}) == 0
    sink.close()
    assert Dataset.open(path).num_episodes == 1


def leave_a_woken_waiter_first(condition: threading.Condition) -> None:
    """Once a thread waits on ``condition``, put first in its waiters what a Ctrl-C in
    ``notify`` between releasing a waiter and removing it leaves there: that waiter, locked
    again by the thread it woke."""
    deadline = time.monotonic() + 10
    while not condition._waiters:
        assert time.monotonic() < deadline, "no thread ever waited"
        time.sleep(0.01)
    left_behind = threading.Lock()
    left_behind.acquire()
    condition._waiters.appendleft(left_behind)


@pytest.mark.timeout(60)  # before the fix the writer thread sleeps for ever
def test_a_control_whose_wakeup_a_ctrl_c_in_put_lost_is_still_served(tmp_path):
    """Ctrl-C in ``Queue.put``'s ``Condition.notify`` after it released the writer thread's
    waiter and before it removed it from the waiters leaves that waiter first in line, locked
    again by the thread it woke: the next put's wakeup went to it and the writer thread slept
    on with the control in its queue. ``robot-il record`` waited for ever in Recorder.close
    for its discard's reply (1 of 30 Ctrl-Cs under load). The waiter is made here as the
    interrupted notify leaves it."""
    path = tmp_path / "env.zarr"
    DatasetWriter.create(path, robot="ur5e", control_hz=20, fsync=False).close()
    sink = ThreadSink("env", DatasetWriter.open(path, fsync=False), queue_size=4)
    leave_a_woken_waiter_first(sink._queue.not_empty)
    assert sink.request("begin") is None  # its wakeup goes to the waiter left behind
    sink.put((0, 0.0, {"action": np.zeros(7, dtype=np.float32)}))
    assert sink.request("commit", {}) == 0
    sink.close()
    assert Dataset.open(path).num_episodes == 1


@pytest.mark.timeout(60)  # before the fix the control stays in this process for ever
def test_a_control_whose_feeder_wakeup_a_ctrl_c_lost_still_reaches_the_writer_process(tmp_path):
    """The same lost wakeup in a writer process's control queue, whose feeder thread sends
    what ``put`` hands it: the control stayed in this process and its reply never came."""
    path = tmp_path / "env.zarr"
    DatasetWriter.create(path, robot="ur5e", control_hz=20, fsync=False).close()
    sink = ProcessSink("env", partial(DatasetWriter.open, path, fsync=False), queue_size=8)
    sink.request("begin")  # starts the feeder thread
    leave_a_woken_waiter_first(sink._controls._notempty)
    assert sink.request("check") == 0  # its wakeup goes to the waiter left behind
    sink.close()


def test_a_ctrl_c_after_a_writer_process_control_went_out_leaves_the_frames_counted(tmp_path):
    """An interrupt after a control had gone to the writer process, before its sink reset the
    frames it had counted since the previous one, made the next control claim frames the
    child had counted already: the child waited 60 s for them, then failed the episode."""
    path = tmp_path / "env.zarr"
    DatasetWriter.create(path, robot="ur5e", control_hz=20, fsync=False).close()
    sink = ProcessSink("env", partial(DatasetWriter.open, path, fsync=False), queue_size=8)
    sink.request("begin")
    sink.put((0, 0.0, {"action": np.zeros(7, dtype=np.float32)}))
    send = sink._controls.put

    def send_then_interrupt(control) -> None:
        send(control)
        raise KeyboardInterrupt  # the person, just after the control went out

    sink._controls.put = send_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        sink.request("check")
    sink._controls.put = send
    started = time.monotonic()
    assert sink.request("check") == 1
    assert time.monotonic() - started < 10  # not the child's 60 s wait for a frame never sent
    assert sink.request("commit", {}) == 0
    sink.close()
    assert Dataset.open(path).num_episodes == 1


def test_pushed_stream_is_stamped_in_simulated_time_and_never_drops(tmp_path):
    spec = StreamSpec("env", 20.0, read=None, queue_seconds=0.1)  # tiny queue: push must wait
    with Recorder.to_directory(tmp_path, [spec], robot="ur5e", fsync=False) as recorder:
        recorder.start_episode()
        for step in range(60):
            recorder.push("env", {"action": np.full(7, step, dtype=np.float32)})
        report = recorder.stop_episode(commit=True, meta={"success": True})
    stats = report.stats["env"]
    assert (stats.frames, stats.dropped, stats.duration_s) == (60, 0, 3.0)
    steps = Dataset.open(tmp_path / "env.zarr").episode(0)
    np.testing.assert_array_equal(steps["tick"], np.arange(60))
    np.testing.assert_allclose(steps["timestamp"], np.arange(60) / 20.0)
    np.testing.assert_array_equal(steps["action"][:, 0], np.arange(60))


def test_discarded_episodes_leave_no_trace_and_committed_ones_stay(tmp_path):
    spec = StreamSpec("env", 20.0)
    with Recorder.to_directory(tmp_path, [spec], robot="ur5e", fsync=False) as recorder:
        for episode, keep in enumerate([True, False, True, False]):
            recorder.start_episode()
            for _ in range(5 + episode):
                recorder.push("env", {"x": np.float32(episode)})
            report = recorder.stop_episode(commit=keep)
            assert report.committed is keep
        recorder.start_episode()
        recorder.push("env", {"x": np.float32(9)})
        # closing with an episode under way discards it
    dataset = Dataset.open(tmp_path / "env.zarr")
    assert dataset.num_episodes == 2
    assert [len(dataset.episode(i)["x"]) for i in range(2)] == [5, 7]
    assert [float(dataset.episode(i)["x"][0]) for i in range(2)] == [0.0, 2.0]


def test_a_failing_source_discards_the_episode_and_names_the_stream(tmp_path):
    calls = 0

    def flaky() -> dict[str, np.ndarray]:
        nonlocal calls
        calls += 1
        if calls == 20:
            raise OSError("camera unplugged")
        return {"x": np.float32(calls)}

    streams = [StreamSpec("cam", 200.0, flaky), StreamSpec("joint", 200.0, JointSource().read)]
    with Recorder.to_directory(tmp_path, streams, robot="ur5e", fsync=False) as recorder:
        recorder.start_episode()
        deadline = time.monotonic() + 5
        while recorder.failed_stream() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recorder.failed_stream() == "cam"
        with pytest.raises(RecordingError, match="stream cam: reading the source failed.*unplug"):
            recorder.stop_episode(commit=True)
        assert not recorder.active
    assert Dataset.open(tmp_path / "joint.zarr").num_episodes == 0


def test_a_bad_frame_fails_at_commit_with_key_and_episode(tmp_path):
    spec = StreamSpec("env", 20.0)
    with Recorder.to_directory(tmp_path, [spec], robot="ur5e", fsync=False) as recorder:
        recorder.start_episode()
        recorder.push("env", {"joint_pos": np.zeros(6, np.float32)})
        recorder.stop_episode(commit=True)
        recorder.start_episode()
        recorder.push("env", {"joint_pos": np.zeros(5, np.float32)})
        with pytest.raises(DatasetError, match="stream env: episode 1 .*joint_pos.*shape"):
            recorder.stop_episode(commit=True)
    assert Dataset.open(tmp_path / "env.zarr").num_episodes == 1


@pytest.mark.parametrize("writer_processes", [False, True])
def test_an_episode_unfit_in_one_stream_is_committed_in_none(tmp_path, writer_processes):
    """Every stream is checked before any commits: a later stream with no frame, or with a
    frame its writer refused, must not leave the episode in an earlier stream's dataset."""
    streams = [StreamSpec("joint", 100.0), StreamSpec("cam", 10.0)]
    joint = {"q": np.zeros(6, np.float32)}
    with Recorder.to_directory(
        tmp_path, streams, robot="ur5e", fsync=False, realtime=False,
        writer_processes=writer_processes,
    ) as recorder:  # fmt: skip
        recorder.start_episode()
        for _ in range(5):
            recorder.push("joint", joint)  # the camera produced nothing
        with pytest.raises(RecordingError, match="stream cam: no frame this episode"):
            recorder.stop_episode(commit=True)
        recorder.start_episode()
        recorder.push("joint", joint)
        recorder.push("cam", {"rgb": np.zeros((4, 4, 3), np.uint8)})
        recorder.push("cam", {"rgb": np.zeros((4, 5, 3), np.uint8)})
        with pytest.raises(DatasetError, match="stream cam: episode 0 step 1: .*rgb.*shape"):
            recorder.stop_episode(commit=True)
        recorder.start_episode()
        recorder.push("joint", joint)
        recorder.push("cam", {"rgb": np.zeros((4, 4, 3), np.uint8)})
        report = recorder.stop_episode(commit=True)
    assert report.episode_index == {"joint": 0, "cam": 0}
    for name in ("joint", "cam"):
        assert Dataset.open(tmp_path / f"{name}.zarr").episode_ends.tolist() == [1]


@pytest.mark.parametrize("writer_processes", [False, True])
def test_meta_one_streams_dataset_cannot_take_is_committed_in_none(tmp_path, writer_processes):
    """The check before any commit covers the meta too: a ``score`` the joint dataset holds
    as text cannot take an int, so the camera's dataset, fresh, must not commit it alone."""
    for name, meta in (("cam", {}), ("joint", {"score": "good"})):
        with DatasetWriter.create(tmp_path / f"{name}.zarr", robot="ur5e", control_hz=10,
                                  fsync=False) as writer:  # fmt: skip
            steps = {"x": np.zeros((2, 1), np.float32), "timestamp": np.zeros(2),
                     "tick": np.arange(2)}  # fmt: skip
            writer.add_episode(steps, meta)

    def writer_for(name):
        path = tmp_path / f"{name}.zarr"
        if writer_processes:
            return WriterInProcess(partial(DatasetWriter.open, path, fsync=False))
        return DatasetWriter.open(path, fsync=False)

    streams = [StreamSpec("cam", 10.0), StreamSpec("joint", 10.0)]
    writers = {spec.name: writer_for(spec.name) for spec in streams}
    with Recorder(streams, writers, realtime=False) as recorder:
        recorder.start_episode()
        for spec in streams:
            recorder.push(spec.name, {"x": np.ones(1, np.float32)})
        with pytest.raises(DatasetError, match="stream joint: episode 1: meta 'score' = 3 does "
                           "not fit its StringDType"):  # fmt: skip
            recorder.stop_episode(commit=True, meta={"score": 3})
    for spec in streams:
        assert Dataset.open(tmp_path / f"{spec.name}.zarr").num_episodes == 1


def test_a_closed_recorder_leaves_its_datasets_free_to_make_again(tmp_path):
    """Closing a recorder closes its writers, releasing each dataset's writer lock at once
    (not when the recorder is garbage-collected): the same recording made again with
    ``overwrite`` while the closed recorder is still referenced replaces it."""
    streams = [StreamSpec("env", 20.0)]
    recorders = []
    for number in range(2):
        recorder = Recorder.to_directory(tmp_path, streams, robot="ur5e", fsync=False,
                                         realtime=False, overwrite=True)  # fmt: skip
        recorders.append(recorder)  # still referenced when the next one is made
        with recorder:
            recorder.start_episode()
            recorder.push("env", {"x": np.float32(number)})
            recorder.stop_episode(commit=True)
    dataset = Dataset.open(tmp_path / "env.zarr")
    assert dataset.num_episodes == 1 and float(dataset.episode(0)["x"][0]) == 1.0
    DatasetWriter.open(tmp_path / "env.zarr", fsync=False).close()


def test_sampling_threads_stop_with_the_episode(tmp_path):
    before = threading.active_count()
    streams = [StreamSpec("joint", 500.0, JointSource().read)]
    recorder = Recorder.to_directory(tmp_path, streams, robot="ur5e", fsync=False)
    recorder.start_episode()
    assert threading.active_count() == before + 2  # one writer, one sampler
    recorder.stop_episode(commit=False)
    assert threading.active_count() == before + 1
    recorder.close()
    assert threading.active_count() == before


def test_writer_processes_record_and_account_like_threads(tmp_path):
    joint = JointSource()
    streams = [StreamSpec("joint", 500.0, joint.read), StreamSpec("cam", 30.0, camera_source())]
    with Recorder.to_directory(
        tmp_path, streams, robot="ur5e", fsync=False, writer_processes=True
    ) as recorder:
        reports = []
        for keep in (True, False, True):
            recorder.start_episode()
            time.sleep(0.4)
            reports.append(recorder.stop_episode(commit=keep))
    assert [report.episode_index["joint"] for report in reports] == [0, None, 1]
    for name in ("joint", "cam"):
        dataset = Dataset.open(tmp_path / f"{name}.zarr")
        assert dataset.num_episodes == 2
        for episode, report in zip((0, 1), (reports[0], reports[2]), strict=True):
            check_accounting(dataset, episode, report.stats[name])
    # The joint source's readings arrive in order, the discarded episode's in neither.
    first, second = (Dataset.open(tmp_path / "joint.zarr").episode(i) for i in (0, 1))
    values = np.concatenate([first["joint_pos"][:, 0], second["joint_pos"][:, 0]])
    assert np.all(np.diff(values) >= 1)
    assert second["joint_pos"][0, 0] > first["joint_pos"][-1, 0] + reports[1].stats["joint"].frames


RECORD_THEN_HANG = """
import multiprocessing, sys, time
import numpy as np
from robot_il.record import Recorder, StreamSpec
count = iter(range(1 << 30))
read = lambda: {"x": np.float32(next(count))}
streams = [StreamSpec("joint", 200.0, read)]
if __name__ == "__main__":
    recorder = Recorder.to_directory(sys.argv[1], streams, robot="ur5e", writer_processes=True)
    recorder.start_episode()
    time.sleep(0.3)
    recorder.stop_episode(commit=True)
    recorder.start_episode()
    print(*[child.pid for child in multiprocessing.active_children()], flush=True)
    time.sleep(60)
"""


def test_killing_the_recording_process_keeps_committed_episodes_and_ends_its_writer(tmp_path):
    import signal
    import subprocess
    import sys

    script = tmp_path / "record_then_hang.py"
    script.write_text(RECORD_THEN_HANG)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "rec")], stdout=subprocess.PIPE, text=True
    )
    try:
        writer_pids = [int(pid) for pid in process.stdout.readline().split()]
        assert writer_pids, "the recording process should have a writer process"
        time.sleep(0.3)  # the second episode is under way
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in writer_pids):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in writer_pids), "the orphaned writer must exit"
    dataset = Dataset.open(tmp_path / "rec" / "joint.zarr")
    assert dataset.num_episodes == 1
    x = dataset.episode(0)["x"]
    np.testing.assert_array_equal(x, np.arange(len(x)))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


CTRL_C_TO_THE_GROUP = """
import sys, time
import numpy as np
from robot_il.record import Recorder, StreamSpec
streams = [StreamSpec("env", 20.0, read=None)]
if __name__ == "__main__":
    recorder = Recorder.to_directory(sys.argv[1], streams, robot="ur5e", fsync=False,
                                     writer_processes=True)
    recorder.start_episode()
    recorder.push("env", {"x": np.float32(0)})
    try:  # before the line the test waits for: its Ctrl-C may come at once
        print("recording", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:  # the person stopped this episode; the recorder goes on
        recorder.stop_episode(commit=False)
    recorder.start_episode()
    recorder.push("env", {"x": np.float32(1)})
    print("committed", recorder.stop_episode(commit=True).episode_index["env"], flush=True)
    recorder.close()
"""


def test_a_ctrl_c_to_the_process_group_leaves_the_writer_process_to_its_recorder(tmp_path):
    """A terminal's Ctrl-C reaches every process of the group: the writer process died of it
    with a traceback, and every later request of the recorder failed ("writer process died")."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "ctrl_c_to_the_group.py"
    script.write_text(CTRL_C_TO_THE_GROUP)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "rec")], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a terminal's job
    )  # fmt: skip
    try:
        assert process.stdout.readline() == "recording\n"
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (out, process.returncode) == ("committed 0\n", 0), err
    assert "Traceback" not in err, err
    steps = Dataset.open(tmp_path / "rec" / "env.zarr").episode(0)
    np.testing.assert_array_equal(steps["x"], [1])
