"""Whole-dataset operations behind ``robot-il data``: copy a subset, merge, drop, export.

Every operation builds its result in a new hidden directory beside the target and moves it
into place only when complete (an atomic rename, or an atomic swap when replacing), so a kill
at any moment leaves either the old dataset or the new one under the target name, never a
mix, and the episodes not being dropped are never at risk.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import zarr
from tqdm.auto import tqdm

from robot_il.dataset.durability import replace_atomically
from robot_il.dataset.format import (
    DATA_GROUP,
    EPISODE_ENDS,
    IMAGE_STORAGE_ATTR,
    META_CHUNK,
    META_GROUP,
    RESERVED_ATTRS,
    ImageStorage,
    compressor_for,
)
from robot_il.dataset.reader import Dataset
from robot_il.dataset.writer import DatasetWriter
from robot_il.errors import DatasetError


def copy_episodes(
    sources: Sequence[tuple[Dataset, Sequence[int]]], target: Path, *, force: bool
) -> int:
    """Write the given episodes of one or more datasets, in order, as a new dataset.

    All sources must agree on robot, control rate, key specs and what their numbers mean
    (:data:`MEANING_ATTRS`); other attrs and the image storage come from the first.
    Compressed frames are copied as stored when the new dataset uses the same codec, quality
    and JPEG 2000 quality scale (no second loss); otherwise they are decoded and encoded
    again. Returns the number of episodes written.
    """
    first = sources[0][0]
    for dataset, _ in sources[1:]:
        _check_compatible(first, dataset)
    extra = {k: v for k, v in first.attrs.items() if k not in RESERVED_ATTRS}
    total = sum(len(episodes) for _, episodes in sources)

    def build(tmp: Path) -> None:
        with (
            DatasetWriter.create(
                tmp,
                robot=first.robot,
                control_hz=first.control_hz or 1.0,
                keys=first.specs,
                attrs=extra,
                fsync=False,  # replace_atomically flushes once at the end
                image_storage=ImageStorage.from_attrs(first.attrs),
            ) as writer,
            tqdm(total=total, desc=f"writing {target.name}", unit="episode", disable=None) as bar,
        ):
            for dataset, episodes in sources:
                as_stored = _frames_copied_as_stored(dataset, episodes, writer)
                if not as_stored:  # decoded, and written and committed in batches
                    writer.add_episodes(
                        (dataset.episode(episode), dataset.meta(episode))
                        for episode in _counted(episodes, bar)
                    )
                    continue
                for episode in episodes:
                    _stream_episode(dataset, episode, as_stored, writer)
                    bar.update()

    replace_atomically(target, build, force=force)
    return total


def _counted(items: Sequence[int], bar: tqdm) -> Iterator[int]:
    """``items``, one ``bar`` step each as it is taken."""
    for item in items:
        yield item
        bar.update()


def _frames_copied_as_stored(
    dataset: Dataset, episodes: Sequence[int], writer: DatasetWriter
) -> list[str]:
    """The image keys whose compressed frames ``writer``'s codec stored: copied as stored,
    with no second lossy encoding."""
    if not episodes:
        return []
    step = dataset.episode_slice(episodes[0]).start
    return [
        key for key in dataset.image_keys
        if (first := dataset.encoded_frame(key, step)) is not None
        and first[0] == writer.image_codec(key)
    ]  # fmt: skip


def _stream_episode(
    dataset: Dataset, episode: int, as_stored: list[str], writer: DatasetWriter
) -> None:
    """Append ``episode`` of ``dataset`` frame by frame, the ``as_stored`` keys' frames as
    stored, and commit it."""
    span = dataset.episode_slice(episode)
    decoded = dataset.episode(episode, [k for k in dataset.keys if k not in as_stored])
    stream = writer.begin_episode()
    for t, step in enumerate(range(span.start, span.stop)):
        encoded = {}
        for key in as_stored:
            frame = dataset.encoded_frame(key, step)
            if frame is None:
                raise DatasetError(f"{dataset.where}: data/{key} episode {episode}: "
                                   f"step {t} has no stored frame")  # fmt: skip
            encoded[key] = frame[1]
        stream.append({key: values[t] for key, values in decoded.items()}, encoded)
    stream.commit(dataset.meta(episode))


def drop_episodes(path: Path, drop: Sequence[int], out: Path | None, *, force: bool) -> int:
    """Remove episodes ``drop``; in place (needs ``force``) or into ``out``. Returns how many
    episodes remain."""
    dataset = Dataset.open(path)
    bad = [e for e in drop if not 0 <= e < dataset.num_episodes]
    if bad:
        raise DatasetError(
            f"{path}: episode {bad[0]} out of range ({dataset.num_episodes} episodes)"
        )
    keep = [e for e in range(dataset.num_episodes) if e not in set(drop)]
    if not keep:
        raise DatasetError(f"{path}: dropping every episode would leave an empty dataset")
    if out is None and not force:
        raise DatasetError(f"{path}: dropping episodes rewrites the dataset; pass --force or --out")
    copy_episodes([(dataset, keep)], out or Path(path), force=force)
    return len(keep)


def export_replay_buffer(dataset: Dataset, target: Path, *, zarr_format: int, force: bool) -> None:
    """Write ``dataset`` in diffusion_policy's ReplayBuffer layout (flat ``data/<key>``,
    ``meta/episode_ends``, per-episode ``meta/<name>``) in zarr format 2 or 3, chunked like
    the source (one image frame per chunk), Blosc/zstd compressed, attrs kept. Frames of a
    lossy source are decoded once and stored losslessly, so that diffusion_policy's
    ReplayBuffer (and plain zarr without robot_il) opens the copy with no extra codec."""
    if zarr_format not in (2, 3):
        raise DatasetError(f"export: zarr format must be 2 or 3, got {zarr_format}")

    def build(tmp: Path) -> None:
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=zarr_format)
        attrs = dict(dataset.attrs)
        if "format" in attrs:  # the copy's images are Blosc, as format 1 stored them
            attrs[IMAGE_STORAGE_ATTR] = ImageStorage("blosc").to_attrs()
        root.attrs.put(attrs)
        data = root.require_group(DATA_GROUP)
        meta = root.require_group(META_GROUP)
        ends = dataset.episode_ends
        meta.create_array(
            EPISODE_ENDS, data=np.asarray(ends, dtype=np.int64), chunks=(max(1, len(ends)),)
        )
        for name in dataset.meta_names:
            values = np.asarray([dataset.meta(e)[name] for e in range(dataset.num_episodes)])
            dtype = str if values.dtype.kind == "U" else values.dtype
            array = meta.create_array(name, shape=values.shape, chunks=(META_CHUNK,), dtype=dtype)
            array[:] = values
        for key, spec in tqdm(dataset.specs.items(), desc="exporting", unit="key", disable=None):
            array = data.create_array(
                key,
                shape=(dataset.num_steps, *spec.shape),
                chunks=(spec.chunk_steps, *spec.shape),
                dtype=spec.dtype,
                compressors=compressor_for(spec, zarr_format),
                fill_value=0,
                config={"write_empty_chunks": True},
            )
            step = max(spec.chunk_steps, 256)
            for start in range(0, dataset.num_steps, step):
                stop = min(start + step, dataset.num_steps)
                array[start:stop] = dataset.read(key, start, stop)

    replace_atomically(target, build, force=force)


MEANING_ATTRS = ("task", "action_mode", "frame")
"""Attrs that say what a key's numbers mean (which scene, hence which env ``robot-il eval``
builds from ``env_spec``; joint targets or end-effector deltas; world or task frame):
datasets that differ in one cannot share arrays, even with equal shapes (push and
pick_place have the same keys)."""


def _check_compatible(a: Dataset, b: Dataset) -> None:
    if a.robot != b.robot:
        raise DatasetError(f"{b.where}: robot {b.robot!r} differs from {a.where}'s {a.robot!r}")
    if a.control_hz != b.control_hz:
        raise DatasetError(
            f"{b.where}: control rate {b.control_hz} Hz differs from {a.where}'s {a.control_hz} Hz"
        )
    for key in sorted(set(a.specs) | set(b.specs)):
        if key not in a.specs or key not in b.specs:
            raise DatasetError(f"{b.where}: key {key!r} is only in one of the datasets to merge")
        sa, sb = a.specs[key], b.specs[key]
        if (sa.shape, sa.dtype) != (sb.shape, sb.dtype):
            raise DatasetError(
                f"{b.where}: key {key!r} is {sb.shape} {sb.dtype}, "
                f"{a.where} has {sa.shape} {sa.dtype}"
            )
    for name in MEANING_ATTRS:
        if a.attrs.get(name) != b.attrs.get(name):
            raise DatasetError(
                f"{b.where}: {name} {b.attrs.get(name)!r} differs from {a.where}'s "
                f"{a.attrs.get(name)!r}"
            )
