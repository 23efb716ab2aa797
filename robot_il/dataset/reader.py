"""Reading a dataset: episodes, keys and step ranges, lazily from disk or cached in RAM.

``Dataset.open`` checks the structure up front (format version, every key present with the
dtype and shape the attrs promise, enough steps for every committed episode), so a damaged
store fails at open with the key and episode named instead of deep inside a training run.
Chunk contents are checked when read: a corrupt chunk raises a DatasetError naming the key
and episode. ``validate`` (in :mod:`.validate`) scans everything and reports all problems.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import zarr
from tqdm.auto import tqdm
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from robot_il.dataset.chunks import (
    ChunkRows,
    MissingChunk,
    agrees_with_zarr,
    directly_readable,
    file_fetch,
)
from robot_il.dataset.format import (
    DATA_GROUP,
    EPISODE_ENDS,
    EPISODE_ENDS_PATH,
    FORMAT_NAME,
    META_GROUP,
    KeySpec,
    check_format,
    specs_from_attrs,
)
from robot_il.dataset.shards import (
    ShardRows,
    file_range_fetch,
    held_range_fetch,
    image_codec_of,
)
from robot_il.dataset.store import local_path, one_line, open_root
from robot_il.dataset.writer import committed_ends
from robot_il.errors import DatasetError

CacheMode = Literal["none", "ram", "compressed"]
CACHE_MODES = ("none", "ram", "compressed")


class Dataset:
    """A read-only view of a dataset's committed episodes.

    ``cache="none"`` reads chunks from the store on demand (datasets larger than RAM);
    ``cache="ram"`` decompresses every key once at open into read-only numpy arrays, so that
    training windows cost what slicing numpy costs; ``cache="compressed"`` holds image chunks
    compressed in RAM (a fraction of their raw size) and decodes frames on access, low-dim
    keys decoded.
    Steps beyond the last committed episode (left by a killed recorder) are invisible.
    """

    def __init__(
        self,
        root: zarr.Group,
        where: str,
        cache: CacheMode = "none",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if cache not in CACHE_MODES:
            raise DatasetError(f"{where}: cache must be one of {CACHE_MODES}, got {cache!r}")
        self.where = where
        self.cache: CacheMode = cache
        self._storage_options = storage_options
        self._root = root
        self.attrs: dict[str, Any] = root.attrs.asdict()
        if "format" in self.attrs:
            if self.attrs["format"] != FORMAT_NAME:
                raise DatasetError(f"{where}: attrs format {self.attrs['format']!r} is not ours")
            check_format(self.attrs, where)
        data = _member(root, DATA_GROUP, where, zarr.Group)
        meta = _member(root, META_GROUP, where, zarr.Group)
        ends_array = _member(root, EPISODE_ENDS_PATH, where, zarr.Array)
        try:
            stored_ends = ends_array[:]
        except Exception as error:
            raise DatasetError(
                f"{where}: {EPISODE_ENDS_PATH} unreadable: {one_line(error)}"
            ) from error
        self.episode_ends: np.ndarray = committed_ends(stored_ends, where)
        self.episode_ends.flags.writeable = False
        if "format" in self.attrs:
            self.specs = specs_from_attrs(self.attrs)
        else:  # diffusion_policy's ReplayBuffer (or our v2 export without attrs): infer specs
            self.specs = {key: KeySpec.infer(key, array[:0]) for key, array in data.arrays()}
        self._arrays: dict[str, Any] = {}
        for key, spec in self.specs.items():
            array = self._checked_array(data, key, spec)
            hold = cache == "compressed" and spec.is_image
            self._arrays[key] = _StoreRows(self, key, array, self._direct_rows(array, hold))
        self._meta = self._read_meta(meta)
        if cache == "ram":
            self._load_into_ram(self.keys)
        elif cache == "compressed":  # low-dim keys (small) and keys zarr must decode: decoded
            self._load_into_ram([k for k, rows in self._arrays.items() if not rows.held])

    @classmethod
    def open(
        cls,
        path_or_url: str | os.PathLike[str],
        *,
        cache: CacheMode = "none",
        storage_options: dict[str, Any] | None = None,
    ) -> Dataset:
        """Open a local path or fsspec URL (``storage_options`` go to fsspec)."""
        root = open_root(path_or_url, mode="r", storage_options=storage_options)
        return cls(root, str(path_or_url), cache, storage_options)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as "open this store again" (DataLoader workers under spawn): each process
        opens its own store handles, and with cache="ram" loads its own copy."""
        return (_reopen, (self.where, self.cache, self._storage_options))

    # ---------------------------------------------------------------- structure

    @property
    def keys(self) -> list[str]:
        return list(self.specs)

    @property
    def num_episodes(self) -> int:
        return int(self.episode_ends.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1]) if self.num_episodes else 0

    @property
    def robot(self) -> str:
        return str(self.attrs.get("robot", "unknown"))

    @property
    def control_hz(self) -> float | None:
        value = self.attrs.get("control_hz")
        return None if value is None else float(value)

    @property
    def image_keys(self) -> list[str]:
        return [key for key, spec in self.specs.items() if spec.is_image]

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_ends, prepend=0)

    @property
    def arrays(self) -> dict[str, Any]:
        """Key -> rows sliceable along time with ``[start:stop]`` (a read-only numpy array
        when cached in RAM, else a store reader); for the sampler. Only indices below
        :attr:`num_steps` are committed data."""
        return self._arrays

    def episode_slice(self, episode: int) -> slice:
        """Global step range of ``episode`` (negative indices count from the end)."""
        n = self.num_episodes
        if not -n <= episode < n:
            raise DatasetError(f"{self.where}: episode {episode} out of range ({n} episodes)")
        episode %= n
        start = int(self.episode_ends[episode - 1]) if episode else 0
        return slice(start, int(self.episode_ends[episode]))

    def episode_of(self, step: int) -> int:
        """The episode that global ``step`` belongs to."""
        return int(np.searchsorted(self.episode_ends, step, side="right"))

    # ---------------------------------------------------------------- data

    def get(self, key: str, start: int, stop: int) -> np.ndarray:
        """Steps ``[start, stop)`` of ``key`` (global indices, may span episodes)."""
        if key not in self._arrays:
            raise DatasetError(f"{self.where}: no key {key!r} (keys: {self.keys})")
        if not 0 <= start <= stop <= self.num_steps:
            raise DatasetError(
                f"{self.where}: data/{key} steps [{start}, {stop}) outside [0, {self.num_steps})"
            )
        return self.read(key, start, stop)

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        """:meth:`get` without the argument checks (hot path); read errors are still named."""
        return self._arrays[key][start:stop]

    def encoded_frame(self, key: str, step: int) -> tuple[Any, bytes] | None:
        """Frame ``step`` of ``key`` as stored: (its :class:`~robot_il.dataset.image_codec.
        ImageCodec`, the image-file bytes), for copying without a second lossy encoding;
        None when ``key`` is not read directly from shards (then use :meth:`get`)."""
        rows = self._arrays.get(key)
        direct = getattr(rows, "direct", None)
        if not isinstance(direct, ShardRows) or not 0 <= step < self.num_steps:
            return None
        data = direct.encoded(step)
        return None if data is None else (direct.layout.codec, data)

    def episode(self, episode: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """All steps of one episode, key -> (T, *shape)."""
        span = self.episode_slice(episode)
        return {key: self.get(key, span.start, span.stop) for key in (keys or self.keys)}

    def meta(self, episode: int) -> dict[str, Any]:
        """Per-episode values (success, task, operator, ...) as Python scalars."""
        self.episode_slice(episode)  # range check
        episode %= self.num_episodes
        return {name: _scalar(values[episode]) for name, values in self._meta.items()}

    @property
    def meta_names(self) -> list[str]:
        return list(self._meta)

    # ---------------------------------------------------------------- helpers

    def _checked_array(self, data: zarr.Group, key: str, spec: KeySpec) -> zarr.Array:
        where = f"{self.where}: data/{key}"
        array = _member(data, key, self.where, zarr.Array, label=f"data/{key}")
        if array.dtype != np.dtype(spec.dtype):
            raise DatasetError(f"{where}: dtype {array.dtype}, attrs say {spec.dtype}")
        if tuple(array.shape[1:]) != spec.shape:
            raise DatasetError(f"{where}: step shape {array.shape[1:]}, attrs say {spec.shape}")
        if array.shape[0] < self.num_steps:
            episode = self.episode_of(array.shape[0])
            raise DatasetError(
                f"{where}: {array.shape[0]} steps but episode {episode} ends at "
                f"{int(self.episode_ends[episode])} (store truncated)"
            )
        return array

    def _read_meta(self, meta: zarr.Group) -> dict[str, np.ndarray]:
        values = {}
        for name, array in meta.arrays():
            if name == EPISODE_ENDS:
                continue
            try:
                stored = array[: self.num_episodes]
            except Exception as error:
                raise DatasetError(
                    f"{self.where}: meta/{name} unreadable: {one_line(error)}"
                ) from error
            if stored.shape[0] < self.num_episodes:
                raise DatasetError(
                    f"{self.where}: meta/{name} has {stored.shape[0]} entries for "
                    f"{self.num_episodes} episodes (episode {stored.shape[0]} has none)"
                )
            values[name] = stored
        return values

    def _direct_rows(self, array: zarr.Array, hold: bool) -> ChunkRows | ShardRows | None:
        """A fast chunk decoder for ``array`` when its layout allows (see :mod:`.chunks` and
        :mod:`.shards`), reading files, or compressed chunks held in RAM when ``hold``. In a
        store robot_il wrote (attrs ``format``) an absent chunk is damage: it raises when
        read (here already, if it is the first, which the decoder is checked on)."""
        try:
            if image_codec_of(array) is not None:
                return self._direct_shards(array, hold)
            return self._direct_chunks(array, hold)
        except MissingChunk as error:
            raise DatasetError(f"{self.where}: {array.path}: {error}") from None

    def _direct_chunks(self, array: zarr.Array, hold: bool) -> ChunkRows | None:
        if not directly_readable(array):
            return None
        directory = local_path(self.where)
        if hold:
            held = _held_files(self._root, array, self.num_steps, int(array.chunks[0]))
            fetch = held.get
        elif directory is not None:
            fetch = file_fetch(directory / array.path)
        else:
            return None  # remote stores: zarr's path batches requests better
        rows = ChunkRows(array, fetch, held=hold, absent_is_damage="format" in self.attrs)
        first_chunk = min(self.num_steps, rows.chunk_rows)
        return rows if agrees_with_zarr(rows, array, first_chunk) else None

    def _direct_shards(self, array: zarr.Array, hold: bool) -> ShardRows | None:
        directory = local_path(self.where)
        if hold:
            held = _held_files(self._root, array, self.num_steps, int(array.shards[0]))
            fetch = held_range_fetch(held)
        elif directory is not None:
            fetch = file_range_fetch(directory / array.path)
        else:
            return None
        rows = ShardRows(
            array, fetch, self.num_steps, held=hold, absent_is_damage="format" in self.attrs
        )
        first_frame = min(self.num_steps, 1)  # decoding a whole shard would cost more
        return rows if agrees_with_zarr(rows, array, first_frame) else None

    def _load_into_ram(self, keys: list[str]) -> None:
        """Read ``keys`` whole into RAM; the progress bar counts camera frames decoded, episode
        by episode (the slow part: 200 push demonstrations of one camera, 14,000 frames, take
        about 30 s; the low-dimensional keys a fraction of a second)."""
        frames = self.num_steps * sum(self.specs[key].is_image for key in keys)
        with tqdm(
            total=frames, desc="decoding frames into RAM", unit="frame",
            leave=False, disable=None if frames else True,
        ) as bar:  # fmt: skip
            for key in keys:
                spec = self.specs[key]
                loaded = np.empty((self.num_steps, *spec.shape), spec.dtype)
                for episode in range(self.num_episodes):
                    span = self.episode_slice(episode)
                    loaded[span] = self.read(key, span.start, span.stop)
                    if spec.is_image:
                        bar.update(span.stop - span.start)
                loaded.flags.writeable = False  # windows are views: consumers must not edit
                self._arrays[key] = loaded

    def __repr__(self) -> str:
        return (
            f"Dataset({self.where!r}, episodes={self.num_episodes}, steps={self.num_steps}, "
            f"keys={self.keys}, cache={self.cache!r})"
        )


class _StoreRows:
    """Rows of one key read from the store (directly decoded where possible, else by zarr);
    a failing read becomes a DatasetError naming the key and the episode."""

    def __init__(
        self, dataset: Dataset, key: str, array: zarr.Array, direct: ChunkRows | None
    ) -> None:
        self._dataset = dataset
        self._key = key
        self._source = array if direct is None else direct
        self.direct = direct
        self.held = direct is not None and direct.held

    def __getitem__(self, rows: slice) -> np.ndarray:
        try:
            return self._source[rows]
        except Exception as error:
            dataset = self._dataset
            raise DatasetError(
                f"{dataset.where}: data/{self._key} episode {dataset.episode_of(rows.start)} "
                f"(steps {rows.start}-{rows.stop}) unreadable: {one_line(error)}"
            ) from error


def _held_files(
    root: zarr.Group, array: zarr.Array, num_steps: int, rows_per_file: int
) -> dict[str, bytes]:
    """Every chunk (or shard) file holding committed rows of ``array``, compressed, in RAM,
    by key relative to the array; ``rows_per_file`` steps per file."""
    rest = (0,) * (array.ndim - 1)
    prefix = f"{root.store_path.path}/{array.path}/".lstrip("/")
    prototype = default_buffer_prototype()

    async def load() -> dict[str, bytes]:
        held = {}
        for index in range(-(-num_steps // rows_per_file)):
            key = array.metadata.encode_chunk_key((index, *rest))
            buffer = await root.store.get(prefix + key, prototype=prototype)
            if buffer is not None:
                held[key] = buffer.to_bytes()
        return held

    return sync(load())


def _reopen(where: str, cache: CacheMode, storage_options: dict[str, Any] | None) -> Dataset:
    return Dataset.open(where, cache=cache, storage_options=storage_options)


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python scalar a JSON file or a log line would hold."""
    return value.item() if hasattr(value, "item") else value


def _member(group: zarr.Group, path: str, where: str, kind: type, label: str | None = None) -> Any:
    label = label or path
    try:
        member = group[path]
    except KeyError as error:
        raise DatasetError(f"{where}: not a dataset or damaged: {label} is missing") from error
    except Exception as error:
        raise DatasetError(
            f"{where}: {label} has unreadable metadata: {one_line(error)}"
        ) from error
    if not isinstance(member, kind):
        raise DatasetError(
            f"{where}: {label} is a {type(member).__name__}, expected {kind.__name__}"
        )
    return member
