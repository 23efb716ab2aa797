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
reward net's gradient penalty) runs the layers as ordinary autograd ops (``mlp_forward``).
Without grad mode (targets, exploring, acting) the same layers run with no autograd node.

Precision (``matmul_precision``): inside ``wide_matmuls_in("bf16")`` the matrix products
of the *wide* layers (input and output widths both at least ``WIDE``: the hidden-to-hidden
ones) take their float32 operands rounded to bfloat16, multiply them on the CPU's bfloat16
units (AMX, avx512_bf16) with float32 accumulation and return float32 (oneDNN's
``fp32_precision = "bf16"`` mode, switched on for those products only), in the forward
pass and in every backward one. On an AMX CPU such a 512x256 by 256x256 product takes
about a quarter of its float32 time; the thin first and last layers (30 -> 256, 256 -> 1)
gain nothing there and stay float32, as do weights, gradients, Adam's state and every loss.
Not every CPU that reports bfloat16 support rounds (``bf16_rounds_operands``: on an AMD EPYC
without AMX the same mode returns float32 products, about twice as fast as ``addmm``'s).
The wide layers' forward there runs as oneDNN's linear (``_biased_product``: the bias added
inside the product kernel), the same numbers as ``addmm`` with less memory traffic.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

_threshold_backward = torch.ops.aten.threshold_backward

MatmulPrecision = Literal["fp32", "bf16"]
WIDE = 128
"""A layer whose input and output widths are both at least this is computed in the
``wide_matmuls_in`` precision; every other layer in float32."""
_MKLDNN_MATMUL = torch.backends.mkldnn.matmul
_precision = threading.local()
_LINEAR = torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
"""oneDNN's fused linear (``x W^T + b`` in one kernel), where torch is built with oneDNN."""


@contextlib.contextmanager
def wide_matmuls_in(precision: MatmulPrecision) -> Iterator[None]:
    """Compute the wide layers' products of ``relu_mlp`` and ``mlp_forward`` (forward and
    backward passes of networks run inside) in ``precision``; see the module docstring.
    The choice is made per forward pass, so a backward run later follows its forward."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"matmul precision must be 'fp32' or 'bf16', got {precision!r}")
    before = getattr(_precision, "bf16", False)
    _precision.bf16 = precision == "bf16"
    try:
        yield
    finally:
        _precision.bf16 = before


def bf16_products_supported() -> bool:
    """Whether oneDNN offers bfloat16 products on this CPU (the ``"bf16"`` path runs)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


@functools.cache
def bf16_rounds_operands() -> bool:
    """Whether oneDNN's ``fp32_precision = "bf16"`` really rounds a wide product's operands
    here, probed once on random numbers. Not every CPU that reports bfloat16 support does:
    an AMD EPYC with avx512_bf16 and no AMX returns float32 products (the linear's bit for
    bit, ``mm``'s from another float32 kernel, within 1e-7), so ``"bf16"`` there computes
    float32 numbers on oneDNN's kernels, which are about twice as fast as ``addmm``'s."""
    if not bf16_products_supported():
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, WIDE * 2, generator=generator)
    weight = torch.randn(WIDE * 2, WIDE * 2, generator=generator)
    bias = torch.zeros(WIDE * 2)
    exact = (_biased_product(x, weight, bias), x.mm(weight))
    with _bf16_products():
        rounded = (_biased_product(x, weight, bias), x.mm(weight))
    # operands rounded to 8 significant bits move a 256-term sum by about 1e-3 of its
    # largest magnitude; another float32 kernel's summation order, by about 1e-7
    return all(float((r - e).abs().max() / e.abs().max()) > 1e-4
               for r, e in zip(rounded, exact, strict=True))  # fmt: skip


def _wide_bf16(weight: Tensor) -> bool:
    """Whether a layer of ``weight (out, in)`` runs in bfloat16 now."""
    return getattr(_precision, "bf16", False) and min(weight.shape) >= WIDE


@contextlib.contextmanager
def _bf16_products() -> Iterator[None]:
    """oneDNN computes float32 matrix products from bfloat16-rounded operands meanwhile.
    The setting is process-wide: a float32 product another thread ran meanwhile would be
    rounded too (the online loop runs its updates on one thread)."""
    before = _MKLDNN_MATMUL.fp32_precision
    _MKLDNN_MATMUL.fp32_precision = "bf16"
    try:
        yield
    finally:
        _MKLDNN_MATMUL.fp32_precision = before


def _biased_product(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x W^T + b`` as oneDNN's linear, which adds the bias in its product kernel: ``addmm``
    first copies the bias into a fresh output and then accumulates the product onto it, one
    more pass over a (rows x 256) output. Used for the wide layers in bfloat16, where
    ``addmm`` runs on oneDNN too; the same numbers bit for bit (tests/policies/
    test_relu_mlp.py), about 3% of an update (``benchmarks/opt_ail_speed.py``)."""
    if _LINEAR is None:
        return torch.addmm(bias, x, weight.t())
    return _LINEAR(x, weight, bias, "none", [], "")


def _mm(a: Tensor, b: Tensor, bf16: bool) -> Tensor:
    if not bf16:
        return a.mm(b)
    with _bf16_products():
        return a.mm(b)


def relu_mlp(net: nn.Sequential, x: Tensor) -> Tensor:
    """``net(x)`` for ``net`` = ``Linear, ReLU, ..., Linear`` (``robot_il.policies.opt_ail.
    policy.mlp``) on inputs ``(..., in)``; see the module docstring."""
    layers = [layer for layer in net if isinstance(layer, nn.Linear)]  # net[::2] builds a module
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    flat = x.reshape(-1, x.shape[-1])
    if torch.is_grad_enabled():
        out = _ReLUMLPFunction.apply(flat, *params)
    else:  # no graph to record (targets, exploring, acting): the same layers, no autograd node
        out = _layers(flat, params[0::2], params[1::2])[0]
    return out.reshape(*x.shape[:-1], out.shape[-1])


def _layers(
    x: Tensor, weights: tuple[Tensor, ...], biases: tuple[Tensor, ...]
) -> tuple[Tensor, list[Tensor], tuple[bool, ...]]:
    """The forward pass: the output, each layer's input, and which layers ran in bfloat16."""
    bf16 = tuple(_wide_bf16(weight) for weight in weights)
    layer_inputs = []
    h = x
    for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        layer_inputs.append(h)
        if bf16[i]:
            with _bf16_products():
                h = _biased_product(h, weight, bias)
        elif _fast_forms_agree(h, len(h), *weight.shape):  # same numbers
            h = _LINEAR(h, weight, bias, "none", [], "")
        else:
            h = torch.addmm(bias, h, weight.t())
        if i < len(weights) - 1:
            h = h.relu_()
    return h, layer_inputs, bf16


class _ReLUMLPFunction(torch.autograd.Function):
    """Inputs ``x (N, in), W_0, b_0, ..., W_L, b_L``; ReLU after every layer but the last."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, *params: Tensor) -> Tensor:
        weights = params[0::2]
        h, layer_inputs, bf16 = _layers(x, weights, params[1::2])
        ctx.save_for_backward(*layer_inputs, *weights)
        ctx.bf16 = bf16
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
            bf16 = ctx.bf16[i]
            if needs[1 + 2 * i]:
                grads[1 + 2 * i] = _weight_gradient(g, layer_inputs[i], bf16)
            if needs[2 + 2 * i]:
                grads[2 + 2 * i] = g.sum(0)
            if i > 0:
                g = _mm(g, weights[i], bf16)
                _threshold_backward(g, layer_inputs[i], 0, grad_input=g)
            elif needs[0]:
                grads[0] = _input_gradient(g, weights[0], bf16)
        return tuple(grads)


def _weight_gradient(g: Tensor, h: Tensor, bf16: bool) -> Tensor:
    """``dW = g^T h`` for a layer's output gradient ``g (N, out)`` and input ``h (N, in)``;
    a thin float32 layer's as ``(h^T g)^T`` where that gives the same numbers
    (``_fast_forms_agree``): MKL is slow at ``g^T h`` for a first layer's shape (3136 x 256
    by 3136 x 30, the critic's optimism pass: 1.09 ms against 0.56 ms). Autograd copies the
    transposed result into the weight's layout (in x out numbers, microseconds)."""
    if not bf16 and _fast_forms_agree(g, *g.shape, h.shape[1]):
        return h.t().mm(g).t()
    return _mm(g.t(), h, bf16)


def _input_gradient(g: Tensor, weight: Tensor, bf16: bool) -> Tensor:
    """``dx = g W`` for the first layer, as ``(W^T g^T)^T`` where that gives the same numbers
    (``_fast_forms_agree``; 512 x 256 by 256 x 30: 0.09 against 0.15 ms). The result is a
    transposed view; what consumes it (LayerNorm's backward, the critic's action input)
    reads any layout."""
    if not bf16 and _fast_forms_agree(g, len(g), *weight.shape):
        return weight.t().mm(g.t()).t()
    return _mm(g, weight, bf16)


def _fast_forms_agree(like: Tensor, rows: int, outputs: int, inputs: int) -> bool:
    """Whether, for a thin float32 layer (fewer inputs than outputs: a first layer) on ``rows``
    rows of tensors on ``like``'s device, this machine's CPU computes oneDNN's linear
    (``_LINEAR``), ``(h^T g)^T`` and ``(W^T g^T)^T`` bit for bit as ``addmm``, ``g^T h`` and ``g
    W`` (MKL's kernels, which plain autograd runs). They do at the walker's sizes (24 and 30
    inputs, 256 to 3136 rows) with torch 2.13 on x86, in about half the time; they do not at
    4-11 inputs (cartpole's 5 and 6) or one row (acting), where the kernels sum in another
    order. Which sums a kernel forms in which order depends on the shape and on how many threads
    share the product (here 24 inputs agree at 1 and 2 threads, not at 4), not on the numbers,
    so one comparison on random numbers per shape and thread count decides, and the plain forms
    are kept wherever any differs, and on a GPU, where none of those kernels runs."""
    if like.device.type != "cpu" or _LINEAR is None:
        return False
    return _fast_forms_agree_at(rows, outputs, inputs, torch.get_num_threads())


@functools.cache
def _fast_forms_agree_at(rows: int, outputs: int, inputs: int, threads: int) -> bool:
    """``_fast_forms_agree`` probed at torch's ``threads`` (the current count). Uses its own
    generator: the run's random stream is untouched."""
    if inputs >= outputs:
        return False
    generator = torch.Generator().manual_seed(0)
    g, h = (torch.randn(rows, n, generator=generator, device="cpu") for n in (outputs, inputs))
    weight = torch.randn(outputs, inputs, generator=generator, device="cpu")
    bias = torch.randn(outputs, generator=generator, device="cpu")
    return (
        torch.equal(_LINEAR(h, weight, bias, "none", [], ""), torch.addmm(bias, h, weight.t()))
        and torch.equal(h.t().mm(g).t(), g.t().mm(h))
        and torch.equal(weight.t().mm(g.t()).t(), g.mm(weight))
    )


def mlp_forward(net: nn.Sequential, x: Tensor) -> Tensor:
    """``net(x)`` for ``net`` = ``Linear, ReLU, ..., Linear`` with ordinary autograd (any
    derivative order), the wide layers' products in the ``wide_matmuls_in`` precision."""
    for layer in net:
        if isinstance(layer, nn.Linear) and _wide_bf16(layer.weight):
            x = _BF16MatMul.apply(x, layer.weight.t()) + layer.bias
        else:
            x = layer(x)
    return x


class _BF16MatMul(torch.autograd.Function):
    """``a @ b`` from bfloat16-rounded operands, float32 out; its backward is two more such
    products, so a gradient of a gradient (the gradient penalty) stays in bfloat16 too. A
    backward that records no graph (the last one) takes the products without a node each."""

    @staticmethod
    def forward(ctx: FunctionCtx, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return _mm(a, b, bf16=True)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, b = ctx.saved_tensors
        product = _BF16MatMul.apply if torch.is_grad_enabled() else _bf16_mm
        grad_a = product(grad, b.t()) if ctx.needs_input_grad[0] else None
        grad_b = product(a.t(), grad) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def _bf16_mm(a: Tensor, b: Tensor) -> Tensor:
    return _mm(a, b, bf16=True)
