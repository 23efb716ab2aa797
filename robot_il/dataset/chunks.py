"""Reading rows of a zarr array by decoding its chunks directly, for training-speed access.

zarr's general read path (async store, codec pipeline, selection logic) costs about a
millisecond per call; a training window reads a few rows of several keys, so that overhead,
not decompression, set the pace (about 200 windows/s). The arrays robot_il writes use one
simple layout: regular chunks along time only, C order, raw little-endian bytes compressed by
Blosc, no filters. For exactly that layout (zarr format 3, or the format 2 export) a chunk is
``blosc.decompress(file bytes)``, so this module reads it that way; anything else keeps
zarr's path. Each reader checks itself against zarr on the first chunk before it is trusted.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numcodecs
import numpy as np
import zarr
from numcodecs import blosc
from zarr.codecs import BloscCodec, BytesCodec
from zarr.core.chunk_grids import RegularChunkGrid

if TYPE_CHECKING:
    from robot_il.dataset.shards import ShardRows

Fetch = Callable[[str], "bytes | None"]


class MissingChunk(LookupError):
    """A chunk (or shard slot) of committed rows holds no data. robot_il writes every chunk,
    even one equal to the fill value, so in its datasets this is damage (a copy cut short),
    which must fail instead of reading as the zeros zarr would give."""


def directly_readable(array: zarr.Array) -> bool:
    """True when ``array``'s chunks are plain Blosc-compressed C-order rows (see module doc)."""
    if array.ndim < 1 or array.dtype.kind not in "biuf" or array.order != "C":
        return False
    if tuple(array.chunks[1:]) != tuple(array.shape[1:]):
        return False
    metadata = array.metadata
    if metadata.zarr_format == 3:
        codecs = metadata.codecs
        if not isinstance(metadata.chunk_grid, RegularChunkGrid) or len(codecs) != 2:
            return False
        serializer, compressor = codecs
        little = serializer.endian is None or serializer.endian.value == "little"
        return isinstance(serializer, BytesCodec) and little and isinstance(compressor, BloscCodec)
    return (
        metadata.zarr_format == 2
        and not array.filters
        and len(array.compressors) == 1
        and isinstance(array.compressors[0], numcodecs.Blosc)
    )


class ChunkRows:
    """Rows ``[start, stop)`` of one array, decoded chunk by chunk from bytes ``fetch`` gives
    (a file read, or a dict of compressed chunks held in RAM). An absent chunk reads as the
    fill value, as in zarr, or raises :class:`MissingChunk` when ``absent_is_damage``."""

    def __init__(
        self, array: zarr.Array, fetch: Fetch, held: bool = False, absent_is_damage: bool = False
    ) -> None:
        self.held = held  # True when ``fetch`` serves compressed chunks kept in RAM
        self.absent_is_damage = absent_is_damage
        self.chunk_rows = int(array.chunks[0])
        self.step_shape = tuple(array.shape[1:])
        self.dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        self.fill_value = array.fill_value
        self._fetch = fetch
        rest = (0,) * (array.ndim - 1)
        self._keys: Callable[[int], str] = lambda index: array.metadata.encode_chunk_key(
            (index, *rest)
        )

    def chunk_key(self, index: int) -> str:
        """The store key of chunk ``index`` relative to the array (e.g. ``c/12/0/0/0``)."""
        return self._keys(index)

    def chunk(self, index: int) -> np.ndarray:
        data = self._fetch(self._keys(index))
        if data is None and self.absent_is_damage:
            raise MissingChunk(f"chunk file {self._keys(index)} is missing")
        if data is None:  # zarr's meaning of an absent chunk
            return np.full((self.chunk_rows, *self.step_shape), self.fill_value, self.dtype)
        chunk = np.empty((self.chunk_rows, *self.step_shape), self.dtype)
        blosc.decompress(data, chunk)  # straight into a writable array, no extra copy
        return chunk

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop = rows.start, rows.stop
        size = self.chunk_rows
        first, last = start // size, (stop - 1) // size
        if stop <= start:
            return np.empty((0, *self.step_shape), self.dtype)
        if first == last:
            return self.chunk(first)[start - first * size : stop - first * size]
        parts = [self.chunk(i) for i in range(first, last + 1)]
        return np.concatenate(parts)[start - first * size : stop - first * size]


def file_fetch(directory: Path) -> Fetch:
    """Chunk bytes from the files of a local array directory (None where a file is absent)."""

    def fetch(key: str) -> bytes | None:
        try:
            with open(directory / key, "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    return fetch


def agrees_with_zarr(rows: ChunkRows | ShardRows, array: zarr.Array, num_rows: int) -> bool:
    """Self-check of a direct reader: its first ``num_rows`` rows equal what zarr decodes (a
    missing chunk raises ``MissingChunk``: damage, not a misread layout)."""
    if num_rows == 0:
        return True
    try:
        return bool(np.array_equal(rows[0:num_rows], array[0:num_rows]))
    except MissingChunk:
        raise  # damage, not a layout this module misreads
    except Exception:
        return False


class ChunkFiles:
    """Writes whole chunks of a local, directly readable array as files, exactly as zarr's
    LocalStore does (encode, write a temporary file, rename over the target), minus zarr's
    per-call overhead. The recorder's per-frame path: one camera frame = one chunk file."""

    _SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}

    def __init__(self, array: zarr.Array, directory: Path) -> None:
        if array.metadata.zarr_format != 3 or not directly_readable(array):
            raise ValueError(f"{array.path}: not a layout ChunkFiles can write")
        codec = array.metadata.codecs[1]
        self._codec = numcodecs.Blosc(
            cname=codec.cname.value,
            clevel=codec.clevel,
            shuffle=self._SHUFFLE[codec.shuffle.value],
            blocksize=codec.blocksize,
            typesize=codec.typesize,
        )
        self._rows = ChunkRows(array, file_fetch(directory))
        self._directory = directory

    def write(self, index: int, rows: np.ndarray) -> None:
        """Store ``rows`` (exactly one chunk's rows, the array's dtype) as chunk ``index``."""
        expected = (self._rows.chunk_rows, *self._rows.step_shape)
        if rows.shape != expected:
            raise ValueError(f"chunk {index}: rows of shape {rows.shape}, expected {expected}")
        data = self._codec.encode(np.ascontiguousarray(rows, dtype=self._rows.dtype))
        path = self._directory / self._rows.chunk_key(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        with open(partial, "wb") as file:
            file.write(data)
        os.replace(partial, path)

    def agrees_with_zarr(self, array: zarr.Array, index: int) -> bool:
        """Self-check after the first write: zarr decodes what this class wrote."""
        size = self._rows.chunk_rows
        return bool(
            np.array_equal(self._rows.chunk(index), array[index * size : (index + 1) * size])
        )
