"""The selector's durable state file: written whole or not at all, by any number of writers."""

from __future__ import annotations

import json
import threading

import pytest

from robot_il.select.durable import write_json_atomic


def test_writers_of_one_file_at_once_leave_one_whole_version(tmp_path) -> None:
    """The selector saves its state from the executor thread and from the fine-tuning thread.
    Both wrote through one temporary name: one's rename found the file gone (FileNotFoundError,
    the save lost) or moved the other's half-written bytes into place (a state file that no
    longer parses, the selection's counts lost at the next start)."""
    path = tmp_path / "state.json"
    payloads = [{"writer": w, "ratings": list(range(2000 * (w + 1)))} for w in range(2)]
    failures: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write_many(payload: dict) -> None:
        barrier.wait()
        for _ in range(100):
            try:
                write_json_atomic(path, payload)
            except BaseException as error:  # noqa: BLE001 (the test's point)
                failures.append(error)
                return

    writers = [threading.Thread(target=write_many, args=(p,)) for p in payloads]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not failures, repr(failures[0])
    assert json.loads(path.read_text()) in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_a_write_that_fails_leaves_no_temporary_file_and_the_old_version(tmp_path) -> None:
    """Each writer has a temporary file of its own name, so one left by a failed write was
    never overwritten by a later one: a failure (here the rename, onto a folder) removes it,
    and the previous version stays."""
    path = tmp_path / "state.json"
    write_json_atomic(path, {"ratings": [1]})
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with pytest.raises(OSError):
        write_json_atomic(blocked, {"ratings": [2]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "state.json"]
    assert json.loads(path.read_text()) == {"ratings": [1]}
