"""Our DMP and ``movement_primitives``' DMP learn the same demonstration alike (the timing
side by side is ``benchmarks/dmp_vs_movement_primitives.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("movement_primitives.dmp", reason="the 'compare' extra is not installed")


def test_ours_and_movement_primitives_reproduce_a_demo_within_5_mm_of_each_other() -> None:
    script = Path(__file__).parents[2] / "benchmarks" / "dmp_vs_movement_primitives.py"
    spec = importlib.util.spec_from_file_location("dmp_vs_movement_primitives", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.reproduction()
    assert result["ours_vs_theirs_max_m"] < 0.005
    assert result["ours_vs_demo_max_m"] < 0.005
    assert np.isfinite(result["theirs_vs_demo_max_m"])
