"""A small, deterministic, pure-Python stand-in for the host side of the `chiron:trainer` world.

It implements every import of the world at the *value* level (handles are ints, records are
plain objects) and records each call with its arguments in `FakeEngine.log`, so that two
trainers — the Rust one run as a component, the Python one run natively or as a component —
can be compared call for call. Numbers are f32 (every result is rounded to f32) and every
random draw (parameter init, dropout, augmentation) comes from one seeded generator, so a
call made in a different order or with a different value changes what follows.

The math is plausible, not the engine's: `backward` and `step` do not compute real
gradients (a step nudges each parameter by a deterministic function of its value and of the
last loss). It exists to check call sequences, not training.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

_F32 = struct.Struct("<f")


def f32(x: float) -> float:
    """Rounds to f32 (±inf on overflow)."""
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def prod(xs: Sequence[int]) -> int:
    n = 1
    for x in xs:
        n *= x
    return n


def strides(shape: Sequence[int]) -> List[int]:
    out = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        out[i] = out[i + 1] * shape[i + 1]
    return out


def digest(values: Sequence[float]) -> str:
    """A short hash of f32 values (exact bits)."""
    h = hashlib.sha256()
    for v in values:
        h.update(_F32.pack(v))
    return h.hexdigest()[:16]


class HostError(Exception):
    """A world error code (kebab-case name, e.g. `invalid-shape`)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class T:
    """A host tensor: shape, row-major f32 values, role, and `born` as in the engine.

    `born` is set on results that depend on a parameter (part of an autodiff graph), to the
    `backward` generation of the oldest such input, as the engine does.
    """

    __slots__ = ("shape", "data", "role", "born")

    def __init__(self, shape: Sequence[int], data: List[float], role: str = "value", born: Optional[int] = None) -> None:
        self.shape = tuple(shape)
        self.data = data
        self.role = role
        self.born = born


class Dataset:
    """A deterministic synthetic dataset of u8 records."""

    def __init__(self, shape: Sequence[int], classes: int, splits: Sequence[Tuple[str, int]], seed: int = 7) -> None:
        self.shape = tuple(shape)
        self.classes = classes
        self.splits = list(splits)
        self.seed = seed

    def count(self, split: str) -> int:
        for name, n in self.splits:
            if name == split:
                return n
        raise HostError("out-of-range")

    def record(self, split: str, index: int) -> Tuple[List[int], int]:
        rng = random.Random(f"{self.seed}/{split}/{index}")
        label = rng.randrange(self.classes)
        n = prod(self.shape)
        # Features correlated with the label, so a model can learn something.
        pixels = [min(255, max(0, int(rng.gauss(40 + 180 * ((i + label) % self.classes) / self.classes, 30)))) for i in range(n)]
        return pixels, label


class Optimizer:
    def __init__(self, kind: str, params: List[int], base: float, schedule: Any, warmup: int, config: Dict[str, Any]) -> None:
        self.kind = kind
        self.params = params
        self.base = base
        self.schedule = schedule  # ("constant",) / ("step", every, gamma) / ("cosine", total, min)
        self.warmup = warmup
        self.config = config
        self.steps = 0

    def rate(self) -> float:
        t = self.steps
        if self.warmup and t < self.warmup:
            return f32(self.base * (t + 1) / self.warmup)
        t -= self.warmup
        kind = self.schedule[0]
        if kind == "step":
            every, gamma = self.schedule[1], self.schedule[2]
            return f32(self.base * gamma ** (t // max(every, 1)))
        if kind == "cosine":
            total, low = self.schedule[1], self.schedule[2]
            frac = min(t / max(total, 1), 1.0)
            return f32(low + (self.base - low) * 0.5 * (1 + math.cos(math.pi * frac)))
        return f32(self.base)


class FakeEngine:
    """The fake host. `phase` is `"train"` or `"predict"`; `saved` is the model to `load`."""

    def __init__(
        self,
        dataset: Dataset,
        phase: str = "train",
        seed: int = 1,
        saved: Optional[List[Tuple[str, Tuple[int, ...], List[float]]]] = None,
        resume: Optional[Tuple[int, Dict[str, List[float]]]] = None,
    ) -> None:
        self.dataset = dataset
        self.phase = phase
        self.rng = random.Random(seed)
        self.seed = seed
        self.tensors: Dict[int, T] = {}
        self.optimizers: Dict[int, Optimizer] = {}
        self.next_id = 1
        self.next_opt = 1
        self.log: List[List[Any]] = []
        self.drops = 0
        self.live_max = 0
        self.saved_model = saved
        self.resume_state = resume
        self.result: Optional[List[Tuple[str, Tuple[int, ...], List[float]]]] = None
        self.checkpoints: List[Tuple[int, Dict[str, List[float]]]] = []
        self.pending_loss: Optional[float] = None
        # The engine's graph accounting: work recorded since the last `backward` or sweep
        # (here: elements produced by tracked ops), and sweeps of unreachable graphs, which
        # happen when the last tensor of a graph is released. A trainer that keeps a batch's
        # outputs alive into the next batch lets a forward-only pass (evaluation) accumulate
        # one graph over all batches: more memory and work counted against one graph.
        self.generation = 0
        self.recorded = False
        self.graph_work = 0
        self.graph_max = 0
        self.sweeps = 0

    # --- bookkeeping ---

    def record(self, name: str, *args: Any) -> None:
        self.log.append([name, *args])

    def new(self, shape: Sequence[int], data: List[float], role: str = "value", inputs: Sequence[Optional[int]] = ()) -> int:
        born = None
        ins = [self.tensors[i] for i in inputs if i is not None and i in self.tensors]
        if any(t.role == "parameter" or t.born is not None for t in ins):
            self.recorded = True
            borns = [t.born for t in ins if t.born is not None]
            born = min(borns) if borns else self.generation
            self.graph_work += len(data)
            self.graph_max = max(self.graph_max, self.graph_work)
        h = self.next_id
        self.next_id += 1
        self.tensors[h] = T(shape, [f32(v) for v in data], role, born)
        self.live_max = max(self.live_max, len(self.tensors))
        return h

    def t(self, h: int) -> T:
        try:
            return self.tensors[h]
        except KeyError:
            raise HostError("invalid-argument") from None

    def drop_tensor(self, h: int) -> None:
        self.drops += 1
        t = self.tensors.pop(h, None)
        if t is not None and t.born is not None and not any(u.born is not None for u in self.tensors.values()):
            if self.recorded:
                self.sweeps += 1
                self.recorded = False
                self.graph_work = 0

    def drop_optimizer(self, h: int) -> None:
        self.optimizers.pop(h, None)

    @staticmethod
    def check_shape(shape: Sequence[int]) -> None:
        if not 1 <= len(shape) <= 5 or any(d == 0 for d in shape):
            raise HostError("invalid-shape")

    # --- tensor resource ---

    def from_data(self, shape: List[int], data: List[float]) -> int:
        self.record("from-data", list(shape), [f32(v) for v in data])
        self.check_shape(shape)
        if prod(shape) != len(data):
            raise HostError("invalid-shape")
        return self.new(shape, list(data))

    def full(self, shape: List[int], value: float) -> int:
        self.record("full", list(shape), value)
        self.check_shape(shape)
        return self.new(shape, [value] * prod(shape))

    def shape(self, h: int) -> List[int]:
        # Not recorded: the Rust SDK and the Python SDK ask for shapes at different times
        # (Python caches them), and a shape query changes nothing.
        return list(self.t(h).shape)

    def item(self, h: int) -> float:
        self.record("item", h)
        t = self.t(h)
        if len(t.data) != 1:
            raise HostError("invalid-shape")
        return t.data[0]

    def to_list(self, h: int) -> List[float]:
        self.record("to-list", h)
        return list(self.t(h).data)

    # --- elementwise ---

    def _broadcast(self, name: str, a: int, b: int, op) -> int:
        self.record(name, a, b)
        x, y = self.t(a), self.t(b)
        rank = max(len(x.shape), len(y.shape))
        xs = (1,) * (rank - len(x.shape)) + x.shape
        ys = (1,) * (rank - len(y.shape)) + y.shape
        out = []
        for dx, dy in zip(xs, ys):
            if dx != dy and dx != 1 and dy != 1:
                raise HostError("invalid-shape")
            out.append(max(dx, dy))
        sx, sy, so = strides(xs), strides(ys), strides(out)
        data = []
        for flat in range(prod(out)):
            ix = iy = 0
            rem = flat
            for d in range(rank):
                i, rem = divmod(rem, so[d])
                if xs[d] != 1:
                    ix += i * sx[d]
                if ys[d] != 1:
                    iy += i * sy[d]
            data.append(op(x.data[ix], y.data[iy]))
        return self.new(out, data, inputs=(a, b))

    def add(self, a: int, b: int) -> int:
        return self._broadcast("add", a, b, lambda p, q: p + q)

    def sub(self, a: int, b: int) -> int:
        return self._broadcast("sub", a, b, lambda p, q: p - q)

    def mul(self, a: int, b: int) -> int:
        return self._broadcast("mul", a, b, lambda p, q: p * q)

    def div(self, a: int, b: int) -> int:
        return self._broadcast("div", a, b, lambda p, q: p / q if q != 0 else math.copysign(math.inf, p) if p else math.nan)

    def affine(self, a: int, scale: float, shift: float) -> int:
        self.record("affine", a, scale, shift)
        x = self.t(a)
        return self.new(x.shape, [f32(v * scale) + shift for v in x.data], inputs=(a,))

    # --- linear algebra and layers ---

    def matmul(self, a: int, b: int) -> int:
        self.record("matmul", a, b)
        x, y = self.t(a), self.t(b)
        if len(x.shape) != 2 or len(y.shape) != 2 or x.shape[1] != y.shape[0]:
            raise HostError("invalid-shape")
        m, k, n = x.shape[0], x.shape[1], y.shape[1]
        data = [sum(x.data[i * k + j] * y.data[j * n + c] for j in range(k)) for i in range(m) for c in range(n)]
        return self.new((m, n), data, inputs=(a, b))

    def linear(self, a: int, w: int, b: Optional[int]) -> int:
        self.record("linear", a, w, b)
        x, wt = self.t(a), self.t(w)
        bias = self.t(b) if b is not None else None
        if len(wt.shape) != 2 or x.shape[-1] != wt.shape[1]:
            raise HostError("invalid-shape")
        out_f, in_f = wt.shape
        rows = len(x.data) // in_f
        data = []
        for r in range(rows):
            row = x.data[r * in_f : (r + 1) * in_f]
            for o in range(out_f):
                acc = 0.0
                wrow = wt.data[o * in_f : (o + 1) * in_f]
                for p, q in zip(row, wrow):
                    acc += p * q
                if bias is not None:
                    acc += bias.data[o]
                data.append(acc)
        return self.new(x.shape[:-1] + (out_f,), data, inputs=(a, w, b))

    def conv2d(self, a: int, w: int, b: Optional[int], options: Dict[str, Any]) -> int:
        self.record("conv2d", a, w, b, options)
        x, wt = self.t(a), self.t(w)
        bias = self.t(b) if b is not None else None
        n, c, h, wd = x.shape
        oc, icg, kh, kw = wt.shape
        sh, sw = options["stride"]
        ph, pw = options["padding"]
        dh, dw = options["dilation"]
        g = options["groups"]
        if c != icg * g:
            raise HostError("invalid-shape")
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        ocg = oc // g
        data = []
        xd, wdta = x.data, wt.data
        for ni in range(n):
            for o in range(oc):
                grp = o // ocg
                for yi in range(oh):
                    for xi in range(ow):
                        acc = bias.data[o] if bias is not None else 0.0
                        for ci in range(icg):
                            cin = grp * icg + ci
                            for ky in range(kh):
                                yy = yi * sh - ph + ky * dh
                                if not 0 <= yy < h:
                                    continue
                                base_x = ((ni * c + cin) * h + yy) * wd
                                base_w = ((o * icg + ci) * kh + ky) * kw
                                for kx in range(kw):
                                    xx = xi * sw - pw + kx * dw
                                    if 0 <= xx < wd:
                                        acc += xd[base_x + xx] * wdta[base_w + kx]
                        data.append(acc)
        return self.new((n, oc, oh, ow), data, inputs=(a, w, b))

    def _pool(self, name: str, a: int, options: Dict[str, Any], reduce) -> int:
        self.record(name, a, options)
        x = self.t(a)
        n, c, h, w = x.shape
        kh, kw = options["kernel"]
        sh, sw = options["stride"]
        ph, pw = options["padding"]
        oh = (h + 2 * ph - kh) // sh + 1
        ow = (w + 2 * pw - kw) // sw + 1
        data = []
        for ni in range(n):
            for ci in range(c):
                base = (ni * c + ci) * h * w
                for yi in range(oh):
                    for xi in range(ow):
                        vals = []
                        for ky in range(kh):
                            for kx in range(kw):
                                yy, xx = yi * sh - ph + ky, xi * sw - pw + kx
                                if 0 <= yy < h and 0 <= xx < w:
                                    vals.append(x.data[base + yy * w + xx])
                        data.append(reduce(vals, kh * kw))
        return self.new((n, c, oh, ow), data, inputs=(a,))

    def max_pool2d(self, a: int, options: Dict[str, Any]) -> int:
        return self._pool("max-pool2d", a, options, lambda v, k: max(v))

    def avg_pool2d(self, a: int, options: Dict[str, Any]) -> int:
        return self._pool("avg-pool2d", a, options, lambda v, k: sum(v) / k)

    def adaptive_avg_pool2d(self, a: int, output: Tuple[int, int]) -> int:
        self.record("adaptive-avg-pool2d", a, list(output))
        x = self.t(a)
        n, c, h, w = x.shape
        oh, ow = output
        data = []
        for ni in range(n):
            for ci in range(c):
                base = (ni * c + ci) * h * w
                for yi in range(oh):
                    y0, y1 = yi * h // oh, -(-(yi + 1) * h // oh)
                    for xi in range(ow):
                        x0, x1 = xi * w // ow, -(-(xi + 1) * w // ow)
                        vals = [x.data[base + yy * w + xx] for yy in range(y0, y1) for xx in range(x0, x1)]
                        data.append(sum(vals) / len(vals))
        return self.new((n, c, oh, ow), data, inputs=(a,))

    def batch_norm(self, a: int, gamma: int, beta: int, rm: int, rv: int, training: bool, momentum: float, eps: float) -> int:
        self.record("batch-norm", a, gamma, beta, rm, rv, training, momentum, eps)
        x, g, bt, m, v = (self.t(h) for h in (a, gamma, beta, rm, rv))
        n, c = x.shape[0], x.shape[1]
        inner = prod(x.shape[2:])
        if training:
            means, vars_ = [], []
            for ci in range(c):
                vals = [x.data[(ni * c + ci) * inner + k] for ni in range(n) for k in range(inner)]
                mu = sum(vals) / len(vals)
                means.append(mu)
                vars_.append(sum((q - mu) ** 2 for q in vals) / len(vals))
            for ci in range(c):
                m.data[ci] = f32((1 - momentum) * m.data[ci] + momentum * means[ci])
                v.data[ci] = f32((1 - momentum) * v.data[ci] + momentum * vars_[ci])
        else:
            means, vars_ = list(m.data), list(v.data)
        data = []
        for ni in range(n):
            for ci in range(c):
                scale = g.data[ci] / math.sqrt(vars_[ci] + eps)
                for k in range(inner):
                    data.append((x.data[(ni * c + ci) * inner + k] - means[ci]) * scale + bt.data[ci])
        return self.new(x.shape, data, inputs=(a, gamma, beta))

    def dropout(self, a: int, p: float, training: bool) -> int:
        self.record("dropout", a, p, training)
        x = self.t(a)
        if not training:
            return self.new(x.shape, list(x.data), inputs=(a,))
        keep = 1.0 - p
        return self.new(x.shape, [v / keep if self.rng.random() < keep else 0.0 for v in x.data], inputs=(a,))

    def _map(self, name: str, a: int, fn) -> int:
        self.record(name, a)
        x = self.t(a)
        return self.new(x.shape, [fn(v) for v in x.data], inputs=(a,))

    def relu(self, a: int) -> int:
        return self._map("relu", a, lambda v: v if v > 0 else 0.0)

    def gelu(self, a: int) -> int:
        return self._map("gelu", a, lambda v: 0.5 * v * (1 + math.tanh(0.7978845608 * (v + 0.044715 * v**3))))

    def sigmoid(self, a: int) -> int:
        return self._map("sigmoid", a, lambda v: 1 / (1 + math.exp(-v)) if v > -700 else 0.0)

    def tanh(self, a: int) -> int:
        return self._map("tanh", a, math.tanh)

    def _along(self, x: T, axis: int):
        if axis >= len(x.shape):
            raise HostError("invalid-argument")
        outer = prod(x.shape[:axis])
        size = x.shape[axis]
        inner = prod(x.shape[axis + 1 :])
        return outer, size, inner

    def _softmax(self, name: str, a: int, axis: int, log: bool) -> int:
        self.record(name, a, axis)
        x = self.t(a)
        outer, size, inner = self._along(x, axis)
        data = list(x.data)
        for o in range(outer):
            for i in range(inner):
                idx = [(o * size + s) * inner + i for s in range(size)]
                mx = max(x.data[j] for j in idx)
                z = sum(math.exp(x.data[j] - mx) for j in idx)
                for j in idx:
                    data[j] = (x.data[j] - mx - math.log(z)) if log else math.exp(x.data[j] - mx) / z
        return self.new(x.shape, data, inputs=(a,))

    def softmax(self, a: int, axis: int) -> int:
        return self._softmax("softmax", a, axis, False)

    def log_softmax(self, a: int, axis: int) -> int:
        return self._softmax("log-softmax", a, axis, True)

    def cross_entropy(self, logits: int, labels: int) -> int:
        self.record("cross-entropy", logits, labels)
        x, y = self.t(logits), self.t(labels)
        if len(x.shape) != 2 or y.shape != (x.shape[0],):
            raise HostError("invalid-shape")
        n, c = x.shape
        total = 0.0
        for r in range(n):
            row = x.data[r * c : (r + 1) * c]
            mx = max(row)
            lse = mx + math.log(sum(math.exp(v - mx) for v in row))
            total += lse - row[int(y.data[r])]
        return self.new((1,), [total / n], inputs=(logits, labels))

    def mse(self, a: int, b: int) -> int:
        self.record("mse", a, b)
        x, y = self.t(a), self.t(b)
        if x.shape != y.shape:
            raise HostError("invalid-shape")
        return self.new((1,), [sum((p - q) ** 2 for p, q in zip(x.data, y.data)) / len(x.data)], inputs=(a, b))

    # --- shape ---

    def reshape(self, a: int, shape: List[int]) -> int:
        self.record("reshape", a, list(shape))
        x = self.t(a)
        target = list(shape)
        if target.count(-1) > 1:
            raise HostError("invalid-shape")
        if -1 in target:
            known = prod(d for d in target if d != -1)
            target[target.index(-1)] = len(x.data) // max(known, 1)
        if prod(target) != len(x.data):
            raise HostError("invalid-shape")
        return self.new(target, list(x.data), inputs=(a,))

    def flatten(self, a: int, start: int) -> int:
        self.record("flatten", a, start)
        x = self.t(a)
        if start >= len(x.shape):
            raise HostError("invalid-argument")
        return self.new(x.shape[:start] + (prod(x.shape[start:]),), list(x.data), inputs=(a,))

    def transpose(self, a: int, d0: int, d1: int) -> int:
        self.record("transpose", a, d0, d1)
        x = self.t(a)
        shape = list(x.shape)
        shape[d0], shape[d1] = shape[d1], shape[d0]
        sx = strides(x.shape)
        so = strides(shape)
        data = []
        for flat in range(len(x.data)):
            idx = []
            rem = flat
            for d in range(len(shape)):
                i, rem = divmod(rem, so[d])
                idx.append(i)
            idx[d0], idx[d1] = idx[d1], idx[d0]
            data.append(x.data[sum(i * s for i, s in zip(idx, sx))])
        return self.new(shape, data, inputs=(a,))

    def concat(self, xs: List[int], axis: int) -> int:
        self.record("concat", list(xs), axis)
        ts = [self.t(h) for h in xs]
        outer = prod(ts[0].shape[:axis])
        data = []
        for o in range(outer):
            for t in ts:
                chunk = prod(t.shape[axis:])
                data.extend(t.data[o * chunk : (o + 1) * chunk])
        shape = list(ts[0].shape)
        shape[axis] = sum(t.shape[axis] for t in ts)
        return self.new(shape, data, inputs=tuple(xs))

    def _reduce(self, name: str, a: int, axis: Optional[int], keep: bool, mean: bool) -> int:
        self.record(name, a, axis, keep)
        x = self.t(a)
        if axis is None:
            s = 0.0
            for v in x.data:
                s += v
            return self.new((1,), [s / len(x.data) if mean else s], inputs=(a,))
        outer, size, inner = self._along(x, axis)
        data = []
        for o in range(outer):
            for i in range(inner):
                s = 0.0
                for k in range(size):
                    s += x.data[(o * size + k) * inner + i]
                data.append(s / size if mean else s)
        shape = list(x.shape)
        if keep:
            shape[axis] = 1
        else:
            del shape[axis]
        if not shape:
            shape = [1]
        return self.new(shape, data, inputs=(a,))

    def mean(self, a: int, axis: Optional[int], keep: bool) -> int:
        return self._reduce("mean", a, axis, keep, True)

    def sum(self, a: int, axis: Optional[int], keep: bool) -> int:
        return self._reduce("sum", a, axis, keep, False)

    def argmax(self, a: int, axis: int) -> int:
        self.record("argmax", a, axis)
        x = self.t(a)
        outer, size, inner = self._along(x, axis)
        data = []
        for o in range(outer):
            for i in range(inner):
                vals = [x.data[(o * size + k) * inner + i] for k in range(size)]
                data.append(float(vals.index(max(vals))))
        shape = [d for k, d in enumerate(x.shape) if k != axis] or [1]
        return self.new(shape, data)

    def detach(self, a: int) -> int:
        self.record("detach", a)
        x = self.t(a)
        return self.new(x.shape, list(x.data))

    def normalize_channels(self, a: int, mean: List[float], std: List[float]) -> int:
        self.record("normalize-channels", a, [f32(v) for v in mean], [f32(v) for v in std])
        x = self.t(a)
        c = x.shape[1]
        inner = prod(x.shape[2:])
        data = [(v - mean[(k // inner) % c]) / std[(k // inner) % c] for k, v in enumerate(x.data)]
        return self.new(x.shape, data, inputs=(a,))

    # --- nn ---

    def parameter(self, shape: List[int], init: str, fan_in: int, fan_out: int) -> int:
        self.record("parameter", list(shape), init, fan_in, fan_out)
        self.check_shape(shape)
        n = prod(shape)
        fi, fio = max(fan_in, 1), max(fan_in + fan_out, 1)
        r = self.rng
        if init == "zeros":
            data = [0.0] * n
        elif init == "ones":
            data = [1.0] * n
        elif init == "kaiming-uniform":
            b = math.sqrt(6 / fi)
            data = [(2 * r.random() - 1) * b for _ in range(n)]
        elif init == "kaiming-normal":
            data = [r.gauss(0, math.sqrt(2 / fi)) for _ in range(n)]
        elif init == "xavier-uniform":
            b = math.sqrt(6 / fio)
            data = [(2 * r.random() - 1) * b for _ in range(n)]
        elif init == "xavier-normal":
            data = [r.gauss(0, math.sqrt(2 / fio)) for _ in range(n)]
        elif init == "bias-uniform":
            b = 1 / math.sqrt(fi)
            data = [(2 * r.random() - 1) * b for _ in range(n)]
        else:
            raise HostError("invalid-argument")
        return self.new(shape, data, "parameter")

    def buffer(self, shape: List[int], value: float) -> int:
        self.record("buffer", list(shape), value)
        self.check_shape(shape)
        return self.new(shape, [value] * prod(shape), "buffer")

    def backward(self, loss: int) -> None:
        self.record("backward", loss)
        t = self.t(loss)
        if len(t.data) != 1:
            raise HostError("invalid-shape")
        self.pending_loss = t.data[0]
        self.generation += 1
        self.graph_work = 0
        self.recorded = False

    # --- optim ---

    def _optimizer(self, kind: str, params: List[int], lr: Dict[str, Any], config: Dict[str, Any]) -> int:
        self.record(kind, list(params), lr, config)
        for p in params:
            if self.t(p).role != "parameter":
                raise HostError("invalid-argument")
        h = self.next_opt
        self.next_opt += 1
        self.optimizers[h] = Optimizer(kind, list(params), lr["base"], lr["schedule"], lr["warmup"], config)
        return h

    def sgd(self, params: List[int], lr: Dict[str, Any], config: Dict[str, Any]) -> int:
        return self._optimizer("sgd", params, lr, config)

    def adam(self, params: List[int], lr: Dict[str, Any], config: Dict[str, Any]) -> int:
        return self._optimizer("adam", params, lr, config)

    def step(self, h: int) -> None:
        self.record("step", h)
        opt = self.optimizers[h]
        if self.pending_loss is None:
            return
        rate = opt.rate()
        loss = self.pending_loss
        for p in opt.params:
            t = self.t(p)
            t.data = [f32(v - rate * (0.1 * v + 0.05 * math.sin(7.0 * v + loss))) for v in t.data]
        opt.steps += 1
        self.pending_loss = None

    def zero_grad(self, h: int) -> None:
        self.record("zero-grad", h)
        self.pending_loss = None

    def learning_rate(self, h: int) -> float:
        self.record("learning-rate", h)
        return self.optimizers[h].rate()

    # --- data ---

    def _data_allowed(self) -> None:
        if self.phase != "train":
            raise HostError("not-allowed")

    def schema(self) -> Dict[str, Any]:
        self.record("schema")
        d = self.dataset
        return {"shape": list(d.shape), "classes": d.classes, "splits": [(n, c) for n, c in d.splits]}

    def shuffled(self, split: str, epoch: int) -> List[int]:
        self.record("shuffled", split, epoch)
        self._data_allowed()
        order = list(range(self.dataset.count(split)))
        random.Random(f"{self.seed}/shuffle/{split}/{epoch}").shuffle(order)
        return order

    def batch(self, split: str, indices: List[int], normalize: Optional[Dict[str, Any]], augment: Optional[Dict[str, Any]]) -> Tuple[int, int]:
        self.record("batch", split, list(indices), normalize, augment)
        self._data_allowed()
        count = self.dataset.count(split)
        if not indices or any(not 0 <= i < count for i in indices):
            raise HostError("out-of-range")
        shape = self.dataset.shape
        xs: List[float] = []
        ys: List[float] = []
        for i in indices:
            pixels, label = self.dataset.record(split, i)
            vals = [f32(p / 255.0) for p in pixels]
            if normalize is not None:
                c = shape[0]
                inner = prod(shape[1:])
                vals = [f32((v - normalize["mean"][(k // inner) % c]) / normalize["std"][(k // inner) % c]) for k, v in enumerate(vals)]
            if augment is not None and len(shape) == 3:
                c, h, w = shape
                pad = augment["crop_padding"]
                dy = self.rng.randrange(2 * pad + 1) - pad if pad else 0
                dx = self.rng.randrange(2 * pad + 1) - pad if pad else 0
                flip = augment["horizontal_flip"] and self.rng.random() < 0.5
                out = []
                for ci in range(c):
                    for yy in range(h):
                        for xx in range(w):
                            sy, sx = yy + dy, (w - 1 - xx if flip else xx) + dx
                            out.append(vals[(ci * h + sy) * w + sx] if 0 <= sy < h and 0 <= sx < w else 0.0)
                vals = out
            xs.extend(vals)
            ys.append(float(label))
        return self.new((len(indices),) + shape, xs), self.new((len(indices),), ys)

    # --- report ---

    def progress(self, step: int, total: int) -> None:
        self.record("progress", step, total)

    def metric(self, name: str, step: int, value: float) -> None:
        self.record("metric", name, step, value)

    # --- model ---

    @staticmethod
    def _valid(name: str) -> bool:
        return 0 < len(name) <= 64 and all(ch in "abcdefghijklmnopqrstuvwxyz0123456789_." for ch in name)

    def _named(self, tensors: List[Tuple[str, int]]) -> List[Tuple[str, T]]:
        seen = set()
        out = []
        for name, h in tensors:
            if not self._valid(name) or name in seen:
                raise HostError("invalid-argument")
            seen.add(name)
            out.append((name, self.t(h)))
        return out

    def save(self, tensors: List[Tuple[str, int]]) -> None:
        named = self._named(tensors)
        self.record("save", [[n, list(t.shape), digest(t.data)] for n, t in named])
        self.result = [(n, t.shape, list(t.data)) for n, t in named]

    def load(self) -> List[Tuple[str, int]]:
        self.record("load")
        if self.phase != "predict" or self.saved_model is None:
            raise HostError("not-allowed")
        return [(n, self.new(shape, list(values))) for n, shape, values in self.saved_model]

    def checkpoint(self, epochs: int, tensors: List[Tuple[str, int]], opt: int) -> None:
        named = self._named(tensors)
        self.record("checkpoint", epochs, [[n, list(t.shape), digest(t.data)] for n, t in named], opt)
        self.checkpoints.append((epochs, {n: list(t.data) for n, t in named}))

    def resume(self, tensors: List[Tuple[str, int]], opt: int) -> int:
        named = self._named(tensors)
        self.record("resume", [[n, list(t.shape)] for n, t in named], opt)
        if self.resume_state is None:
            return 0
        epochs, state = self.resume_state
        for n, t in named:
            t.data = list(state[n])
        return epochs
