"""The on-disk dataset format: names, version, per-key specs and how each key is chunked.

The layout is diffusion_policy's ReplayBuffer (``data/<key>`` time-major arrays of all episodes
concatenated, ``meta/episode_ends`` cumulative ends) plus root attributes that say what the
numbers mean (robot, control rate, per-key units). ``data/README.md`` is the human copy of
this module; bump :data:`FORMAT_VERSION` when either changes incompatibly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_il.errors import DatasetError

FORMAT_NAME = "robot_il.dataset"
#: 2: camera frames may be stored by a lossy image codec, many frames per shard file (and the
#: root attribute ``image_storage`` says how new image keys are stored). 1: every frame is
#: one Blosc-compressed file. Both are read; new datasets are written as 2.
FORMAT_VERSION = 2

DATA_GROUP = "data"
META_GROUP = "meta"
EPISODE_ENDS = "episode_ends"
EPISODE_ENDS_PATH = f"{META_GROUP}/{EPISODE_ENDS}"
#: Empty file in the store's root that a writer holds an exclusive flock on.
WRITER_LOCK = ".writer.lock"

#: Uncompressed bytes aimed at per low-dimensional chunk: small enough that reading one
#: training window from disk decompresses little (about 40 us at 16 KiB, 90 us at 64 KiB),
#: large enough to keep the file count low (a 7-float key: one file per 585 steps).
LOWDIM_CHUNK_BYTES = 16 * 1024
#: Entries per chunk of ``meta/*`` arrays (one entry per episode).
META_CHUNK = 4096
#: Raw bytes of the frames one shard file of a compressed image key holds (16 MiB: 606
#: frames of 96x96, 72 of 240x320, 18 of 480x640). The recorder keeps one shard's encoded
#: frames in RAM per camera until the shard is full, and a shard is one file on disk.
SHARD_RAW_BYTES = 16 * 1024 * 1024
#: Root attribute saying how image keys are stored (see :class:`ImageStorage`).
IMAGE_STORAGE_ATTR = "image_storage"

#: Units of the keys the simulator and recorder produce; arm keys may carry a ``left_`` or
#: ``right_`` prefix. Keys not listed here get ``""`` unless the caller gives units.
DEFAULT_UNITS: dict[str, str] = {
    "joint_pos": "rad",
    "joint_vel": "rad/s",
    "gripper": "1 = closed, 0 = open",
    "eef_pose": "m (xyz, base frame) + quaternion wxyz",
    "object_pose": "m (xyz, world frame) + quaternion wxyz",
    "target_pos": "m (xyz, world frame)",
    "timestamp": "s since episode start",
    "action": "see attrs action_mode: joint = rad + gripper [0,1]; eef_delta = m, rad + gripper",
}
IMAGE_UNITS = "uint8 RGB, HWC"


def default_units(key: str) -> str:
    """Units for ``key`` from :data:`DEFAULT_UNITS`, ignoring an arm prefix; images are RGB."""
    if key.startswith("rgb_"):
        return IMAGE_UNITS
    if key.startswith("depth_"):
        return "m (float32, HW; 0 = no reading)"
    if key.startswith("stamp_"):
        return "s since episode start: capture time of the frame of key " + key[len("stamp_") :]
    for prefix in ("left_", "right_"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return DEFAULT_UNITS.get(key, "")


@dataclass(frozen=True)
class KeySpec:
    """What one step of a key holds: per-step ``shape`` (time axis excluded), numpy ``dtype``
    name and ``units`` (free text, e.g. ``"rad"``), stored in the root attrs."""

    shape: tuple[int, ...]
    dtype: str
    units: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    @property
    def is_image(self) -> bool:
        """uint8 (H, W, C) keys are images: one frame per chunk, no byte shuffle."""
        return self.dtype == "uint8" and len(self.shape) == 3

    @property
    def step_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def chunk_steps(self) -> int:
        """Steps per chunk along time: 1 for images, about :data:`LOWDIM_CHUNK_BYTES` else."""
        if self.is_image:
            return 1
        return int(min(65536, max(64, LOWDIM_CHUNK_BYTES // max(1, self.step_bytes))))

    def to_attrs(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "units": self.units, **self.extra}

    @classmethod
    def from_attrs(cls, key: str, attrs: Any) -> KeySpec:
        try:
            extra = {k: v for k, v in attrs.items() if k not in ("shape", "dtype", "units")}
            return cls(tuple(attrs["shape"]), attrs["dtype"], attrs.get("units", ""), extra)
        except (KeyError, TypeError, AttributeError) as error:
            raise DatasetError(f"attrs keys.{key}: malformed key spec {attrs!r}") from error

    @classmethod
    def infer(cls, key: str, steps: np.ndarray) -> KeySpec:
        """The spec of time-major ``steps`` (T, *shape), with default units for ``key``."""
        return cls(steps.shape[1:], steps.dtype.name, default_units(key))


@dataclass(frozen=True)
class ImageStorage:
    """How the frames of image keys are stored.

    ``codec``: ``"jpegxl"`` (default; lossy, many frames per shard file), ``"jpeg2k"`` (the
    codec diffusion_policy stores real data with), or ``"blosc"`` (lossless, one file per
    frame: the version 1 layout). ``quality``: 1-100, JPEG XL's scale (100 = lossless) or
    JPEG 2000's target PSNR in dB (diffusion_policy uses 50); None = the codec's default.
    ``jpeg2k_scale``: for JPEG 2000, the scale of ``quality``
    (:data:`~robot_il.dataset.image_codec.JPEG2K_SCALES`): new storage is in dB; a dataset
    written before the attrs named it is read as half that, and appended to on its own scale.
    Image keys whose frames are not (H, W, 1 | 3) uint8 are stored with Blosc.
    """

    codec: str = "jpegxl"
    quality: int | None = None
    jpeg2k_scale: str | None = None

    def __post_init__(self) -> None:
        if self.codec not in IMAGE_CODECS:
            raise DatasetError(f"image codec {self.codec!r} is not one of {IMAGE_CODECS}")
        if self.quality is not None and not 1 <= int(self.quality) <= 100:
            raise DatasetError(f"image quality must be in 1..100, got {self.quality}")
        if self.codec == "jpeg2k":
            from robot_il.dataset.image_codec import JPEG2K_PSNR_DB, JPEG2K_SCALES

            object.__setattr__(self, "jpeg2k_scale", self.jpeg2k_scale or JPEG2K_PSNR_DB)
            if self.jpeg2k_scale not in JPEG2K_SCALES:
                raise DatasetError(
                    f"jpeg2k_scale {self.jpeg2k_scale!r} is not one of {JPEG2K_SCALES}"
                )
        elif self.jpeg2k_scale is not None:
            raise DatasetError(f"jpeg2k_scale is for the jpeg2k codec only, not {self.codec}")

    @property
    def lossy(self) -> bool:
        return self.codec != "blosc"

    @property
    def effective_quality(self) -> int:
        if self.quality is not None:
            return int(self.quality)
        return DEFAULT_JPEG2K_QUALITY if self.codec == "jpeg2k" else DEFAULT_JPEGXL_QUALITY

    def describe(self) -> str:
        """One line for ``robot-il data info``, e.g. "jpeg2k, quality 45 (target PSNR 45 dB)"."""
        from robot_il.dataset.image_codec import jpeg2k_target_psnr

        quality = self.effective_quality
        if not self.lossy or quality >= 100:
            return f"{self.codec} (lossless)"
        if self.jpeg2k_scale is None:
            return f"{self.codec}, quality {quality}"
        psnr = jpeg2k_target_psnr(quality, self.jpeg2k_scale)
        return f"{self.codec}, quality {quality} (target PSNR {psnr:g} dB)"

    def to_attrs(self) -> dict[str, Any]:
        attrs = {"codec": self.codec, "quality": self.effective_quality if self.lossy else None}
        if self.jpeg2k_scale is not None:
            attrs["jpeg2k_scale"] = self.jpeg2k_scale
        return attrs

    def as_stored(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` (T, H, W, C) uint8 as a dataset with this storage reads them back
        (encoded and decoded; the codecs are deterministic): to see the loss before recording."""
        frames = np.asarray(frames)
        if not self.lossy or frames.shape[-1] not in (1, 3):
            return frames.copy()
        from robot_il.dataset.image_codec import decode_frame

        codec = self.image_codec()
        shape = frames.shape[1:]
        return np.stack([decode_frame(codec.encode_image(f), self.codec, shape) for f in frames])

    def image_codec(self) -> Any:
        """The :class:`~robot_il.dataset.image_codec.ImageCodec` of a lossy storage."""
        from robot_il.dataset.image_codec import ImageCodec

        return ImageCodec(image_format=self.codec, quality=self.effective_quality,
                          jpeg2k_scale=self.jpeg2k_scale)  # fmt: skip

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ImageStorage:
        """The storage a dataset's root attrs name; version 1 datasets (none named) used Blosc,
        and jpeg2k storage that names no ``jpeg2k_scale`` was written on the halved scale."""
        from robot_il.dataset.image_codec import JPEG2K_HALF_PSNR_DB

        value = attrs.get(IMAGE_STORAGE_ATTR)
        if value is None:
            return cls("blosc")
        try:
            scale = value.get("jpeg2k_scale", JPEG2K_HALF_PSNR_DB)
            return cls(value["codec"], value.get("quality"),
                       scale if value["codec"] == "jpeg2k" else None)  # fmt: skip
        except (KeyError, TypeError, AttributeError) as error:
            raise DatasetError(f"attrs {IMAGE_STORAGE_ATTR}: malformed {value!r}") from error


IMAGE_CODECS = ("jpegxl", "jpeg2k", "blosc")
DEFAULT_JPEGXL_QUALITY = 90
DEFAULT_JPEG2K_QUALITY = 45


def frames_per_shard(spec: KeySpec) -> int:
    """Frames in one shard file of a compressed image key (:data:`SHARD_RAW_BYTES` raw)."""
    return int(min(4096, max(8, SHARD_RAW_BYTES // max(1, spec.step_bytes))))


def image_array_layout(spec: KeySpec, storage: ImageStorage) -> dict[str, Any]:
    """``create_array`` arguments for an image key: one frame per chunk, and for a lossy
    codec the :mod:`~robot_il.dataset.image_codec` codec inside shards of many frames."""
    chunks = (1, *spec.shape)
    if not storage.lossy or spec.shape[-1] not in (1, 3):
        return {"chunks": chunks, "compressors": compressor_for(spec)}
    return {
        "chunks": chunks,
        "shards": (frames_per_shard(spec), *spec.shape),
        "serializer": storage.image_codec(),
        "compressors": None,
    }


def root_attrs(
    robot: str,
    control_hz: float,
    keys: dict[str, KeySpec],
    extra: dict[str, Any] | None,
    image_storage: ImageStorage | None = None,
) -> dict[str, Any]:
    """The root attributes of a dataset; ``extra`` (task, env spec, ...) may not shadow ours."""
    attrs: dict[str, Any] = dict(extra or {})
    reserved = set(RESERVED_ATTRS) & attrs.keys()
    if reserved:
        raise DatasetError(f"attrs: {sorted(reserved)} are set by the writer, not by callers")
    attrs.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        robot=str(robot),
        control_hz=float(control_hz),
        keys={key: spec.to_attrs() for key, spec in keys.items()},
    )
    attrs[IMAGE_STORAGE_ATTR] = (image_storage or ImageStorage()).to_attrs()
    return attrs


#: Root attributes the writer sets; callers' extra attributes may not use these names.
RESERVED_ATTRS = (
    "format", "format_version", "robot", "control_hz", "keys", IMAGE_STORAGE_ATTR
)  # fmt: skip


def specs_from_attrs(attrs: dict[str, Any]) -> dict[str, KeySpec]:
    keys = attrs.get("keys")
    if not isinstance(keys, dict):
        raise DatasetError("attrs: 'keys' is missing or not a mapping")
    return {key: KeySpec.from_attrs(key, spec) for key, spec in keys.items()}


def check_format(attrs: dict[str, Any], where: str) -> None:
    """Refuse stores written by a newer robot_il (or by something else under our name)."""
    version = attrs.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise DatasetError(f"{where}: attrs format_version {version!r} is not a valid version")
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"{where}: format version {version} is newer than this robot_il reads "
            f"({FORMAT_VERSION}); upgrade robot_il"
        )


def compressor_for(spec: KeySpec, zarr_format: int = 3) -> Any:
    """Blosc/zstd for every key: byte shuffle helps float rows; images (1-byte items) skip it
    and use a lower level, because the recorder compresses 30-60 camera frames a second.
    Format 2 stores (the diffusion_policy export) take the numcodecs form of the same codec."""
    shuffle = "noshuffle" if spec.is_image else "shuffle"
    clevel = 1 if spec.is_image else 3
    if zarr_format == 2:
        import numcodecs

        code = numcodecs.Blosc.NOSHUFFLE if spec.is_image else numcodecs.Blosc.SHUFFLE
        return numcodecs.Blosc(cname="zstd", clevel=clevel, shuffle=code)
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=clevel, shuffle=shuffle)
