"""The optimizers every trainer builds, Adam and AdamW with their fused kernels, and the
lean step and gradient reset OPT-AIL's per-env-step updates use with them.

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


def adam_step(optimizer: torch.optim.Adam) -> None:
    """``optimizer.step()`` for an ``adam`` optimizer, calling the fused kernel itself once its
    state exists: the same kernel on the same tensors (the same numbers, bit for bit;
    tests/policies/test_opt_ail.py), without ``Optimizer.step``'s per-call Python work
    (hooks, grouping tensors by device and dtype), a few percent of an update here."""
    (group,) = optimizer.param_groups
    params = [p for p in group["params"] if p.grad is not None]
    states = [optimizer.state.get(p) for p in params]
    plain = group["fused"] and not (group["amsgrad"] or group["decoupled_weight_decay"])
    if not params or None in states or not plain:
        optimizer.step()
        return
    steps = [state["step"] for state in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                       [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False,
                       lr=group["lr"], beta1=beta1, beta2=beta2,
                       weight_decay=group["weight_decay"], eps=group["eps"],
                       maximize=group["maximize"], grad_scale=None, found_inf=None)  # fmt: skip


def clear_gradients(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` without its profiler scope and per-call
    Python (25 against 3 microseconds here, three times an update)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
