"""Camera messages as the arrays a policy and a dataset hold, and matching them by time.

``sensor_msgs/Image`` arrives in many layouts: a driver chooses the encoding (``rgb8``,
``bgr8``, ``mono8``; ``16UC1`` depth in millimetres, ``32FC1`` depth in metres), may pad each
row (``step`` > width x pixel size) and may send big-endian data. ``sensor_msgs/
CompressedImage`` carries a JPEG or PNG file. This module turns each into:

- ``rgb_<camera>``: (H, W, 3) uint8 RGB (grey images repeat their channel), and
- ``depth_<camera>``: (H, W) float32 metres (0 where the sensor saw nothing; NaN and
  infinite readings become 0 as well),

resized to the size the policy was trained at (area averaging for colour, nearest neighbour
for depth so that no depth is invented between a near and a far surface). Each frame keeps
its capture stamp (``header.stamp``, s), and :class:`FrameBuffer` picks the frame nearest a
time within a tolerance, so that an observation is assembled from frames taken together.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np

from robot_il.errors import ConfigError

RGB_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
MM_PER_M = 1000.0


@dataclass(frozen=True)
class CameraFrame:
    """One camera frame: ``image`` (H, W, 3) uint8 RGB or (H, W) float32 depth in metres,
    and ``stamp``, its capture time (s, the publisher's clock)."""

    image: np.ndarray
    stamp: float


def image_array(msg, where: str) -> np.ndarray:
    """The pixels of a ``sensor_msgs/Image``: (H, W, 3) uint8 RGB for colour and grey
    encodings, (H, W) float32 metres for depth. Row padding and byte order are honoured;
    an unknown encoding or a too-short buffer is a ConfigError naming ``where``."""
    encoding = msg.encoding
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}
    if encoding in channels:
        item, dtype = channels[encoding], np.dtype(np.uint8)
    elif encoding in ("16UC1", "mono16"):
        item, dtype = 1, np.dtype(">u2" if msg.is_bigendian else "<u2")
    elif encoding == "32FC1":
        item, dtype = 1, np.dtype(">f4" if msg.is_bigendian else "<f4")
    else:
        raise ConfigError(
            f"{where}: image encoding {encoding!r} is not supported "
            f"(supported: {', '.join(RGB_ENCODINGS + DEPTH_ENCODINGS)})"
        )
    row_bytes = width * item * dtype.itemsize
    if step < row_bytes or len(msg.data) < step * height:
        raise ConfigError(
            f"{where}: {encoding} image {width}x{height} with step {step} needs "
            f"{max(step, row_bytes) * height} bytes, got {len(msg.data)}"
        )
    buffer = np.frombuffer(bytes(msg.data), np.uint8, count=step * height).reshape(height, step)
    pixels = buffer[:, :row_bytes].copy().view(dtype).reshape(height, width, item)
    if encoding in ("16UC1", "mono16"):
        return pixels[..., 0].astype(np.float32) / MM_PER_M
    if encoding == "32FC1":
        depth = pixels[..., 0].astype(np.float32)
        return np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    return _as_rgb(pixels, encoding)


def compressed_image_array(msg, where: str) -> np.ndarray:
    """The pixels of a ``sensor_msgs/CompressedImage`` (JPEG or PNG): (H, W, 3) uint8 RGB.
    (Its ``format`` is e.g. ``"jpeg"`` or ``"rgb8; jpeg compressed bgr8"``; the file itself
    says what it is, and OpenCV decodes it to BGR.)"""
    import cv2

    data = np.frombuffer(bytes(msg.data), np.uint8)
    if "compresseddepth" in msg.format.lower().replace(" ", ""):
        raise ConfigError(f"{where}: compressedDepth images are not supported; send 16UC1 Image")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ConfigError(f"{where}: CompressedImage ({msg.format!r}) is not a JPEG or PNG")
    if image.dtype != np.uint8:
        raise ConfigError(f"{where}: CompressedImage of {image.dtype} pixels; expected 8-bit")
    if image.ndim == 2:
        return _as_rgb(image[..., None], "mono8")
    return _as_rgb(image, "bgra8" if image.shape[2] == 4 else "bgr8")


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at (H, W) ``size``: area averaging for colour, nearest pixel for depth."""
    height, width = int(size[0]), int(size[1])
    if image.shape[:2] == (height, width):
        return image
    import cv2

    interpolation = cv2.INTER_NEAREST if image.dtype == np.float32 else cv2.INTER_AREA
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _as_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.ascontiguousarray(pixels[..., :3])


class Stamped(Protocol):
    """A sample with ``stamp``, its capture time (s)."""

    stamp: float


S = TypeVar("S", bound=Stamped)


class FrameBuffer(Generic[S]):
    """The last ``capacity`` samples of one source (a camera's frames, an arm's joint
    states), in stamp order, for matching by time."""

    def __init__(self, capacity: int = 30) -> None:
        self._frames: deque[S] = deque(maxlen=capacity)

    def add(self, frame: S) -> None:
        """Keep ``frame``; a frame older than the newest (reordered delivery) is put in place."""
        if not self._frames or frame.stamp >= self._frames[-1].stamp:
            self._frames.append(frame)
            return
        frames = list(self._frames)
        frames.insert(bisect.bisect([f.stamp for f in frames], frame.stamp), frame)
        self._frames = deque(frames[-self._frames.maxlen :], maxlen=self._frames.maxlen)

    @property
    def newest(self) -> S | None:
        return self._frames[-1] if self._frames else None

    def nearest(self, stamp: float, tolerance: float = math.inf) -> S | None:
        """The frame whose stamp is nearest ``stamp`` (s; the older of two as near), if within
        ``tolerance`` (s)."""
        if not self._frames:
            return None
        after = bisect.bisect_left(self._frames, stamp, key=lambda f: f.stamp)
        near = [self._frames[i] for i in (after - 1, after) if 0 <= i < len(self._frames)]
        best = min(near, key=lambda f: abs(f.stamp - stamp))
        return best if abs(best.stamp - stamp) <= tolerance else None
