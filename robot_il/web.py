"""A small HTTP server in a background thread, for the pages robot_il serves on this machine
(the selection feedback page, the dataset viewer), and the JPEG encoding their frames use.

One place for what both need: bind a loopback address only (127.0.0.1 and a free port by
default; nothing robot_il serves is reachable from another machine: reach a page from elsewhere
through an SSH tunnel, ``ssh -L PORT:127.0.0.1:PORT robot-pc``), refuse requests addressed to
any other host name, serve from a daemon thread, shut down and release the port, and answer
with no caching.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from robot_il.errors import ConfigError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
"""Host names (``Host`` header, any port) a page answers to besides its bound address."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) only accepts connections from this
    machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HOST_HEADER = re.compile(r"(\[[0-9a-f:.]*\]|[^:\[\]]+)(?::[0-9]*)?")
"""A ``Host`` header: a name, IPv4 address or bracketed IPv6 address, then an optional port."""


def host_name(header: str) -> str | None:
    """The host of a ``Host`` header, lower case and without its port (``[::1]`` keeps its
    brackets); None for a header that is not one."""
    match = _HOST_HEADER.fullmatch(header.strip().lower())
    return None if match is None else match.group(1)


def encode_jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """``rgb`` (H, W, 3) uint8 as JPEG bytes; ValueError if OpenCV cannot encode it."""
    import cv2

    ok, data = cv2.imencode(
        ".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError(f"could not encode a {rgb.shape} {rgb.dtype} frame as JPEG")
    return data.tobytes()


class PageHandler(BaseHTTPRequestHandler):
    """Request handler base: uncached replies, no log line per request (a page that polls
    frames would flood the terminal), and 403 for a request whose ``Host`` names another
    machine than this one's loopback (``LOOPBACK_NAMES`` or the bound address).

    The ``Host`` check stops DNS rebinding: a web page from ``attacker.example`` whose name
    then resolves to 127.0.0.1 reaches the port from the person's browser as a same-origin
    page, but its requests name ``attacker.example``. The name alone is checked, not the
    port: a tunnel may forward another local port (``ssh -L 9000:127.0.0.1:PORT``), and the
    browser then names that one."""

    def parse_request(self) -> bool:
        """The standard parsing, then the ``Host`` check (False: answered, stop here)."""
        if not super().parse_request():
            return False
        bound = self.server.server_address[0]
        host = self.headers.get("Host", "")
        if host_name(host) not in {*LOOPBACK_NAMES, bound}:
            self.send_json(
                HTTPStatus.FORBIDDEN,
                {"error": f"host {host!r} refused: this page answers to 127.0.0.1 only"},
            )
            return False
        return True

    def send_body(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: HTTPStatus, data: Any) -> None:
        self.send_body(status, json.dumps(data).encode(), "application/json")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass


class PageServer:
    """Serves ``handler`` on ``host:port`` (port 0: any free port) from a daemon thread.

    ``host`` must be a loopback address (``ConfigError`` before anything binds). ``error`` is
    the exception type raised, with what and where, when the address cannot be bound (a port
    in use, an address this machine does not have).
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        host: str,
        port: int,
        name: str,
        error: type[Exception],
    ) -> None:
        self.name = name
        if not is_loopback(host):
            raise ConfigError(
                f"{name}: host {host!r} is not a loopback address; robot_il serves pages on "
                "127.0.0.1 only (from another machine use an SSH tunnel: "
                "ssh -L PORT:127.0.0.1:PORT this-machine)"
            )
        try:
            self._http = ThreadingHTTPServer((host, port), handler)
        except OSError as cause:
            raise error(f"cannot serve the {name} on {host}:{port}: {cause}") from None
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``http://host:port``, the port the server really bound."""
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._http.serve_forever, name=self.name, daemon=True
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close` (from another thread) or Ctrl-C."""
        self._http.serve_forever()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()
