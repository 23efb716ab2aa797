"""``robot-il select sim --web --port N``: the feedback page, on the port asked for, shows the
simulated camera by default, a live, non-empty frame, in headless Chromium (the whole launch
runs: simulator rendering the camera, policy, selector, judge and the feedback page on
127.0.0.1)."""

from __future__ import annotations

import re
import selectors
import socket
import subprocess
import time

import numpy as np
import pytest
from deploy_helpers import BIN, constant_checkpoint, stop

pytestmark = pytest.mark.ros

URL = re.compile(r"feedback page: (http://127\.0\.0\.1:\d+/\S*)")
PIXELS = """
const img = arguments[0];
if (!img.complete || img.naturalWidth === 0) return null;  // a new live frame still loading
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const context = canvas.getContext("2d");
context.drawImage(img, 0, 0);
return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
"""


def test_feedback_page_shows_the_simulated_camera(ros_env, tmp_path, chromium) -> None:
    from robot_il.envs import make_env
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    env = make_env("reach")
    q0 = env.reset(seed=0)[0]["joint_pos"].astype(np.float64)
    env.close()
    still = constant_checkpoint(tmp_path / "still", np.append(q0, 0.0))
    moving = constant_checkpoint(tmp_path / "moving", np.append(q0 + [0.3, 0, 0, 0, 0, 0], 0.0))
    with socket.socket() as probe:  # a free port to ask for (an SSH tunnel needs a fixed one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [
        str(BIN / "robot-il"), "select", "sim", "--out", str(tmp_path / "out"), "--web",
        "--port", str(port), "--candidates", f"{still},{moving}", "--episodes", "50",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 120
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while url is None:
                assert time.monotonic() < deadline, "".join(output[-40:])
                if selector.select(1.0):
                    line = process.stdout.readline()
                    assert line, "".join(output[-40:])
                    output.append(line)
                    match = URL.search(line)
                    url = match.group(1) if match else None
        assert url.startswith(f"http://127.0.0.1:{port}/"), url
        browser, wait = chromium, WebDriverWait(chromium, 90)
        browser.get(url)
        camera = browser.find_element(By.ID, "camera")
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", camera) == 96)
        first_src = camera.get_attribute("src")
        frame = wait.until(lambda d: d.execute_script(PIXELS, camera))
        pixels = np.array(frame).reshape(96, 96, 4)[..., :3]
        assert pixels.std() > 10, "the camera frame is blank"
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # a rendered scene
        # live: the page keeps fetching new frames
        wait.until(lambda d: camera.get_attribute("src") != first_src)
    finally:
        stop(process)
