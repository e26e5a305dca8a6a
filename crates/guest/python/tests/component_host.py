"""Runs a trainer *component* (Rust or Python) against `fake_engine.FakeEngine` with wasmtime-py.

Optional: needs the `wasmtime` Python package (not in the standard library); the tests that use
it skip without it. The chiron imports are defined from the engine; WASI 0.2 (which a
componentize-py component imports unless built with `--stub-wasi`) comes from wasmtime's own
implementation with nothing granted (no preopens, no environment).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import wasmtime
from wasmtime.component import Component, Linker, Record, ResourceAny, ResourceHost, ResourceType, Variant

from fake_engine import FakeEngine, HostError

TENSOR = 0
OPTIMIZER = 1
PKG = "chiron:trainer/{}@0.1.0"


def _rep(store: Any, r: Any) -> int:
    if isinstance(r, ResourceHost):
        return r.rep
    assert isinstance(r, ResourceAny), r
    return r.to_host(store).rep


def _own(handle: int, ty: int = TENSOR) -> ResourceHost:
    return ResourceHost.own(handle, ty)


def _field(rec: Any, name: str) -> Any:
    return getattr(rec, name)


class ComponentRunner:
    """Compiles a component once; `train` / `predict` each run in a fresh instance."""

    def __init__(self, path: str) -> None:
        self.engine = wasmtime.Engine()
        self.component = Component.from_file(self.engine, path)

    def _instantiate(self, host: FakeEngine, inherit_stdio: bool = True):
        store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        if inherit_stdio:
            wasi.inherit_stdout()
            wasi.inherit_stderr()
        store.set_wasi(wasi)
        linker = Linker(self.engine)
        linker.allow_shadowing = True
        linker.add_wasip2()
        with linker.root() as root:
            _define(root, host)
        instance = linker.instantiate(store, self.component)
        return store, instance

    def train(self, host: FakeEngine, epochs: int, batch_size: int, hyper: List[Tuple[str, float]]) -> Optional[str]:
        """Runs the `train` export; returns None or the error code name."""
        store, instance = self._instantiate(host)
        func = instance.get_func(store, "train")
        config = Record()
        setattr(config, "epochs", epochs)
        setattr(config, "batch-size", batch_size)
        setattr(config, "hyper", [(n, float(v)) for n, v in hyper])
        return func(store, config)

    def predict(self, host: FakeEngine, input_handle: int) -> Any:
        """Runs the `predict` export on an engine tensor; returns its tensor handle or error."""
        store, instance = self._instantiate(host)
        func = instance.get_func(store, "predict")
        out = func(store, ResourceHost.borrow(input_handle, TENSOR))
        if isinstance(out, str):
            return out
        return _rep(store, out)


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Host function: engine errors become the world's `err(code)`."""

    def run(store: Any, *args: Any) -> Any:
        try:
            return fn(store, *args)
        except HostError as e:
            return e.code

    return run


def _schedule(v: Any) -> list:
    assert isinstance(v, Variant), v
    if v.tag == "constant":
        return ["constant"]
    return [v.tag, v.payload[0], v.payload[1]]


def _lr(rec: Any) -> dict:
    return {"base": rec.base, "schedule": _schedule(rec.schedule), "warmup": rec.warmup}


def _define(root: Any, e: FakeEngine) -> None:
    with root.add_instance(PKG.format("types")):
        pass

    with root.add_instance(PKG.format("tensor")) as t:
        t.add_resource("tensor", ResourceType.host(TENSOR), lambda store, rep: e.drop_tensor(rep))
        t.add_func("[static]tensor.from-data", _wrap(lambda s, shape, data: _own(e.from_data(shape, data))))
        t.add_func("[static]tensor.full", _wrap(lambda s, shape, value: _own(e.full(shape, value))))
        t.add_func("[method]tensor.shape", lambda s, x: e.shape(_rep(s, x)))
        t.add_func("[method]tensor.item", _wrap(lambda s, x: e.item(_rep(s, x))))
        t.add_func("[method]tensor.to-list", _wrap(lambda s, x: e.to_list(_rep(s, x))))
        for name in ("add", "sub", "mul", "div", "matmul", "mse"):
            t.add_func(name, _wrap(lambda s, a, b, f=getattr(e, name): _own(f(_rep(s, a), _rep(s, b)))))
        t.add_func("cross-entropy", _wrap(lambda s, a, b: _own(e.cross_entropy(_rep(s, a), _rep(s, b)))))
        t.add_func("affine", _wrap(lambda s, a, sc, sh: _own(e.affine(_rep(s, a), sc, sh))))
        t.add_func(
            "linear",
            _wrap(lambda s, x, w, b: _own(e.linear(_rep(s, x), _rep(s, w), None if b is None else _rep(s, b)))),
        )

        def conv_opts(o: Any) -> dict:
            return {
                "stride": list(o.stride),
                "padding": list(o.padding),
                "dilation": list(o.dilation),
                "groups": o.groups,
            }

        t.add_func(
            "conv2d",
            _wrap(
                lambda s, x, w, b, o: _own(
                    e.conv2d(_rep(s, x), _rep(s, w), None if b is None else _rep(s, b), conv_opts(o))
                )
            ),
        )

        def pool_opts(o: Any) -> dict:
            return {"kernel": list(o.kernel), "stride": list(o.stride), "padding": list(o.padding)}

        t.add_func("max-pool2d", _wrap(lambda s, x, o: _own(e.max_pool2d(_rep(s, x), pool_opts(o)))))
        t.add_func("avg-pool2d", _wrap(lambda s, x, o: _own(e.avg_pool2d(_rep(s, x), pool_opts(o)))))
        t.add_func("adaptive-avg-pool2d", _wrap(lambda s, x, o: _own(e.adaptive_avg_pool2d(_rep(s, x), tuple(o)))))
        t.add_func(
            "batch-norm",
            _wrap(
                lambda s, x, g, b, m, v, tr, mo, ep: _own(
                    e.batch_norm(_rep(s, x), _rep(s, g), _rep(s, b), _rep(s, m), _rep(s, v), tr, mo, ep)
                )
            ),
        )
        t.add_func("dropout", _wrap(lambda s, x, p, tr: _own(e.dropout(_rep(s, x), p, tr))))
        for name in ("relu", "gelu", "sigmoid", "tanh", "detach"):
            t.add_func(name, _wrap(lambda s, x, f=getattr(e, name): _own(f(_rep(s, x)))))
        t.add_func("softmax", _wrap(lambda s, x, a: _own(e.softmax(_rep(s, x), a))))
        t.add_func("log-softmax", _wrap(lambda s, x, a: _own(e.log_softmax(_rep(s, x), a))))
        t.add_func("reshape", _wrap(lambda s, x, shape: _own(e.reshape(_rep(s, x), shape))))
        t.add_func("flatten", _wrap(lambda s, x, a: _own(e.flatten(_rep(s, x), a))))
        t.add_func("transpose", _wrap(lambda s, x, a, b: _own(e.transpose(_rep(s, x), a, b))))
        t.add_func("concat", _wrap(lambda s, xs, a: _own(e.concat([_rep(s, x) for x in xs], a))))
        t.add_func("mean", _wrap(lambda s, x, a, k: _own(e.mean(_rep(s, x), a, k))))
        t.add_func("sum", _wrap(lambda s, x, a, k: _own(e.sum(_rep(s, x), a, k))))
        t.add_func("argmax", _wrap(lambda s, x, a: _own(e.argmax(_rep(s, x), a))))
        t.add_func(
            "normalize-channels",
            _wrap(lambda s, x, m, d: _own(e.normalize_channels(_rep(s, x), m, d))),
        )

    with root.add_instance(PKG.format("nn")) as n:
        n.add_func("parameter", _wrap(lambda s, shape, init, fi, fo: _own(e.parameter(shape, init, fi, fo))))
        n.add_func("buffer", _wrap(lambda s, shape, v: _own(e.buffer(shape, v))))
        n.add_func("backward", _wrap(lambda s, loss: e.backward(_rep(s, loss))))

    with root.add_instance(PKG.format("optim")) as o:
        o.add_resource("optimizer", ResourceType.host(OPTIMIZER), lambda store, rep: e.drop_optimizer(rep))
        o.add_func(
            "[static]optimizer.sgd",
            _wrap(
                lambda s, ps, lr, c: _own(
                    e.sgd(
                        [_rep(s, p) for p in ps],
                        _lr(lr),
                        {"momentum": c.momentum, "nesterov": c.nesterov, "weight_decay": _field(c, "weight-decay")},
                    ),
                    OPTIMIZER,
                )
            ),
        )
        o.add_func(
            "[static]optimizer.adam",
            _wrap(
                lambda s, ps, lr, c: _own(
                    e.adam(
                        [_rep(s, p) for p in ps],
                        _lr(lr),
                        {
                            "beta1": c.beta1,
                            "beta2": c.beta2,
                            "eps": c.eps,
                            "weight_decay": _field(c, "weight-decay"),
                            "decoupled": c.decoupled,
                        },
                    ),
                    OPTIMIZER,
                )
            ),
        )
        o.add_func("[method]optimizer.step", _wrap(lambda s, h: e.step(_rep(s, h))))
        o.add_func("[method]optimizer.zero-grad", lambda s, h: e.zero_grad(_rep(s, h)))
        o.add_func("[method]optimizer.learning-rate", lambda s, h: e.learning_rate(_rep(s, h)))

    with root.add_instance(PKG.format("data")) as d:

        def schema(s: Any) -> Record:
            sc = e.schema()
            r = Record()
            r.shape = sc["shape"]
            r.classes = sc["classes"]
            r.splits = [tuple(x) for x in sc["splits"]]
            return r

        def batch(s: Any, split: str, idx: List[int], norm: Any, aug: Any) -> Tuple[ResourceHost, ResourceHost]:
            n = None if norm is None else {"mean": norm.mean, "std": norm.std}
            a = None if aug is None else {
                "crop_padding": _field(aug, "crop-padding"),
                "horizontal_flip": _field(aug, "horizontal-flip"),
            }
            x, y = e.batch(split, idx, n, a)
            return (_own(x), _own(y))

        d.add_func("schema", schema)
        d.add_func("shuffled", _wrap(lambda s, split, epoch: e.shuffled(split, epoch)))
        d.add_func("batch", _wrap(batch))

    with root.add_instance(PKG.format("report")) as r:
        r.add_func("progress", lambda s, step, total: e.progress(step, total))
        r.add_func("metric", lambda s, name, step, value: e.metric(name, step, value))

    with root.add_instance(PKG.format("model")) as m:

        def named(s: Any, ts: List[Tuple[str, Any]]) -> List[Tuple[str, int]]:
            return [(name, _rep(s, t)) for name, t in ts]

        m.add_func("save", _wrap(lambda s, ts: e.save(named(s, ts))))
        m.add_func("load", _wrap(lambda s: [(name, _own(h)) for name, h in e.load()]))
        m.add_func("checkpoint", _wrap(lambda s, k, ts, opt: e.checkpoint(k, named(s, ts), _rep(s, opt))))
        m.add_func("resume", _wrap(lambda s, ts, opt: e.resume(named(s, ts), _rep(s, opt))))
