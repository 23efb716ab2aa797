"""``benchmarks/online_devices.py`` runs on a machine without a GPU and writes its rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "online_devices.py"


def test_the_device_benchmark_times_each_setting_and_keeps_a_row_per_setting(
    tmp_path: Path,
) -> None:
    results = tmp_path / "online_devices.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--devices", "cpu", "--threads", "1", "2",
                          "--learners", "dac", "iq_learn", "--warmup", "1", "--updates", "2",
                          "--rounds", "1", "--results", str(results)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = json.loads(results.read_text())["runs"]
    assert [(r["learner"], r["threads"]) for r in rows] == [
        ("dac", 1), ("dac", 2), ("iq_learn", 1), ("iq_learn", 2)]  # fmt: skip
    assert all(r["updates_per_s"] > 0 and r["device"] == "cpu" for r in rows)
    assert all(r["code"] and len(r["load_avg"]) == 4 for r in rows)  # which code, what load
    assert rows[0]["ratio"] == 1.0 and rows[2]["ratio"] == 1.0  # each learner's own baseline
    assert "updates/s" in run.stdout and "load avg" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without one")
def test_naming_a_gpu_that_is_not_there_is_refused(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--devices", "cpu", "cuda",
                          "--results", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2 and "no CUDA device is visible here" in run.stderr
    assert not (tmp_path / "r.json").exists()
