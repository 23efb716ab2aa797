"""Figures of evaluation results, for people: per-episode outcomes and the running success
rate with its 95% Wilson band."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_il.train.evaluate import EvalResult
from robot_il.train.stats import wilson_interval


def plot_success(result: EvalResult, path: str | Path, title: str) -> Path:
    """Write a PNG: each episode's outcome (dot at 1 or 0) and the running success rate."""
    import matplotlib.pyplot as plt

    fig = success_figure(result, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def success_figure(result: EvalResult, title: str):
    """The figure :func:`plot_success` writes (a matplotlib ``Figure``; episodes numbered
    from 1, whole numbers only on the axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = np.arange(1, result.episodes + 1)
    wins = np.cumsum(result.successes)
    bands = np.array([wilson_interval(int(k), int(m)) for k, m in zip(wins, n, strict=True)])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.fill_between(n, bands[:, 0], bands[:, 1], alpha=0.25, label="95% Wilson interval")
    ax.plot(n, wins / n, lw=2, label="running success rate")
    colours = ["tab:green" if s else "tab:red" for s in result.successes]
    ax.scatter(n, np.asarray(result.successes, dtype=float), c=colours, s=18, zorder=3,
               label="episode outcome")  # fmt: skip
    ax.set(xlabel="episode", ylabel="success", ylim=(-0.05, 1.05), title=title)
    ax.set_xlim(0.5, result.episodes + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no episode 1.25
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
