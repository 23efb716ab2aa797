"""The recorder node in this process over real rclpy and loopback DDS, the test playing the
simulator: joint states, ``task/target`` and ``task/success`` of a scene, and ``sim/reset``."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import COMMANDS, DEADLINE_SCALE, UR_JOINTS, Client, spinning, wait_for
from robot_il.envs.ur5e.description import HOME_JOINT_POS

from robot_il.errors import ConfigError, RecordingError, RobotILError

pytestmark = pytest.mark.ros

RESET_S = 0.3
"""How long the test's simulator takes to reset; the old scene is published meanwhile (a
loaded simulator's last messages, or ones queued behind the recorder's commit)."""


class Simulator:
    """One arm's scene: joint states every 5 ms, target and success every 10 ms, stamped
    now; ``sim/reset`` moves it to the next scene (arm, target, not solved) after
    ``RESET_S``. The operator's joint command comes with every joint state in the first
    scene; in the next, none has come yet. The arm has a gripper (open) unless ``gripper`` is
    false."""

    def __init__(self, client: Client, gripper: bool = True) -> None:
        from geometry_msgs.msg import PointStamped
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float64MultiArray
        from std_srvs.srv import Trigger

        self.scenes = [
            (HOME_JOINT_POS.copy(), [0.5, 0.1, 0.3], True),  # solved when "next" comes
            (HOME_JOINT_POS + [0.3, -0.2, 0.0, 0.0, 0.0, 0.0], [0.4, -0.2, 0.2], False),
        ]
        self.scene = 0
        self._clock = client.node.get_clock()
        self._joints = client.node.create_publisher(JointState, "joint_states", 10)
        self._target = client.node.create_publisher(PointStamped, "task/target", 10)
        self._success = client.node.create_publisher(Bool, "task/success", 10)
        self._command = client.node.create_publisher(Float64MultiArray, COMMANDS, 10)
        self.command = Float64MultiArray(data=(HOME_JOINT_POS + 0.1).tolist())
        self._gripper = [0.0] if gripper else []
        names = [*UR_JOINTS, "gripper_joint"] if gripper else UR_JOINTS
        self._msgs = JointState(name=names), PointStamped(), Bool()
        client.node.create_service(Trigger, "sim/reset", self._on_reset)
        self._tick = threading.Lock()
        """Held over a tick's publishing: the reset's answer waits for a tick of the old scene
        under way, as sim_robot answers after its last old-scene publish."""
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_reset(self, request, response):
        time.sleep(RESET_S)
        with self._tick:
            self.scene += 1
        response.success, response.message = True, f"scene {self.scene}"
        return response

    def _run(self) -> None:
        joints, target, success = self._msgs
        tick = 0
        while self._running:
            with self._tick:
                position, point, solved = self.scenes[self.scene]
                joints.header.stamp = self._clock.now().to_msg()
                joints.position = [*position.tolist(), *self._gripper]
                self._joints.publish(joints)
                if self.scene == 0:
                    self._command.publish(self.command)
                if tick % 2 == 0:
                    target.header.stamp = joints.header.stamp
                    target.point.x, target.point.y, target.point.z = point
                    self._target.publish(target)
                    success.data = solved
                    self._success.publish(success)
            tick += 1
            time.sleep(0.005)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)


def recorded_steps(node) -> int:
    """Steps of the recorder node's episode in progress (0 between episodes)."""
    episode = node._episode
    return 0 if episode is None else episode.num_steps


@contextmanager
def recorder(context, path: Path, record_hz: float = 20.0, **more) -> Iterator[object]:
    """A recorder node writing to ``path`` (``more``: other parameters), spun as ``run_node``
    spins it."""
    from rclpy.parameter import Parameter

    from robot_il.ros.recorder_node import RecorderNode

    parameters = {"path": str(path), "record_hz": record_hz, "fsync": False, "autostart": True}
    parameters.update(more)
    node = RecorderNode(
        context=context, parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()]
    )
    with spinning(node, context):
        yield node


def test_an_episode_after_a_reset_holds_only_the_new_scene(ros_context, tmp_path) -> None:
    """After "next" the episode began at once, beside the reset: its first steps were the old
    scene's pose and target, the old scene's ``task/success: true`` still coming in marked an
    episode that was never solved as a success, and its actions were the old scene's last
    command, which the simulator had dropped."""
    from std_msgs.msg import String

    from robot_il.dataset import Dataset

    path = tmp_path / "demo.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path) as node:
            events = client.publisher(String, "teleop/episode_event")
            wait_for(node.sim_reset.service_is_ready, 10, "the recorder to see sim/reset")
            wait_for(lambda: recorded_steps(node) >= 5, 10, "steps of the first episode")
            events.publish(String(data="next"))
            wait_for(
                lambda: simulator.scene == 1 and recorded_steps(node) >= 5, 10, "the second episode"
            )
            assert node.stop().startswith("episode 1 committed")
    finally:
        simulator.close()
        client.close()
    dataset = Dataset.open(path)
    assert dataset.num_episodes == 2
    assert [bool(dataset.meta(e)["success"]) for e in range(2)] == [True, False]
    first, second = dataset.episode(0), dataset.episode(1)
    (old_q, _, _), (new_q, new_target, _) = simulator.scenes
    np.testing.assert_allclose(first["joint_pos"], old_q[None].repeat(len(first["joint_pos"]), 0))
    np.testing.assert_allclose(first["action"][-1], [*simulator.command.data, 0.0], atol=1e-6)
    held = np.append(new_q, 0.0)  # no command yet: the arm holds where it is, gripper open
    for key, value in (("joint_pos", new_q), ("target_pos", new_target), ("action", held)):
        recorded = second[key]
        np.testing.assert_allclose(recorded, np.tile(value, (len(recorded), 1)), atol=1e-6,
                                   err_msg=f"{key}: a step of the old scene")  # fmt: skip
    assert second["timestamp"][0] == 0.0


def test_commands_are_taken_off_the_executor_and_recorded_in_order(ros_context, tmp_path) -> None:
    """A policy node or the teleop servo commands at up to 500 Hz: taken by the spinning
    executor, each command held the interpreter for half a millisecond. The command reader
    takes the joint and gripper commands, in order, none the executor, and each step's action
    is the newest command."""
    from std_msgs.msg import Float64, Float64MultiArray

    from robot_il.dataset import Dataset

    path = tmp_path / "demo.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    takers: set[str] = set()
    grippers_taken: list[float] = []
    sent = [k / 50 for k in range(51)]  # gripper commands 0 .. 1; joint command k with each
    start = np.array(simulator.command.data)  # the simulator's command: k = 0
    try:
        with recorder(ros_context, path, record_hz=50.0) as node:
            on_command, on_gripper = node._on_command, node._on_gripper

            def noting_command(*args) -> None:
                takers.add(threading.current_thread().name)
                on_command(*args)

            def noting_gripper(index, msg, info) -> None:
                takers.add(threading.current_thread().name)
                grippers_taken.append(msg.data)
                on_gripper(index, msg, info)

            node._on_command, node._on_gripper = noting_command, noting_gripper
            gripper = client.publisher(Float64, "gripper/command")
            wait_for(lambda: recorded_steps(node) >= 3, 10, "the first steps")
            for k, closure in enumerate(sent):  # the simulator sends its command every 5 ms
                simulator.command = Float64MultiArray(data=(start + 0.002 * k).tolist())
                gripper.publish(Float64(data=closure))
                time.sleep(0.01)
            steps = recorded_steps(node)
            wait_for(lambda: recorded_steps(node) >= steps + 5, 10, "steps after the last command")
            assert node.stop().startswith("episode 0 committed")
    finally:
        simulator.close()
        client.close()
    assert takers == {"recorder-commands"}
    # In order, none twice, the last among them; a stall of the recorder beyond the QoS depth
    # (10 commands) on a loaded machine may drop older ones, as it would on a real cell.
    assert grippers_taken == sorted(set(grippers_taken)) and grippers_taken[-1] == sent[-1]
    assert set(grippers_taken) <= set(sent) and len(grippers_taken) >= len(sent) // 2
    actions = Dataset.open(path).episode(0)["action"]
    k = (actions[:, :6] - start) / 0.002  # each step's joint command as its k (-50: none yet)
    np.testing.assert_allclose(k, np.round(k[:, :1]).repeat(6, 1), atol=0.01)
    assert np.all(np.diff(k[:, 0]) > -0.01) and round(k[-1, 0]) == 50, k[:, 0]
    assert np.all(np.diff(actions[:, 6]) >= 0) and actions[-1, 6] == 1.0, actions[:, 6]
    assert len(np.unique(np.round(k[:, 0]))) >= 5  # steps of commands along the way


def test_a_reset_the_simulator_never_answers_is_given_up(
    ros_context, own_context, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A simulator that died mid-reset never answers ``sim/reset``: every ``recorder/start``
    then answered success with "the next episode begins when the simulator's reset is done",
    for ever. The reset is given up after ``RESET_TIMEOUT_S`` (here 0.5 s) with one error
    line, and a start then begins an episode."""
    from rcl_interfaces.msg import Log
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_il.ros import recorder_node

    monkeypatch.setattr(recorder_node, "RESET_TIMEOUT_S", 0.5)
    client = Client(ros_context)
    log = client.record_log()
    simulator = Client(own_context, "dead_simulator")  # its reset holds its only thread
    asked, answer = threading.Event(), threading.Event()

    def never_answers(request, response):
        asked.set()
        answer.wait(60)
        response.success = True
        return response

    simulator.node.create_service(Trigger, "sim/reset", never_answers)

    def said(text: str) -> list[str]:
        with client.lock:
            return [m.msg for _, m in log if m.level >= Log.ERROR and text in m.msg]

    try:
        with recorder(ros_context, tmp_path / "demo.zarr", autostart=False) as node:
            events = client.publisher(String, "teleop/episode_event")
            wait_for(node.sim_reset.service_is_ready, 10, "the recorder to see sim/reset")
            events.publish(String(data="discard"))
            assert asked.wait(10 * DEADLINE_SCALE), "no sim/reset call"
            waiting = node.start()
            wait_for(lambda: said("sim/reset has not answered"), 10, "the reset given up")
            begun = node.start()
    finally:
        answer.set()
        simulator.close()
        client.close()
    assert waiting == "the next episode begins when the simulator's reset is done"
    assert said(
        "sim/reset has not answered in 0.5 s (the simulator died or hangs mid-reset); "
        "no episode begins: recorder/start begins one, next asks for a reset again"
    )
    assert begun == "recording episode 0", begun


def test_appending_at_another_rate_is_refused_before_recording(ros_context, tmp_path) -> None:
    """A 5 Hz recorder appended to a 20 Hz dataset without a word: its steps then read as
    20 Hz ones, four times too fast."""
    from robot_il.dataset import Dataset

    path = tmp_path / "demo.zarr"
    with recorder(ros_context, path, record_hz=20.0):
        pass
    refused = r"record_hz 5 Hz, but .*demo.zarr holds steps of 20"
    with pytest.raises(ConfigError, match=refused), recorder(ros_context, path, record_hz=5.0):
        pass
    with recorder(ros_context, path, record_hz=20.0) as node:  # its own rate appends
        assert node.writer.num_episodes == 0
    assert Dataset.open(path).control_hz == 20.0


def test_appending_another_task_is_refused_before_recording(ros_context, tmp_path) -> None:
    """push and pick_place steps have the same keys: a push recorder appended its episodes to
    a pick_place dataset without a word, and training mixed the two tasks."""
    from robot_il.dataset import Dataset

    path = tmp_path / "demo.zarr"
    with recorder(ros_context, path, task="pick_place"):
        pass
    refused = r"demo.zarr holds task 'pick_place', this recorder records task 'push'"
    with pytest.raises(ConfigError, match=refused), recorder(ros_context, path, task="push"):
        pass
    assert Dataset.open(path).attrs["task"] == "pick_place"


def test_an_arm_without_a_gripper_records_every_key_but_the_gripper(ros_context, tmp_path) -> None:
    """A real cell's arm without a gripper (the RTDE bridge's default) reports no
    ``gripper_joint``: the recorder waited for the ``gripper`` key forever and wrote no
    episode. With ``gripper:=''`` it records the arm's other keys and the 7-value joint action
    (the gripper open: no gripper command came); without it, ``recorder/start`` says how to
    record such an arm; appending with a gripper to its dataset is refused."""
    from robot_il.dataset import Dataset

    path = tmp_path / "cell.zarr"
    client = Client(ros_context)
    simulator = Simulator(client, gripper=False)
    try:
        with recorder(ros_context, path) as node:  # expects a gripper (the default)
            arrived = {"joint_pos", "target_pos"}
            wait_for(lambda: arrived <= set(node.obs.snapshot()[0]), 10, "the scene")
            with pytest.raises(
                RecordingError,
                match=r"keys \['gripper'\] have not .* \(no gripper_joint .*gripper:=''\)$",
            ):
                node.start_observed()
            node.discard()
        with recorder(ros_context, path, gripper="") as node:
            wait_for(lambda: node._episode.num_steps >= 5, 10, "steps without a gripper")
            assert node.stop().startswith("episode 0 committed")
    finally:
        simulator.close()
        client.close()
    dataset = Dataset.open(path)
    assert dataset.num_episodes == 1
    assert "gripper" not in dataset.keys and {"joint_pos", "target_pos"} <= set(dataset.keys)
    actions = dataset.episode(0)["action"]
    np.testing.assert_allclose(actions[-1], [*simulator.command.data, 0.0], atol=1e-6)

    refused = r"appending to .*cell.zarr would change its keys \(adding \['gripper'\]\)"
    with pytest.raises(ConfigError, match=refused), recorder(ros_context, path):
        pass
    unknown = r"gripper 'none' is not one of \('', 'robotiq'\)"
    other = tmp_path / "other.zarr"
    with pytest.raises(ConfigError, match=unknown), recorder(ros_context, other, gripper="none"):
        pass


def test_the_teleop_target_as_action_is_refused_for_two_arms(ros_context, tmp_path) -> None:
    """The teleop servo drives one arm: a two-arm recording taking its actions from
    ``teleop/joint_target`` would record one arm's target and hold the other; refused
    before a dataset is made."""
    path = tmp_path / "cell.zarr"
    refused = r"teleop_target:=true .* drives one arm; task 'bimanual_cross' has 2"
    with (
        pytest.raises(ConfigError, match=refused),
        recorder(ros_context, path, task="bimanual_cross", teleop_target=True),
    ):
        pass
    assert not path.exists()


def test_an_episode_that_cannot_be_written_is_discarded_and_said(ros_context, tmp_path) -> None:
    """A commit that fails on disk (full, lost mount; here a file where a chunk folder must
    go) raised an OSError out of the "next" event's callback, and the node died with a
    traceback. It is one line, on the service and in the log, the episode is discarded and
    the dataset keeps its committed episodes; once the disk takes files again, recording
    goes on."""
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset
    from robot_il.dataset.validate import validate

    path = tmp_path / "demo.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path) as node:
            wait_for(node.sim_reset.service_is_ready, 10, "the recorder to see sim/reset")
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the first episode")
            blocker = path / "data" / "joint_pos" / "c"  # a file where the chunk folder goes
            blocker.write_text("")
            events = client.publisher(String, "teleop/episode_event")
            events.publish(String(data="next"))  # commits from the event's callback
            wait_for(
                lambda: simulator.scene == 1 and recorded_steps(node) >= 3, 10, "the next episode"
            )
            refused = client.call(Trigger, "recorder/stop")
            assert not refused.success, refused
            assert refused.message.startswith("recorder: episode 0 could not be written to")
            assert "it is discarded, the committed episodes are intact" in refused.message
            blocker.unlink()
            assert client.call(Trigger, "recorder/start").message == "recording episode 0"
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps once the disk takes files")
            answer = client.call(Trigger, "recorder/stop")
            assert answer.success and answer.message.startswith("episode 0 committed"), answer
    finally:
        simulator.close()
        client.close()
    assert validate(path).ok
    assert Dataset.open(path).num_episodes == 1


def test_an_episode_whose_last_flush_failed_is_said_committed_not_discarded(
    ros_context, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk failed the flush after an episode's end was written: the episode was in the
    dataset, the node said it was discarded, and the next episode was written over it. It is
    said committed, with the failed flush, and the next episode comes after it. No disk here
    fails on demand: the writer's flush is replaced by one that raises EIO at the commit's
    second (after ``meta/episode_ends`` holds the episode)."""
    import errno
    import os

    from robot_il.dataset import Dataset
    from robot_il.dataset import writer as writer_module
    from robot_il.dataset.validate import validate

    flushes = []

    def flush_filesystem(path: Path) -> None:
        flushes.append(path)
        if len(flushes) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(writer_module, "flush_filesystem", flush_filesystem)
    path = tmp_path / "demo.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path, fsync=True) as node:
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the first episode")
            with pytest.raises(RecordingError) as failed:
                node.stop()
            assert node.start() == "recording episode 1"
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the second episode")
            assert node.stop().startswith("episode 1 committed")
    finally:
        simulator.close()
        client.close()
    assert str(failed.value) == (
        f"recorder: {path}: episode 0 is committed, but the disk failed the flush after it "
        "(Input/output error (EIO)): it may not hold the episode after a power loss; check the "
        "disk"
    )
    assert validate(path).ok
    assert Dataset.open(path).num_episodes == 2


def test_a_dataset_moved_away_mid_episode_loses_that_episode_only(ros_context, tmp_path) -> None:
    """The dataset folder moved away (an operator tidying up, a backup script) while an
    episode was recorded: its commit went on by path into a new tree of loose chunk folders,
    no dataset, and was answered "episode 1 committed". The commit is one line saying the
    episode is lost and why, nothing is written at the old path, ``recorder/start`` says why
    it cannot begin, and once the folder is back recording goes on after the episodes it
    holds."""
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset
    from robot_il.dataset.validate import validate

    path, moved = tmp_path / "demo.zarr", tmp_path / "backup.zarr"
    gone = f"{path}: the dataset's folder was moved or removed since it was opened for writing"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path) as node:
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the first episode")
            assert client.call(Trigger, "recorder/stop").message.startswith("episode 0 committed")
            assert client.call(Trigger, "recorder/start").message == "recording episode 1"
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the second episode")
            path.rename(moved)
            lost = client.call(Trigger, "recorder/stop")
            refused = client.call(Trigger, "recorder/start")
            assert not path.exists()
            moved.rename(path)
            again = client.call(Trigger, "recorder/start")
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps once the folder is back")
            kept = client.call(Trigger, "recorder/stop")
    finally:
        simulator.close()
        client.close()
    assert (lost.success, lost.message) == (False, f"recorder: episode 1 could not be written "
            f"to {path} ({gone}; episode 1 is not written); it is discarded, the committed "
            "episodes are intact"), lost  # fmt: skip
    assert (refused.success, refused.message) == (False, f"{gone}; episode 1 cannot begin")
    assert again.message == "recording episode 1", again
    assert kept.success and kept.message.startswith("episode 1 committed"), kept
    assert validate(path).ok
    dataset = Dataset.open(path)
    assert dataset.num_episodes == 2
    np.testing.assert_allclose(dataset.episode(0)["joint_pos"][0], simulator.scenes[0][0])


def test_frames_for_a_folder_moved_away_end_the_episode_not_the_recorder(
    ros_context, tmp_path
) -> None:
    """With a camera each step's frame goes to disk as it comes: after the dataset folder
    was moved away they built a new tree at the old path, and once the writer refuses such a
    write, its DatasetError ended the sampling timer's spin. The episode is lost with one
    line, the operator's "next" (its commit, the simulator's reset, the next episode's
    begin) is said and survived, and once the folder is back recording goes on."""
    from rcl_interfaces.msg import Log
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset
    from robot_il.dataset.validate import validate

    path, moved = tmp_path / "cell.zarr", tmp_path / "backup.zarr"
    cell = {"cameras": "front", "image_size": [8, 8], "image_codec": "blosc"}
    client = Client(ros_context)
    log = client.record_log()
    simulator = Simulator(client)
    camera = Camera(client)

    def said(text: str) -> list[str]:
        with client.lock:
            return [m.msg for _, m in log if m.level >= Log.ERROR and text in m.msg]

    try:
        with recorder(ros_context, path, **cell) as node:
            events = client.publisher(String, "teleop/episode_event")
            wait_for(node.sim_reset.service_is_ready, 10, "the recorder to see sim/reset")
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the first episode")
            path.rename(moved)
            wait_for(lambda: node._episode is None, 10, "the episode's end")
            events.publish(String(data="next"))
            wait_for(lambda: said("cannot begin"), 10, "the next episode's refusal")
            assert not path.exists()
            moved.rename(path)
            again = client.call(Trigger, "recorder/start")
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps once the folder is back")
            kept = client.call(Trigger, "recorder/stop")
    finally:
        camera.close()
        simulator.close()
        client.close()
    gone = f"{path}: the dataset's folder was moved or removed since it was opened for writing"
    assert said(f"recorder: episode 0 could not be written to {path} ({gone}; episode 0 step")
    assert said(f"{gone}; episode 0 cannot begin")
    assert again.message == "recording episode 0", again
    assert kept.success and kept.message.startswith("episode 0 committed"), kept
    assert validate(path).ok
    assert Dataset.open(path).num_episodes == 1


@contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """``folder`` made immutable (``chattr +i``: no file is created or replaced in it, even
    by root, who ignores a read-only mode), as a folder whose permissions changed under a
    running recorder; skips the test where the filesystem or the user cannot."""
    import shutil
    import subprocess

    chattr = shutil.which("chattr")
    if (
        chattr is None
        or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i is not possible here (not root, or a filesystem without it)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_discard_the_disk_refuses_to_tidy_still_discards(ros_context, tmp_path) -> None:
    """A camera episode's frames are written as they come, and discarding it truncates its
    image array; where the folder no longer took files (permissions changed mid-run) the
    truncation's OSError came out of the ``recorder/discard`` service and ended the node's
    spin. What a discard leaves is beyond the committed end (readers ignore it, the next
    commit truncates it): the episode is discarded, the commit that follows says in one line
    that its episode could not be written, and once the folder takes files again recording
    goes on."""
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset
    from robot_il.dataset.validate import validate

    path = tmp_path / "cell.zarr"
    cell = {"cameras": "front", "image_size": [8, 8], "image_codec": "blosc"}
    client = Client(ros_context)
    simulator = Simulator(client)
    camera = Camera(client)
    try:
        with recorder(ros_context, path, **cell) as node:
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the first episode")
            with immutable(path / "data" / "rgb_front"):
                discarded = client.call(Trigger, "recorder/discard")
                assert client.call(Trigger, "recorder/start").message == "recording episode 0"
                wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the next episode")
                lost = client.call(Trigger, "recorder/stop")
            assert client.call(Trigger, "recorder/start").message == "recording episode 0"
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps once the folder takes files")
            kept = client.call(Trigger, "recorder/stop")
    finally:
        camera.close()
        simulator.close()
        client.close()
    assert (discarded.success, discarded.message) == (True, "episode 0 discarded"), discarded
    folder = re.escape(str(path))
    refused = (rf"recorder: episode 0 could not be written to {folder} \({folder}/\S+: "
               r"Operation not permitted \(EPERM\)\); it is discarded, the committed episodes "
               "are intact")  # fmt: skip
    assert not lost.success and re.fullmatch(refused, lost.message), lost
    assert kept.success and kept.message.startswith("episode 0 committed"), kept
    assert validate(path).ok
    assert Dataset.open(path).num_episodes == 1


def test_a_path_under_a_file_is_one_line(ros_context, tmp_path) -> None:
    """It was a NotADirectoryError traceback as the node started (a read-only folder too)."""
    afile = tmp_path / "notes.txt"
    afile.write_text("")
    cannot = r"notes.txt/demo.zarr: cannot be written: .*notes.txt is a file"
    with pytest.raises(RobotILError, match=cannot), recorder(ros_context, afile / "demo.zarr"):
        pass


class Camera:
    """A camera on ``camera/front/image_raw``: an rgb8 frame stamped now every 20 ms, until
    :meth:`pause` holds it for a while (a USB camera that stalls)."""

    def __init__(self, client: Client, size: tuple[int, int] = (8, 8)) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self._clock = client.node.get_clock()
        self._publisher = client.node.create_publisher(
            Image, "camera/front/image_raw", qos_profile_sensor_data
        )
        height, width = size
        self._msg = Image(height=height, width=width, encoding="rgb8", step=3 * width,
                          data=bytes(range(256)) * (3 * height * width // 256 + 1))  # fmt: skip
        self._msg.data = self._msg.data[: 3 * height * width]
        self._paused_until = 0.0
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def pause(self, seconds: float) -> None:
        self._paused_until = time.monotonic() + seconds

    def _run(self) -> None:
        while self._running:
            if time.monotonic() >= self._paused_until:
                self._msg.header.stamp = self._clock.now().to_msg()
                self._publisher.publish(self._msg)
            time.sleep(0.02)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)


def test_a_cell_without_the_tasks_inputs_records_with_task_inputs_false(
    ros_context, tmp_path
) -> None:
    """``record_real_cell.launch.yaml`` records task ``reach`` by default, whose ``target_pos``
    comes from ``task/target``, which only a simulator or a perception node publishes: on a
    cell without one the recorder waited for it for ever, said so once (listing the camera
    too, whose frames were arriving), and every episode was "empty episode discarded". Now
    the refusal names only the missing input, its topic and ``task_inputs:=false``, which
    records the robot's keys and cameras."""
    from robot_il.dataset import Dataset

    client = Client(ros_context)
    simulator = Simulator(client)  # publishes task/target, not task/object_pose
    camera = Camera(client)
    cell = {"task": "push", "cameras": "front", "image_size": [8, 8], "image_codec": "blosc"}
    try:
        with recorder(ros_context, tmp_path / "waits.zarr", **cell, autostart=False) as node:

            def arrived() -> bool:
                frame = node.obs.frames["rgb_front"].newest
                return {"joint_pos", "target_pos"} <= set(node.obs.snapshot()[0]) and bool(frame)

            wait_for(arrived, 10, "the cell's joints, target and frames")
            with pytest.raises(
                RecordingError,
                match=r"keys \['object_pose'\] have not arrived.*\(the task's inputs come from "
                r"a simulator or a perception node \(object_pose on task/object_pose\): record "
                r"a cell without them with task_inputs:=false\)$",
            ):
                node.start_observed()
        path = tmp_path / "cell.zarr"
        with recorder(ros_context, path, **cell, task_inputs=False) as node:
            wait_for(lambda: recorded_steps(node) >= 5, 10, "steps without the task's inputs")
            assert node.stop().startswith("episode 0 committed")
    finally:
        camera.close()
        simulator.close()
        client.close()
    dataset = Dataset.open(path)
    assert dataset.num_episodes == 1
    assert {"joint_pos", "eef_pose", "gripper", "rgb_front", "action"} <= set(dataset.keys)
    assert not {"target_pos", "object_pose"} & set(dataset.keys)


def test_a_camera_that_stalls_mid_episode_leaves_a_gap_that_is_said(ros_context, tmp_path) -> None:
    """A camera that stopped for seconds mid-episode left the episode without steps meanwhile,
    and it was committed as "episode 0 committed (N steps)": a hole in the demonstration that
    training reads as one step. The commit now names the gap, its keys and how to drop it;
    meanwhile ``recorder/start`` says how far the newest frame is from the joint state (it
    said the camera's key "has not arrived")."""
    client = Client(ros_context)
    simulator = Simulator(client)
    camera = Camera(client)
    path = tmp_path / "cell.zarr"
    cell = {"cameras": "front", "image_size": [8, 8], "image_codec": "blosc"}
    try:
        with recorder(ros_context, path, **cell) as node:
            wait_for(lambda: recorded_steps(node) >= 5, 10, "steps of the episode")
            camera.pause(1.0)
            time.sleep(0.5)
            with pytest.raises(
                RecordingError,
                match=r"keys \['rgb_front'\] have not arrived; "
                r"start again once they do \(the newest frame of rgb_front is "
                r"0\.\d+ s behind the joint states, over max_camera_lag 0\.2 s \(a stalled "
                r"camera\)\)$",
            ):
                node.start_observed()  # fmt: skip
            time.sleep(0.5)
            steps = recorded_steps(node)
            wait_for(lambda: recorded_steps(node) >= steps + 5, 10, "steps after the stall")
            said = node.stop()
    finally:
        camera.close()
        simulator.close()
        client.close()
    gap = re.fullmatch(
        r"episode 0 committed \(\d+ steps\), with a gap: no step for (\d+\.\d+) s from "
        r"t=\d+\.\d+ s, waiting for \['rgb_front'\]; if the arm moved meanwhile, drop it with "
        rf"robot-il data drop-episode {re.escape(str(path))} 0",
        said,
    )
    assert gap is not None, said
    assert 0.5 < float(gap.group(1)) < 3.0, said


def test_a_camera_frame_that_cannot_be_paired_is_said_for_its_cause(ros_context, tmp_path) -> None:
    """A frame missing from a step was always said to lag the joint states over
    ``max_camera_lag`` (a stalled camera): a camera stamping on another clock (ahead of the
    joint states) read "-0.900 s behind", and a hole in the joint states around a frame 0.13 s
    old read as over the 0.2 s lag. Each cause is named (the messages fed to the node's
    callbacks as they arrive)."""
    from test_observation_pairing import frame, joint_state

    cell = {"cameras": "front", "image_size": [2, 2], "gripper": "", "task_inputs": False}
    for name, states, captured, said in (
        ("ahead", np.arange(10.0, 10.1, 0.002), 11.0, r"stamped 0\.90\d s ahead of the joint "
         r"states \(the camera's clock and theirs differ\)"),
        ("hole", [*np.arange(10.0, 10.1, 0.002), *np.arange(10.3, 10.35, 0.002)], 10.22,
         r"not within camera_tolerance 0\.05 s of a joint state \(a hole "
         r"in the joint states, or cameras out of step\)"),
    ):  # fmt: skip
        with recorder(ros_context, tmp_path / f"{name}.zarr", autostart=False, **cell) as node:
            for t in states:
                node.obs._on_joint_states(joint_state(t), (0,))
            node.obs._on_image("rgb_front", frame(captured))
            with pytest.raises(
                RecordingError, match=rf"\(the newest frame of rgb_front is {said}\)$"
            ):
                node.start_observed()


def test_a_value_the_dataset_cannot_hold_leaves_a_gap_not_a_dead_recorder(
    ros_context, tmp_path
) -> None:
    """A perception node that lost the object published a NaN target: the step's append
    raised a DatasetError out of the sampling timer, which ended the node's spin; the episode
    under way was discarded at shutdown and nothing more was recorded (recorder/stop went
    unanswered). Such a step is skipped as one waiting for that key, and the commit names the
    gap."""
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset

    path = tmp_path / "demo.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path) as node:
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the episode")
            q, target, solved = simulator.scenes[0]
            simulator.scenes[0] = (q, [float("nan"), *target[1:]], solved)
            wait_for(lambda: node._skipped >= 8, 10, "samples skipped for the NaN target")
            simulator.scenes[0] = (q, target, solved)
            steps = recorded_steps(node)
            wait_for(lambda: recorded_steps(node) >= steps + 3, 10, "steps after the NaN")
            answer = client.call(Trigger, "recorder/stop")
    finally:
        simulator.close()
        client.close()
    assert answer.success, answer
    assert re.fullmatch(r"episode 0 committed \(\d+ steps\), with a gap: no step for \d+\.\d+ s "
                        r"from t=\d+\.\d+ s, waiting for \['target_pos'\]; .*",
                        answer.message), answer.message  # fmt: skip
    episode = Dataset.open(path).episode(0)
    assert np.isfinite(episode["target_pos"]).all()
    np.testing.assert_allclose(episode["target_pos"][-1], target, atol=1e-6)


class OwnedLock:
    """A lock that knows which thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: int | None = None

    def __enter__(self) -> OwnedLock:
        self._lock.acquire()
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self.owner = None
        self._lock.release()


def hold_command_check_across_reset(node, timeout: float = 10.0) -> threading.Event:
    """Make the recorder's first joint-command callback during a simulator reset read the
    command cut-off (``_since_ns``) and then wait (up to ``timeout`` s) until the reset's end
    has begun the next episode (its new list of commands in place) before going on: a command
    of the old scene whose check came just before the reset's end. A callback that reads the
    cut-off under the node's lock, which the reset's end takes, is not held (nothing can come
    between its check and its store). The event is set once a callback was held."""
    from robot_il.ros.recorder_node import RecorderNode

    held = threading.Event()
    node._lock = OwnedLock()

    class HeldCheck(RecorderNode):
        @property
        def _since_ns(self) -> int:
            since = self.__dict__["_since_ns"]
            caller = sys._getframe(1).f_code.co_name
            if caller == "_on_command" and not held.is_set() and self._reset_future is not None:
                held.set()
                if self._lock.owner == threading.get_ident():
                    return since
                commands = self.__dict__["_joint_commands"]
                deadline = time.monotonic() + timeout
                while self.__dict__["_joint_commands"] is commands and time.monotonic() < deadline:
                    time.sleep(0.001)
            return since

        @_since_ns.setter
        def _since_ns(self, value: int) -> None:
            self.__dict__["_since_ns"] = value

    node.__class__ = HeldCheck
    return held


def test_an_old_scene_command_checked_before_the_reset_ends_is_not_the_next_action(
    ros_context, tmp_path
) -> None:
    """A command callback checks the command's time against the reset's end (``_since_ns``)
    and then stores it; the reset's end runs in another callback group, and it set the new
    cut-off and emptied the commands between the two: the old scene's command landed in the
    new episode, whose every step then took it as the action (the arm should hold, as no
    command of the new scene had come)."""
    from std_msgs.msg import String

    from robot_il.dataset import Dataset

    path = tmp_path / "demo.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path) as node:
            wait_for(node.sim_reset.service_is_ready, 10, "the recorder to see sim/reset")
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of the first episode")
            held = hold_command_check_across_reset(node)
            client.publisher(String, "teleop/episode_event").publish(String(data="next"))
            wait_for(held.is_set, 10, "a command checked during the reset")
            wait_for(
                lambda: simulator.scene == 1 and recorded_steps(node) >= 3, 10, "the next episode"
            )
            assert node.stop().startswith("episode 1 committed")
    finally:
        simulator.close()
        client.close()
    new_q = simulator.scenes[1][0]
    actions = Dataset.open(path).episode(1)["action"]
    np.testing.assert_allclose(actions, np.tile(np.append(new_q, 0.0), (len(actions), 1)),
                               atol=1e-6, err_msg="the old scene's command")  # fmt: skip


def test_appending_frames_of_another_size_is_refused_before_recording(
    ros_context, tmp_path
) -> None:
    """A recorder appending to a dataset of 8x8 frames with ``image_size:=[6, 6]`` started,
    and its first step's append raised a DatasetError out of the sampling timer: the node's
    spin ended, the episode was lost. It is refused as it starts, as other keys are."""
    path = tmp_path / "cell.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    camera = Camera(client)
    cell = {"cameras": "front", "image_codec": "blosc"}
    try:
        with recorder(ros_context, path, **cell, image_size=[8, 8]) as node:
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of 8x8 frames")
            assert node.stop().startswith("episode 0 committed")
        refused = (r"appending to .*cell.zarr would change the shape of rgb_front from "
                   r"\(8, 8, 3\) to \(6, 6, 3\)")  # fmt: skip
        with (
            pytest.raises(ConfigError, match=refused),
            recorder(ros_context, path, **cell, image_size=[6, 6]) as node,
        ):
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps of 6x6 frames")
    finally:
        camera.close()
        simulator.close()
        client.close()


def test_appending_to_a_dataset_whose_meta_cannot_take_the_recorders_is_refused_at_start(
    ros_context, tmp_path
) -> None:
    """A dataset whose ``success`` meta another tool stored as a float could not take the
    recorder's bool at the first commit: the episode was recorded, then the commit raised and
    left it in flight, and every later ``recorder/start`` failed. It is refused as the node
    starts, before anything is recorded."""
    import zarr

    path = tmp_path / "cell.zarr"
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, path) as node:
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps")
            assert node.stop().startswith("episode 0 committed")
        meta = zarr.open_group(path / "meta", mode="r+")
        del meta["success"]
        meta.create_array("success", data=np.array([0.5]))  # as another tool scored it
        with (
            pytest.raises(ConfigError, match=r"meta 'success' = False does not fit its float64"),
            recorder(ros_context, path) as node,
        ):
            wait_for(lambda: recorded_steps(node) >= 3, 10, "steps")
    finally:
        simulator.close()
        client.close()


def test_the_recorders_topics_carry_no_qos_event_handlers(ros_context, tmp_path) -> None:
    """With rclpy's default QoS event handlers on its subscriptions the recorder's executor
    thread spun at a full core under 600 messages a second and held the interpreter lock so
    long that the recorder went 0.4-1.0 s without a joint state (``robot_il.ros.quiet_node``:
    measured in this file's stalled-camera test, which then failed one run in two)."""
    client = Client(ros_context)
    simulator = Simulator(client)
    try:
        with recorder(ros_context, tmp_path / "cell.zarr") as node:
            assert node.subscriptions and node.publishers
            assert all(not sub.event_handlers for sub in node.subscriptions)
            assert all(not pub.event_handlers for pub in node.publishers)
    finally:
        simulator.close()
        client.close()
