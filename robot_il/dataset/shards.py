"""Reading and writing the shard files of compressed image arrays directly.

A compressed camera key is a zarr v3 array whose chunks are single frames encoded by
:class:`~robot_il.dataset.image_codec.ImageCodec`, packed many to a file by zarr's sharding
codec. A shard file is the encoded frames back to back, then an index of ``(offset, nbytes)``
little-endian uint64 pairs, one per frame slot (``2**64 - 1`` twice for an empty slot), then
the CRC32C of that index (zarr's sharding specification, index at the end).

zarr's general read path costs about a millisecond per call, more than decoding a small frame;
so, as :mod:`.chunks` does for Blosc chunks, this module reads a frame as two ``pread`` calls
(index, frame) and one image decode, and the recorder writes whole shard files the way zarr's
LocalStore does (temporary file, atomic rename). Both check themselves against zarr's own
decoding before they are trusted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec

from robot_il.dataset.chunks import MissingChunk
from robot_il.dataset.image_codec import ImageCodec, decode_frame

#: Offset and size of a frame slot no frame was written to.
EMPTY_SLOT = np.uint64(2**64 - 1)
_CRC = numcodecs.CRC32C()
#: Reads ``nbytes`` at ``offset`` of a shard (negative offset: from the end); None if absent.
RangeFetch = Callable[[str, int, int], "bytes | None"]


def image_codec_of(array: zarr.Array) -> ImageCodec | None:
    """The image codec of a sharded compressed image array of the layout above, else None."""
    metadata = array.metadata
    if metadata.zarr_format != 3 or len(metadata.codecs) != 1:
        return None
    sharding = metadata.codecs[0]
    if not isinstance(sharding, ShardingCodec) or len(sharding.codecs) != 1:
        return None
    inner, index_codecs = sharding.codecs[0], sharding.index_codecs
    if not isinstance(inner, ImageCodec) or sharding.index_location.value != "end":
        return None
    if len(index_codecs) != 2 or not isinstance(index_codecs[0], BytesCodec):
        return None
    if not isinstance(index_codecs[1], Crc32cCodec) or tuple(sharding.chunk_shape[1:]) != tuple(
        array.shape[1:]
    ):
        return None
    return inner


def index_bytes(frames_per_shard: int) -> int:
    """Size of a shard's index with its checksum."""
    return 16 * frames_per_shard + 4


def parse_index(data: bytes, frames_per_shard: int, where: str) -> np.ndarray:
    """(frames_per_shard, 2) uint64 offsets and sizes of the index bytes ``data``."""
    if len(data) != index_bytes(frames_per_shard):
        raise ValueError(f"{where}: shard index of {len(data)} bytes, expected "
                         f"{index_bytes(frames_per_shard)} (truncated shard file)")  # fmt: skip
    try:
        body = _CRC.decode(data)
    except RuntimeError as error:
        raise ValueError(f"{where}: shard index checksum mismatch") from error
    return np.frombuffer(body, dtype="<u8").reshape(frames_per_shard, 2)


class ShardLayout:
    """Where frame ``t`` of a sharded image array lives: shard key and slot."""

    def __init__(self, array: zarr.Array) -> None:
        codec = image_codec_of(array)
        if codec is None:
            raise ValueError(f"{array.path}: not a sharded image array")
        self.codec = codec
        self.frames_per_shard = int(array.shards[0])
        self.frame_shape = tuple(array.shape[1:])
        rest = (0,) * (array.ndim - 1)
        self._encode = array.metadata.encode_chunk_key
        self._rest = rest

    def shard_key(self, shard: int) -> str:
        return self._encode((shard, *self._rest))


class ShardRows:
    """Frames ``[start, stop)`` of one sharded image array, decoded one frame at a time from
    byte ranges ``fetch`` gives (``pread`` of files, or slices of shards held in RAM). A frame
    with no data reads black, as in zarr, or raises :class:`~robot_il.dataset.chunks.
    MissingChunk` when ``absent_is_damage``."""

    def __init__(
        self,
        array: zarr.Array,
        fetch: RangeFetch,
        committed: int,
        held: bool = False,
        absent_is_damage: bool = False,
    ) -> None:
        self.held = held
        self.absent_is_damage = absent_is_damage
        self.layout = ShardLayout(array)
        # a writer rewrites only the shard its next episode starts in: shards wholly below
        # the committed length never change, so their indexes are read once
        self._stable_shards = committed // self.layout.frames_per_shard if not held else None
        self.step_shape = self.layout.frame_shape
        self.dtype = np.dtype(np.uint8)
        self._fetch = fetch
        self._indexes: dict[int, np.ndarray] = {}

    def frame(self, step: int) -> np.ndarray:
        data = self.encoded(step)
        if data is None and self.absent_is_damage:
            shard = step // self.layout.frames_per_shard
            raise MissingChunk(f"frame {step} has no data in shard {self.layout.shard_key(shard)}")
        if data is None:  # an empty slot or absent shard reads as black, as in zarr
            return np.zeros(self.step_shape, np.uint8)
        return decode_frame(data, self.layout.codec.image_format, self.step_shape)

    def encoded(self, step: int) -> bytes | None:
        """The image-file bytes of frame ``step`` as stored (None: no frame stored)."""
        layout = self.layout
        shard, slot = divmod(step, layout.frames_per_shard)
        key = layout.shard_key(shard)
        index = self._indexes.get(shard)
        if index is None:
            raw = self._fetch(key, -index_bytes(layout.frames_per_shard), 0)
            if raw is None:  # zarr's meaning of an absent shard
                return None
            index = parse_index(raw, layout.frames_per_shard, key)
            if self._stable_shards is None or shard < self._stable_shards:
                self._indexes[shard] = index
        offset, nbytes = index[slot]
        if offset == EMPTY_SLOT:
            return None
        data = self._fetch(key, int(offset), int(nbytes))
        if data is None or len(data) != int(nbytes):
            raise ValueError(f"{key}: frame {slot} lies beyond the end of the shard file")
        return bytes(data)

    def __getitem__(self, rows: slice) -> np.ndarray:
        out = np.empty((max(0, rows.stop - rows.start), *self.step_shape), np.uint8)
        for i, step in enumerate(range(rows.start, rows.stop)):
            out[i] = self.frame(step)
        return out


def file_range_fetch(directory: Path) -> RangeFetch:
    """Byte ranges of the shard files of a local array directory (None where absent)."""

    def fetch(key: str, offset: int, nbytes: int) -> bytes | None:
        try:
            fd = os.open(directory / key, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if offset < 0:
                size = os.fstat(fd).st_size
                return os.pread(fd, -offset, max(0, size + offset)) if size >= -offset else b""
            return os.pread(fd, nbytes, offset)
        finally:
            os.close(fd)

    return fetch


def held_range_fetch(shards: dict[str, bytes]) -> RangeFetch:
    """Byte ranges of whole shard files held in RAM."""

    def fetch(key: str, offset: int, nbytes: int) -> bytes | None:
        data = shards.get(key)
        if data is None:
            return None
        if offset < 0:
            return data[offset:] if len(data) >= -offset else b""
        return data[offset : offset + nbytes]

    return fetch


class ShardFiles:
    """Writes the shard files of a local sharded image array: frames are encoded one by one
    as they arrive (the recorder's CPU cost spread evenly), then a shard's frames are written
    as one file, merged with frames already in that shard (the one a previous episode ended
    in), with a temporary file and an atomic rename, as zarr's LocalStore writes."""

    def __init__(self, array: zarr.Array, directory: Path) -> None:
        self.layout = ShardLayout(array)
        self._directory = directory
        self._fetch = file_range_fetch(directory)

    def encode(self, frame: np.ndarray) -> bytes:
        return self.layout.codec.encode_image(frame)

    def write(self, shard: int, frames: dict[int, bytes], keep_before: int) -> None:
        """Write shard ``shard`` holding ``frames`` (slot -> encoded frame) plus the frames
        of slots below ``keep_before`` already in the shard's file (committed ones)."""
        layout = self.layout
        size = layout.frames_per_shard
        key = layout.shard_key(shard)
        slots: dict[int, bytes] = {}
        if keep_before > 0:
            raw = self._fetch(key, -index_bytes(size), 0)
            if raw is not None:
                index = parse_index(raw, size, key)
                for slot in range(min(keep_before, size)):
                    offset, nbytes = index[slot]
                    if offset != EMPTY_SLOT:
                        data = self._fetch(key, int(offset), int(nbytes))
                        slots[slot] = data if data is not None else b""
        slots.update(frames)
        index = np.full((size, 2), EMPTY_SLOT, dtype="<u8")
        parts, position = [], 0
        for slot in sorted(slots):
            data = slots[slot]
            index[slot] = (position, len(data))
            parts.append(data)
            position += len(data)
        parts.append(_CRC.encode(index.tobytes()))
        path = self._directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        with open(partial, "wb") as file:
            file.write(b"".join(parts))
        os.replace(partial, path)
