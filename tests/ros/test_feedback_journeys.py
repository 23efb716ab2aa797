"""A person choosing a policy on the feedback page, as the README tells them to: ``robot-il
select sim --web``, the page in headless Chromium, the whole launch on loopback DDS (simulator,
policy node, selector, episode judge, feedback page). The person's ratings are the ones that
count, the selection waits for them, and the intervene button stops the episode at once."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import BIN, DEADLINE_SCALE, constant_checkpoint, stop

from robot_il.select import Selector

pytestmark = pytest.mark.ros

URL = re.compile(r"feedback page: (http://127\.0\.0\.1:\d+/\S*)")


class Output:
    """A process's output lines, read on a thread, waited for by pattern."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait(self, pattern: str, timeout: float = 120, nth: int = 1) -> re.Match:
        """The ``nth`` line matching ``pattern``; fails with the output's tail after
        ``timeout`` s (scaled for a loaded machine) or when the process ends without it."""
        deadline = time.monotonic() + timeout * DEADLINE_SCALE
        while True:
            matches = [m for line in list(self.lines) if (m := re.search(pattern, line))]
            if len(matches) >= nth:
                return matches[nth - 1]
            if time.monotonic() > deadline or self.process.poll() is not None:
                time.sleep(0.5)  # the last lines
                tail = "".join(self.lines[-40:])
                raise AssertionError(f"no line matching {pattern!r}:\n{tail}")
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def still_candidates(tmp_path) -> list[str]:
    """Two real checkpoints that hold the reset pose: they never solve reach, nor are unsafe."""
    from robot_il.envs import make_env

    env = make_env("reach")
    q0 = env.reset(seed=0)[0]["joint_pos"].astype(np.float64)
    env.close()
    return [str(constant_checkpoint(tmp_path / name, np.append(q0, 0.0))) for name in ("a", "b")]


def click_when_shown(browser, episode: int, button: str) -> None:
    """Press ``button`` once the page shows ``episode`` open and enables it (1 s after the
    episode appears), and wait for its answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60 * DEADLINE_SCALE)
    wait.until(
        lambda d: (
            d.find_element(By.ID, "episode").text == str(episode)
            and d.find_element(By.ID, button).is_enabled()
        )
    )
    browser.find_element(By.ID, button).click()
    wait.until(lambda d: d.find_element(By.ID, "message").text)
    message = browser.find_element(By.ID, "message").text
    assert message.endswith("sent"), message


def test_with_the_page_the_person_rates_and_the_selection_waits(
    tmp_path, ros_env, chromium, still_candidates
) -> None:
    """The judge rated every episode itself within a second of its end, so the person's
    ratings raced it and mostly arrived for closed episodes: the page the README offers for
    rating rated nothing."""
    out = tmp_path / "out"
    process = subprocess.Popen(
        [str(BIN / "robot-il"), "select", "sim", "--out", str(out), "--web", "--port",
         str(free_port()), "--candidates", ",".join(still_candidates), "--episodes", "2"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(process)
    try:
        chromium.get(output.wait(URL.pattern).group(1))
        output.wait(r"episode 0 \(.*\): not solved in 4 s; rate it on the feedback page")
        time.sleep(2.0)  # the judge gives no rating: the episode stays open
        waiting = Selector.load(out / "selection.json")
        assert not waiting.log and waiting.pending.episode == 0
        click_when_shown(chromium, 0, "rate-75")
        output.wait(r"episode 1 \(.*\): not solved in 4 s; rate it on the feedback page")
        click_when_shown(chromium, 1, "intervene")
        assert process.wait(timeout=60 * DEADLINE_SCALE) == 0, "".join(output.lines[-40:])
    finally:
        stop(process)
    selection = Selector.load(out / "selection.json")
    assert [(r.rating, r.intervened) for r in selection.log] == [(0.75, False), (0.0, True)]
    assert not any(" rated 0." in line for line in output.lines if "episode_judge" in line)


def test_the_intervene_button_stops_the_episode_at_once(
    tmp_path, ros_env, chromium, still_candidates
) -> None:
    """The button says "stop the robot now", but only the selector heard it: the judge
    watched the episode, and the policy drove the arm, to the episode's time limit."""
    process = subprocess.Popen(
        [str(BIN / "robot-il"), "launch", "deploy_select_sim.launch.yaml",
         f"candidates:={','.join(still_candidates)}", f"default_candidate:={still_candidates[0]}",
         "episodes:=2", "time_limit:=600", "web:=true", "judge_rates:=false",
         f"port:={free_port()}", f"state_path:={tmp_path / 'selection.json'}"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(process)
    try:
        chromium.get(output.wait(URL.pattern).group(1))
        output.wait(r"\[policy\].*new episode with")
        click_when_shown(chromium, 0, "intervene")
        stopped = output.wait(
            r"episode 0 \(.*\): closed by the person's feedback after ([\d.]+) s; policy stopped",
            timeout=60,
        )
        assert float(stopped.group(1)) < 600
        output.wait(r"\[policy\].*new episode with", nth=2)  # episode 1 runs
    finally:
        stop(process)
    selection = Selector.load(Path(tmp_path / "selection.json"))
    assert selection.log[0].intervened and selection.pending.episode == 1
