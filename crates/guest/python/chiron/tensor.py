"""`Tensor`: a handle to a dense f32 tensor living in the host engine.

Every operation is one call into the host, where the math runs natively; Python only holds
handles. Dropping the last reference to a `Tensor` frees the host tensor.

>>> x = chiron.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> y = (x @ x.transpose(0, 1)).relu() * 0.5 + 1.0
>>> y.shape
(2, 2)
"""

from __future__ import annotations

import operator
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from wit_world.imports import nn as _wnn
from wit_world.imports import tensor as _wt

from .errors import InvalidArgument, InvalidShape, call

__all__ = [
    "Tensor",
    "tensor",
    "full",
    "zeros",
    "ones",
    "cat",
    "concat",
    "Conv2dOptions",
    "Pool2dOptions",
]

#: Options of `conv2d` as the world takes them (stride, padding, dilation, groups).
Conv2dOptions = _wt.Conv2dOptions
#: Options of `max_pool2d` / `avg_pool2d` as the world takes them (kernel, stride, padding).
Pool2dOptions = _wt.Pool2dOptions

Number = Union[int, float]
ShapeLike = Union[int, Sequence[int]]

_U32 = 2**32
_S32 = 2**31


def u32(value: Any) -> int:
    """`value` as a u32 argument (an int in `0..2^32`), else `InvalidArgument`."""
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidArgument() from None
    if not 0 <= v < _U32:
        raise InvalidArgument()
    return v


def u64(value: Any) -> int:
    """`value` as a u64 argument (an int in `0..2^64`), else `InvalidArgument`."""
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidArgument() from None
    if not 0 <= v < 2**64:
        raise InvalidArgument()
    return v


def dims(shape: Iterable[Any]) -> List[int]:
    """A shape as the world's `list<u32>`."""
    return [u32(d) for d in shape]


def shape_args(args: Tuple[Any, ...]) -> List[int]:
    """PyTorch-style shape arguments: `f(2, 3)` or `f((2, 3))` or `f([2, 3])`."""
    if len(args) == 1 and not isinstance(args[0], int):
        return dims(args[0])
    return dims(args)


def pair(value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """`k` → `(k, k)`; a pair stays a pair (PyTorch's `_pair`)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InvalidArgument()
        return (u32(value[0]), u32(value[1]))
    v = u32(value)
    return (v, v)


class Tensor:
    """A dense f32 tensor in the host engine (a handle; the math runs host-side).

    Build one with `chiron.tensor`, `chiron.full`, `chiron.zeros`, `chiron.ones`, or get it
    from `chiron.data.batch` and layer calls. Arithmetic operators accept a tensor (with
    broadcasting) or a Python number:

    * `x * s`, `s * x` → `affine(x, s, 0)`; `x + s`, `s + x` → `affine(x, 1, s)`;
      `x - s` → `affine(x, 1, -s)`; `s - x` → `affine(x, -1, s)`; `-x` → `affine(x, -1, 0)`
      (all exact: the host multiplies, then adds);
    * `x / s` and `s / x` divide by (or into) a one-element tensor `full([1], s)`, because
      `x * (1/s)` is not always `x / s` in floating point.
    """

    __slots__ = ("_raw", "_shape", "_borrowed", "__weakref__")

    def __init__(self, raw: _wt.Tensor, *, _borrowed: bool = False) -> None:
        """Wraps a handle of the generated bindings (SDK-internal; see `chiron.tensor`)."""
        self._raw: Optional[_wt.Tensor] = raw
        self._shape: Optional[Tuple[int, ...]] = None
        self._borrowed = _borrowed

    # --- handle ---

    @property
    def raw(self) -> _wt.Tensor:
        """The generated binding's handle (to call `wit_world.imports` directly)."""
        raw = self._raw
        if raw is None:
            raise RuntimeError(
                "this parameter was created under chiron.nn.skip_init() and never loaded "
                "(call load_state_dict first)"
            )
        return raw

    # --- shape and values ---

    @property
    def shape(self) -> Tuple[int, ...]:
        """The shape, as a tuple of ints."""
        if self._shape is None:
            self._shape = tuple(self.raw.shape())
        return self._shape

    def size(self, dim: Optional[int] = None) -> Union[Tuple[int, ...], int]:
        """The shape (PyTorch's `size()`), or the length of axis `dim`."""
        if dim is None:
            return self.shape
        return self.shape[dim]

    def dim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    def numel(self) -> int:
        """Number of elements (product of the shape)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __len__(self) -> int:
        """Length of the first axis."""
        return self.shape[0]

    def item(self) -> float:
        """The single value of a one-element tensor (an f32, as a Python float)."""
        return call(self.raw.item)

    def to_list(self) -> List[float]:
        """All values, flat, in row-major order (the world's `to-list`)."""
        return call(self.raw.to_list)

    def tolist(self) -> Any:
        """All values as nested lists following the shape (PyTorch's `tolist`)."""
        flat = self.to_list()
        shape = self.shape
        for d in reversed(shape[1:]):
            flat = [flat[i : i + d] for i in range(0, len(flat), d)]
        return flat

    def __repr__(self) -> str:
        if self._raw is None:
            return f"Tensor(shape={self._shape}, unloaded)"
        return f"Tensor(shape={self.shape})"

    # --- arithmetic ---

    def _scalar_tensor(self, value: Number) -> "Tensor":
        return Tensor(call(_wt.Tensor.full, [1], float(value)))

    def __add__(self, other: Union["Tensor", Number]) -> "Tensor":
        if isinstance(other, Tensor):
            return Tensor(call(_wt.add, self.raw, other.raw))
        if isinstance(other, (int, float)):
            return self.affine(1.0, other)
        return NotImplemented

    def __radd__(self, other: Number) -> "Tensor":
        if isinstance(other, (int, float)):
            return self.affine(1.0, other)
        return NotImplemented

    def __sub__(self, other: Union["Tensor", Number]) -> "Tensor":
        if isinstance(other, Tensor):
            return Tensor(call(_wt.sub, self.raw, other.raw))
        if isinstance(other, (int, float)):
            return self.affine(1.0, -other)
        return NotImplemented

    def __rsub__(self, other: Number) -> "Tensor":
        if isinstance(other, (int, float)):
            return self.affine(-1.0, other)
        return NotImplemented

    def __mul__(self, other: Union["Tensor", Number]) -> "Tensor":
        if isinstance(other, Tensor):
            return Tensor(call(_wt.mul, self.raw, other.raw))
        if isinstance(other, (int, float)):
            return self.affine(other, 0.0)
        return NotImplemented

    def __rmul__(self, other: Number) -> "Tensor":
        if isinstance(other, (int, float)):
            return self.affine(other, 0.0)
        return NotImplemented

    def __truediv__(self, other: Union["Tensor", Number]) -> "Tensor":
        if isinstance(other, Tensor):
            return Tensor(call(_wt.div, self.raw, other.raw))
        if isinstance(other, (int, float)):
            return Tensor(call(_wt.div, self.raw, self._scalar_tensor(other).raw))
        return NotImplemented

    def __rtruediv__(self, other: Number) -> "Tensor":
        if isinstance(other, (int, float)):
            return Tensor(call(_wt.div, self._scalar_tensor(other).raw, self.raw))
        return NotImplemented

    def __neg__(self) -> "Tensor":
        return self.affine(-1.0, 0.0)

    def __matmul__(self, other: "Tensor") -> "Tensor":
        if isinstance(other, Tensor):
            return self.matmul(other)
        return NotImplemented

    def add(self, other: Union["Tensor", Number]) -> "Tensor":
        """`self + other` (broadcasting)."""
        return self + other

    def sub(self, other: Union["Tensor", Number]) -> "Tensor":
        """`self - other` (broadcasting)."""
        return self - other

    def mul(self, other: Union["Tensor", Number]) -> "Tensor":
        """`self * other` elementwise (broadcasting)."""
        return self * other

    def div(self, other: Union["Tensor", Number]) -> "Tensor":
        """`self / other` elementwise (broadcasting)."""
        return self / other

    def affine(self, scale: Number, shift: Number) -> "Tensor":
        """`self * scale + shift` (one host call)."""
        return Tensor(call(_wt.affine, self.raw, float(scale), float(shift)))

    def matmul(self, other: "Tensor") -> "Tensor":
        """Batched matrix product over the last two axes."""
        return Tensor(call(_wt.matmul, self.raw, other.raw))

    # --- layers as methods ---

    def linear(self, weight: "Tensor", bias: Optional["Tensor"] = None) -> "Tensor":
        """`self [.., in] · weight [out, in]ᵀ + bias [out]`."""
        return Tensor(call(_wt.linear, self.raw, weight.raw, None if bias is None else bias.raw))

    def conv2d(
        self,
        weight: "Tensor",
        bias: Optional["Tensor"] = None,
        stride: ShapeLike = 1,
        padding: ShapeLike = 0,
        dilation: ShapeLike = 1,
        groups: int = 1,
    ) -> "Tensor":
        """2-D convolution of `self [n, c, h, w]` with `weight [out, c / groups, kh, kw]`."""
        options = Conv2dOptions(pair(stride), pair(padding), pair(dilation), u32(groups))
        return Tensor(
            call(_wt.conv2d, self.raw, weight.raw, None if bias is None else bias.raw, options)
        )

    def max_pool2d(
        self, kernel_size: ShapeLike, stride: Optional[ShapeLike] = None, padding: ShapeLike = 0
    ) -> "Tensor":
        """Max pooling over `[n, c, h, w]`; `stride` defaults to `kernel_size`."""
        options = _pool_options(kernel_size, stride, padding)
        return Tensor(call(_wt.max_pool2d, self.raw, options))

    def avg_pool2d(
        self, kernel_size: ShapeLike, stride: Optional[ShapeLike] = None, padding: ShapeLike = 0
    ) -> "Tensor":
        """Average pooling over `[n, c, h, w]`; `stride` defaults to `kernel_size`."""
        options = _pool_options(kernel_size, stride, padding)
        return Tensor(call(_wt.avg_pool2d, self.raw, options))

    def adaptive_avg_pool2d(self, output_size: ShapeLike) -> "Tensor":
        """Average pooling to a fixed spatial size `(oh, ow)` (`1` = global average)."""
        return Tensor(call(_wt.adaptive_avg_pool2d, self.raw, pair(output_size)))

    def dropout(self, p: float = 0.5, training: bool = True) -> "Tensor":
        """Inverted dropout with probability `p` (host RNG); identity when not `training`."""
        return Tensor(call(_wt.dropout, self.raw, float(p), bool(training)))

    # --- activations ---

    def relu(self) -> "Tensor":
        """`max(self, 0)`."""
        return Tensor(call(_wt.relu, self.raw))

    def gelu(self) -> "Tensor":
        """GELU."""
        return Tensor(call(_wt.gelu, self.raw))

    def sigmoid(self) -> "Tensor":
        """Logistic sigmoid."""
        return Tensor(call(_wt.sigmoid, self.raw))

    def tanh(self) -> "Tensor":
        """Hyperbolic tangent."""
        return Tensor(call(_wt.tanh, self.raw))

    def softmax(self, dim: int) -> "Tensor":
        """Softmax along `dim`."""
        return Tensor(call(_wt.softmax, self.raw, self._axis(dim)))

    def log_softmax(self, dim: int) -> "Tensor":
        """Log-softmax along `dim`."""
        return Tensor(call(_wt.log_softmax, self.raw, self._axis(dim)))

    # --- losses ---

    def cross_entropy(self, labels: "Tensor") -> "Tensor":
        """Mean cross-entropy of logits `self [n, classes]` against class indices `labels [n]`."""
        return Tensor(call(_wt.cross_entropy, self.raw, labels.raw))

    def mse(self, target: "Tensor") -> "Tensor":
        """Mean squared error against `target`."""
        return Tensor(call(_wt.mse, self.raw, target.raw))

    # --- shape ---

    def _axis(self, dim: int) -> int:
        d = operator.index(dim)
        if d < 0:
            d += self.ndim
        return u32(d)

    def reshape(self, *shape: Union[int, Sequence[int]]) -> "Tensor":
        """The same values with another shape; one entry may be `-1` (inferred)."""
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        target = []
        for d in shape:
            try:
                v = operator.index(d)
            except TypeError:
                raise InvalidArgument() from None
            if not -_S32 <= v < _S32:
                raise InvalidArgument()
            target.append(v)
        return Tensor(call(_wt.reshape, self.raw, target))

    def view(self, *shape: Union[int, Sequence[int]]) -> "Tensor":
        """Alias of `reshape` (the host has no views; this is a new handle)."""
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        """Collapses axes `start_dim..=end_dim` into one (`flatten(1)`: `[n, c, h, w]` → `[n, c·h·w]`).

        With the default `end_dim` this is one host call (`flatten`); otherwise a `reshape`.
        """
        if end_dim == -1:
            return Tensor(call(_wt.flatten, self.raw, self._axis(start_dim)))
        shape = self.shape
        start, end = self._axis(start_dim), self._axis(end_dim)
        if start > end or end >= len(shape):
            raise InvalidArgument()
        merged = 1
        for d in shape[start : end + 1]:
            merged *= d
        return self.reshape(list(shape[:start]) + [merged] + list(shape[end + 1 :]))

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        """Swaps two axes."""
        return Tensor(call(_wt.transpose, self.raw, self._axis(dim0), self._axis(dim1)))

    # --- reductions ---

    def mean(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        """Mean over `dim` (kept as size 1 with `keepdim`), or of all elements."""
        axis = None if dim is None else self._axis(dim)
        return Tensor(call(_wt.mean, self.raw, axis, bool(keepdim)))

    def sum(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        """Sum over `dim` (kept as size 1 with `keepdim`), or of all elements."""
        axis = None if dim is None else self._axis(dim)
        return Tensor(call(_wt.sum, self.raw, axis, bool(keepdim)))

    def argmax(self, dim: Optional[int] = None) -> "Tensor":
        """Indices of the maxima along `dim` (of the flattened tensor without one), as f32."""
        if dim is None:
            return self.flatten(0).argmax(0)
        return Tensor(call(_wt.argmax, self.raw, self._axis(dim)))

    def correct(self, labels: "Tensor") -> int:
        """Number of rows of class scores `self [n, classes]` whose argmax equals `labels [n]`.

        Computed host-side except for the final comparison of `n` indices.
        """
        predicted = self.argmax(1).to_list()
        expected = labels.to_list()
        return sum(1 for p, e in zip(predicted, expected) if p == e)

    # --- other ---

    def detach(self) -> "Tensor":
        """A copy that does not track gradients."""
        return Tensor(call(_wt.detach, self.raw))

    def normalize_channels(self, mean: Sequence[float], std: Sequence[float]) -> "Tensor":
        """Per-channel `(x - mean[c]) / std[c]` over axis 1 of `[n, c, ..]`."""
        return Tensor(
            call(_wt.normalize_channels, self.raw, [float(m) for m in mean], [float(s) for s in std])
        )

    def backward(self) -> None:
        """Computes the gradients of this one-element loss for every parameter it depends on.

        The optimizer's `step` consumes (and clears) them.
        """
        call(_wnn.backward, self.raw)


def _pool_options(
    kernel_size: ShapeLike, stride: Optional[ShapeLike], padding: ShapeLike
) -> Pool2dOptions:
    kernel = pair(kernel_size)
    return Pool2dOptions(kernel, kernel if stride is None else pair(stride), pair(padding))


def _flatten_nested(data: Any) -> Tuple[List[float], List[int]]:
    """Row-major values and shape of nested sequences of numbers."""
    if isinstance(data, (int, float)):
        return [float(data)], []
    if not isinstance(data, (list, tuple)) or not data:
        raise InvalidShape()
    parts = [_flatten_nested(d) for d in data]
    inner = parts[0][1]
    if any(p[1] != inner for p in parts):
        raise InvalidShape()
    values: List[float] = []
    for p in parts:
        values.extend(p[0])
    return values, [len(data)] + inner


def tensor(data: Any, shape: Optional[Sequence[int]] = None) -> Tensor:
    """A tensor from Python numbers (one `from-data` call).

    `data` is a number, or (nested) lists of numbers whose nesting gives the shape, or a flat
    sequence with an explicit `shape`. A single number becomes a tensor of shape `[1]` (the
    engine has no rank-0 tensors).
    """
    if shape is not None:
        values = [float(v) for v in data]
        target = dims(shape)
    else:
        values, target = _flatten_nested(data)
        if not target:
            target = [1]
    return Tensor(call(_wt.Tensor.from_data, target, values))


def full(shape: Sequence[int], value: float) -> Tensor:
    """A tensor of `shape` filled with `value`."""
    return Tensor(call(_wt.Tensor.full, dims(shape), float(value)))


def zeros(*shape: Union[int, Sequence[int]]) -> Tensor:
    """A tensor of zeros: `zeros(2, 3)` or `zeros((2, 3))`."""
    return Tensor(call(_wt.Tensor.full, shape_args(shape), 0.0))


def ones(*shape: Union[int, Sequence[int]]) -> Tensor:
    """A tensor of ones: `ones(2, 3)` or `ones((2, 3))`."""
    return Tensor(call(_wt.Tensor.full, shape_args(shape), 1.0))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenates tensors along `dim` (PyTorch's `torch.cat`)."""
    tensors = list(tensors)
    if not tensors:
        raise InvalidArgument()
    axis = tensors[0]._axis(dim)
    return Tensor(call(_wt.concat, [t.raw for t in tensors], axis))


#: Alias of `cat` (the world's name).
concat = cat
