"""Appending episodes to a dataset so that a kill at any instant loses at most the episode
in flight (the batch in flight, for :meth:`DatasetWriter.add_episodes`).

Commit protocol (every file write is an atomic rename, see :mod:`.durability`):

1. the episode's steps go to ``data/<key>`` (arrays grow past the committed length);
2. its per-episode values go to ``meta/<name>`` at index ``num_episodes`` (an int array
   given a float is first widened to float64, a new array swapped in whole);
3. the filesystem is flushed (``fsync=True``), so the data is on disk before it is visible;
4. ``meta/episode_ends`` grows by one entry (one per episode of a batch, all in one chunk):
   first its shape (``zarr.json``), then its chunk. The episode exists once both are written;
5. the filesystem is flushed again. A failure here leaves the episode visible: it counts as
   committed (the next one goes after it, never over it) and the commit raises saying so.

A kill before step 4 leaves only data beyond the last committed end, which readers ignore and
:meth:`DatasetWriter.open` truncates. A kill inside step 4 leaves last entries equal to the
fill value 0, which cannot be a real end (ends strictly increase from >= 1): readers and the
writer treat them as uncommitted too. Committed chunks are never rewritten in place except the
boundary chunk a new episode shares, and that rewrite is itself an atomic file replacement.

zarr writes by path: a dataset folder moved or removed while a writer has it open would get
nothing more, and a new tree of loose chunks would grow at the old path. The writer checks its
folder before each write (a camera frame, a commit, a new episode) and refuses instead; a
commit that fails while writing loses its episode, as a kill would, and frees the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync as zarr_sync

from robot_il.dataset.chunks import ChunkFiles
from robot_il.dataset.durability import (
    flush_filesystem,
    lock_for_writing,
    os_error_reason,
    remove_partial_files,
    remove_tree,
    replace_atomically,
    swap_directories,
)
from robot_il.dataset.format import (
    DATA_GROUP,
    EPISODE_ENDS,
    EPISODE_ENDS_PATH,
    META_CHUNK,
    META_GROUP,
    ImageStorage,
    KeySpec,
    check_format,
    compressor_for,
    image_array_layout,
    root_attrs,
    specs_from_attrs,
)
from robot_il.dataset.shards import ShardFiles, ShardRows, file_range_fetch, image_codec_of
from robot_il.dataset.store import is_url, open_root
from robot_il.errors import DatasetError

_WRITE_CONFIG = {"write_empty_chunks": True}  # an all-black frame must still be a file

BATCH_BYTES = 32 * 2**20
"""Step bytes (raw) that :meth:`DatasetWriter.add_episodes` gathers in RAM before it writes
and commits them; an episode of camera frames larger than that is a batch of its own."""


def committed_ends(ends: np.ndarray, where: str) -> np.ndarray:
    """The committed prefix of a stored ``episode_ends``: drops the torn last entries (0; more
    than one after a batch of :meth:`DatasetWriter.add_episodes`).

    Anything else that is not strictly increasing from >= 1 is corruption, not a crash.
    """
    ends = np.asarray(ends, dtype=np.int64)
    ends = np.trim_zeros(ends, "b")
    previous = 0
    for episode, end in enumerate(ends.tolist()):
        if end <= previous:
            raise DatasetError(
                f"{where}: {EPISODE_ENDS_PATH}[{episode}] = {end} does not follow {previous} "
                f"(episode {episode} would be empty or negative)"
            )
        previous = end
    return ends


class DatasetWriter:
    """Writes episodes into one local zarr dataset; one episode may be in flight at a time."""

    def __init__(self, path: Path, root: zarr.Group, fsync: bool) -> None:
        self.path = path
        self._root = root
        self._fsync = fsync
        self._lock = lock_for_writing(path)
        held = os.stat(path)
        self._folder = (held.st_dev, held.st_ino)
        """The dataset folder's identity: zarr writes by path, so after a move or removal of
        the folder every write would build a new tree of loose chunks at the old path."""
        attrs = root.attrs.asdict()
        check_format(attrs, str(path))
        self._specs = specs_from_attrs(attrs)
        self.image_storage = ImageStorage.from_attrs(attrs)
        self._arrays: dict[str, zarr.Array] = {}
        for key in self._specs:
            try:
                self._arrays[key] = root[f"{DATA_GROUP}/{key}"].with_config(_WRITE_CONFIG)
            except KeyError as error:
                raise DatasetError(f"{path}: key data/{key} is missing") from error
        try:
            self._ends = root[EPISODE_ENDS_PATH].with_config(_WRITE_CONFIG)
        except KeyError as error:
            raise DatasetError(f"{path}: {EPISODE_ENDS_PATH} is missing") from error
        try:
            meta_arrays = list(root[META_GROUP].arrays())
        except KeyError as error:
            raise DatasetError(f"{path}: group {META_GROUP}/ is missing") from error
        self._meta: dict[str, zarr.Array] = {
            name: array.with_config(_WRITE_CONFIG)
            for name, array in meta_arrays
            if name != EPISODE_ENDS
        }
        self._episode_ends = committed_ends(self._ends[:], str(path)).tolist()
        self._in_flight: EpisodeWriter | None = None
        self._frame_files: dict[str, ChunkFiles | None] = {}
        self._shard_files: dict[str, ShardFiles] = {}
        self._checked_shards: set[str] = set()

    # ---------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        robot: str,
        control_hz: float,
        keys: dict[str, KeySpec] | None = None,
        attrs: dict[str, Any] | None = None,
        overwrite: bool = False,
        fsync: bool = True,
        image_storage: ImageStorage | None = None,
    ) -> DatasetWriter:
        """A new, empty dataset at the local ``path``.

        ``keys`` fixes the per-step spec of every key up front; without it the first episode
        defines them (with :func:`~robot_il.dataset.format.default_units`). ``attrs`` holds
        free extra attributes (task, env spec). An existing dataset is replaced only with
        ``overwrite=True`` and while no writer has it open, and a directory that is not a
        zarr store never is. ``fsync=False`` keeps the SIGKILL guarantee but gives up the
        power-loss one (for tests, scratch data).
        ``image_storage`` says how camera frames are stored (default: JPEG XL, quality 90,
        in shards; ``ImageStorage("blosc")`` keeps them bit-exact).
        """
        target = _local_target(path)
        if control_hz <= 0:
            raise DatasetError(f"{target}: control_hz must be > 0, got {control_hz}")
        storage = image_storage or ImageStorage()
        all_attrs = root_attrs(robot, control_hz, keys or {}, attrs, storage)

        def build(tmp: Path) -> None:  # built aside and renamed: a kill leaves no half store
            root = zarr.open_group(str(tmp), mode="w-", zarr_format=3)
            root.attrs.put(all_attrs)
            root.require_group(DATA_GROUP)
            meta = root.require_group(META_GROUP)
            meta.create_array(
                EPISODE_ENDS, shape=(0,), chunks=(META_CHUNK,), dtype="int64", fill_value=0
            )
            for key, spec in (keys or {}).items():
                _create_data_array(root, key, spec, storage)

        replace_atomically(target, build, force=overwrite, flush=fsync)
        return cls(target, open_root(target, mode="r+"), fsync)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, fsync: bool = True) -> DatasetWriter:
        """Append to an existing dataset, first discarding whatever a killed writer left
        beyond the last committed episode (data steps, meta entries, temporary files)."""
        target = _local_target(path)
        writer = cls(target, open_root(target, mode="r+"), fsync)
        writer._truncate_uncommitted()
        return writer

    def _truncate_uncommitted(self) -> None:
        remove_partial_files(self.path)
        n_steps, n_episodes = self.num_steps, self.num_episodes
        for key, array in self._arrays.items():
            if array.shape[0] < n_steps:
                raise DatasetError(
                    f"{self.path}: data/{key} has {array.shape[0]} steps but committed episodes "
                    f"end at {n_steps} (episode {self._episode_of(array.shape[0])} is truncated)"
                )
            if array.shape[0] > n_steps:
                array.resize((n_steps, *array.shape[1:]))
        for array in self._meta.values():
            if array.shape[0] > n_episodes:
                array.resize((n_episodes,))
        if self._ends.shape[0] > n_episodes:
            self._ends.resize((n_episodes,))

    # ---------------------------------------------------------------- state

    @property
    def num_episodes(self) -> int:
        return len(self._episode_ends)

    @property
    def num_steps(self) -> int:
        return self._episode_ends[-1] if self._episode_ends else 0

    @property
    def keys(self) -> dict[str, KeySpec]:
        return dict(self._specs)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Discard an episode still in flight (committed episodes are already on disk) and
        let another writer open the dataset."""
        if self._in_flight is not None:
            self._in_flight.discard()
        self._lock.close()

    # ---------------------------------------------------------------- writing

    def add_episode(self, steps: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> int:
        """Write a whole episode of time-major arrays (equal lengths >= 1), commit it and
        return its index."""
        return self.add_episodes([(steps, meta)]).start

    def add_episodes(
        self, episodes: Iterable[tuple[dict[str, np.ndarray], dict[str, Any] | None]]
    ) -> range:
        """Write whole episodes (``(steps, meta)`` as :meth:`add_episode` takes) and commit
        them together, in batches of up to :data:`BATCH_BYTES`; returns their indices.

        Why: each commit resizes and rewrites a chunk of every data and meta array: a copy of
        50-step episodes of six low-dim keys took 42 ms an episode, and takes 2 ms in batches
        (``benchmarks/dataset_io.py --only-copies``). A kill loses the
        batch in flight, so a recorder commits episode by episode and a copy into a store
        built aside (which a kill loses whole anyway) batches. An episode refused for bad
        input ends the call: the ones before it are committed, as :meth:`add_episode` one by
        one would have.
        """
        self._refuse_if_in_flight()
        first = self.num_episodes
        batch = _Batch()
        for steps, meta in episodes:
            meta = meta or {}
            if batch.ends and (
                batch.num_bytes >= BATCH_BYTES
                or (self.num_episodes + len(batch.ends)) % META_CHUNK == 0  # one ends chunk
                or self._adds_meta_array(meta)  # only a batch's first episode may
            ):
                self._write_batch(batch)
                batch = _Batch()
            try:
                self._add_to_batch(batch, steps, meta)
            except DatasetError:
                self._write_batch(batch)
                raise
        self._write_batch(batch)
        return range(first, self.num_episodes)

    def _add_to_batch(
        self, batch: _Batch, steps: dict[str, np.ndarray], meta: dict[str, Any]
    ) -> None:
        """Check an episode as :meth:`add_episode` documents and add it to ``batch``."""
        episode = self.num_episodes + len(batch.ends)
        self._check_meta(episode, meta)
        steps = {key: np.asarray(value) for key, value in steps.items()}
        lengths = {key: (value.shape[0] if value.ndim else 0) for key, value in steps.items()}
        if not lengths:
            raise DatasetError(f"episode {episode}: no keys given")
        if len(set(lengths.values())) != 1:
            detail = ", ".join(f"{key}={n}" for key, n in lengths.items())
            raise DatasetError(f"episode {episode}: keys have different lengths ({detail})")
        length = next(iter(lengths.values()))
        if length < 1:
            raise DatasetError(f"episode {episode}: an episode needs at least one step")
        self._check_in_place(f"episode {episode} is not written")
        self._define_keys({key: value[0] for key, value in steps.items()})
        checked = {
            key: self._coerce(key, steps.get(key), episode, leading=length) for key in self._specs
        }
        self._check_keys(steps, episode)
        batch.add(checked, meta)

    def _write_batch(self, batch: _Batch) -> None:
        """Write ``batch``'s steps after the committed ones and commit its episodes."""
        if not batch.ends:
            return
        first = self.num_episodes
        self._check_in_place(f"{_episodes(first, len(batch.ends))} {_is(batch.ends)} not written")
        start = self.num_steps
        steps = {key: np.concatenate(batch.steps[key]) for key in self._specs}
        self._commit([start + n for n in batch.ends], batch.metas, steps)

    def begin_episode(self) -> EpisodeWriter:
        """Start streaming an episode frame by frame (see :class:`EpisodeWriter`)."""
        self._refuse_if_in_flight()
        self._check_in_place(f"episode {self.num_episodes} cannot begin")
        self._in_flight = EpisodeWriter(self)
        return self._in_flight

    def _in_place(self) -> bool:
        """True while ``path`` is still the folder this writer opened (not moved or removed
        meanwhile, by an operator tidying up during a recording)."""
        try:
            held = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (held.st_dev, held.st_ino) == self._folder

    def _check_in_place(self, what: str) -> None:
        """``DatasetError`` (saying ``what`` it stops) unless :meth:`_in_place`: nothing is
        written to a path that no longer holds the dataset."""
        if not self._in_place():
            raise DatasetError(f"{self.path}: the dataset's folder was moved or removed since "
                               f"it was opened for writing; {what}")  # fmt: skip

    def _refuse_if_in_flight(self) -> None:
        if self._in_flight is not None:
            raise DatasetError(
                f"{self.path}: episode {self.num_episodes} is still in flight; commit or "
                "discard it first"
            )

    def _define_keys(self, frame: dict[str, np.ndarray]) -> None:
        """Fix the keys from the first frame of the first episode when create() had none."""
        if self._specs:
            return
        specs = {key: KeySpec.infer(key, np.asarray(value)[None]) for key, value in frame.items()}
        for key, spec in specs.items():  # overwrite: orphans of a writer killed right here
            self._arrays[key] = _create_data_array(
                self._root, key, spec, self.image_storage, overwrite=True
            )
        attrs = self._root.attrs.asdict()
        attrs["keys"] = {key: spec.to_attrs() for key, spec in specs.items()}
        self._root.attrs.put(attrs)
        self._specs = specs

    def _check_keys(self, given: dict[str, Any], episode: int, step: int | None = None) -> None:
        extra = sorted(set(given) - set(self._specs))
        if extra:
            where = f"episode {episode}" + ("" if step is None else f" step {step}")
            raise DatasetError(
                f"{where}: key {extra[0]!r} is not in this dataset (keys: {sorted(self._specs)})"
            )

    def _coerce(
        self,
        key: str,
        value: Any,
        episode: int,
        *,
        leading: int | None = None,
        step: int | None = None,
    ) -> np.ndarray:
        """``value`` as the spec's dtype and shape, or a DatasetError naming key and episode.

        Floats may narrow (float64 -> float32: precision is lost, not range) and ints may
        change width, but only while every value fits: a value that would wrap around or
        overflow to inf is refused. Images must already be uint8, and every float must be
        finite (a NaN or inf in a demonstration is a bug upstream, and it would turn the
        normaliser's statistics into NaN).
        """
        where = f"episode {episode}" + ("" if step is None else f" step {step}")
        if value is None:
            raise DatasetError(f"{where}: missing key {key!r}")
        spec = self._specs[key]
        value = np.asarray(value)
        expected = spec.shape if leading is None else (leading, *spec.shape)
        if value.shape != expected:
            raise DatasetError(f"{where}: key {key!r} has shape {value.shape}, expected {expected}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise DatasetError(f"{where}: key {key!r} contains NaN or inf")
        dtype = np.dtype(spec.dtype)
        if value.dtype != dtype:
            castable = np.can_cast(value.dtype, dtype, casting="same_kind")
            if spec.is_image or not castable or value.dtype.kind != dtype.kind:
                raise DatasetError(
                    f"{where}: key {key!r} has dtype {value.dtype}, expected {dtype}"
                )
            with np.errstate(over="ignore"):  # overflow is detected below, and refused
                cast = value.astype(dtype)
            fits = np.isfinite(cast).all() if dtype.kind == "f" else np.array_equal(cast, value)
            if not fits:
                raise DatasetError(
                    f"{where}: key {key!r}: {value.dtype} values from {value.min()} to "
                    f"{value.max()} do not fit {dtype}"
                )
            value = cast
        return value

    def _write_frame(self, key: str, index: int, frame: np.ndarray) -> None:
        """One image frame = one chunk file, written directly when the layout allows (the
        first such write is checked against zarr's own decoding), else through zarr."""
        array = self._arrays[key]
        if key not in self._frame_files:
            try:
                files: ChunkFiles | None = ChunkFiles(array, self.path / array.path)
            except ValueError:
                files = None
            if files is not None and array.chunks[0] == 1:
                files.write(index, frame[None])
                if files.agrees_with_zarr(array, index):
                    self._frame_files[key] = files
                    return
            self._frame_files[key] = None
        files = self._frame_files[key]
        if files is None:
            array[index] = frame
        else:
            files.write(index, frame[None])

    def image_codec(self, key: str) -> Any:
        """The :class:`~robot_il.dataset.image_codec.ImageCodec` storing ``key``, or None."""
        return image_codec_of(self._arrays[key]) if key in self._arrays else None

    def _shards(self, key: str) -> ShardFiles | None:
        """The shard writer of a compressed image key (None for other keys)."""
        if key not in self._shard_files:
            array = self._arrays[key]
            if image_codec_of(array) is None:
                return None
            self._shard_files[key] = ShardFiles(array, self.path / array.path)
        return self._shard_files[key]

    def _write_shard(self, key: str, shard: int, frames: dict[int, bytes], first: int) -> None:
        """Write shard ``shard`` of ``key`` with encoded ``frames`` (slot -> bytes), keeping
        the frames before global step ``first`` that it already holds. The first shard
        written is read back through zarr: a mismatch is a bug, reported before any more."""
        files = self._shard_files[key]
        size = files.layout.frames_per_shard
        files.write(shard, frames, keep_before=max(0, first - shard * size))
        if key in self._checked_shards:
            return
        array = self._arrays[key]
        step = shard * size + min(frames)
        rows = ShardRows(array, file_range_fetch(self.path / array.path), committed=0)
        if not np.array_equal(rows[step : step + 1], array[step : step + 1]):
            raise DatasetError(f"{self.path}: data/{key}: shard {shard} reads back differently "
                               "through zarr; not recording into it")  # fmt: skip
        self._checked_shards.add(key)

    def _commit(
        self, ends: list[int], metas: list[dict[str, Any]], steps: dict[str, np.ndarray]
    ) -> int:
        """The protocol in the module docstring for the episodes ending at ``ends``: step 1
        for ``steps`` (the last rows of those data arrays; the others are already written),
        then steps 2-5 (``metas`` already checked); returns the first one's index.

        Steps 1 and 2 go to zarr together, as do both halves of step 4 (:func:`_write_tails`).
        Array by array, each resize and write waited for its own round trip to zarr's IO
        thread: a 40-step low-dim episode with a dozen meta values took 194 ms to commit, and
        takes 108 ms (``benchmarks/dataset_io.py --only-commits``)."""
        first = self.num_episodes
        episodes = _episodes(first, len(ends))
        try:
            tails = [
                _Tail(array, ends[-1], steps.get(key))
                for key, array in self._arrays.items()
                if key in steps or array.shape[0] != ends[-1]
            ]
            _write_tails(tails + self._meta_tails(first, metas))
            if self._fsync:
                flush_filesystem(self.path)
        except OSError as error:  # not visible yet: the committed episodes are as they were
            failed = os_error_reason(error, self.path)
            if failed is None:
                raise
            raise DatasetError(
                f"{self.path}: {episodes} {_is(ends)} not committed: {failed}; the dataset keeps "
                f"its {first} committed episode(s)"
            ) from error
        _write_tails([_Tail(self._ends, first + len(ends), np.asarray(ends, self._ends.dtype))])
        self._episode_ends.extend(ends)  # visible from here: the next episode comes after them
        if self._fsync:
            try:
                flush_filesystem(self.path)
            except OSError as error:
                after, held = ("it", "the episode") if len(ends) == 1 else ("them", "them")
                raise DatasetError(
                    f"{self.path}: {episodes} {_is(ends)} committed, but the disk failed the "
                    f"flush after {after} ({os_error_reason(error, self.path) or 'no space left'}"
                    f"): it may not hold {held} after a power loss; check the disk"
                ) from error
        return first

    def check_meta(self, meta: dict[str, Any]) -> None:
        """Raise the DatasetError committing the next episode with ``meta`` would raise,
        writing nothing: a recorder asks before it records an episode it could not commit."""
        self._check_meta(self.num_episodes, meta)

    def _check_meta(self, episode: int, meta: dict[str, Any]) -> None:
        """Refuse, before anything of the episode is written, a meta name or value the
        dataset cannot hold: each meta array keeps the type of its first value, except that
        an int may go into a float array, and a float into an int array widens that array to
        float64 (:meth:`_widen_meta`; refused if it holds an int float64 cannot hold
        exactly). An int must fit its int array (int64 for a new one)."""
        for name, value in meta.items():
            if name == EPISODE_ENDS or "/" in name:
                raise DatasetError(f"episode {episode}: meta name {name!r} is reserved or invalid")
            kind = _meta_kind(value)
            if kind is None:
                raise DatasetError(
                    f"episode {episode}: meta {name!r} must be bool, int, float or str, "
                    f"got {value!r}"
                )
            array = self._meta.get(name)
            stored = None if array is None else _STORED_META_KIND.get(array.dtype.kind)
            if (kind, stored) == ("f", "i"):
                values = array[:]
                if values.size and max(-int(values.min()), int(values.max())) > _FLOAT64_EXACT:
                    raise DatasetError(
                        f"episode {episode}: meta {name!r} = {value!r} would widen its "
                        f"{array.dtype} array to float64, but it holds ints beyond 2**53 "
                        "that float64 cannot hold exactly"
                    )
            elif stored is not None and kind != stored and (kind, stored) != ("i", "f"):
                raise DatasetError(
                    f"episode {episode}: meta {name!r} = {value!r} does not fit its "
                    f"{array.dtype} array (typed by its first value)"
                )
            if kind == "i" and stored in (None, "i"):
                limits = np.iinfo(np.int64 if array is None else array.dtype)
                if not limits.min <= int(value) <= limits.max:
                    where = f"episode {episode}: meta {name!r}"
                    raise DatasetError(f"{where} = {value!r} does not fit {limits.dtype}")

    def _adds_meta_array(self, meta: dict[str, Any]) -> bool:
        """Whether committing ``meta`` adds a meta array or widens one to float64."""
        return any(
            name not in self._meta
            or (_meta_kind(value) == "f" and self._meta[name].dtype.kind in "iu")
            for name, value in meta.items()
        )

    def _meta_tails(self, first: int, metas: list[dict[str, Any]]) -> list[_Tail]:
        """Step 2 for episodes ``first, first + 1, ...``: the meta arrays' new entries, after
        adding or widening the arrays the first one's meta needs (only the first may:
        :meth:`add_episodes` batches so)."""
        for name, value in metas[0].items():
            if name not in self._meta:
                self._meta[name] = _create_meta_array(self._root, name, value, first)
            elif _meta_kind(value) == "f" and self._meta[name].dtype.kind in "iu":
                self._meta[name] = self._widen_meta(name)
        tails = []
        for name, array in self._meta.items():
            values = [meta.get(name, array.fill_value) for meta in metas]
            try:
                tails.append(_Tail(array, first + len(metas), np.asarray(values, array.dtype)))
            except (TypeError, ValueError, OverflowError) as error:
                raise DatasetError(
                    f"{_episodes(first, len(metas))}: meta {name!r} = "
                    f"{values[0] if len(values) == 1 else values!r} does not fit {array.dtype}"
                ) from error
        return tails

    def _widen_meta(self, name: str) -> zarr.Array:
        """``meta/<name>``, an int array, rewritten as float64 with the same values (exact:
        ``_check_meta`` made sure they lie within 2**53), so that it takes a float.

        Episodes that later give no value read NaN, as in any float meta array. The new
        array is built beside the store and swapped in atomically: a kill leaves the int
        array or the float one under the name (the committed values either way), and at
        worst a hidden ``.<store>.meta-<name>.tmp-*`` directory beside the store.
        """
        old = self._meta[name]
        tmp = self.path.with_name(f".{self.path.name}.meta-{name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            new = zarr.create_array(
                str(tmp), shape=old.shape, chunks=(META_CHUNK,), dtype="float64",
                fill_value=float("nan"), attributes=old.attrs.asdict(),
                zarr_format=old.metadata.zarr_format, config=_WRITE_CONFIG,
            )  # fmt: skip
            new[:] = old[:].astype(np.float64)
            if self._fsync:
                flush_filesystem(tmp)
            swap_directories(tmp, self.path / META_GROUP / name)
        finally:
            remove_tree(tmp)  # after the swap: the int array
        return self._root[f"{META_GROUP}/{name}"].with_config(_WRITE_CONFIG)


@dataclass
class _Batch:
    """Checked episodes that :meth:`DatasetWriter.add_episodes` writes and commits together:
    their steps per key, where each ends (steps from the batch's first) and their metas."""

    steps: dict[str, list[np.ndarray]] = field(default_factory=dict)
    ends: list[int] = field(default_factory=list)
    metas: list[dict[str, Any]] = field(default_factory=list)
    num_bytes: int = 0

    def add(self, steps: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        for key, values in steps.items():
            self.steps.setdefault(key, []).append(values)
        length = len(next(iter(steps.values())))
        self.ends.append((self.ends[-1] if self.ends else 0) + length)
        self.metas.append(meta)
        self.num_bytes += sum(values.nbytes for values in steps.values())


def _episodes(first: int, count: int) -> str:
    """``episode 3`` or ``episodes 3-7``: what a commit of ``count`` episodes concerns."""
    return f"episode {first}" if count == 1 else f"episodes {first}-{first + count - 1}"


def _is(items: list) -> str:
    return "is" if len(items) == 1 else "are"


class EpisodeWriter:
    """One episode streamed frame by frame (the recorder's path).

    Images go to disk as they arrive, so RAM stays bounded for long camera episodes:
    compressed keys are encoded frame by frame and written a shard file at a time (one
    shard's encoded frames wait in RAM), lossless ones one chunk file per frame. Low-
    dimensional keys are buffered and written at commit. Nothing is visible to readers until
    :meth:`commit`; :meth:`discard` (or a kill) drops the episode.
    """

    def __init__(self, writer: DatasetWriter) -> None:
        self._writer = writer
        self.episode = writer.num_episodes
        self._start = writer.num_steps
        self.num_steps = 0
        self._buffers: dict[str, list[np.ndarray]] = {}
        self._pending: dict[str, tuple[int, dict[int, bytes]]] = {}  # key -> shard, frames
        self._open = True

    def append(self, frame: dict[str, np.ndarray], encoded: dict[str, bytes] | None = None) -> None:
        """Add one step: every key of the dataset, each of its per-step shape.

        ``encoded`` gives compressed image keys as the bytes this dataset's image codec made
        (copied from a dataset with the same storage, :meth:`Dataset.encoded_frame`): they
        are stored as they are, with no second, lossy encoding."""
        self._check_open()
        writer = self._writer
        encoded = encoded or {}
        if not writer._specs or any(spec.is_image for spec in writer._specs.values()):
            # (frames go to disk as they come; other keys wait for the commit's check)
            writer._check_in_place(f"episode {self.episode} step {self.num_steps} is not written")
        writer._define_keys(frame)
        writer._check_keys({**frame, **encoded}, self.episode, self.num_steps)
        index = self._start + self.num_steps
        for key, data in encoded.items():
            shards = writer._shards(key)
            if shards is None:
                raise DatasetError(f"episode {self.episode}: key {key!r} is not stored by an "
                                   "image codec; give its frames decoded")  # fmt: skip
            array = writer._arrays[key]
            if array.shape[0] <= index:
                array.resize((index + max(32, self.num_steps), *array.shape[1:]))
            self._add_encoded(key, index, data, shards)
        checked = {
            key: writer._coerce(key, frame.get(key), self.episode, step=self.num_steps)
            for key in writer._specs
            if key not in encoded
        }
        for key, value in checked.items():
            if writer._specs[key].is_image:
                array = writer._arrays[key]
                if array.shape[0] <= index:  # grow geometrically: resizing rewrites metadata
                    array.resize((index + max(32, self.num_steps), *array.shape[1:]))
                shards = writer._shards(key)
                if shards is None:
                    writer._write_frame(key, index, value)
                else:
                    self._add_encoded(key, index, shards.encode(value), shards)
            else:
                self._buffers.setdefault(key, []).append(value)
        self.num_steps += 1

    def check_meta(self, meta: dict[str, Any] | None = None) -> None:
        """Raise the DatasetError :meth:`commit` would raise for ``meta``, writing nothing:
        a recorder asks every stream's writer before any of them commits."""
        self._writer._check_meta(self.episode, meta or {})

    def commit(self, meta: dict[str, Any] | None = None) -> int:
        """Make the episode durable and visible; returns its index.

        An empty episode or a ``meta`` the dataset cannot hold is refused before anything is
        written, and the episode stays open. A commit that fails while writing (a full disk,
        a folder moved away) loses the episode, as a kill at that instant would, and raises:
        the writer then takes the next episode, and the committed ones are as they were. One
        whose last flush fails keeps the episode (visible, counted) and raises a DatasetError
        saying it is committed (step 5 of the module docstring)."""
        self._check_open()
        if self.num_steps == 0:
            raise DatasetError(f"episode {self.episode}: cannot commit an empty episode")
        writer = self._writer
        meta = meta or {}
        self.check_meta(meta)
        end = self._start + self.num_steps
        try:
            writer._check_in_place(f"episode {self.episode} is not written")
            for key in list(self._pending):
                self._flush_shard(key)
            steps = {key: np.stack(frames) for key, frames in self._buffers.items()}
            self._close()
            return writer._commit([end], [meta], steps)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop the episode: its image frames already on disk are truncated away where the
        disk lets them be (what is left is beyond the committed end, which readers ignore and
        the next commit or open truncates), never in a folder moved or removed meanwhile
        (that would build a new tree there)."""
        if not self._open:
            return
        self._close()
        if not self._writer._in_place():
            return
        with contextlib.suppress(OSError):
            for array in self._writer._arrays.values():
                if array.shape[0] > self._start:
                    array.resize((self._start, *array.shape[1:]))

    def _add_encoded(self, key: str, index: int, data: bytes, shards: ShardFiles) -> None:
        """Queue one encoded frame; a shard is written once its last slot is filled."""
        size = shards.layout.frames_per_shard
        shard, slot = divmod(index, size)
        pending = self._pending.setdefault(key, (shard, {}))
        pending[1][slot] = data
        if slot == size - 1:
            self._flush_shard(key)

    def _flush_shard(self, key: str) -> None:
        shard, frames = self._pending.pop(key)
        self._writer._write_shard(key, shard, frames, first=self._start)

    def _check_open(self) -> None:
        if not self._open:
            raise DatasetError(f"episode {self.episode}: already committed or discarded")

    def _close(self) -> None:
        self._open = False
        self._buffers = {}
        self._pending = {}
        self._writer._in_flight = None


def _local_target(path: str | os.PathLike[str]) -> Path:
    if is_url(path) and not str(path).startswith("file://"):
        raise DatasetError(f"{path}: datasets are written to local paths only (got a URL)")
    return Path(str(path).removeprefix("file://"))


def _create_data_array(
    root: zarr.Group, key: str, spec: KeySpec, storage: ImageStorage, overwrite: bool = False
) -> zarr.Array:
    if not key or "/" in key or key.startswith("."):
        raise DatasetError(f"key {key!r}: not a valid key name")
    if spec.is_image:
        layout = image_array_layout(spec, storage)
    else:
        layout = {"chunks": (spec.chunk_steps, *spec.shape), "compressors": compressor_for(spec)}
    array = root[DATA_GROUP].create_array(
        key, shape=(0, *spec.shape), dtype=spec.dtype, fill_value=0, overwrite=overwrite, **layout
    )
    return array.with_config(_WRITE_CONFIG)


#: numpy kind of a meta array -> kind of the values it takes, as :func:`_meta_kind` names
#: them (arrays made by other tools may be unsigned, or hold strings in another form).
_STORED_META_KIND = {"b": "b", "i": "i", "u": "i", "f": "f", "U": "U", "T": "U", "O": "U"}
#: Ints a float64 holds exactly: |n| <= 2**53.
_FLOAT64_EXACT = 2**53
#: kind of a first meta value -> (dtype, fill value) of the array made for it.
_META_ARRAY = {"b": ("bool", False), "i": ("int64", 0), "f": ("float64", float("nan")),
               "U": (str, "")}  # fmt: skip


def _meta_kind(value: Any) -> str | None:
    """``"b"``, ``"i"``, ``"f"`` or ``"U"`` for a bool, int, float or str (Python or numpy
    scalar) meta value; None for anything else."""
    if isinstance(value, (bool, np.bool_)):  # before int: bool is an int in Python
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        return "f"
    if isinstance(value, str):
        return "U"
    return None


@dataclass(frozen=True)
class _Tail:
    """``array`` resized to ``length`` rows, ending with ``rows`` (None: only resized)."""

    array: zarr.Array
    length: int
    rows: np.ndarray | None = None


def _write_tails(tails: list[_Tail]) -> None:
    """Resize every array and write its rows, all arrays at once, in one round trip to
    zarr's IO thread (an array's resize before its write: ``zarr.json`` first, then the
    chunks). Every array is attempted, and the first error is raised only once all are done,
    so that no write of a failed commit is still landing while the caller goes on."""

    async def write(tail: _Tail) -> None:
        array = tail.array.async_array
        if array.shape[0] != tail.length:
            await array.resize((tail.length, *array.shape[1:]))
        if tail.rows is not None and len(tail.rows):
            await array.setitem(slice(tail.length - len(tail.rows), tail.length), tail.rows)

    async def write_all() -> list[BaseException | None]:
        return await asyncio.gather(*(write(tail) for tail in tails), return_exceptions=True)

    for outcome in zarr_sync(write_all()):
        if isinstance(outcome, BaseException):
            raise outcome


def _create_meta_array(root: zarr.Group, name: str, value: Any, episode: int) -> zarr.Array:
    """A per-episode array for ``meta[name]``, typed from its first value (bool, int, float,
    str; checked by :meth:`DatasetWriter._check_meta`); earlier episodes read as the fill
    value (False, 0, NaN, ""). It is created with one entry per committed episode, so a kill
    right after creation leaves it consistent."""
    dtype, fill = _META_ARRAY[_meta_kind(value)]
    array = root[META_GROUP].create_array(
        name, shape=(episode,), chunks=(META_CHUNK,), dtype=dtype, fill_value=fill, overwrite=True
    )
    return array.with_config(_WRITE_CONFIG)
