"""Filesystem primitives the crash-safety story rests on: flush to disk, swap two directories.

zarr's LocalStore already replaces every file atomically (write to a temporary file, then
rename), so a SIGKILL leaves each chunk and metadata file either old or new, never torn. What
zarr does not do is flush: ``flush_filesystem`` makes a committed episode survive power loss
too, and ``swap_directories`` lets tools that rewrite a dataset replace it in one step.
``lock_for_writing`` keeps a writer and such a tool (or a second writer) off one dataset.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable
from errno import errorcode
from pathlib import Path
from typing import IO

from zarr.core.sync import sync as zarr_sync

from robot_il.dataset.format import WRITER_LOCK
from robot_il.errors import DISK_FULL, DatasetError
from robot_il.stop_signals import stops_deferred

_LIBC = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def flush_filesystem(path: Path) -> None:
    """Write every dirty page of the filesystem holding ``path`` to disk (``syncfs``).

    One call covers all chunk files and the new directories zarr created for them, which a
    per-file ``fsync`` would have to walk; it flushes only this filesystem, unlike ``sync``
    (the fallback where there is no ``syncfs``). A disk that fails the flush (EIO, ENOSPC)
    raises ``OSError``: ``sync`` reports nothing, and falling back to it on an error let a
    commit count as durable when it was not.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        if getattr(_LIBC, "syncfs", None) is None:
            os.sync()
        elif _LIBC.syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), str(path))
    finally:
        os.close(fd)


def os_error_reason(error: OSError, path: Path) -> str | None:
    """What failed, for the one-line error of any ``OSError`` but a full disk that writing or
    flushing the dataset at ``path`` raised (the disk failed the flush, EIO; a lost mount; a
    read-only folder; a source file gone): the file it names, unless that is ``path`` itself,
    and its meaning with its errno's name, e.g. ``<file>: Input/output error (EIO)``. None for
    a full disk (``DISK_FULL``), which ``robot-il`` and the recorder say in a line of their own
    ("no space left on the disk")."""
    if error.errno in DISK_FULL:
        return None
    meaning = error.strerror or str(error)
    if error.errno in errorcode:
        meaning = f"{meaning} ({errorcode[error.errno]})"
    if error.filename is not None and os.fspath(error.filename) != os.fspath(path):
        meaning = f"{os.fspath(error.filename)}: {meaning}"
    return meaning


def swap_directories(a: Path, b: Path) -> None:
    """Exchange two directories atomically (Linux ``renameat2(RENAME_EXCHANGE)``).

    A kill before the call leaves both as they were; after it, both are swapped: there is no
    moment at which neither name holds a complete dataset.
    """
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        raise DatasetError(f"{a}: this system cannot swap directories atomically (no renameat2)")
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        raise DatasetError(f"{a}: atomic swap with {b} failed: {os.strerror(errno)}")


def lock_for_writing(path: Path) -> IO[bytes]:
    """An exclusive ``flock`` on ``<path>/.writer.lock``, held until the returned file is
    closed: two writers appending to one dataset would interleave their steps, and a tool
    swapping a new store in under a writer would receive that writer's later steps. The
    kernel drops the lock when its process dies, so a killed recorder never leaves the
    dataset locked."""
    lock = open(path / WRITER_LOCK, "ab")  # noqa: SIM115 - held by the caller
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise DatasetError(f"{path}: another writer has this dataset open") from None
    return lock


def writer_has_open(path: Path) -> bool:
    """True while a writer holds ``<path>/.writer.lock`` (:func:`lock_for_writing`), i.e.
    steps beyond the last committed episode are an episode being recorded, not a leftover.
    Only tests the lock (a shared one, released at once; a writer opening within that
    instant is refused as if another writer had it); never creates the file."""
    try:
        probe = open(path / WRITER_LOCK, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return False
    with probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


def remove_partial_files(path: Path) -> int:
    """Delete ``*.partial`` files a killed zarr write left behind; returns how many."""
    removed = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            if name.endswith(".partial"):
                os.unlink(os.path.join(root, name))
                removed += 1
    return removed


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def is_zarr_store(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def check_writable_parent(target: Path) -> None:
    """Refuse, before any work, a ``target`` whose nearest existing ancestor is a file or a
    folder this process cannot write: the build beside it would fail there with an OSError
    traceback after minutes of copying."""
    check_writable(Path(target).absolute().parent, target)


def check_writable(folder: Path, target: Path) -> None:
    """``DatasetError`` naming ``target`` unless ``folder`` (or, where it does not exist yet,
    its nearest existing ancestor) is a folder this process can write in."""
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise DatasetError(f"{target}: cannot be written: {folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatasetError(f"{target}: cannot write in {folder} (read-only or not yours)")


def replace_atomically(
    target: Path,
    build: Callable[[Path], None],
    *,
    force: bool,
    flush: bool = True,
    is_store: Callable[[Path], bool] = is_zarr_store,
    kind: str = "zarr store",
) -> None:
    """Run ``build(tmp)`` on a fresh path beside ``target``, then put ``tmp`` at ``target``.

    An existing ``target`` is replaced only with ``force`` and only if ``is_store`` says it
    is the ``kind`` of thing being written (a zarr store by default), never another directory.
    An existing zarr store is locked as a writer locks it (:func:`lock_for_writing`) from
    before ``build`` until the swap: while a writer has it open this refuses, and no writer
    can open it meanwhile, so no writer's steps can land in the new store or be lost with
    the old one.
    """
    target = Path(target)
    if target.exists():
        if not force:
            raise DatasetError(
                f"{target}: already exists; pass --force (overwrite=True) to replace it"
            )
        if not is_store(target):
            raise DatasetError(f"{target}: exists and is not a {kind}; not replacing it")
    check_writable_parent(target)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    with lock_for_writing(target) if is_zarr_store(target) else contextlib.nullcontext():
        try:
            build(tmp)
            if flush:
                flush_filesystem(tmp)
        except BaseException as error:
            with stops_deferred():  # a second Ctrl-C here left the half store behind
                settle_zarr_io()
                remove_tree(tmp)
            failed = os_error_reason(error, tmp) if isinstance(error, OSError) else None
            if failed is None:
                raise
            outcome = "not replaced, it is unchanged" if target.exists() else "not written"
            raise DatasetError(f"{target}: {outcome}: {failed}") from error
        with stops_deferred():  # a stop in between left the new store (or the old) aside
            if target.exists():
                swap_directories(tmp, target)
                remove_tree(tmp)  # now holds the old dataset
            else:
                os.rename(tmp, target)


def settle_zarr_io() -> None:
    """Wait until zarr's IO thread has done the writes an interrupted call left to it.

    zarr runs each store operation as a coroutine on its own IO thread while the caller waits;
    a Ctrl-C raised in that wait leaves the coroutine writing on. A half-built store removed
    under it came back as its files landed: a hidden ``.<store>.tmp-*`` beside the target
    (4 of 160 stops of ``robot-il record`` at its start).
    """

    async def others_done() -> None:
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others)

    zarr_sync(others_done())
