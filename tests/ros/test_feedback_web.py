"""The feedback_web node in its own process, its page in headless Chromium, the messages
received over loopback DDS: each button publishes the right message on the right topic."""

from __future__ import annotations

import json
import queue
import selectors
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from deploy_helpers import Client, spinning, stop, wait_for

pytestmark = pytest.mark.ros

CAMERA_TOPIC = "camera/front/image_raw"


def read_line(process: subprocess.Popen, timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError("the node printed nothing")
    return process.stdout.readline()


@pytest.fixture
def feedback_node(ros_env):
    process = subprocess.Popen(
        [sys.executable, "-m", "robot_il.ros.feedback_web", "--ros-args",
         "-p", "token:=tok3n", "-p", f"camera_topic:={CAMERA_TOPIC}"],
        env=ros_env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = read_line(process, 30)
        assert line.startswith("feedback page: http://127.0.0.1:"), line
        yield line.split(": ", 1)[1].strip()
    finally:
        stop(process)


def test_a_host_other_than_loopback_is_refused_before_the_node_starts(ros_env):
    """Remote rating goes through an SSH tunnel: no address but loopback is ever bound, with
    or without a token."""
    result = subprocess.run(
        [sys.executable, "-m", "robot_il.ros.feedback_web", "--ros-args",
         "-p", "host:=0.0.0.0", "-p", "token:=tok3n"],
        env=ros_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "error: feedback page: host '0.0.0.0' is not a loopback address" in result.stderr
    assert "ssh -L" in result.stderr and "feedback page: http" not in result.stdout


def test_each_button_publishes_its_message(ros_context, feedback_node, chromium):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, String

    from robot_il.ros.selector_node import FEEDBACK_QOS, LATCHED
    from robot_il.ros.ur_topics import ESTOP_TOPIC
    from robot_il.select import UCB1, Selector
    from robot_il.select.topics import (
        INTERVENE_TOPIC,
        RATING_TOPIC,
        STATISTICS_TOPIC,
        read_intervention,
        read_rating,
    )

    node = rclpy.create_node("feedback_listener", context=ros_context)
    received: queue.Queue = queue.Queue()
    node.create_subscription(
        Bool, ESTOP_TOPIC, lambda msg: received.put((ESTOP_TOPIC, msg.data)), FEEDBACK_QOS
    )
    for topic, read in ((RATING_TOPIC, read_rating), (INTERVENE_TOPIC, read_intervention)):
        node.create_subscription(
            String, topic, lambda msg, t=topic, r=read: received.put((t, r(msg.data))),
            FEEDBACK_QOS,
        )  # fmt: skip
    statistics_pub = node.create_publisher(String, STATISTICS_TOPIC, LATCHED)
    image_pub = node.create_publisher(Image, CAMERA_TOPIC, 1)
    selector = Selector.create(["ckpt/bc", "ckpt/diffusion"], UCB1(), seed=0)
    selector.feedback(selector.choose().episode, 0.5)
    selector.choose()
    statistics_pub.publish(String(data=json.dumps(selector.statistics())))
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    rgb[:, :, 1] = 200
    image = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=rgb.tobytes())

    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
            image_pub.publish(image)

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        browser, wait = chromium, WebDriverWait(chromium, 120)
        browser.get(feedback_node)
        pending = selector.pending
        wait.until(lambda d: d.find_element(By.ID, "candidate").text == pending.candidate)
        assert browser.find_element(By.ID, "episode").text == str(pending.episode)
        wait.until(
            lambda d: (
                d.execute_script(
                    "return arguments[0].naturalWidth", d.find_element(By.ID, "camera")
                )
                == 64
            )
        )
        wait.until(lambda d: d.find_element(By.ID, "intervene").is_enabled())  # settled
        for button, message in [
            ("rate-75", (RATING_TOPIC, (pending.episode, 0.75))),
            ("estop", (ESTOP_TOPIC, True)),
        ]:
            browser.find_element(By.ID, button).click()
            assert received.get(timeout=10) == message, button
        # A second rating of the same episode is refused on the page; nothing is published.
        browser.find_element(By.ID, "rate-100").click()
        wait.until(
            lambda d: (
                d.find_element(By.ID, "message").text
                == f"episode {pending.episode} was already rated"
            )
        )
        # The next episode can be stopped, once: intervene names the episode on the page, and
        # pressing it again is refused.
        selector.feedback(pending.episode, 0.75)
        selector.choose()
        statistics_pub.publish(String(data=json.dumps(selector.statistics())))
        wait.until(lambda d: d.find_element(By.ID, "episode").text == str(pending.episode + 1))
        wait.until(lambda d: d.find_element(By.ID, "intervene").is_enabled())
        browser.find_element(By.ID, "intervene").click()
        assert received.get(timeout=10) == (INTERVENE_TOPIC, pending.episode + 1)
        browser.find_element(By.ID, "intervene").click()
        stopped = f"episode {pending.episode + 1} was already stopped by an intervention"
        wait.until(lambda d: d.find_element(By.ID, "message").text == stopped)
        assert received.empty()
    finally:
        stop.set()
        spinner.join()
        executor.shutdown()
        node.destroy_node()


def post(url: str, body: dict) -> tuple[int, dict]:
    """(status, reply) of a JSON POST to the feedback page, as its buttons send it."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_rating_after_an_intervention_does_not_close_the_next_episode(
    ros_context, ros_env, tmp_path
):
    """The person stops episode 0 and then rates what they saw: the selector opened episode 1
    at the intervention, and a bare rating closed it before it had run. A rating names its
    episode: the page refuses one for episode 0, the selector ignores one for episode 0 that
    reaches it over ROS, and episode 1 stays open until rated itself."""
    from std_msgs.msg import String

    from robot_il.select import Selector
    from robot_il.select.topics import RATING_TOPIC, rating_message

    state = tmp_path / "selection.json"
    selector = subprocess.Popen(
        [sys.executable, "-m", "robot_il.ros.selector_node", "--ros-args",
         "-p", "candidates:=['a','b','c']", "-p", f"state_path:={state}"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    web = subprocess.Popen(
        [sys.executable, "-m", "robot_il.ros.feedback_web"],
        env=ros_env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    selector_lines: list[str] = []
    reader = threading.Thread(target=lambda: selector_lines.extend(selector.stdout))
    reader.start()
    client = Client(ros_context)
    try:
        url = read_line(web, 30).split(": ", 1)[1].strip()

        def episode() -> int | None:
            with urllib.request.urlopen(url + "api/status", timeout=10) as response:
                return json.loads(response.read())["episode"]

        wait_for(lambda: episode() == 0, 20, "episode 0 on the page", (selector, web))
        assert post(url + "api/intervene", {"episode": 0}) == (200, {"ok": True})
        wait_for(lambda: episode() == 1, 20, "episode 1 on the page", (selector, web))
        assert post(url + "api/rate", {"episode": 0, "rating": 0.0}) == (
            400, {"error": "episode 0 was already stopped by an intervention"},
        )  # fmt: skip
        # A rating of episode 0 sent by another front-end: the selector ignores it.
        ratings = client.publisher(String, RATING_TOPIC, (selector, web))
        ratings.publish(String(data=rating_message(0, 1.0)))
        ignored = "rating 1 of episode 0 ignored: episode 1 is open"
        wait_for(lambda: any(ignored in line for line in selector_lines), 20, "the selector's log")
        assert episode() == 1
        assert post(url + "api/rate", {"episode": 1, "rating": 0.75}) == (200, {"ok": True})
        wait_for(lambda: episode() == 2, 20, "episode 2 on the page", (selector, web))
    finally:
        client.close()
        stop(web)
        stop(selector)
        reader.join()
    log = Selector.load(state).log
    assert [(r.episode, r.rating, r.intervened) for r in log] == [(0, 0.0, True), (1, 0.75, False)]


def test_a_repeated_intervention_does_not_close_the_next_episode(
    ros_context, own_context, tmp_path, capfd
):
    """The person presses intervene twice: a double click, or again in a hurry as the robot
    misbehaves. The first press closed episode 0 and the selector opened episode 1 within
    milliseconds; the second, a bare Bool, then closed episode 1 as a failure before it had
    run, penalising the wrong candidate. An intervention names the episode the page showed:
    the page refuses a second one for episode 0 (sent at once, or after the page moved on to
    episode 1), the selector ignores one for episode 0 that reaches it over ROS from another
    front-end (and a malformed one), and episode 1 stays open until stopped itself. The
    selector is its own DDS participant, as another process is."""
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from robot_il.ros.feedback_web import FeedbackWebNode
    from robot_il.ros.selector_node import SelectorNode
    from robot_il.select import Selector
    from robot_il.select.topics import INTERVENE_TOPIC, intervention_message

    state = tmp_path / "selection.json"
    parameters = [
        Parameter("candidates", value=["a", "b", "c"]),
        Parameter("state_path", value=str(state)),
    ]
    selector = SelectorNode(context=own_context, parameter_overrides=parameters)
    web = FeedbackWebNode(context=ros_context)
    client = Client(ros_context)
    stopped = (400, {"error": "episode 0 was already stopped by an intervention"})
    try:
        with spinning(selector, own_context), spinning(web, ros_context):
            url = web.server.url

            def episode() -> int | None:
                with urllib.request.urlopen(url + "api/status", timeout=10) as response:
                    return json.loads(response.read())["episode"]

            def intervene(episode: int) -> tuple[int, dict]:
                return post(url + "api/intervene", {"episode": episode})

            wait_for(lambda: episode() == 0, 20, "episode 0 on the page")
            with ThreadPoolExecutor(2) as pool:  # a double click: both requests at once
                replies = sorted(pool.map(intervene, [0, 0]))
            assert replies == [(200, {"ok": True}), stopped]
            wait_for(lambda: episode() == 1, 20, "episode 1 on the page")
            assert intervene(0) == stopped
            # Sent over ROS in this order, and received in it: the two ignored, the last
            # closes episode 1.
            interventions = client.publisher(String, INTERVENE_TOPIC)
            for text in (intervention_message(0), "true", intervention_message(1)):
                interventions.publish(String(data=text))
            wait_for(lambda: episode() == 2, 20, "episode 2 on the page")
    finally:
        client.close()
    log = Selector.load(state).log
    assert [(r.episode, r.rating, r.intervened) for r in log] == [(0, 0.0, True), (1, 0.0, True)]
    logged = capfd.readouterr().err
    assert "intervention of episode 0 ignored: episode 1 is open" in logged
    assert """intervention message 'true': expected JSON {"episode": N}: ignored""" in logged


def test_a_button_no_node_listens_to_is_refused_not_lost(ros_env):
    """The page's e-stop and intervention with no policy node or selector on the topic: the
    topics are volatile, so a message published then reaches nobody, ever. The page says so
    (the person reaches for the cell's e-stop) instead of "sent"."""
    web = subprocess.Popen(
        [sys.executable, "-m", "robot_il.ros.feedback_web"],
        env=ros_env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = read_line(web, 30).split(": ", 1)[1].strip()
        assert post(url + "api/estop", {}) == (400, {"error": (
            "e-stop not sent: no node subscribes to /safety/estop: press the cell's e-stop button"
        )})  # fmt: skip
        unheard = "intervention not sent: no node subscribes to /selector/feedback/intervene"
        assert post(url + "api/intervene", {"episode": 0}) == (400, {"error": unheard})
    finally:
        stop(web)


def test_a_rating_waiting_for_the_selector_is_refused_if_its_episode_closed_meanwhile(
    ros_context,
):
    """A rating waits (up to 5 s) for the selector to subscribe; the page checked that its
    episode was open before that wait, not after: an episode closed meanwhile (the judge's
    rating, an intervention) had its rating sent all the same, which the selector ignored,
    while the page told the person it was given."""
    from std_msgs.msg import String

    from robot_il.errors import FeedbackError
    from robot_il.ros.feedback_web import FeedbackWebNode
    from robot_il.ros.selector_node import FEEDBACK_QOS, LATCHED
    from robot_il.select.topics import RATING_TOPIC, STATISTICS_TOPIC

    web = FeedbackWebNode(context=ros_context)
    client = Client(ros_context)
    try:
        with spinning(web, ros_context):
            statistics = client.node.create_publisher(String, STATISTICS_TOPIC, LATCHED)

            def announce(episode: int) -> None:
                pending = {"episode": episode, "arm": 0, "candidate": "a"}
                statistics.publish(String(data=json.dumps({"pending": pending})))
                wait_for(lambda: web.status()["episode"] == episode, 20, f"episode {episode}")

            announce(3)
            answer: queue.Queue = queue.Queue()

            def rate() -> None:
                try:
                    web.rate(3, 0.5)
                    answer.put("sent")
                except FeedbackError as error:
                    answer.put(str(error))

            waiting = threading.Event()
            wait_for_listener = web.wait_for_listener

            def entered(*args: object) -> None:
                waiting.set()
                wait_for_listener(*args)

            web.wait_for_listener = entered
            rating = threading.Thread(target=rate)
            rating.start()
            assert waiting.wait(timeout=20)  # no node subscribes to the ratings yet
            announce(4)  # episode 3 closed elsewhere meanwhile
            received = []
            client.node.create_subscription(String, RATING_TOPIC, received.append, FEEDBACK_QOS)
            rating.join(timeout=30)
            assert answer.get(timeout=1) == "episode 3 is not open (episode 4 is): not rated"
            assert not received
    finally:
        client.close()
