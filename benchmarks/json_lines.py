"""Result rows of the benchmarks that keep one JSON object per line (``*.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_json_line(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to ``path`` as one line of JSON, creating its folder if need be: each
    run adds its row, none is rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(row) + "\n")
