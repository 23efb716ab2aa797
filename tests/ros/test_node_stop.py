"""Stopping a node: one that has not stopped when its deadline passes leaves every thread's
Python stack in its log before it is killed, so a hang on a robot or in CI can be read."""

from __future__ import annotations

import pytest
from deploy_helpers import node_process, stop_process, wait_for

pytestmark = pytest.mark.ros


def test_a_node_past_its_stop_deadline_logs_its_stacks(ros_env, tmp_path) -> None:
    log = tmp_path / "recorder.log"
    params = {"path": str(tmp_path / "demos.zarr"), "autostart": "false"}
    with node_process("recorder", params, ros_env, log) as recorder:
        wait_for(lambda: "recording reach" in log.read_text(), 30, "the recorder", (recorder,))
        # No deadline at all: the node is past it while its Ctrl-C is still being handled.
        assert stop_process(recorder, timeout=0.0) in (0, -9)  # it may finish in the second
    text = log.read_text()
    assert "Thread 0x" in text and "node_main.py" in text, text[-3000:]
