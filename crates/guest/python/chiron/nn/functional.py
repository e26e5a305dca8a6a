"""Stateless operations, PyTorch's `torch.nn.functional`: one host call each (unless noted)."""

from __future__ import annotations

from typing import Optional

from wit_world.imports import tensor as _wt

from ..errors import call
from ..tensor import ShapeLike, Tensor, full

__all__ = [
    "relu",
    "gelu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "linear",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "batch_norm",
    "dropout",
    "cross_entropy",
    "mse_loss",
    "normalize_channels",
]


def relu(x: Tensor) -> Tensor:
    """`max(x, 0)`."""
    return x.relu()


def gelu(x: Tensor) -> Tensor:
    """GELU."""
    return x.gelu()


def sigmoid(x: Tensor) -> Tensor:
    """Logistic sigmoid."""
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return x.tanh()


def softmax(x: Tensor, dim: int) -> Tensor:
    """Softmax along `dim`."""
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    """Log-softmax along `dim`."""
    return x.log_softmax(dim)


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """`x [.., in] · weight [out, in]ᵀ + bias [out]`."""
    return x.linear(weight, bias)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: ShapeLike = 1,
    padding: ShapeLike = 0,
    dilation: ShapeLike = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution of `x [n, c, h, w]` with `weight [out, c / groups, kh, kw]`."""
    return x.conv2d(weight, bias, stride, padding, dilation, groups)


def max_pool2d(
    x: Tensor, kernel_size: ShapeLike, stride: Optional[ShapeLike] = None, padding: ShapeLike = 0
) -> Tensor:
    """Max pooling; `stride` defaults to `kernel_size`."""
    return x.max_pool2d(kernel_size, stride, padding)


def avg_pool2d(
    x: Tensor, kernel_size: ShapeLike, stride: Optional[ShapeLike] = None, padding: ShapeLike = 0
) -> Tensor:
    """Average pooling; `stride` defaults to `kernel_size`."""
    return x.avg_pool2d(kernel_size, stride, padding)


def adaptive_avg_pool2d(x: Tensor, output_size: ShapeLike) -> Tensor:
    """Average pooling to a fixed spatial size."""
    return x.adaptive_avg_pool2d(output_size)


def batch_norm(
    x: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over axis 1 (PyTorch's argument order).

    In training mode it uses the batch statistics and updates `running_mean` / `running_var`
    in place (host-side) with `momentum`; otherwise it uses them. A missing `weight` / `bias`
    is a fresh tensor of ones / zeros (one extra `full` call each).
    """
    if weight is None:
        weight = full(running_mean.shape, 1.0)
    if bias is None:
        bias = full(running_mean.shape, 0.0)
    return Tensor(
        call(
            _wt.batch_norm,
            x.raw,
            weight.raw,
            bias.raw,
            running_mean.raw,
            running_var.raw,
            bool(training),
            float(momentum),
            float(eps),
        )
    )


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout with probability `p` (host RNG); identity when not `training`."""
    return x.dropout(p, training)


def cross_entropy(input: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy of logits `input [n, classes]` against class indices `target [n]`."""
    return input.cross_entropy(target)


def mse_loss(input: Tensor, target: Tensor) -> Tensor:
    """Mean squared error."""
    return input.mse(target)


def normalize_channels(x: Tensor, mean: list, std: list) -> Tensor:
    """Per-channel `(x - mean[c]) / std[c]` over axis 1 of `[n, c, ..]`."""
    return x.normalize_channels(mean, std)
