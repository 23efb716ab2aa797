"""A ReLU MLP's forward and backward as one autograd node (``relu_mlp``), for the online
learners' critic and actor, which run several of them per env step on CPU.

Why: the networks are small (2x256), so on one CPU core an update spends much of its time
outside the matrix products: one autograd node per Linear and per ReLU, a fresh tensor for
each ReLU's output and each ReLU's gradient, and the bookkeeping between them. Here the
forward is the same ``addmm`` per layer with the ReLU applied in place, and the backward
is written out: per layer ``dW = g^T h``, ``db = sum_rows g``, ``g <- (g W) * [h > 0]``
(the mask applied in place), skipping the weight gradients of a frozen network and the
input gradient of an input that needs none. It computes the same numbers as
``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU`` with autograd, in the same operations
(tests/policies/test_relu_mlp.py checks them bit for bit). Its backward is not itself
differentiable (``once_differentiable``): a loss that needs second derivatives (the
reward net's gradient penalty) keeps the ``nn.Sequential``'s own forward.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

_threshold_backward = torch.ops.aten.threshold_backward


def relu_mlp(net: nn.Sequential, x: Tensor) -> Tensor:
    """``net(x)`` for ``net`` = ``Linear, ReLU, ..., Linear`` (``robot_il.policies.opt_ail.
    policy.mlp``) on inputs ``(..., in)``; see the module docstring."""
    params: list[Tensor] = []
    for layer in net[::2]:
        params += [layer.weight, layer.bias]
    flat = x.reshape(-1, x.shape[-1])
    out = _ReLUMLPFunction.apply(flat, *params)
    return out.reshape(*x.shape[:-1], out.shape[-1])


class _ReLUMLPFunction(torch.autograd.Function):
    """Inputs ``x (N, in), W_0, b_0, ..., W_L, b_L``; ReLU after every layer but the last."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, *params: Tensor) -> Tensor:
        weights = params[0::2]
        layer_inputs = []
        h = x
        for i, (weight, bias) in enumerate(zip(weights, params[1::2], strict=True)):
            layer_inputs.append(h)
            h = torch.addmm(bias, h, weight.t())
            if i < len(weights) - 1:
                h = h.relu_()
        ctx.save_for_backward(*layer_inputs, *weights)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        layers = len(saved) // 2
        layer_inputs, weights = saved[:layers], saved[layers:]
        needs = ctx.needs_input_grad
        grads: list[Tensor | None] = [None] * (1 + 2 * layers)
        g = grad
        for i in reversed(range(layers)):
            if not any(needs[: 3 + 2 * i]):
                break
            if needs[1 + 2 * i]:
                grads[1 + 2 * i] = g.t().mm(layer_inputs[i])
            if needs[2 + 2 * i]:
                grads[2 + 2 * i] = g.sum(0)
            if i > 0:
                g = g.mm(weights[i])
                _threshold_backward(g, layer_inputs[i], 0, grad_input=g)
            elif needs[0]:
                grads[0] = g.mm(weights[0])
        return tuple(grads)
