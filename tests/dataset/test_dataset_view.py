"""``robot-il data view``: the page served on 127.0.0.1 shows the frame and the values of the
step under the slider, for the chosen episode (headless Chromium against the real server)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from robot_il.dataset import Dataset, DatasetWriter
from robot_il.dataset.viewer import DatasetViewer


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    path = tmp_path / "d.zarr"
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False)
    for episode, n in enumerate((6, 9)):
        frames = np.zeros((n, 32, 48, 3), np.uint8)
        for t in range(n):
            frames[t, :, : 4 * (t + 1)] = (220, 30, 30)  # a red bar growing with the step
        writer.add_episode(
            {"rgb_front": frames,
             "joint_pos": (np.arange(n)[:, None] + 10 * episode + np.zeros((1, 6))).astype("f4")},
            {"success": bool(episode)},
        )  # fmt: skip
    writer.close()
    return Dataset.open(path)


def view(dataset: Dataset) -> subprocess.Popen:
    """``robot-il data view`` of ``dataset`` in a process of its own; its first line of
    stdout gives the page's address."""
    return subprocess.Popen(
        [sys.executable, "-c", "from robot_il.cli import main; raise SystemExit(main())",
         "data", "view", dataset.where],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_server_answers_info_steps_and_frames(dataset: Dataset) -> None:
    viewer = DatasetViewer(dataset).start()
    try:
        assert viewer.url.startswith("http://127.0.0.1:")
        info = json.loads(urllib.request.urlopen(viewer.url + "info").read())
        assert info["lengths"] == [6, 9] and info["images"] == ["rgb_front"]
        step = json.loads(urllib.request.urlopen(viewer.url + "step?episode=1&t=4").read())
        assert step["values"]["joint_pos"] == [14.0] * 6 and step["meta"] == {"success": True}
        jpeg = urllib.request.urlopen(viewer.url + "frame?episode=1&t=4&key=rgb_front").read()
        assert jpeg[:2] == b"\xff\xd8"
        with pytest.raises(urllib.error.HTTPError, match="400"):
            urllib.request.urlopen(viewer.url + "step?episode=0&t=6")  # beyond the episode
    finally:
        viewer.close()


def test_page_scrubs_through_an_episode(dataset: Dataset, chromium) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    process = view(dataset)
    try:
        line = process.stdout.readline()
        assert line.startswith("dataset viewer: http://127.0.0.1:"), line
        # the page re-renders its rows on every step: a row found may be replaced at once
        stale = (StaleElementReferenceException,)
        browser, wait = chromium, WebDriverWait(chromium, 120, ignored_exceptions=stale)
        browser.get(line.split()[2])
        episode = wait.until(lambda d: d.find_element(By.ID, "episode"))
        wait.until(lambda d: d.find_elements(By.ID, "frame-rgb_front"))
        episode.clear()
        episode.send_keys("1\t")  # typed, then focus leaves the field: a change event
        wait.until(lambda d: d.find_element(By.ID, "step").text.endswith("/ 8 (0.00 s)"))
        browser.execute_script(  # the person drags the slider to step 4
            "const s = document.getElementById('step-slider'); s.value = 4;"
            "s.dispatchEvent(new Event('input'));"
        )
        wait.until(lambda d: "14, 14" in d.find_element(By.ID, "row-joint_pos").text)
        assert browser.find_element(By.ID, "step").text.startswith("4 / 8")
        image = browser.find_element(By.ID, "frame-rgb_front")
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) == 48)
        red = browser.execute_script(
            "const img = arguments[0]; const c = document.createElement('canvas');"
            "c.width = img.naturalWidth; c.height = img.naturalHeight;"
            "const g = c.getContext('2d'); g.drawImage(img, 0, 0);"
            "const row = g.getImageData(0, 16, c.width, 1).data;"
            "let n = 0; for (let x = 0; x < c.width; x++) if (row[4 * x] > 150) n++; return n;",
            image,
        )
        assert abs(red - 20) <= 2  # the bar of step 4 is 20 px wide
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_step_answer_is_strict_json_for_an_episode_without_a_float_meta_value(
    tmp_path: Path,
) -> None:
    """An episode without a value of a float meta (an expert's action_noise on a teleop
    episode appended later) holds NaN: the answer said NaN, which the browser's JSON parser
    refuses, and the page's table stopped updating on that episode."""
    path = tmp_path / "m.zarr"
    writer = DatasetWriter.create(path, robot="ur5e", control_hz=10, fsync=False)
    writer.add_episode({"action": np.zeros((3, 7), np.float32)}, {"action_noise": 0.1})
    writer.add_episode({"action": np.zeros((3, 7), np.float32)}, {"success": True})
    writer.close()
    viewer = DatasetViewer(Dataset.open(path)).start()

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        body = urllib.request.urlopen(viewer.url + "step?episode=1&t=0").read()
        assert json.loads(body, parse_constant=refuse)["meta"] == {
            "action_noise": None, "success": True
        }  # fmt: skip
    finally:
        viewer.close()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_view_stops_at_once_with_a_browser_connection_open(
    dataset: Dataset, stop: signal.Signals
) -> None:
    """Ctrl-C (the way the viewer says to stop it) or SIGTERM ends ``robot-il data view`` at
    once, even while a request thread waits on a browser's connection (the server answers in
    HTTP/1.0 and closes; a browser's preconnected socket, or a request half sent, stays), as
    the viewer's normal end: exit code 0 (SIGTERM killed it, -15, before robot-il took it as
    Ctrl-C)."""
    process = view(dataset)
    try:
        url = urlsplit(process.stdout.readline().split()[2])
        with socket.create_connection((url.hostname, url.port)) as browser:
            browser.sendall(b"GET /info HTTP/1.1\r\n")  # the rest of the request never comes
            time.sleep(0.2)  # a request thread reads it
            process.send_signal(stop)
            assert process.wait(timeout=3) == 0
    finally:
        process.kill()
        process.wait()
