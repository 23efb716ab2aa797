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

import math
import threading
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from robot_il.dataset.reader import Dataset
from robot_il.errors import DatasetError
from robot_il.web import PageHandler, PageServer, encode_jpeg

PAGE = resources.files("robot_il.dataset.view").joinpath("index.html").read_bytes()


class DatasetViewer:
    """Serves :data:`PAGE` for ``dataset`` on ``host:port`` (0: any free port) from a thread."""

    def __init__(self, dataset: Dataset, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.dataset = dataset
        self._lock = threading.Lock()  # one reader of the store at a time
        self._server = PageServer(
            _handler(self), host=host, port=port, name="dataset viewer", error=DatasetError
        )

    @property
    def url(self) -> str:
        return f"{self._server.address}/"

    def start(self) -> DatasetViewer:
        self._server.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def close(self) -> None:
        self._server.close()

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
            # an episode without a float meta value holds NaN (data/README), which JSON
            # cannot carry: the browser refused the whole answer and the page stopped updating
            "meta": {k: None if isinstance(v, float) and not math.isfinite(v) else v
                     for k, v in meta.items()},
        }  # fmt: skip

    def frame(self, episode: int, t: int, key: str) -> bytes:
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


def _handler(viewer: DatasetViewer) -> type[PageHandler]:
    class Handler(PageHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if url.path == "/":
                    self.send_body(HTTPStatus.OK, PAGE, "text/html; charset=utf-8")
                elif url.path == "/info":
                    self.send_json(HTTPStatus.OK, viewer.info())
                elif url.path == "/step":
                    step = viewer.step(int(query["episode"]), int(query["t"]))
                    self.send_json(HTTPStatus.OK, step)
                elif url.path == "/frame":
                    data = viewer.frame(int(query["episode"]), int(query["t"]), query["key"])
                    self.send_body(HTTPStatus.OK, data, "image/jpeg")
                else:
                    self.send_body(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
            except (DatasetError, KeyError, ValueError) as error:
                self.send_body(HTTPStatus.BAD_REQUEST, str(error).encode(), "text/plain")

    return Handler
