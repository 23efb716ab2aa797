"""Recording journeys as an operator runs them: ``robot-il launch`` of a recording launch file
(real processes on loopback DDS, the teleop keyboard on a pseudo terminal), the recorder's
services, and the accidents that lose recordings elsewhere (a killed recorder, Ctrl-C, a
rerun of the same command)."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import DEADLINE_SCALE, Client, stop

pytestmark = pytest.mark.ros

ROBOT_IL = str(Path(sys.executable).parent / "robot-il")


def write_clip(path: Path) -> None:
    """A 1 s video file of 32x24 frames, a bar sweeping across: the camera a cell without
    cameras replays (``camera_loop:=true``)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (32, 24))
    for i in range(30):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, i % 32] = 255
        writer.write(frame)
    writer.release()


def test_the_no_robot_cell_example_records_survives_a_kill_and_appends(
    ros_context, ros_env, tmp_path
) -> None:
    """``record_real_cell.launch.yaml``'s no-robot example (a simulated arm, a video file,
    the terminal's keys) recorded nothing: the recorder waited for ever for the task's
    ``target_pos``, which no node of a cell publishes, and ``recorder/start`` refused. It
    records now; a recorder killed (-9) mid-episode keeps every committed episode; the same
    command run again appends; Ctrl-C says which episode under way it dropped."""
    from std_srvs.srv import Trigger

    from robot_il.dataset import Dataset
    from robot_il.dataset.validate import validate

    clip, path, log = tmp_path / "clip.mp4", tmp_path / "cell.zarr", tmp_path / "launch.log"
    write_clip(clip)
    command = [ROBOT_IL, "launch", "record_real_cell.launch.yaml", f"path:={path}",
               "use_fake_hardware:=true", f"front_device:={clip}", "camera_loop:=true",
               "wrist:=false", "cameras:=front", "device:=keyboard",
               "image_codec:=blosc"]  # fmt: skip
    client = Client(ros_context)
    launches: list[subprocess.Popen] = []
    terminals: list[int] = []

    def launch() -> subprocess.Popen:
        master, slave = pty.openpty()  # the keyboard teleop reads the launch's terminal
        terminals.append(master)
        with open(log, "a") as out:
            launches.append(subprocess.Popen(command, env=ros_env, stdin=slave, stdout=out,
                                             stderr=subprocess.STDOUT))  # fmt: skip
        os.close(slave)
        return launches[-1]

    def call(service: str) -> str:
        try:
            answer = client.call(Trigger, service, timeout=5.0 * DEADLINE_SCALE)
        except AssertionError as error:  # a killed recorder's server, still in DDS discovery,
            return f"no answer: {error}"  # took the request: the next call reaches the new one
        return answer.message if answer.success else f"refused: {answer.message}"

    def recording(process: subprocess.Popen, episode: int) -> None:
        """Start ``episode`` and wait until it has steps (``recorder/start`` says both; it
        refuses while a camera frame is not close enough to the joint state, a moment on a
        loaded machine), asking twice a second (each call is a new DDS client)."""
        steps = re.compile(rf"episode {episode} is already recording \(([1-9]\d*) steps\)")
        deadline = time.monotonic() + 30 * DEADLINE_SCALE
        while not steps.fullmatch(answer := call("recorder/start")):
            alive = process.poll() is None and time.monotonic() < deadline
            assert alive, f"no steps of episode {episode}: {answer}\n{log.read_text()[-3000:]}"
            time.sleep(0.5)

    try:
        first = launch()
        recording(first, 0)  # autostart: the first episode began with the launch
        assert call("recorder/stop").startswith("episode 0 committed ("), log.read_text()
        recording(first, 1)
        recorder_pid = int(re.search(r"started recorder \(pid (\d+)\)", log.read_text())[1])
        os.kill(recorder_pid, signal.SIGKILL)  # mid-episode: its launch stops with it
        first.wait(timeout=30 * DEADLINE_SCALE)
        assert validate(path).ok and Dataset.open(path).num_episodes == 1

        again = launch()  # the same command: appends
        recording(again, 1)
        assert call("recorder/stop").startswith("episode 1 committed ("), log.read_text()
        recording(again, 2)
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=30 * DEADLINE_SCALE) == 130
    finally:
        client.close()
        for process in launches:  # Ctrl-C stops a launch's nodes; a kill would orphan them
            stop(process)
        for terminal in terminals:
            os.close(terminal)
    output = log.read_text()
    assert "Traceback" not in output, output
    stopped = (r"\[recorder\] stopped: episode 2 under way discarded \(\d+ steps; next or quit "
               r"commits an episode, recorder/stop too\), 2 episodes in "
               rf"{re.escape(str(path))}, 1 of them recorded now")  # fmt: skip
    assert re.search(stopped, output), output
    assert validate(path).ok
    dataset = Dataset.open(path)
    assert dataset.num_episodes == 2
    assert {"joint_pos", "eef_pose", "rgb_front", "stamp_rgb_front"} <= set(dataset.keys)
    assert "target_pos" not in dataset.keys
