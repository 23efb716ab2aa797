"""The feedback page's HTTP server (standard library only, one thread per request).

The server knows nothing of ROS: it calls its
:class:`~robot_il.select.handlers.FeedbackHandlers` when a button is pressed and asks them
for the status and the latest camera frame.

Security: it binds 127.0.0.1 by default. Bound to any other address it requires a token
(generated if none is given) on every request, as ``?token=`` or the ``X-Token`` header.
State-changing requests must be JSON POSTs from the page's own origin, which a foreign web
page in the same browser cannot forge without a CORS preflight this server never grants.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from robot_il.errors import RobotILError, SelectionError
from robot_il.select.handlers import FeedbackHandlers
from robot_il.select.selector import check_rating

PAGE = resources.files(__package__).joinpath("index.html").read_bytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB image, for :attr:`FeedbackHandlers.frame`."""
    import cv2

    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SelectionError(f"could not encode a {rgb.shape} {rgb.dtype} frame as JPEG")
    return data.tobytes()


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FeedbackServer:
    """Serves the feedback page on ``host:port`` (port 0: any free port) from a thread."""

    def __init__(
        self,
        handlers: FeedbackHandlers,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
    ) -> None:
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(18)
        self.handlers = handlers
        self.token = token
        try:
            self._http = ThreadingHTTPServer((host, port), _make_request_handler(self))
        except OSError as error:
            raise SelectionError(
                f"cannot serve the feedback page on {host}:{port}: {error}"
            ) from None
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address, with the token when one is required."""
        host, port = self._http.server_address[:2]
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{port}/{query}"

    def start(self) -> FeedbackServer:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="feedback-web", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> FeedbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_request_handler(server: FeedbackServer) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        server_version = "robot_il-feedback"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
            """Quiet: the page polls the status and frames several times a second."""

        def do_GET(self) -> None:  # noqa: N802 (stdlib name)
            path = self._authorized_path()
            if path is None:
                return
            if path == "/":
                self._send(HTTPStatus.OK, PAGE, "text/html; charset=utf-8")
            elif path == "/api/status":
                self._send_json(HTTPStatus.OK, server.handlers.status())
            elif path == "/frame.jpg":
                jpeg = server.handlers.frame() if server.handlers.frame else None
                if jpeg is None:
                    self._send(HTTPStatus.NO_CONTENT, b"", "image/jpeg")
                else:
                    self._send(HTTPStatus.OK, jpeg, "image/jpeg")
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})

        def do_POST(self) -> None:  # noqa: N802 (stdlib name)
            path = self._authorized_path()
            if path is None:
                return
            origin = self.headers.get("Origin")
            if origin is not None and origin != f"http://{self.headers.get('Host')}":
                self._send_json(HTTPStatus.FORBIDDEN, {"error": f"origin {origin} refused"})
                return
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                self._send_json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send JSON"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if path == "/api/rate":
                    rating = body.get("rating") if isinstance(body, dict) else None
                    server.handlers.on_rate(check_rating(rating, "rate request"))
                elif path == "/api/intervene":
                    server.handlers.on_intervene()
                elif path == "/api/estop":
                    server.handlers.on_estop()
                else:
                    self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no action {path}"})
                    return
            except (RobotILError, ValueError) as error:
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
                return
            self._send_json(HTTPStatus.OK, {"ok": True})

        def _authorized_path(self) -> str | None:
            url = urlsplit(self.path)
            if server.token is not None:
                offered = self.headers.get("X-Token") or parse_qs(url.query).get("token", [""])[0]
                if not hmac.compare_digest(offered.encode(), server.token.encode()):
                    self._send_json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong token"})
                    return None
            return url.path

        def _send_json(self, status: HTTPStatus, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return RequestHandler
