"""Result rows of the benchmarks that keep one JSON object per line (``*.jsonl``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def append_json_line(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to ``path`` as one line of JSON, creating its folder if need be: each
    run adds its row, none is rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(row) + "\n")


def append_row_with_load(path: Path, row: dict[str, Any]) -> None:
    """Add the load average now to ``row`` (``load_after``, beside its ``load_before``),
    print both, and append the row to ``path``: a timing is read with the load it ran under."""
    row["load_after"] = os.getloadavg()
    print(f"load average before {row['load_before']}, after {row['load_after']}")
    append_json_line(path, row)
