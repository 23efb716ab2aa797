"""The evaluation's success figure (``success.png``)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_il.train.evaluate import EvalResult
from robot_il.train.report import plot_success, success_figure


@pytest.mark.parametrize("episodes", [1, 4, 7])
def test_the_episode_axis_shows_whole_episodes(episodes: int, tmp_path) -> None:
    """A short evaluation's plot labelled episodes 1.25, 1.5, ..."""
    import matplotlib.pyplot as plt

    result = EvalResult(
        seeds=list(range(episodes)),
        successes=[i % 2 == 0 for i in range(episodes)],
        lengths=[10] * episodes,
        returns=[0.0] * episodes,
    )
    fig = success_figure(result, "bc on mujoco")
    ticks = fig.axes[0].get_xticks()
    plt.close(fig)
    assert len(ticks) >= 1 and np.array_equal(ticks, np.round(ticks)), ticks
    assert plot_success(result, tmp_path / "plots" / "success.png", "bc").stat().st_size > 0
