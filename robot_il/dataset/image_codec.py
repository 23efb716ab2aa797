"""A zarr v3 codec that stores each camera frame as a JPEG XL or JPEG 2000 image.

Camera frames are most of a dataset's bytes, and a general-purpose compressor (Blosc) shrinks
real camera images only about 1.4x: sensor noise defeats it. An image codec that may lose
what the eye (and a policy) cannot see shrinks them 40-100x at a quality where the error is
the size of the sensor noise. diffusion_policy stores its real-robot data the same way
(``imagecodecs``' JPEG 2000 inside zarr); JPEG XL (libjxl) decodes several times faster.

The codec is an array-to-bytes codec for chunks of exactly one frame, ``(1, H, W, C)`` uint8
with C = 1 or 3, used as the inner codec of zarr's sharding codec (many frames per file).
Its name in ``zarr.json`` is :data:`CODEC_NAME`; importing :mod:`robot_il` registers it with
zarr (and the ``zarr.codecs`` entry point does so for plain ``zarr`` without the import).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import imagecodecs
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.registry import register_codec

CODEC_NAME = "robot_il.image"
IMAGE_FORMATS: tuple[str, ...] = ("jpegxl", "jpeg2k")
#: Default quality: JPEG XL at 90 leaves an error of about 2 grey levels (RMS), the size of
#: a camera's own noise, and shrinks camera-like frames 40-170x (benchmarks/dataset_io.py).
DEFAULT_QUALITY = 90
#: libjxl's effort (1 fastest .. 9 smallest): 3 encodes a 640x480 frame in about 10 ms here.
JPEGXL_EFFORT = 3
#: What a JPEG 2000 ``quality`` below 100 means, saved as ``jpeg2k_scale`` in the codec's
#: configuration (and the dataset's ``image_storage`` attrs): the target PSNR in dB, the
#: scale of diffusion_policy's ``Jpeg2k(level=50)``. Stores whose jpeg2k codec has no
#: ``jpeg2k_scale`` were written before it existed, when the target was half the quality
#: (:data:`JPEG2K_HALF_PSNR_DB`: quality 45 meant 22.5 dB); they keep that scale, so that
#: frames appended to them are encoded as their first ones were.
JPEG2K_PSNR_DB = "psnr_db"
JPEG2K_HALF_PSNR_DB = "half_psnr_db"
JPEG2K_SCALES = (JPEG2K_PSNR_DB, JPEG2K_HALF_PSNR_DB)


def jpeg2k_target_psnr(quality: int, scale: str) -> float | None:
    """The PSNR (dB) a JPEG 2000 ``quality`` on ``scale`` aims at; None at 100 (lossless)."""
    if scale not in JPEG2K_SCALES:
        raise ValueError(f"jpeg2k scale {scale!r} is not one of {JPEG2K_SCALES}")
    if quality >= 100:
        return None
    return quality / 2 if scale == JPEG2K_HALF_PSNR_DB else float(quality)


def encode_frame(
    frame: np.ndarray, image_format: str, quality: int, jpeg2k_scale: str = JPEG2K_PSNR_DB
) -> bytes:
    """One (H, W, C) uint8 frame (C = 1 or 3) as image-file bytes.

    ``quality`` 1-100: JPEG XL's quality scale (100 = lossless); for JPEG 2000 the target
    PSNR on ``jpeg2k_scale`` (:data:`JPEG2K_PSNR_DB`: in dB; 100 = lossless).
    """
    image = frame[..., 0] if frame.shape[-1] == 1 else frame
    image = np.ascontiguousarray(image)
    if image_format == "jpegxl":
        if quality >= 100:
            return imagecodecs.jpegxl_encode(image, lossless=True, effort=JPEGXL_EFFORT)
        return imagecodecs.jpegxl_encode(image, level=quality, effort=JPEGXL_EFFORT)
    if image_format == "jpeg2k":
        psnr = jpeg2k_target_psnr(quality, jpeg2k_scale)
        if psnr is None:
            return imagecodecs.jpeg2k_encode(image, level=0, reversible=True)
        return imagecodecs.jpeg2k_encode(image, level=psnr)
    raise ValueError(f"image format {image_format!r} is not one of {IMAGE_FORMATS}")


def decode_frame(data: bytes | memoryview, image_format: str, shape: tuple[int, ...]) -> np.ndarray:
    """The (H, W, C) uint8 frame of ``data``; a wrong size is a ValueError."""
    if image_format == "jpegxl":
        image = imagecodecs.jpegxl_decode(data, numthreads=1)
    elif image_format == "jpeg2k":
        image = imagecodecs.jpeg2k_decode(data, numthreads=1)
    else:
        raise ValueError(f"image format {image_format!r} is not one of {IMAGE_FORMATS}")
    image = image.reshape(image.shape[0], image.shape[1], -1)
    if image.shape != tuple(shape) or image.dtype != np.uint8:
        raise ValueError(f"decoded a {image.dtype} frame of shape {image.shape}, expected {shape}")
    return image


@dataclass(frozen=True)
class ImageCodec(ArrayBytesCodec):
    """zarr v3 array-to-bytes codec: one ``(1, H, W, C)`` uint8 chunk <-> one image file.

    ``jpeg2k_scale``: for JPEG 2000, what ``quality`` means (:data:`JPEG2K_SCALES`; a new
    codec takes :data:`JPEG2K_PSNR_DB`, one read from a store without it
    :data:`JPEG2K_HALF_PSNR_DB`); None for JPEG XL. Codecs equal only on the same scale, so
    frames are copied as stored only between stores that encode alike.
    """

    is_fixed_size = False
    image_format: str = "jpegxl"
    quality: int = DEFAULT_QUALITY
    jpeg2k_scale: str | None = None

    def __init__(
        self,
        *,
        image_format: str = "jpegxl",
        quality: int = DEFAULT_QUALITY,
        jpeg2k_scale: str | None = None,
    ) -> None:
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format {image_format!r} is not one of {IMAGE_FORMATS}")
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"image quality must be in 1..100, got {quality}")
        if image_format == "jpeg2k":
            jpeg2k_scale = jpeg2k_scale or JPEG2K_PSNR_DB
            jpeg2k_target_psnr(int(quality), jpeg2k_scale)  # an unknown scale is a ValueError
        elif jpeg2k_scale is not None:
            raise ValueError(f"jpeg2k_scale is for JPEG 2000 only, not {image_format}")
        object.__setattr__(self, "image_format", image_format)
        object.__setattr__(self, "quality", int(quality))
        object.__setattr__(self, "jpeg2k_scale", jpeg2k_scale)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageCodec:
        if data.get("name") != CODEC_NAME:
            raise ValueError(f"codec {data.get('name')!r} is not {CODEC_NAME!r}")
        config = data.get("configuration", {})
        scale = config.get("jpeg2k_scale", JPEG2K_HALF_PSNR_DB)  # none: written before it
        return cls(image_format=config["format"], quality=config["quality"],
                   jpeg2k_scale=scale if config["format"] == "jpeg2k" else None)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"format": self.image_format, "quality": self.quality}
        if self.jpeg2k_scale is not None:
            config["jpeg2k_scale"] = self.jpeg2k_scale
        return {"name": CODEC_NAME, "configuration": config}

    def encode_image(self, frame: np.ndarray) -> bytes:
        """One (H, W, C) uint8 frame as this codec stores it (zarr's ``encode`` is its own:
        chunks in batches)."""
        scale = self.jpeg2k_scale or JPEG2K_PSNR_DB  # JPEG XL has none, and uses none
        return encode_frame(frame, self.image_format, self.quality, scale)

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        chunk_shape = getattr(chunk_grid, "chunk_shape", None)
        native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
        if native != np.uint8 or len(shape) != 4 or shape[-1] not in (1, 3):
            raise ValueError(f"{CODEC_NAME}: needs (T, H, W, 1|3) uint8, got {shape} {native}")
        if chunk_shape is not None and chunk_shape[0] != 1:
            raise ValueError(f"{CODEC_NAME}: chunks must hold one frame, got {chunk_shape}")

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        frame = decode_frame(
            chunk_bytes.as_numpy_array().tobytes(), self.image_format, chunk_spec.shape[1:]
        )
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(frame[None])

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        frame = np.asarray(chunk_array.as_ndarray_like())[0]
        return chunk_spec.prototype.buffer.from_bytes(self.encode_image(frame))

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        # libjxl / OpenJPEG release the GIL: threads decode frames in parallel
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(f"{CODEC_NAME} output size depends on the image")


register_codec(CODEC_NAME, ImageCodec)
