"""Layers and `Module`, PyTorch style.

A `Module` registers the `Parameter`s, buffers and sub-modules assigned to its attributes, in
assignment order; their dotted attribute paths (`fc1.weight`, `block0.bn.running_mean`) are the
names a model is saved, checkpointed and loaded under.

Parameters are created by the host's seeded generator (`parameter`), so a job's weights depend
on the *order* in which layers are built: build them in the same order every time.

In `predict`, build the same network without drawing any initial values, then load the saved
tensors into it:

>>> saved = chiron.model.load()
>>> with chiron.nn.skip_init():
...     net = Net(...)
>>> net.load_state_dict(saved)
>>> net.eval()
"""

from __future__ import annotations

import contextlib
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from wit_world.imports import nn as _wnn
from wit_world.imports import tensor as _wt

from ..errors import InvalidArgument, InvalidShape, call
from ..tensor import Conv2dOptions, ShapeLike, Tensor, _pool_options, dims, pair, u32
from . import functional
from . import functional as F

__all__ = [
    "Init",
    "Parameter",
    "parameter",
    "buffer",
    "skip_init",
    "valid_name",
    "Module",
    "Linear",
    "Conv2d",
    "BatchNorm2d",
    "BatchNorm1d",
    "Dropout",
    "ReLU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Identity",
    "Sequential",
    "functional",
]

#: Parameter initialisers (formulas in the WIT `init` enum): `ZEROS`, `ONES`,
#: `KAIMING_UNIFORM`, `KAIMING_NORMAL`, `XAVIER_UNIFORM`, `XAVIER_NORMAL`, `BIAS_UNIFORM`.
Init = _wnn.Init

#: The longest tensor name the runtime accepts.
MAX_NAME_LEN = 64

_skip_init_depth = 0


def valid_name(name: str) -> bool:
    """Whether `name` is a valid saved-tensor name: 1–64 characters of `[a-z0-9_.]`."""
    return 0 < len(name) <= MAX_NAME_LEN and all(
        ("a" <= c <= "z") or ("0" <= c <= "9") or c in "_." for c in name
    )


class Parameter(Tensor):
    """A trainable tensor: what `Module.parameters()` yields and an optimizer updates.

    Made by `parameter` (host initialiser) or by `load_state_dict`. Under `skip_init` it is a
    placeholder that knows only its shape until `load_state_dict` fills it.
    """

    __slots__ = ()

    @classmethod
    def _placeholder(cls, shape: Sequence[int]) -> "Parameter":
        p = cls.__new__(cls)
        p._raw = None
        p._shape = tuple(shape)
        p._borrowed = False
        return p

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor") :]


class _Buffer(Tensor):
    """A buffer placeholder made under `skip_init` (shape only)."""

    __slots__ = ()


def _init_of(init: Union[Init, str]) -> Init:
    if isinstance(init, Init):
        return init
    if isinstance(init, str):
        try:
            return Init[init.upper().replace("-", "_")]
        except KeyError:
            raise InvalidArgument() from None
    raise InvalidArgument()


def parameter(shape: Sequence[int], init: Union[Init, str], fan_in: int, fan_out: int) -> Parameter:
    """A trainable tensor of `shape` initialised by the host's seeded generator.

    `init` is an `Init` (or its name, e.g. `"kaiming_uniform"`); `fan_in` / `fan_out` enter
    its formula. Under `skip_init` no host call is made and a placeholder is returned.
    """
    target = dims(shape)
    kind = _init_of(init)
    if _skip_init_depth:
        return Parameter._placeholder(target)
    raw = call(_wnn.parameter, target, kind, u32(fan_in), u32(fan_out))
    p = Parameter.__new__(Parameter)
    Tensor.__init__(p, raw)
    return p


def buffer(shape: Sequence[int], value: float) -> Tensor:
    """A non-trainable state tensor (e.g. batch-norm running statistics) filled with `value`.

    Under `skip_init` no host call is made and a placeholder is returned.
    """
    target = dims(shape)
    if _skip_init_depth:
        b = _Buffer.__new__(_Buffer)
        b._raw = None
        b._shape = tuple(target)
        b._borrowed = False
        return b
    return Tensor(call(_wnn.buffer, target, float(value)))


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Within this block, layers get shape-only placeholders instead of initialised tensors.

    Use it in `predict` (or to fine-tune) to build a network that `load_state_dict` then
    fills, without drawing from the host's generator. Using a placeholder before it is loaded
    raises `RuntimeError`.
    """
    global _skip_init_depth
    _skip_init_depth += 1
    try:
        yield
    finally:
        _skip_init_depth -= 1


class Module:
    """Base class of layers and networks (PyTorch's `nn.Module`).

    Subclasses call `super().__init__()` first, assign layers, `Parameter`s (from `parameter`)
    and buffers (`register_buffer`) to attributes, and define `forward`. Calling the module
    calls `forward`.
    """

    training: bool

    def __init__(self) -> None:
        """An empty module in training mode."""
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # --- registration ---

    def _registries(self) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
        try:
            d = self.__dict__
            return d["_parameters"], d["_buffers"], d["_modules"]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() first"
            ) from None

    # A registered parameter, buffer or sub-module is also kept in the instance's `__dict__`,
    # where attribute lookup finds it without calling `__getattr__`: `forward` reads them for
    # every batch, and each Python call costs an interpreted trainer more than the engine call
    # it leads to. The registries stay the truth for order and traversal.

    def __setattr__(self, name: str, value: Any) -> None:
        params, buffers, modules = self._registries()
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r}")
            params[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r}")
            buffers[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to module {name!r}")
            modules[name] = None
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            r = d.get(registry)
            if r is not None and name in r:
                return r[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for r in self._registries():
            if name in r:
                del r[name]
                self.__dict__.pop(name, None)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Registers `param` (or `None`, e.g. an absent bias) under `name`."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError("register_parameter takes a chiron.nn.Parameter or None")
        self._registries()[0][name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Optional[Tensor]) -> None:
        """Registers a non-trainable state tensor (saved with the model) under `name`."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError("register_buffer takes a chiron.Tensor or None")
        self._registries()[1][name] = tensor
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        """Registers a sub-module under `name`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError("add_module takes a chiron.nn.Module or None")
        self._registries()[2][name] = module
        object.__setattr__(self, name, module)

    # --- calling ---

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls `forward`."""
        return self.forward(*args, **kwargs)

    # --- traversal ---

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        """Direct sub-modules with their names, in registration order."""
        for name, m in self._registries()[2].items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator["Module"]:
        """Direct sub-modules, in registration order."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        """This module and every sub-module (depth first), with dotted names."""
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(_join(prefix, name))

    def modules(self) -> Iterator["Module"]:
        """This module and every sub-module (depth first)."""
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """Parameters with dotted names: a module's own first, then its children's, in order.

        A parameter shared by several modules is yielded once.
        """
        seen = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mprefix, m in modules:
            for name, p in m._registries()[0].items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield _join(mprefix, name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The trainable parameters (what an optimizer updates), in `named_parameters` order."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Tensor]]:
        """Buffers with dotted names."""
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mprefix, m in modules:
            for name, b in m._registries()[1].items():
                if b is not None:
                    yield _join(mprefix, name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Buffers."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_tensors(self, prefix: str = "") -> List[Tuple[str, Tensor]]:
        """Every tensor to save — parameters and buffers — by full name.

        Order (PyTorch's `state_dict` order): a module's own parameters, then its own buffers,
        then each child's, depth first. This is what `model.save`, `model.checkpoint` and
        `model.resume` take.
        """
        out: List[Tuple[str, Tensor]] = []
        params, buffers, _ = self._registries()
        for name, p in params.items():
            if p is not None:
                out.append((_join(prefix, name), p))
        for name, b in buffers.items():
            if b is not None:
                out.append((_join(prefix, name), b))
        for name, m in self.named_children():
            out.extend(m.named_tensors(_join(prefix, name)))
        return out

    def state_dict(self) -> Dict[str, Tensor]:
        """`named_tensors()` as an (ordered) dict."""
        return dict(self.named_tensors())

    def load_state_dict(self, state: Mapping[str, Tensor], strict: bool = True) -> Tuple[List[str], List[str]]:
        """Takes every parameter and buffer from `state` (as `chiron.model.load()` returns it).

        Each tensor of this module is replaced in place by the one of the same name, whose
        shape must be the same (`InvalidShape`). With `strict`, a name missing from `state`
        or a name of `state` the module does not have is `InvalidArgument`. Tensors are
        checked in `named_tensors()` order and the first mismatch raises. Returns the missing
        and the unexpected names. Load before building an optimizer: the optimizer holds the
        handles it was given.
        """
        missing: List[str] = []
        known = set()
        for name, t in self.named_tensors():
            known.add(name)
            if name not in state:
                if strict:
                    raise InvalidArgument()
                missing.append(name)
                continue
            src = state[name]
            if tuple(src.shape) != tuple(t.shape):
                raise InvalidShape()
            t._raw = src.raw
            t._shape = src._shape
        unexpected = [n for n in state if n not in known]
        if strict and unexpected:
            raise InvalidArgument()
        return missing, unexpected

    def train(self, mode: bool = True) -> "Module":
        """Sets training mode (batch statistics, dropout on) on this module and its children."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Sets evaluation mode (running statistics, dropout off): `train(False)`."""
        return self.train(False)

    def extra_repr(self) -> str:
        """Extra text of this module's `repr`."""
        return ""

    def __repr__(self) -> str:
        children = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        return head + "\n" + "\n".join(children) + "\n)"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_u32(value: int) -> int:
    if value >= 2**32:
        raise InvalidArgument()
    return value


class Linear(Module):
    """`y = x · Wᵀ + b`, `W [out, in]` (Kaiming-uniform), `b [out]` (PyTorch's bias init).

    Creates `weight` then `bias` (fans `in_features`, `out_features`), as the Rust SDK does.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        """A linear layer from `in_features` to `out_features`, with bias unless `bias=False`."""
        super().__init__()
        self.in_features = u32(in_features)
        self.out_features = u32(out_features)
        self.weight = parameter(
            [out_features, in_features], Init.KAIMING_UNIFORM, in_features, out_features
        )
        if bias:
            self.bias = parameter([out_features], Init.BIAS_UNIFORM, in_features, out_features)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """`x [.., in]` → `[.., out]`."""
        # The host call itself, not through `F.linear`: see `Module.__setattr__` for why.
        bias = self.bias
        return Tensor(call(_wt.linear, x.raw, self.weight.raw, None if bias is None else bias.raw))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution, `W [out, in / groups, kh, kw]` (Kaiming-uniform), optional bias.

    Fans: `fan_in = in / groups · kh · kw`, `fan_out = out / groups · kh · kw`; `weight` is
    created before `bias`, as the Rust SDK does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: ShapeLike,
        stride: ShapeLike = 1,
        padding: ShapeLike = 0,
        dilation: ShapeLike = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        """A convolution from `in_channels` to `out_channels` (PyTorch's argument order)."""
        super().__init__()
        cin, cout, g = u32(in_channels), u32(out_channels), u32(groups)
        if g == 0 or cin % g or cout % g:
            raise InvalidArgument()
        kh, kw = pair(kernel_size)
        fan_in = _check_u32(cin // g * _check_u32(kh * kw))
        fan_out = _check_u32(cout // g * kh * kw)
        self.in_channels, self.out_channels = cin, cout
        self.kernel_size = (kh, kw)
        self.stride, self.padding, self.dilation = pair(stride), pair(padding), pair(dilation)
        self.groups = g
        self.weight = parameter([cout, cin // g, kh, kw], Init.KAIMING_UNIFORM, fan_in, fan_out)
        if bias:
            self.bias = parameter([cout], Init.BIAS_UNIFORM, fan_in, fan_out)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """`x [n, in, h, w]` → `[n, out, h', w']`."""
        # The host call itself, with the options built once (again if an attribute changes):
        # see `Module.__setattr__` for why.
        key = (self.stride, self.padding, self.dilation, self.groups)
        if self.__dict__.get("_options_of") != key:
            self._options = Conv2dOptions(
                pair(self.stride), pair(self.padding), pair(self.dilation), u32(self.groups)
            )
            self._options_of = key
        bias = self.bias
        return Tensor(
            call(_wt.conv2d, x.raw, self.weight.raw, None if bias is None else bias.raw, self._options)
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class BatchNorm2d(Module):
    """Batch normalisation over the channels (axis 1) of `[n, c, h, w]` (also `[n, c]`).

    Trainable `weight` (γ, ones) and `bias` (β, zeros); buffers `running_mean` (zeros) and
    `running_var` (ones), updated host-side in training mode with `momentum`. Created in that
    order, with fans `(c, c)`, as the Rust SDK does.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        """Batch norm over `num_features` channels."""
        super().__init__()
        c = u32(num_features)
        self.num_features = c
        self.eps = eps
        self.momentum = momentum
        self.weight = parameter([c], Init.ONES, c, c)
        self.bias = parameter([c], Init.ZEROS, c, c)
        self.register_buffer("running_mean", buffer([c], 0.0))
        self.register_buffer("running_var", buffer([c], 1.0))

    def forward(self, x: Tensor) -> Tensor:
        """Normalises `x` with batch statistics (training) or the running ones (evaluation)."""
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(BatchNorm2d):
    """Batch normalisation over axis 1 of `[n, c]` or `[n, c, l]` (the same host operation)."""


class Dropout(Module):
    """Inverted dropout with probability `p` (host RNG); identity in evaluation mode."""

    def __init__(self, p: float = 0.5) -> None:
        """Dropout with probability `p`."""
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Drops elements with probability `p` in training mode."""
        return Tensor(call(_wt.dropout, x.raw, float(self.p), bool(self.training)))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    """`max(x, 0)`."""

    def forward(self, x: Tensor) -> Tensor:
        """Applies ReLU."""
        return Tensor(call(_wt.relu, x.raw))


class GELU(Module):
    """GELU."""

    def forward(self, x: Tensor) -> Tensor:
        """Applies GELU."""
        return F.gelu(x)


class Sigmoid(Module):
    """Logistic sigmoid."""

    def forward(self, x: Tensor) -> Tensor:
        """Applies the sigmoid."""
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, x: Tensor) -> Tensor:
        """Applies tanh."""
        return F.tanh(x)


class Softmax(Module):
    """Softmax along `dim`."""

    def __init__(self, dim: int) -> None:
        """Softmax along `dim`."""
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        """Applies softmax."""
        return F.softmax(x, self.dim)


class LogSoftmax(Module):
    """Log-softmax along `dim`."""

    def __init__(self, dim: int) -> None:
        """Log-softmax along `dim`."""
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        """Applies log-softmax."""
        return F.log_softmax(x, self.dim)


class Flatten(Module):
    """Collapses axes `start_dim..=end_dim` (`Flatten()`: `[n, c, h, w]` → `[n, c·h·w]`)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        """Flattens from `start_dim` (PyTorch's default 1) to `end_dim`."""
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        """Flattens `x`."""
        return x.flatten(self.start_dim, self.end_dim)


class MaxPool2d(Module):
    """Max pooling; `stride` defaults to `kernel_size`."""

    def __init__(self, kernel_size: ShapeLike, stride: Optional[ShapeLike] = None, padding: ShapeLike = 0) -> None:
        """A `kernel_size` window (int or pair), stride `kernel_size` unless given."""
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        """Pools `x [n, c, h, w]`."""
        # The host call itself, with the options built once (see `Conv2d.forward`).
        key = (self.kernel_size, self.stride, self.padding)
        if self.__dict__.get("_options_of") != key:
            self._options = _pool_options(self.kernel_size, self.stride, self.padding)
            self._options_of = key
        return Tensor(call(_wt.max_pool2d, x.raw, self._options))


class AvgPool2d(Module):
    """Average pooling; `stride` defaults to `kernel_size`."""

    def __init__(self, kernel_size: ShapeLike, stride: Optional[ShapeLike] = None, padding: ShapeLike = 0) -> None:
        """A `kernel_size` window (int or pair), stride `kernel_size` unless given."""
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        """Pools `x [n, c, h, w]`."""
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed spatial size (`AdaptiveAvgPool2d(1)` = global average)."""

    def __init__(self, output_size: ShapeLike) -> None:
        """Pools to `output_size` (int or pair)."""
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        """Pools `x [n, c, h, w]` to `[n, c, oh, ow]`."""
        return F.adaptive_avg_pool2d(x, self.output_size)


class Identity(Module):
    """Returns its input unchanged (no host call)."""

    def forward(self, x: Tensor) -> Tensor:
        """Returns `x`."""
        return x


class Sequential(Module):
    """Modules applied in order.

    `Sequential(a, b, c)` names its children `0`, `1`, `2`; `Sequential({"conv": a, "bn": b})`
    (any mapping, in its order) uses the given names, which become the tensor names
    (`conv.weight`).
    """

    def __init__(self, *modules: Union[Module, Mapping[str, Module]]) -> None:
        """The given modules, in order."""
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)  # type: ignore[arg-type]

    def append(self, module: Module) -> "Sequential":
        """Appends `module` under the next index name."""
        self.add_module(str(len(self)), module)
        return self

    def __len__(self) -> int:
        """Number of modules."""
        return len(self._registries()[2])

    def __iter__(self) -> Iterator[Module]:
        """The modules, in order."""
        return iter(list(self.children()))

    def __getitem__(self, index: int) -> Module:
        """The `index`-th module."""
        return list(self.children())[index]

    def forward(self, x: Tensor) -> Tensor:
        """Applies each module to the previous one's output (an empty sequence: `x.detach()`)."""
        # The registry itself, not `children()`: this runs for every batch, and each Python
        # call costs an interpreted trainer more than the engine call it leads to.
        y, empty = x, True
        for layer in self._registries()[2].values():
            if layer is not None:
                y, empty = layer(y), False
        return x.detach() if empty else y
