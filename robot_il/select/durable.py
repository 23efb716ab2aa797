"""Crash-safe JSON files: a reader sees either the previous content or the new one, never a
torn mix, even if the writer is killed (SIGKILL, power loss) in the middle of a write."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path``: temp file in the same directory, fsync, atomic
    rename over ``path``, then fsync the directory so the rename itself survives a crash.
    Each writer (process and thread) has a temp file of its own: through one shared name a
    writer renamed another's half-written file into place, or found its own renamed away."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    payload = json.dumps(data, indent=1, sort_keys=True).encode()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:  # (a full disk): no temp file of this writer's is left behind
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
