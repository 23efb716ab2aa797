"""Regenerate ``fixtures/select_candidates``: three of the default selection candidates.

``test_select_sim.py``'s default test selects among these (and a NaN-commanding policy it
builds itself), so the default suite does not train; its slow test trains all four default
candidates from scratch.
    .venv/bin/python tests/ros/make_select_candidates.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).with_name("fixtures") / "select_candidates"
BEST, POOR, UNSAFE = "bc_100demos_3000steps", "bc_5demos_600steps", "bc_2demos_300steps"
"""The best, a poor and an unsafe default candidate (see robot_il.select.candidates)."""


def main() -> None:
    from robot_il.select.candidates import DEFAULT_RECIPES, RECIPE_DEMOS, make_candidates
    from robot_il.train.demos import record_expert_demos

    names = (BEST, POOR, UNSAFE)
    recipes = tuple(r for r in DEFAULT_RECIPES if r.name(RECIPE_DEMOS) in names)
    with tempfile.TemporaryDirectory() as work:
        dataset = record_expert_demos("reach", Path(work) / "demos", episodes=RECIPE_DEMOS)
        checkpoints = make_candidates(dataset, Path(work) / "out", recipes, progress=True)
        shutil.rmtree(FIXTURE, ignore_errors=True)
        for checkpoint in checkpoints:
            shutil.copytree(checkpoint, FIXTURE / checkpoint.name)
    print(f"wrote {FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
