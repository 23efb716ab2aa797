"""The feedback web page, driven in a real headless Chromium (Debian's chromium and
chromium-driver): every button calls the right handler; plus the server's HTTP checks."""

from __future__ import annotations

import http.client
import json
import queue
import urllib.error
import urllib.request

import numpy as np
import pytest

from robot_il.errors import ConfigError, FeedbackError
from robot_il.select import UCB1, Selector
from robot_il.select.web import FeedbackHandlers, FeedbackServer, encode_jpeg
from robot_il.select.web.server import MAX_BODY
from robot_il.web import is_loopback


class Recorder:
    """Handlers that record what the page asked for, as a ROS node would publish it."""

    def __init__(self) -> None:
        self.events: queue.Queue = queue.Queue()
        self.selector = Selector.create(["ckpt/bc", "ckpt/diffusion"], UCB1(), seed=0)
        self.choice = self.selector.choose()
        self.frame = np.zeros((48, 64, 3), dtype=np.uint8)
        self.frame[:, :32, 0] = 255

    def handlers(self) -> FeedbackHandlers:
        return FeedbackHandlers(
            on_rate=self.rate,
            on_intervene=lambda episode: self.events.put(("intervene", episode)),
            on_estop=lambda: self.events.put(("estop",)),
            status=lambda: {
                "episode": self.choice.episode,
                "candidate": self.choice.candidate,
                "statistics": self.selector.statistics(),
            },
            frame=lambda: encode_jpeg(self.frame),
        )

    def rate(self, episode: int, rating: float) -> None:
        if rating == 0.25:  # stands for a handler refusing feedback
            raise FeedbackError("episode 0 was already rated")
        self.events.put(("rate", episode, rating))


@pytest.fixture
def recorder_server():
    recorder = Recorder()
    with FeedbackServer(recorder.handlers(), token="s3cret-token") as server:
        yield recorder, server


def test_each_button_triggers_its_handler_in_headless_chromium(recorder_server, chromium):
    browser = chromium
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    recorder, server = recorder_server
    wait = WebDriverWait(browser, 10)
    browser.get(server.url)
    wait.until(lambda d: d.find_element(By.ID, "candidate").text == recorder.choice.candidate)
    assert browser.find_element(By.ID, "episode").text == "0"
    wait.until(lambda d: "ckpt/diffusion" in d.find_element(By.ID, "statistics").text)
    # The camera view shows the frames the handler serves (64 x 48 JPEG).
    wait.until(
        lambda d: (
            d.execute_script("return arguments[0].naturalWidth", d.find_element(By.ID, "camera"))
            == 64
        )
    )

    expected = {  # a rating and an intervention name the episode on the page
        "rate-0": ("rate", 0, 0.0),
        "rate-50": ("rate", 0, 0.5),
        "rate-75": ("rate", 0, 0.75),
        "rate-100": ("rate", 0, 1.0),
        "intervene": ("intervene", 0),
        "estop": ("estop",),
    }
    wait.until(lambda d: d.find_element(By.ID, "intervene").is_enabled())  # settled
    for button, event in expected.items():
        browser.find_element(By.ID, button).click()
        assert recorder.events.get(timeout=5) == event, button
    # A refused rating reaches the person as the handler's message, and nothing is published.
    browser.find_element(By.ID, "rate-25").click()
    wait.until(lambda d: d.find_element(By.ID, "message").text == "episode 0 was already rated")
    assert browser.find_element(By.ID, "message").get_attribute("class") == "error"
    assert recorder.events.empty()


def test_a_press_as_the_episode_changes_does_not_act_on_the_new_one(recorder_server, chromium):
    """The page polls the status every 0.5 s: a press that lands just after it shows the next
    episode (the second of two presses, or one from a second tab) was meant for the episode
    before. It does nothing; the rating and Intervene buttons act on the new episode once it
    has been on screen for a second (the e-stop never waits)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium
    recorder, server = recorder_server
    wait = WebDriverWait(browser, 10, poll_frequency=0.02)
    browser.get(server.url)
    wait.until(lambda d: d.find_element(By.ID, "episode").text == "0")
    wait.until(lambda d: d.find_element(By.ID, "intervene").is_enabled())
    settling = "#settling:not([hidden])"  # the notice that the episode on screen changed
    assert browser.find_elements(By.CSS_SELECTOR, settling) == []

    recorder.selector.feedback(0, 1.0)
    recorder.choice = recorder.selector.choose()  # the selector opens episode 1
    wait.until(lambda d: d.find_element(By.ID, "episode").text == "1")
    for button in ("intervene", "rate-0"):
        browser.find_element(By.ID, button).click()
    notice = [element.text for element in browser.find_elements(By.CSS_SELECTOR, settling)]
    browser.find_element(By.ID, "estop").click()
    assert recorder.events.get(timeout=5) == ("estop",)
    with pytest.raises(queue.Empty):
        recorder.events.get(timeout=1.5)
    assert notice == ["episode changed: rating and Intervene wait 1 s"]
    wait.until(lambda d: d.find_element(By.ID, "intervene").is_enabled())
    assert browser.find_elements(By.CSS_SELECTOR, settling) == []
    browser.find_element(By.ID, "intervene").click()
    assert recorder.events.get(timeout=5) == ("intervene", 1)


def request(url: str, body: object | None = None, headers: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_server_checks_token_origin_and_ratings(recorder_server):
    recorder, server = recorder_server
    base = server.url.split("?")[0]
    token = {"X-Token": "s3cret-token"}
    assert request(base)[0] == 401
    assert request(base + "api/rate", {"episode": 0, "rating": 1.0}, {"X-Token": "wrong"})[0] == 401
    assert request(server.url)[0] == 200
    status, body = request(base + "frame.jpg", headers=token)
    assert status == 200 and body[:2] == b"\xff\xd8"
    assert request(base + "api/estop", {}, {**token, "Origin": "http://evil.example"})[0] == 403
    assert request(base + "api/estop", {}, {**token, "Content-Type": "text/plain"})[0] == 415
    for bad in (1.5, -1, "high", None, True):
        status, body = request(base + "api/rate", {"episode": 0, "rating": bad}, token)
        assert status == 400 and "rating" in json.loads(body)["error"]
    for bad in (-1, 0.5, "0", None, True):  # a rating names its episode
        status, body = request(base + "api/rate", {"episode": bad, "rating": 0.5}, token)
        assert status == 400 and "is not an episode number" in json.loads(body)["error"]
    status, body = request(base + "api/rate", "0.5", token)  # a JSON string, not an object
    assert status == 400
    assert request(base + "api/rate", {"episode": 0, "rating": 0.5}, token)[0] == 200
    assert recorder.events.get(timeout=1) == ("rate", 0, 0.5)
    # An intervention names its episode too: a bare one could stop the episode it opened.
    for bad in ({}, {"episode": -1}, {"episode": "0"}, {"episode": True}):
        status, body = request(base + "api/intervene", bad, token)
        assert status == 400, bad
        assert json.loads(body)["error"].startswith("intervene request: episode "), bad
    status, body = request(base + "api/intervene", [0], token)
    assert (status, json.loads(body)) == (
        400, {"error": 'intervene request: send {"episode": N}'},
    )  # fmt: skip
    assert request(base + "api/intervene", {"episode": 0}, token)[0] == 200
    assert recorder.events.get(timeout=1) == ("intervene", 0)
    assert recorder.events.empty()


def test_only_loopback_addresses_are_served_token_or_not():
    """Nothing robot_il serves is reachable from another machine (an SSH tunnel reaches it):
    any other host is refused before the port is bound."""
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with FeedbackServer(Recorder().handlers()) as server:
        assert server.token is None and server.url.startswith("http://127.0.0.1:")
    for host in ("0.0.0.0", "192.168.1.5", "robot-pc.local"):
        with pytest.raises(ConfigError, match=f"feedback page: host '{host}' is not a loopback"):
            FeedbackServer(Recorder().handlers(), host=host, token="s3cret-token")


def raw_request(port: int, method: str, path: str, headers: dict, body: bytes = b""):
    """(status, body) of one request with exactly these headers (``Host`` included)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_requests_for_another_host_name_are_refused():
    """DNS rebinding: a page of attacker.example whose name now resolves to 127.0.0.1 is a
    same-origin page to the browser, but its requests name attacker.example. Neither they nor
    a request with no Host reach a handler or the camera; the loopback names do."""
    recorder = Recorder()
    with FeedbackServer(recorder.handlers()) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        refused = (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.evil.example:{port}",
                   f"evil@127.0.0.1:{port}", "", None)  # fmt: skip
        for host in refused:
            headers = {} if host is None else {"Host": host}
            json_post = {**headers, "Content-Type": "application/json"}
            if host is not None:
                json_post["Origin"] = f"http://{host}"
            for path in ("/api/rate", "/api/estop"):
                body = json.dumps({"rating": 0.0}).encode()
                status, reply = raw_request(
                    port, "POST", path, {**json_post, "Content-Length": str(len(body))}, body
                )
                assert status == 403 and b"refused" in reply, (host, path)
            for path in ("/frame.jpg", "/api/status", "/"):
                assert raw_request(port, "GET", path, headers)[0] == 403, (host, path)
        assert recorder.events.empty()
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", "127.0.0.1"):
            status, jpeg = raw_request(port, "GET", "/frame.jpg", {"Host": host})
            assert status == 200 and jpeg[:2] == b"\xff\xd8", host
        origin = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        headers = {**origin, "Content-Type": "application/json", "Content-Length": "2"}
        assert raw_request(port, "POST", "/api/estop", headers, b"{}")[0] == 200
        assert recorder.events.get(timeout=1) == ("estop",)


def test_a_tunnel_from_another_local_port_is_answered():
    """``ssh -L 9000:127.0.0.1:PORT``: the browser names the tunnel's port, 9000, in ``Host``
    and ``Origin``; the page answered 403 to every such request when it checked the port."""
    recorder = Recorder()
    with FeedbackServer(recorder.handlers()) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        for host in (f"localhost:{port + 1}", f"127.0.0.1:{port + 1}", "[::1]:9000"):
            assert raw_request(port, "GET", "/api/status", {"Host": host})[0] == 200, host
            origin = {"Host": host, "Origin": f"http://{host}"}
            headers = {**origin, "Content-Type": "application/json", "Content-Length": "2"}
            assert raw_request(port, "POST", "/api/estop", headers, b"{}")[0] == 200, host
            assert recorder.events.get(timeout=1) == ("estop",)


@pytest.mark.parametrize("length", ["-1", "-5", str(MAX_BODY + 1), "ten", "+3"])
def test_a_bad_content_length_is_refused_before_the_body_is_read(recorder_server, length):
    """``rfile.read(-1)`` waited for the client to close: a request thread hung per request."""
    recorder, server = recorder_server
    port = int(server.url.split(":")[2].split("/")[0])
    headers = {
        "Host": f"127.0.0.1:{port}",
        "X-Token": "s3cret-token",
        "Content-Type": "application/json",
        "Content-Length": length,
    }
    status, body = raw_request(port, "POST", "/api/estop", headers)
    assert status == 400 and json.loads(body)["error"].startswith(f"Content-Length '{length}'")
    assert recorder.events.empty()
