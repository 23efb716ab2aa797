"""Opening a dataset's zarr root by local path or fsspec URL, with one-line errors.

Kept apart from reader and writer because both need the same answer to "is this a dataset,
and where is it", and the tools (merge, export) need the bytes-on-disk count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zarr

from robot_il.dataset.durability import is_zarr_store
from robot_il.errors import DatasetError


def is_url(path_or_url: str | os.PathLike[str]) -> bool:
    """True for fsspec URLs such as ``s3://bucket/demo.zarr`` or ``memory://x``."""
    return "://" in str(path_or_url)


def local_path(path_or_url: str | os.PathLike[str]) -> Path | None:
    """The filesystem path behind a local path or ``file://`` URL, else None."""
    text = str(path_or_url)
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    return None if is_url(text) else Path(text)


def open_root(
    path_or_url: str | os.PathLike[str],
    mode: str = "r",
    storage_options: dict[str, Any] | None = None,
) -> zarr.Group:
    """The root group of an existing store; a missing path or a non-zarr path is a DatasetError."""
    where = str(path_or_url)
    path = local_path(path_or_url)
    if path is not None:
        if not path.exists():
            relative = "" if path.is_absolute() else f", relative to {Path.cwd()}"
            raise DatasetError(f"{where}: no such dataset (path does not exist{relative})")
        if not path.is_dir():
            raise DatasetError(f"{where}: not a dataset (a zarr dataset is a directory)")
        target: Any = str(path)
    else:
        target = where
    try:
        group = zarr.open_group(target, mode=mode, storage_options=storage_options)
    except FileNotFoundError as error:
        hint = _one_store_inside(path, where) if path is not None else ""
        raise DatasetError(f"{where}: not a dataset (no zarr group metadata){hint}") from error
    except Exception as error:  # zarr raises several types for bad metadata
        raise DatasetError(f"{where}: unreadable zarr metadata: {one_line(error)}") from error
    return group


def _one_store_inside(folder: Path, where: str) -> str:
    """``"; did you mean <where>/<store>?"`` when the local ``folder`` holds exactly one zarr
    store one level down (a dataset kept in a folder of its own, such as
    ``data/dmc_walker_walk_expert/env.zarr``), else ``""``."""
    stores = [child.name for child in folder.iterdir() if is_zarr_store(child)]
    if len(stores) != 1:
        return ""
    return f"; did you mean {where.rstrip('/')}/{stores[0]}?"


def bytes_on_disk(path: str | os.PathLike[str]) -> int:
    """Total size of the files under a local store (what compression actually achieved)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:300]
