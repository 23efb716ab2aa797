"""Regenerate ``fixtures/select_candidates``: candidates of clearly different quality.

``test_select_sim.py``'s default test selects among these and a NaN-commanding policy it
builds itself, so the default suite does not train; its slow test trains the four default
candidates (:data:`robot_il.select.candidates.DEFAULT_RECIPES`) from scratch.
    .venv/bin/python tests/ros/make_select_candidates.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from robot_il.select.candidates import DEFAULT_RECIPES, RECIPE_DEMOS, CandidateRecipe

FIXTURE = Path(__file__).with_name("fixtures") / "select_candidates"
RECIPES = (
    DEFAULT_RECIPES[0],  # the best default candidate: 100 demonstrations, 3000 steps
    DEFAULT_RECIPES[3],  # 2 demonstrations: often drives the tool out of the workspace
    CandidateRecipe(demos=RECIPE_DEMOS, steps=15),  # stopped almost at once: never solves
)
BEST, UNSAFE, UNDERTRAINED = (recipe.name(RECIPE_DEMOS) for recipe in RECIPES)


def main() -> None:
    from robot_il.select.candidates import make_candidates
    from robot_il.train.demos import record_expert_demos

    with tempfile.TemporaryDirectory() as work:
        dataset = record_expert_demos("reach", Path(work) / "demos", episodes=RECIPE_DEMOS)
        checkpoints = make_candidates(dataset, Path(work) / "out", RECIPES, progress=True)
        shutil.rmtree(FIXTURE, ignore_errors=True)
        for checkpoint in checkpoints:
            shutil.copytree(checkpoint, FIXTURE / checkpoint.name)
    print(f"wrote {FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
