"""``robot-il data view``: scrub through a dataset's episodes in a browser.

A small HTTP server (standard library, one thread per request, bound to 127.0.0.1) serves a
page with an episode selector and a step slider; for the step under the slider it shows every
camera's frame (JPEG, decoded from the dataset on request) and every low-dimensional value
(joints in rad, gripper, poses, action, timestamps). Nothing is loaded up front, so datasets
larger than RAM open at once.

Routes: ``/`` the page, ``/info`` keys and episode lengths, ``/step?episode=E&t=T`` the
low-dimensional values of step T of episode E, ``/frame?episode=E&t=T&key=K`` one frame.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from robot_il.dataset.reader import Dataset
from robot_il.errors import DatasetError

PAGE = resources.files("robot_il.dataset.view").joinpath("index.html").read_bytes()


class DatasetViewer:
    """Serves :data:`PAGE` for ``dataset`` on ``host:port`` (0: any free port) from a thread."""

    def __init__(self, dataset: Dataset, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.dataset = dataset
        self._lock = threading.Lock()  # one reader of the store at a time
        try:
            self._http = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as error:
            raise DatasetError(
                f"cannot serve the dataset viewer on {host}:{port}: {error}"
            ) from None
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> DatasetViewer:
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._http.serve_forever()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def info(self) -> dict[str, Any]:
        dataset = self.dataset
        return {
            "path": dataset.where,
            "episodes": dataset.num_episodes,
            "lengths": dataset.episode_lengths.tolist(),
            "control_hz": dataset.control_hz,
            "images": dataset.image_keys,
            "lowdim": [k for k in dataset.keys if k not in dataset.image_keys],
            "units": {k: spec.units for k, spec in dataset.specs.items()},
        }

    def step(self, episode: int, t: int) -> dict[str, Any]:
        index = self._index(episode, t)
        keys = [k for k in self.dataset.keys if k not in self.dataset.image_keys]
        with self._lock:
            values = {k: self.dataset.get(k, index, index + 1)[0] for k in keys}
            meta = self.dataset.meta(episode)
        return {
            "values": {
                k: np.round(np.atleast_1d(v).astype(float), 5).tolist() for k, v in values.items()
            },  # fmt: skip
            "meta": meta,
        }

    def frame(self, episode: int, t: int, key: str) -> bytes:
        from robot_il.select.web.server import encode_jpeg

        if key not in self.dataset.image_keys:
            raise DatasetError(f"{key!r} is not an image key ({self.dataset.image_keys})")
        index = self._index(episode, t)
        with self._lock:
            image = self.dataset.get(key, index, index + 1)[0]
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        return encode_jpeg(image, quality=90)

    def _index(self, episode: int, t: int) -> int:
        span = self.dataset.episode_slice(episode)
        if not 0 <= t < span.stop - span.start:
            raise DatasetError(f"episode {episode} has no step {t} ({span.stop - span.start})")
        return span.start + t


def _handler(viewer: DatasetViewer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if url.path == "/":
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE)
                elif url.path == "/info":
                    self._json(viewer.info())
                elif url.path == "/step":
                    self._json(viewer.step(int(query["episode"]), int(query["t"])))
                elif url.path == "/frame":
                    data = viewer.frame(int(query["episode"]), int(query["t"]), query["key"])
                    self._send(HTTPStatus.OK, "image/jpeg", data)
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")
            except (DatasetError, KeyError, ValueError) as error:
                self._send(HTTPStatus.BAD_REQUEST, "text/plain", str(error).encode())

        def _json(self, value: Any) -> None:
            self._send(HTTPStatus.OK, "application/json", json.dumps(value).encode())

        def _send(self, status: HTTPStatus, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # quiet: one line per frame is noise
            pass

    return Handler
