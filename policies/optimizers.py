"""The optimizers every trainer builds: Adam and AdamW with their fused kernels.

PyTorch's default Adam(W) on the CPU loops over the parameter tensors in Python, a dozen
elementwise ops each; the fused kernel updates a tensor in one pass. Training steps per second
with it against the default, one thread (``benchmarks/policies.py --train-speed``, rows in
``benchmarks/results/train_speed.jsonl``): Diffusion Policy 1.10x (the default config and the
learning tests' small one), BC's MLP 1.03x (few, large tensors). The update is the same
algorithm, its float rounding not bit for bit the loop's. A run saved before the trainers
used it resumes on the loop's path (an optimizer's saved settings win on load), so a resumed
run goes on as it began.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def adam(parameters: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam (no weight decay) with its fused kernel."""
    return torch.optim.Adam(parameters, lr=lr, fused=True)


def adamw(parameters: Iterable[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (decoupled weight decay) with its fused kernel."""
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)
