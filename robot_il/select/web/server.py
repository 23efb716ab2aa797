"""The feedback page's HTTP server (standard library only, one thread per request).

The server knows nothing of ROS: it calls its
:class:`~robot_il.select.handlers.FeedbackHandlers` when a button is pressed and asks them
for the status and the latest camera frame.

Security: it binds a loopback address only and answers only requests addressed to it
(:mod:`robot_il.web`); a person at another machine opens it through an SSH tunnel
(``ssh -L 8080:127.0.0.1:8080 robot-pc``, with ``port:=8080``, then http://127.0.0.1:8080/).
With a ``token`` (a machine other users log in to) every request must carry it, as ``?token=``
or the ``X-Token`` header. State-changing requests must be JSON POSTs of at most
:data:`MAX_BODY` bytes from the page's own origin, which a foreign web page in the same
browser cannot forge without a CORS preflight this server never grants.
"""

from __future__ import annotations

import hmac
import json
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from robot_il.errors import FeedbackError, RobotILError, SelectionError
from robot_il.select.handlers import FeedbackHandlers
from robot_il.select.selector import check_episode, check_rating
from robot_il.web import PageHandler, PageServer

PAGE = resources.files(__package__).joinpath("index.html").read_bytes()

MAX_BODY = 64 * 1024
"""Largest request body (bytes) read; a button's JSON is a few dozen."""


class FeedbackServer:
    """Serves the feedback page on ``host:port`` (a loopback address; port 0: any free port)
    from a thread; ``ConfigError`` for any other host, before anything binds."""

    def __init__(
        self,
        handlers: FeedbackHandlers,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        self.handlers = handlers
        self.token = token
        self._server = PageServer(
            _make_request_handler(self), host=host, port=port, name="feedback page",
            error=SelectionError,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The page's address, with the token when one is required."""
        query = f"?token={self.token}" if self.token else ""
        return f"{self._server.address}/{query}"

    def start(self) -> FeedbackServer:
        """Serve in a background thread; returns self."""
        self._server.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.close()

    def __enter__(self) -> FeedbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_request_handler(server: FeedbackServer) -> type[PageHandler]:
    class RequestHandler(PageHandler):
        server_version = "robot_il-feedback"

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            path = self._authorized_path()
            if path is None:
                return
            if path == "/":
                self.send_body(HTTPStatus.OK, PAGE, "text/html; charset=utf-8")
            elif path == "/api/status":
                self.send_json(HTTPStatus.OK, server.handlers.status())
            elif path == "/frame.jpg":
                jpeg = server.handlers.frame() if server.handlers.frame else None
                if jpeg is None:
                    self.send_body(HTTPStatus.NO_CONTENT, b"", "image/jpeg")
                else:
                    self.send_body(HTTPStatus.OK, jpeg, "image/jpeg")
            else:
                self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})

        def do_POST(self) -> None:  # noqa: N802 (stdlib name)
            path = self._authorized_path()
            if path is None:
                return
            origin = self.headers.get("Origin")
            if origin is not None and origin != f"http://{self.headers.get('Host')}":
                self.send_json(HTTPStatus.FORBIDDEN, {"error": f"origin {origin} refused"})
                return
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                self.send_json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send JSON"})
                return
            declared = self.headers.get("Content-Length", "0")
            length = int(declared) if declared.isdecimal() else -1
            if not 0 <= length <= MAX_BODY:
                self.send_json(
                    HTTPStatus.BAD_REQUEST,
                    {"error": f"Content-Length {declared!r}: send 0 to {MAX_BODY} bytes"},
                )
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if path == "/api/rate":
                    if not isinstance(body, dict):
                        raise FeedbackError('rate request: send {"episode": N, "rating": r}')
                    server.handlers.on_rate(
                        check_episode(body.get("episode"), "rate request"),
                        check_rating(body.get("rating"), "rate request"),
                    )
                elif path == "/api/intervene":
                    if not isinstance(body, dict):
                        raise FeedbackError('intervene request: send {"episode": N}')
                    server.handlers.on_intervene(
                        check_episode(body.get("episode"), "intervene request")
                    )
                elif path == "/api/estop":
                    server.handlers.on_estop()
                else:
                    self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no action {path}"})
                    return
            except (RobotILError, ValueError) as error:
                self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
                return
            self.send_json(HTTPStatus.OK, {"ok": True})

        def _authorized_path(self) -> str | None:
            url = urlsplit(self.path)
            if server.token is not None:
                offered = self.headers.get("X-Token") or parse_qs(url.query).get("token", [""])[0]
                if not hmac.compare_digest(offered.encode(), server.token.encode()):
                    self.send_json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong token"})
                    return None
            return url.path

    return RequestHandler
