"""``relu_mlp`` computes what ``nn.Sequential`` with autograd computes, bit for bit."""

from __future__ import annotations

import pytest
import torch
from robot_il.policies.opt_ail.policy import mlp
from robot_il.policies.opt_ail.relu_mlp import relu_mlp


def grads_of(net: torch.nn.Sequential, x: torch.Tensor, fused: bool) -> list[torch.Tensor]:
    net.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(x.requires_grad)
    out = relu_mlp(net, x) if fused else net(x)
    (out.sin() * torch.arange(out.shape[-1])).sum().backward()  # a nonuniform output gradient
    inputs = [x] if x.requires_grad else []
    return [out.detach(), *(t.grad for t in (*inputs, *net.parameters()) if t.requires_grad)]


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("hidden", [(32, 32), (16,), (8, 8, 8)])
def test_outputs_and_gradients_equal_autograd_bit_for_bit(hidden, input_grad) -> None:
    torch.manual_seed(0)
    net = mlp(7, hidden, 3)
    x = torch.randn(64, 7).requires_grad_(input_grad)
    expected, got = grads_of(net, x, fused=False), grads_of(net, x, fused=True)
    assert len(got) == len(expected) == 1 + input_grad + 2 * (len(hidden) + 1)
    for e, g in zip(expected, got, strict=True):
        assert g.shape == e.shape
        assert torch.equal(g, e)


def test_frozen_network_passes_the_input_gradient_and_computes_no_weight_gradient() -> None:
    """The actor's loss through the critic: the critic frozen, its input needing a gradient."""
    torch.manual_seed(1)
    net = mlp(5, (16, 16), 1)
    x = torch.randn(10, 5, requires_grad=True)
    expected = torch.autograd.grad(net(x).sum(), x)[0]
    net.requires_grad_(False)
    got = torch.autograd.grad(relu_mlp(net, x).sum(), x)[0]
    assert torch.equal(got, expected)
    assert all(p.grad is None for p in net.parameters())


def test_leading_dimensions_are_kept() -> None:
    net = mlp(4, (8,), 2)
    x = torch.randn(3, 5, 4)
    assert torch.equal(relu_mlp(net, x), net(x))


def test_second_derivatives_are_refused() -> None:
    """Losses that differentiate a gradient (the gradient penalty) must use the module."""
    net = mlp(4, (8,), 1)
    x = torch.randn(6, 4, requires_grad=True)
    (gradient,) = torch.autograd.grad(relu_mlp(net, x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        gradient.pow(2).sum().backward()
