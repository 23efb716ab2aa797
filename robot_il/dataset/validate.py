"""A full consistency check of a dataset that names every problem, not just the first.

``Dataset.open`` stops at the first structural fault; ``validate`` keeps going so a user sees
the whole damage at once: missing keys, wrong dtypes or shapes, data shorter than the
episodes claim, non-increasing episode ends, missing or unreadable chunks, NaN or infinite
values, meta arrays too short. Leftovers of a killed writer (steps beyond the last committed
episode, torn last ``episode_ends`` entries) are notes, not problems: readers ignore them by
design.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from robot_il.dataset.durability import writer_has_open
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
    EMPTY_SLOT,
    ShardLayout,
    image_codec_of,
    index_bytes,
    parse_index,
)
from robot_il.dataset.store import local_path, one_line, open_root
from robot_il.errors import DatasetError


@dataclass
class ValidationReport:
    """``problems`` make a dataset invalid; ``notes`` are harmless leftovers worth knowing."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    num_episodes: int = 0
    num_steps: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(
    path_or_url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> ValidationReport:
    report = ValidationReport()
    try:
        root = open_root(path_or_url, mode="r", storage_options=storage_options)
    except DatasetError as error:
        report.problems.append(str(error))
        return report
    specs = _check_attrs(root, report)
    ends = _check_episode_ends(root, report)
    report.num_episodes = len(ends)
    report.num_steps = int(ends[-1]) if len(ends) else 0
    try:
        data = root[DATA_GROUP]
    except KeyError:
        report.problems.append("missing group data/")
        return report
    local = local_path(path_or_url)
    beyond = (
        "the episode being recorded: a writer has the dataset open"
        if local is not None and writer_has_open(local)
        else "left by a killed writer; readers ignore them, DatasetWriter.open truncates them"
    )
    for key, spec in specs.items():
        _check_key(root, data, key, spec, ends, report, beyond)
    for name in sorted(set(data.array_keys()) - set(specs)):
        report.notes.append(f"data/{name}: not listed in attrs keys; readers ignore it")
    if TIMESTAMP_KEY in specs and report.num_steps:
        _check_timestamps(data[TIMESTAMP_KEY], root.attrs.get("control_hz"), ends, report)
    _check_meta(root, report)
    return report


def _check_attrs(root: zarr.Group, report: ValidationReport) -> dict[str, KeySpec]:
    attrs = root.attrs.asdict()
    if attrs.get("format") != FORMAT_NAME:
        report.problems.append(
            f"attrs: format is {attrs.get('format')!r}, not {FORMAT_NAME!r} (not a robot_il "
            "dataset, or written by another tool)"
        )
    try:
        check_format(attrs, "attrs")
    except DatasetError as error:
        report.problems.append(str(error))
    for name in ("robot", "control_hz"):
        if name not in attrs:
            report.problems.append(f"attrs: missing {name!r}")
    try:
        return specs_from_attrs(attrs)
    except DatasetError as error:
        report.problems.append(str(error))
        return {}


def _check_episode_ends(root: zarr.Group, report: ValidationReport) -> np.ndarray:
    try:
        array = root[EPISODE_ENDS_PATH]
        stored = np.asarray(array[:])
    except KeyError:
        report.problems.append(f"missing key {EPISODE_ENDS_PATH}")
        return np.zeros(0, dtype=np.int64)
    except Exception as error:
        report.problems.append(f"{EPISODE_ENDS_PATH}: unreadable: {one_line(error)}")
        return np.zeros(0, dtype=np.int64)
    if stored.dtype.kind not in "iu":
        report.problems.append(f"{EPISODE_ENDS_PATH}: dtype {stored.dtype}, expected int64")
        return np.zeros(0, dtype=np.int64)
    stored = stored.astype(np.int64)
    committed = np.trim_zeros(stored, "b")
    if committed.size < stored.size:
        torn = (f"[{committed.size}]" if stored.size - committed.size == 1
                else f"[{committed.size}:{stored.size}]")  # fmt: skip
        report.notes.append(f"{EPISODE_ENDS_PATH}{torn} = 0: a commit was interrupted; ignored")
        stored = committed
    previous = 0
    for episode, end in enumerate(stored.tolist()):
        if end <= previous:
            report.problems.append(
                f"{EPISODE_ENDS_PATH}: episode {episode} ends at {end}, not after {previous} "
                "(non-increasing episode ends)"
            )
        previous = max(previous, end)
    return stored


def _check_key(
    root: zarr.Group,
    data: zarr.Group,
    key: str,
    spec: KeySpec,
    ends: np.ndarray,
    report: ValidationReport,
    beyond: str,
) -> None:
    """``beyond`` says where steps beyond the last committed episode come from."""
    name = f"data/{key}"
    try:
        array = data[key]
    except KeyError:
        report.problems.append(f"missing key {name}")
        return
    except Exception as error:
        report.problems.append(f"{name}: unreadable metadata: {one_line(error)}")
        return
    if not isinstance(array, zarr.Array):
        report.problems.append(f"{name}: is a group, expected an array")
        return
    if array.dtype != np.dtype(spec.dtype):
        report.problems.append(f"{name}: wrong dtype {array.dtype}, attrs say {spec.dtype}")
    if tuple(array.shape[1:]) != spec.shape:
        report.problems.append(f"{name}: step shape {array.shape[1:]}, attrs say {spec.shape}")
        return
    if spec.is_image and array.chunks[0] != 1:
        report.problems.append(f"{name}: images must be one frame per chunk, not {array.chunks}")
    num_steps = int(ends[-1]) if len(ends) else 0
    length = array.shape[0]
    if length < num_steps:
        first = int(np.searchsorted(ends, length, side="right"))
        report.problems.append(
            f"{name}: length mismatch: {length} steps but episode {first} ends at "
            f"{int(ends[first])} (episodes {first}..{len(ends) - 1} affected)"
        )
    elif length > num_steps:
        report.notes.append(
            f"{name}: {length - num_steps} steps beyond the last committed episode ({beyond})"
        )
    _check_chunks(root, array, name, min(length, num_steps), ends, report)
    _check_values(array, name, min(length, num_steps), ends, report)


def _check_chunks(
    root: zarr.Group,
    array: zarr.Array,
    name: str,
    num_steps: int,
    ends: np.ndarray,
    report: ValidationReport,
) -> None:
    """A missing chunk (or shard) file reads back as zeros without error; find them by
    listing. A missing frame inside a shard file is caught when the shard is read."""
    prefix = f"{root.store_path.path}/{name}/".lstrip("/")
    present = set(sync(_list_prefix(root.store, prefix)))
    chunk_steps = array.shards[0] if array.shards else array.chunks[0]
    rest = (0,) * (array.ndim - 1)
    missing_by_episode: dict[int, int] = {}
    for index in range(-(-num_steps // chunk_steps)):
        key = prefix + array.metadata.encode_chunk_key((index, *rest))
        if key not in present:
            episode = int(np.searchsorted(ends, index * chunk_steps, side="right"))
            missing_by_episode[episode] = missing_by_episode.get(episode, 0) + 1
    kind = "shard" if array.shards else "chunk"
    for episode, count in missing_by_episode.items():
        report.problems.append(f"{name}: episode {episode}: {count} {kind} file(s) missing")
    if image_codec_of(array) is not None:
        _check_shard_slots(root, array, name, num_steps, ends, present, report)


def _check_shard_slots(
    root: zarr.Group,
    array: zarr.Array,
    name: str,
    num_steps: int,
    ends: np.ndarray,
    present: set[str],
    report: ValidationReport,
) -> None:
    """Every committed frame must have a slot in its shard's index (an empty slot reads back
    as a black frame without error); a torn or corrupt index is named too."""
    layout = ShardLayout(array)
    size = layout.frames_per_shard
    prefix = f"{root.store_path.path}/{name}/".lstrip("/")
    empty_by_episode: dict[int, int] = {}
    for shard in range(-(-num_steps // size)):
        key = layout.shard_key(shard)
        if prefix + key not in present:
            continue  # reported as a missing file
        buffer = sync(root.store.get(prefix + key, prototype=default_buffer_prototype()))
        data = buffer.to_bytes() if buffer is not None else b""
        try:
            index = parse_index(data[-index_bytes(size) :], size, f"{name}/{key}")
        except ValueError as error:
            episode = int(np.searchsorted(ends, shard * size, side="right"))
            report.problems.append(f"{name}: episode {episode}: {error}")
            continue
        stop = min(size, num_steps - shard * size)
        for slot in np.flatnonzero(index[:stop, 0] == EMPTY_SLOT).tolist():
            episode = int(np.searchsorted(ends, shard * size + slot, side="right"))
            empty_by_episode[episode] = empty_by_episode.get(episode, 0) + 1
    for episode, count in empty_by_episode.items():
        report.problems.append(f"{name}: episode {episode}: {count} frame(s) missing from shards")


async def _list_prefix(store: Any, prefix: str) -> list[str]:
    return [key async for key in store.list_prefix(prefix)]


def _check_values(
    array: zarr.Array, name: str, num_steps: int, ends: np.ndarray, report: ValidationReport
) -> None:
    starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
    episodes = [
        (e, int(s), int(min(t, num_steps)))
        for e, (s, t) in enumerate(zip(starts, ends, strict=True))
    ]
    for episode, start, stop in tqdm(
        episodes, desc=f"checking {name}", unit="episode", leave=False, disable=None
    ):
        if stop <= start:
            continue
        try:
            values = array[start:stop]
        except Exception as error:
            report.problems.append(f"{name}: episode {episode}: unreadable: {one_line(error)}")
            continue
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
            if bad.any():
                report.problems.append(
                    f"{name}: episode {episode}: NaN or inf in {int(bad.sum())} step(s), "
                    f"first at step {int(np.argmax(bad))} of the episode"
                )


TIMESTAMP_KEY = "timestamp"
"""The capture time (s) of each step, where a recorder keeps one."""
GAP_PERIODS = 5
"""A step more than this many control periods after the one before it is a gap: a recorder
that waited for a stalled key (a camera) recorded nothing meanwhile (a loaded machine delays
a sample by a period or two). The recorder names such a gap when it commits the episode."""


def _check_timestamps(
    array: zarr.Array, control_hz: Any, ends: np.ndarray, report: ValidationReport
) -> None:
    """A note for each episode whose steps lie more than ``GAP_PERIODS`` control periods apart
    somewhere (the longest such gap named): valid data, but a demonstration with a hole."""
    if not control_hz or array.shape[0] < int(ends[-1]):
        return  # no rate to measure by; short data is _check_key's problem
    period = 1.0 / float(control_hz)
    starts = np.concatenate([[0], ends[:-1]])
    for episode, (start, stop) in enumerate(zip(starts, ends, strict=True)):
        steps = np.diff(np.asarray(array[int(start) : int(stop)], dtype=np.float64).reshape(-1))
        if steps.size and np.nanmax(steps) > GAP_PERIODS * period:
            at = int(np.nanargmax(steps)) + 1
            report.notes.append(
                f"{TIMESTAMP_KEY}: episode {episode}: {float(steps[at - 1]):.2f} s between steps "
                f"{at - 1} and {at} ({float(steps[at - 1]) / period:.0f} control periods): "
                f"nothing was recorded meanwhile (robot-il data drop-episode removes an episode)"
            )


def _check_meta(root: zarr.Group, report: ValidationReport) -> None:
    try:
        meta = root[META_GROUP]
    except KeyError:
        report.problems.append("missing group meta/")
        return
    for name, array in meta.arrays():
        if name != EPISODE_ENDS and array.shape[0] < report.num_episodes:
            report.problems.append(
                f"meta/{name}: {array.shape[0]} entries for {report.num_episodes} episodes "
                f"(episode {array.shape[0]} has none)"
            )
