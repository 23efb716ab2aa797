"""Today's safety filter decides exactly what its recorded reference decided, tick by tick.

The reference (``data/filter_reference.npz``, written by ``filter_replay.py`` from commit
7790ad8's filter, and again when holds became controlled stops and the arm braked for the
workspace box, and when that braking followed the tool point's path) holds 8,000 ticks of
seeded commands and situations; every tick's command and
the kinds of its events must come out the same, bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from filter_replay import CASES, REFERENCE, limit_sets, node_filter, replay


@pytest.mark.parametrize(("name", "seed", "ticks", "period"), CASES)
def test_filter_replays_the_reference_decisions_exactly(
    name: str, seed: int, ticks: int, period: float | None
) -> None:
    reference = np.load(REFERENCE)
    commands, kinds = replay(node_filter, limit_sets()[name], seed, ticks, period)
    expected_kinds = reference[f"{name}_{seed}_kinds"].tolist()
    assert len(kinds) == len(expected_kinds)
    pairs = enumerate(zip(kinds, expected_kinds, strict=True))
    first = next((i for i, (got, want) in pairs if got != want), None)
    assert first is None, (
        f"tick {first}: events {kinds[first]!r}, reference {expected_kinds[first]!r}"
    )
    expected = reference[f"{name}_{seed}_commands"]
    differs = np.flatnonzero(~np.all((commands == expected) | np.isnan(expected), axis=1))
    assert differs.size == 0, (
        f"tick {differs[0]}: command {commands[differs[0]]}, reference {expected[differs[0]]}"
    )
    assert np.array_equal(np.isnan(commands), np.isnan(expected))


def test_the_reference_tells_a_slightly_weaker_filter_apart() -> None:
    """The record is sharp: 1% more velocity limit changes it."""
    reference = np.load(REFERENCE)
    limits = limit_sets()["tight"]
    weaker = dataclasses.replace(limits, velocity=limits.velocity * 1.01)
    commands, _ = replay(node_filter, weaker, 1, 2000, None)
    assert not np.allclose(commands, reference["tight_1_commands"], equal_nan=True)
