"""The two-arm control tick against trajectories recorded from the code before its tick was
rewritten for speed (commit 3af93ee): same scenes, same ticks, joints within 1e-9 rad. The
``batch_oncol_100hz`` case was recorded again when the gripper capsules grew to hold closed
fingers (its arms come close enough for the gripper capsules to steer them); the others
did not move.

The file ``data/two_arm_tick_reference.npz`` holds, for each case below, the joints (2, B, 6)
and phase rates (2, B) every ``EVERY`` ticks. Record it again (only on purpose: it is the
reference) with ``python tests/policies/test_dmp_tick_reference.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from robot_il.envs import cross_scenes as cs
from robot_il.policies.dmp.coupling import CouplingParams
from robot_il.policies.dmp.cross_episodes import expert_primitives, scene_controller

REFERENCE = Path(__file__).parent / "data" / "two_arm_tick_reference.npz"
EVERY = 10
"""Ticks between two recorded states."""
CMA_LIKE = CouplingParams(9.0, 0.1, 0.5, 0.2, 0.05, 0.02, 6.0)
"""Coupling parameters other than the defaults (a longer look-ahead, a stronger push)."""
CASES = {
    # name: (scene seeds, method, params, dt s, ticks, start delays (None: the scenes' own))
    "deployed_one_scene_500hz": ([0], "coupled", None, 0.002, 1500, np.zeros((1, 2))),
    "batch_coupled_100hz": (list(range(8)), "coupled", CMA_LIKE, 0.01, 500, None),
    "batch_oncol_100hz": (list(range(4)), "oncol", None, 0.01, 300, None),
    "batch_sequential_100hz": (list(range(4)), "sequential", None, 0.01, 300, None),
    "batch_independent_100hz": (list(range(4)), "independent", None, 0.01, 300, None),
}


def run_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Joints (T, 2, B, 6) rad and phase rates (T, 2, B) every ``EVERY`` ticks of a case."""
    seeds, method, params, dt, ticks, delay = CASES[name]
    controller = scene_controller(
        cs.sample_scenes(seeds), expert_primitives(), delay=delay, method=method, params=params
    )
    joints, rates = [], []
    for tick in range(ticks):
        controller.tick(dt)
        if tick % EVERY == EVERY - 1:
            joints.append(controller.joints.copy())
            rates.append(np.array(controller.phase_rate, dtype=np.float64))
    return np.stack(joints), np.stack(rates)


@pytest.mark.parametrize("name", list(CASES))
def test_tick_matches_the_recorded_reference(name: str) -> None:
    reference = np.load(REFERENCE)
    joints, rates = run_case(name)
    np.testing.assert_allclose(joints, reference[f"{name}/joints"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(rates, reference[f"{name}/rates"], rtol=0, atol=1e-9)
    # The recorded motion is not trivial: the arms moved, and the coupled ones yielded.
    assert np.abs(joints[-1] - joints[0]).max() > 0.3
    if CASES[name][1] == "coupled":
        assert rates.min() < 0.5


if __name__ == "__main__":
    REFERENCE.parent.mkdir(exist_ok=True)
    arrays = {}
    for case in CASES:
        arrays[f"{case}/joints"], arrays[f"{case}/rates"] = run_case(case)
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes)")
