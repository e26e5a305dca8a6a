"""The `chiron` SDK, natively against the fake engine: which host calls each API makes.

Run from the repository root: `python3 -m unittest discover -s crates/guest/python/tests`.
"""

from __future__ import annotations

import math
import unittest

import harness  # noqa: F401  (puts the fake bindings and the SDK on sys.path)

import chiron
import wit_world
from chiron import nn, optim
from chiron.data import Batches
from chiron.numeric import U32_MAX, as_u32, as_u64, f32, fmax, fmin
from componentize_py_types import Err
from fake_engine import Dataset, FakeEngine
from wit_world import _host
from wit_world.imports.types import ErrorCode


class EngineTest(unittest.TestCase):
    """Installs a fresh fake engine for each test."""

    def setUp(self) -> None:
        self.engine = FakeEngine(Dataset((1, 4, 4), 3, [("train", 10), ("test", 3)]))
        _host.ENGINE = self.engine

    def tearDown(self) -> None:
        _host.ENGINE = None

    def calls(self) -> list:
        return [c[0] for c in self.engine.log]

    def clear(self) -> None:
        self.engine.log.clear()


class TensorTest(EngineTest):
    def test_construction(self) -> None:
        x = chiron.tensor([[1, 2, 3], [4, 5, 6]])
        self.assertEqual(self.engine.log[-1], ["from-data", [2, 3], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
        self.assertEqual(x.shape, (2, 3))
        self.assertEqual(x.size(1), 3)
        self.assertEqual(x.dim(), 2)
        self.assertEqual(x.numel(), 6)
        self.assertEqual(x.tolist(), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        self.assertEqual(x.to_list(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        self.assertEqual(chiron.tensor(2.5).shape, (1,))
        self.assertEqual(chiron.tensor([1, 2, 3, 4], shape=[2, 2]).shape, (2, 2))
        chiron.zeros(2, 3)
        chiron.ones((4,))
        chiron.full([2], 7.0)
        self.assertEqual(self.engine.log[-3:], [["full", [2, 3], 0.0], ["full", [4], 1.0], ["full", [2], 7.0]])
        with self.assertRaises(chiron.InvalidShape):
            chiron.tensor([[1, 2], [3]])

    def test_scalar_operators_are_exact(self) -> None:
        x = chiron.tensor([1.5, -2.0, 3.25])
        self.clear()
        cases = [
            (lambda: x * 2, ["affine", 2.0, 0.0], [3.0, -4.0, 6.5]),
            (lambda: 2 * x, ["affine", 2.0, 0.0], [3.0, -4.0, 6.5]),
            (lambda: x + 1.5, ["affine", 1.0, 1.5], [3.0, -0.5, 4.75]),
            (lambda: 1.5 + x, ["affine", 1.0, 1.5], [3.0, -0.5, 4.75]),
            (lambda: x - 0.25, ["affine", 1.0, -0.25], [1.25, -2.25, 3.0]),
            (lambda: 1 - x, ["affine", -1.0, 1.0], [-0.5, 3.0, -2.25]),
            (lambda: -x, ["affine", -1.0, 0.0], [-1.5, 2.0, -3.25]),
        ]
        for op, call, values in cases:
            y = op()
            self.assertEqual(self.engine.log[-1][0], call[0])
            self.assertEqual(self.engine.log[-1][2:], call[1:])
            self.assertEqual(y.to_list(), values)
        self.clear()
        y = x / 3
        self.assertEqual(self.calls(), ["full", "div"])
        self.assertEqual(self.engine.log[0], ["full", [1], 3.0])
        self.assertEqual(y.to_list(), [f32(1.5 / 3), f32(-2.0 / 3), f32(3.25 / 3)])
        self.clear()
        3 / x
        self.assertEqual(self.calls(), ["full", "div"])

    def test_tensor_operators(self) -> None:
        a = chiron.tensor([[1.0, 2.0], [3.0, 4.0]])
        b = chiron.tensor([10.0, 20.0])
        self.clear()
        self.assertEqual((a + b).to_list(), [11.0, 22.0, 13.0, 24.0])
        self.assertEqual((a - b).to_list(), [-9.0, -18.0, -7.0, -16.0])
        self.assertEqual((a * b).to_list(), [10.0, 40.0, 30.0, 80.0])
        (a / b)
        (a @ a)
        self.assertEqual(
            [c for c in self.calls() if c != "to-list"], ["add", "sub", "mul", "div", "matmul"]
        )

    def test_axes(self) -> None:
        x = chiron.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
        self.clear()
        self.assertEqual(x.sum(-1).to_list(), [8.0, 8.0])
        self.assertEqual(self.engine.log[0], ["sum", x.raw.handle, 1, False])
        self.assertEqual(x.sum().to_list(), [16.0])
        self.assertEqual(x.mean(0, keepdim=True).shape, (1, 3))
        self.assertEqual(x.argmax(1).to_list(), [1.0, 0.0])
        self.assertEqual(x.argmax().to_list(), [3.0])
        self.assertEqual(x.transpose(0, 1).shape, (3, 2))
        self.assertEqual(x.reshape(3, -1).shape, (3, 2))
        self.assertEqual(x.view((6,)).shape, (6,))
        self.assertEqual(x.softmax(-1).shape, (2, 3))
        self.assertEqual(chiron.cat([x, x], dim=0).shape, (4, 3))
        y = chiron.zeros(2, 3, 4, 5)
        self.clear()
        self.assertEqual(y.flatten(1).shape, (2, 60))
        self.assertEqual(self.engine.log[-1][0], "flatten")
        self.assertEqual(y.flatten(1, 2).shape, (2, 12, 5))
        self.assertEqual(self.engine.log[-1][0], "reshape")

    def test_correct(self) -> None:
        scores = chiron.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
        labels = chiron.tensor([1.0, 1.0, 1.0])
        self.clear()
        self.assertEqual(scores.correct(labels), 2)
        self.assertEqual(self.calls(), ["argmax", "to-list", "to-list"])

    def test_errors_carry_the_code(self) -> None:
        with self.assertRaises(chiron.InvalidShape) as cm:
            chiron.tensor([1.0, 2.0]) + chiron.tensor([1.0, 2.0, 3.0])
        self.assertEqual(cm.exception.code, ErrorCode.INVALID_SHAPE)
        self.assertIsInstance(cm.exception, chiron.ChironError)
        self.assertEqual(cm.exception.to_err(), Err(ErrorCode.INVALID_SHAPE))
        self.assertIs(type(chiron.ChironError(ErrorCode.NOT_ALLOWED)), chiron.NotAllowed)
        with self.assertRaises(chiron.InvalidArgument):
            chiron.zeros(-1)


class ModuleTest(EngineTest):
    def test_linear_creation_order_and_names(self) -> None:
        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc1 = nn.Linear(4, 3)
                self.bn = nn.BatchNorm2d(3)
                self.fc2 = nn.Linear(3, 2, bias=False)
                self.scale = nn.parameter([1], nn.Init.ONES, 1, 1)

            def forward(self, x: chiron.Tensor) -> chiron.Tensor:
                return self.fc2(self.bn(self.fc1(x)))

        net = Net()
        self.assertEqual(
            self.engine.log,
            [
                ["parameter", [3, 4], "kaiming-uniform", 4, 3],
                ["parameter", [3], "bias-uniform", 4, 3],
                ["parameter", [3], "ones", 3, 3],
                ["parameter", [3], "zeros", 3, 3],
                ["buffer", [3], 0.0],
                ["buffer", [3], 1.0],
                ["parameter", [2, 3], "kaiming-uniform", 3, 2],
                ["parameter", [1], "ones", 1, 1],
            ],
        )
        self.assertEqual(
            [n for n, _ in net.named_tensors()],
            ["scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "fc2.weight"],
        )
        self.assertEqual(
            [n for n, _ in net.named_parameters()],
            ["scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight"],
        )
        self.assertIsNone(net.fc2.bias)
        self.assertTrue(net.bn.training)
        net.eval()
        self.assertFalse(net.bn.training)
        self.clear()
        net(chiron.zeros(5, 4))
        self.assertEqual(self.engine.log[-2][0], "batch-norm")
        self.assertIs(self.engine.log[-2][6], False)
        net.train()
        self.assertTrue(all(m.training for m in net.modules()))

    def test_conv_fans_and_sequential_names(self) -> None:
        net = nn.Sequential(
            {"conv": nn.Conv2d(4, 8, 3, padding=1, groups=2), "relu": nn.ReLU(), "pool": nn.MaxPool2d(2)}
        )
        self.assertEqual(
            self.engine.log,
            [["parameter", [8, 2, 3, 3], "kaiming-uniform", 18, 36], ["parameter", [8], "bias-uniform", 18, 36]],
        )
        self.assertEqual([n for n, _ in net.named_tensors()], ["conv.weight", "conv.bias"])
        seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        self.assertEqual([n for n, _ in seq.named_tensors()], ["0.weight", "0.bias"])
        with self.assertRaises(chiron.InvalidArgument):
            nn.Conv2d(3, 8, 3, groups=2)
        self.clear()
        out = net(chiron.zeros(1, 4, 6, 6))
        self.assertEqual(out.shape, (1, 8, 3, 3))
        conv = self.engine.log[1]
        self.assertEqual(conv[0], "conv2d")
        self.assertEqual(conv[4], {"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "groups": 2})
        self.assertEqual(self.engine.log[3][2], {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]})

    def test_attributes_follow_the_registries(self) -> None:
        m = nn.Linear(2, 2)
        w = m.weight
        self.assertIs(m.state_dict()["weight"], w)
        m.weight = None  # a parameter slot may be emptied
        self.assertIsNone(m.weight)
        self.assertEqual([n for n, _ in m.named_parameters()], ["bias"])
        m.weight = w
        self.assertIs(m.weight, w)
        del m.bias
        with self.assertRaises(AttributeError):
            m.bias
        self.assertEqual([n for n, _ in m.named_parameters()], ["weight"])
        with self.assertRaises(TypeError):
            m.weight = 3
        self.assertIs(m.weight, w)
        seq = nn.Sequential(nn.ReLU())
        seq.add_module("1", nn.ReLU())
        seq.add_module("2", None)
        self.assertIsNone(getattr(seq, "2"))
        self.assertEqual(len(list(seq.children())), 2)

    def test_layer_options_follow_their_attributes(self) -> None:
        conv = nn.Conv2d(1, 1, 3, bias=False)
        pool = nn.MaxPool2d(2)
        x = chiron.zeros(1, 1, 8, 8)
        conv(x)
        pool(x)
        conv.padding = (1, 1)
        pool.stride = 1
        self.clear()
        conv(x)
        pool(x)
        self.assertEqual(self.engine.log[0][4]["padding"], [1, 1])
        self.assertEqual(self.engine.log[1][2]["stride"], [1, 1])
        conv.stride = -1
        with self.assertRaises(chiron.InvalidArgument):
            conv(x)

    def test_empty_sequential_detaches(self) -> None:
        x = chiron.zeros(2)
        self.clear()
        nn.Sequential()(x)
        self.assertEqual(self.calls(), ["detach"])

    def test_skip_init_and_load_state_dict(self) -> None:
        trained = nn.Sequential({"fc": nn.Linear(3, 2)})
        state = trained.state_dict()
        self.clear()
        with nn.skip_init():
            net = nn.Sequential({"fc": nn.Linear(3, 2)})
        self.assertEqual(self.engine.log, [])
        self.assertEqual(net.fc.weight.shape, (2, 3))
        with self.assertRaises(RuntimeError):
            net(chiron.zeros(1, 3))
        net.load_state_dict(state)
        self.assertIs(net.fc.weight.raw, state["fc.weight"].raw)
        net(chiron.zeros(1, 3))
        with nn.skip_init():
            other = nn.Sequential({"fc": nn.Linear(3, 2)})
        with self.assertRaises(chiron.InvalidArgument):
            other.load_state_dict({"fc.weight": state["fc.weight"]})
        with self.assertRaises(chiron.InvalidArgument):
            other.load_state_dict({**state, "extra": state["fc.bias"]})
        with self.assertRaises(chiron.InvalidShape):
            other.load_state_dict({"fc.weight": state["fc.bias"], "fc.bias": state["fc.bias"]})
        missing, unexpected = other.load_state_dict({"fc.weight": state["fc.weight"], "x": state["fc.bias"]}, strict=False)
        self.assertEqual((missing, unexpected), (["fc.bias"], ["x"]))

    def test_dropout_follows_the_mode(self) -> None:
        d = nn.Dropout(0.25)
        x = chiron.ones(4)
        self.clear()
        d(x)
        d.eval()
        d(x)
        self.assertEqual([c[2:] for c in self.engine.log], [[0.25, True], [0.25, False]])


class OptimTest(EngineTest):
    def test_defaults_and_schedules(self) -> None:
        lin = nn.Linear(2, 2)
        ps = list(lin.parameters())
        self.clear()
        optim.SGD(ps, 0.1)
        optim.SGD(lin.parameters(), 0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, warmup=7,
                  schedule=optim.lr_scheduler.StepLR(10, 0.5))
        optim.Adam(lin.parameters())
        opt = optim.AdamW(lin.parameters(), lr=0.01, schedule=optim.CosineAnnealingLR(100, 1e-4))
        log = self.engine.log
        self.assertEqual(log[0][2:], [{"base": f32(0.1), "schedule": ["constant"], "warmup": 0},
                                      {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0}])
        self.assertEqual(log[1][2:], [{"base": f32(0.1), "schedule": ["step", 10, 0.5], "warmup": 7},
                                      {"momentum": f32(0.9), "nesterov": True, "weight_decay": f32(5e-4)}])
        self.assertEqual(log[2][2:], [{"base": f32(1e-3), "schedule": ["constant"], "warmup": 0},
                                      {"beta1": f32(0.9), "beta2": f32(0.999), "eps": f32(1e-8), "weight_decay": 0.0, "decoupled": False}])
        self.assertEqual(log[3][3], {"beta1": f32(0.9), "beta2": f32(0.999), "eps": f32(1e-8), "weight_decay": f32(0.01), "decoupled": True})
        self.assertEqual(log[3][2]["schedule"], ["cosine", 100, f32(1e-4)])
        self.assertEqual(opt.learning_rate(), f32(0.01))
        self.assertEqual(opt.param_groups[0]["lr"], f32(0.01))
        self.assertEqual(len(opt.param_groups[0]["params"]), 2)

    def test_step_and_backward(self) -> None:
        lin = nn.Linear(2, 2)
        opt = optim.SGD(lin.parameters(), 0.1)
        self.clear()
        loss = lin(chiron.ones(1, 2)).cross_entropy(chiron.tensor([1.0]))
        loss.backward()
        opt.step()
        opt.zero_grad()
        self.assertEqual(self.calls()[-3:], ["backward", "step", "zero-grad"])


class DataTest(EngineTest):
    def test_schema_and_batches(self) -> None:
        s = chiron.data.schema()
        self.assertEqual((s.shape, s.classes, s.records("train"), s.records("nope")), ((1, 4, 4), 3, 10, 0))
        self.assertEqual(s.features(), 16)
        self.assertEqual(s.batch_shape(5), (5, 1, 4, 4))
        self.assertEqual(list(Batches(range(7), 3)), [[0, 1, 2], [3, 4, 5], [6]])
        self.assertEqual(len(Batches(range(7), 3)), 3)
        self.assertEqual(list(Batches(range(7), 3, drop_last=True)), [[0, 1, 2], [3, 4, 5]])
        self.assertEqual(len(Batches(range(7), 3, drop_last=True)), 2)
        self.assertEqual(list(Batches([], 3)), [])
        self.assertEqual(list(Batches.sequential(s, "test", 2)), [[0, 1], [2]])
        with self.assertRaises(chiron.InvalidArgument):
            Batches(range(3), 0)
        self.clear()
        order = Batches.shuffled("train", 2, 4, drop_last=True)
        self.assertEqual(self.engine.log, [["shuffled", "train", 2]])
        self.assertEqual(sorted(order.indices), list(range(10)))
        self.assertEqual(len(order), 2)

    def test_batch_arguments(self) -> None:
        x, y = chiron.data.batch(
            "train", [3, 1], chiron.data.Normalize([0.5], [0.25]), chiron.data.Augment(crop_padding=1, horizontal_flip=True)
        )
        self.assertEqual(self.engine.log[-1], ["batch", "train", [3, 1], {"mean": [0.5], "std": [0.25]}, {"crop_padding": 1, "horizontal_flip": True}])
        self.assertEqual((x.shape, y.shape), ((2, 1, 4, 4), (2,)))
        with self.assertRaises(chiron.OutOfRange):
            chiron.data.batch("train", [10])
        self.engine.phase = "predict"
        with self.assertRaises(chiron.NotAllowed):
            chiron.data.shuffled("train", 0)


class ReportModelConfigTest(EngineTest):
    def test_metrics(self) -> None:
        chiron.report.metric("train_loss", 3, 0.1)
        chiron.report.metric(chiron.report.Metric.TEST_ACCURACY, 4, 1e300)
        chiron.report.progress(1, 10)
        self.assertEqual(self.engine.log, [["metric", "train-loss", 3, f32(0.1)], ["metric", "test-accuracy", 4, math.inf], ["progress", 1, 10]])
        with self.assertRaises(chiron.InvalidArgument):
            chiron.report.metric("secret_value_42", 0, 1.0)

    def test_model_named_tensors(self) -> None:
        lin = nn.Linear(2, 1)
        opt = optim.Adam(lin.parameters())
        extra = chiron.tensor([1.0])
        self.clear()
        chiron.model.save(lin)
        chiron.model.save({"a": extra})
        chiron.model.save([("b", extra)])
        chiron.model.checkpoint(1, lin, opt)
        self.assertEqual(chiron.model.resume(lin, opt), 0)
        self.assertEqual([c[0] for c in self.engine.log], ["save", "save", "save", "checkpoint", "resume"])
        self.assertEqual([n for n, _, _ in self.engine.log[0][1]], ["weight", "bias"])
        with self.assertRaises(chiron.InvalidArgument):
            chiron.model.save({"Bad Name": extra})
        with self.assertRaises(chiron.NotAllowed):
            chiron.model.load()

    def test_hyper(self) -> None:
        c = chiron.TrainConfig(3, 8, (("lr", 0.5), ("lr", 0.7), ("x", 0.1)))
        self.assertEqual(c.hyper("lr", 1.0), 0.5)
        self.assertEqual(c.hyper("x", 0.0), f32(0.1))
        self.assertEqual(c.hyper("missing", 1e-3), f32(1e-3))
        w = wit_world.TrainConfig(2, 4, [("a", 1.0)])
        self.assertEqual(chiron.TrainConfig.from_wit(w), chiron.TrainConfig(2, 4, (("a", 1.0),)))


class NumericTest(unittest.TestCase):
    def test_rust_casts(self) -> None:
        self.assertEqual(as_u32(3.99), 3)
        self.assertEqual(as_u32(-1.5), 0)
        self.assertEqual(as_u32(math.nan), 0)
        self.assertEqual(as_u32(1e12), U32_MAX)
        self.assertEqual(as_u32(math.inf), U32_MAX)
        self.assertEqual(as_u64(1e12), 10**12)
        self.assertEqual(fmax(math.nan, 2.0), 2.0)
        self.assertEqual(fmax(2.0, math.nan), 2.0)
        self.assertEqual(fmin(math.nan, 2.0), 2.0)
        self.assertEqual(f32(1e40), math.inf)
        self.assertEqual(f32(0.1), 0.10000000149011612)


class EntryTest(EngineTest):
    def test_errors_and_traps(self) -> None:
        import importlib
        import sys
        import types

        mod = types.ModuleType("trainer")

        def train(config: chiron.TrainConfig) -> None:
            if config.epochs == 1:
                raise chiron.OutOfRange()
            if config.epochs == 2:
                raise ValueError("a bug")
            chiron.data.batch("train", [99])

        mod.train = train
        mod.predict = lambda x: x
        saved = sys.modules.get("trainer")
        sys.modules["trainer"] = mod
        try:
            import chiron_entry

            w = importlib.reload(chiron_entry).WitWorld()
            for epochs, code in ((1, ErrorCode.OUT_OF_RANGE), (3, ErrorCode.OUT_OF_RANGE)):
                with self.assertRaises(Err) as cm:
                    w.train(wit_world.TrainConfig(epochs, 1, []))
                self.assertIs(type(cm.exception), Err)
                self.assertEqual(cm.exception.value, code)
            with self.assertRaises(ValueError):
                w.train(wit_world.TrainConfig(2, 1, []))
            # Returning the (borrowed) input hands back an owned copy.
            x = chiron.zeros(2)
            self.clear()
            out = w.predict(x.raw)
            self.assertEqual(self.calls(), ["detach"])
            self.assertIsNot(out, x.raw)
        finally:
            if saved is not None:
                sys.modules["trainer"] = saved
            else:
                del sys.modules["trainer"]


if __name__ == "__main__":
    unittest.main()
