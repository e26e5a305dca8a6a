"""`mlp`: a tabular classifier for Chiron (UCI digits, breast cancer, ...), in Python.

A port of the Rust trainer `trainers/mlp` that makes the same engine calls in the same order
with the same values, so a job gives the same model with either.

Every record is flattened to a feature vector, standardised per feature with statistics the
trainer measures on the `train` split (saved with the model, so `predict` applies the same),
then fed through two hidden ReLU layers: `features → 128 → 64 → classes`.

Hyper-parameters (job description, all optional): `lr` (default 3e-3 for Adam, 0.05 for
SGD), `sgd` (1 = SGD with Nesterov momentum 0.9 instead of Adam), `weight_decay` (1e-3, L2),
`hidden1` (128), `hidden2` (64), `patience` (10), `validate_from` (5000). The learning rate
follows a cosine schedule down to 1 % over the job's `epochs`.

On a `train` split of at least `validate_from` records, `epochs` is a maximum: every tenth
record is held out for validation, training stops once the validation loss has not improved
for `patience` epochs, and the model saved (and the test accuracy reported) is the one of the
best validation epoch. A smaller split, or `patience = 0`, trains on all of `train` for
exactly `epochs`. A resumed job keeps its weights but starts the patience count afresh.

Build and try it: `chiron trainer build trainers/python/mlp`, then `chiron trainer test`.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import chiron
from chiron import data, model, nn, optim, report
from chiron.data import Batches
from chiron.numeric import as_u32, as_u64, f32, fmax
from chiron.optim.lr_scheduler import CosineAnnealingLR
from chiron.report import Metric

#: Names of the standardisation statistics saved beside the layers.
MEAN = "norm.mean"
STD = "norm.std"

#: Records per batch of the statistics and evaluation passes (no gradients, larger is cheaper).
PASS_BATCH = 256


class Mlp(nn.Module):
    """`features → hidden1 → hidden2 → classes` with ReLU (tensors `fc1.*`, `fc2.*`, `fc3.*`)."""

    def __init__(self, features: int, h1: int, h2: int, classes: int) -> None:
        """Creates `fc1`, `fc2`, `fc3` (weight then bias each), in that order."""
        super().__init__()
        self.fc1 = nn.Linear(features, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, classes)

    def forward(self, x: chiron.Tensor) -> chiron.Tensor:
        """Class scores `[n, classes]` of standardised features `[n, features]`."""
        # One operation per line: each result replaces the previous, which is freed at once.
        x = self.fc1(x)
        x = x.relu()
        x = self.fc2(x)
        x = x.relu()
        return self.fc3(x)


# Each batch's work is a function of its own, so that its tensors are freed when it returns,
# before the next batch (as at the end of a Rust loop body): a loop variable would keep the
# last batch's tensors, and with them its autodiff graph, alive into the next one.


def batch_sums(idx: List[int]) -> Tuple[List[float], List[float]]:
    """Per-feature sums and sums of squares of `train` records `idx`."""
    x, _labels = data.batch("train", idx)
    x = x.flatten(1)
    return x.sum(0).to_list(), (x * x).sum(0).to_list()


def feature_stats(schema: data.Schema, features: int) -> Tuple[List[float], List[float]]:
    """Per-feature mean and standard deviation (f32 values) over the `train` split, in one pass."""
    sums = [0.0] * features
    sums_sq = [0.0] * features
    n = 0
    for idx in Batches.sequential(schema, "train", PASS_BATCH):
        s, q = batch_sums(idx)
        for i, v in zip(range(features), s):
            sums[i] += v
        for i, v in zip(range(features), q):
            sums_sq[i] += v
        n += len(idx)
    if n == 0:
        raise chiron.OutOfRange()
    count = float(n)
    mean = [s / count for s in sums]
    std = [math.sqrt(fmax(q / count - m * m, 0.0)) for q, m in zip(sums_sq, mean)]
    # Features constant on `train` (e.g. border pixels) get the average spread instead of ~0,
    # so an unusual value at prediction time cannot blow up. (Summed left to right, as Rust's
    # `Iterator::sum` does; Python's `sum()` of floats compensates and can differ.)
    total = 0.0
    for s in std:
        total += s
    avg_std = total / float(max(len(std), 1))
    floor = fmax(0.1 * avg_std, 1e-6)
    return [f32(m) for m in mean], [f32(fmax(s, floor)) for s in std]


def standardise(x: chiron.Tensor, mean: chiron.Tensor, std: chiron.Tensor) -> chiron.Tensor:
    """`(x.flatten(1) - mean) / std`, broadcasting `[features]` over `[n, features]`."""
    return (x.flatten(1) - mean) / std


def evaluate(
    net: Mlp, mean: chiron.Tensor, std: chiron.Tensor, split: str, indices: List[int]
) -> Tuple[int, int]:
    """Correct predictions on records `indices` of `split` and their count."""
    correct = 0
    total = 0
    for idx in Batches.over(indices, PASS_BATCH):
        correct += batch_correct(net, mean, std, split, idx)
        total += len(idx)
    return correct, total


def batch_correct(net: Mlp, mean: chiron.Tensor, std: chiron.Tensor, split: str, idx: List[int]) -> int:
    """Correct predictions on records `idx` of `split`."""
    x, y = data.batch(split, idx)
    return net(standardise(x, mean, std)).correct(y)


def summed_loss(
    net: Mlp, mean: chiron.Tensor, std: chiron.Tensor, split: str, indices: List[int]
) -> float:
    """Summed cross-entropy over records `indices` of `split` (lower is better)."""
    total = 0.0
    for idx in Batches.over(indices, PASS_BATCH):
        total += batch_loss(net, mean, std, split, idx) * float(len(idx))
    return total


def batch_loss(net: Mlp, mean: chiron.Tensor, std: chiron.Tensor, split: str, idx: List[int]) -> float:
    """Mean cross-entropy on records `idx` of `split`."""
    x, y = data.batch(split, idx)
    return net(standardise(x, mean, std)).cross_entropy(y).item()


def test_indices(schema: data.Schema) -> List[int]:
    """Every record of the `test` split."""
    return list(range(schema.records("test")))


class Best:
    """The weights of the best validation epoch so far, with that epoch's test result."""

    def __init__(self, net: Mlp, loss: float, epoch: int, step: int) -> None:
        """Copies the values of every tensor of `net` (read back from the host)."""
        self.loss = loss
        self.epoch = epoch
        self.step = step
        # Name, shape and values of every layer tensor.
        self.weights = [(name, t.shape, t.to_list()) for name, t in net.named_tensors()]
        # Correct test predictions and the test split's size, measured with these weights.
        self.test: Tuple[int, int] = (0, 0)

    def tensors(self) -> List[Tuple[str, chiron.Tensor]]:
        """The kept weights as fresh host tensors, by name."""
        return [(name, chiron.tensor(values, shape)) for name, shape, values in self.weights]


def train_step(net: Mlp, opt: optim.Optimizer, mean: chiron.Tensor, std: chiron.Tensor, idx: List[int]) -> float:
    """One optimizer step on `train` records `idx`; returns the batch's loss."""
    x, y = data.batch("train", idx)
    loss = net(standardise(x, mean, std)).cross_entropy(y)
    loss.backward()
    opt.step()
    return loss.item()


def train(config: chiron.TrainConfig) -> None:
    """Trains on `train` (see the module documentation) and saves the model."""
    schema = data.schema()
    features = schema.features()
    classes = schema.classes
    h1 = as_u32(config.hyper("hidden1", 128.0))
    h2 = as_u32(config.hyper("hidden2", 64.0))
    use_sgd = config.hyper("sgd", 0.0) != 0.0
    weight_decay = config.hyper("weight_decay", 1e-3)

    mean_values, std_values = feature_stats(schema, features)
    mean = chiron.tensor(mean_values, [features])
    std = chiron.tensor(std_values, [features])

    net = Mlp(features, h1, h2, classes)

    # Every tenth record held out for early stopping, on a split large enough that a tenth
    # measures well and training to the end is costly; a small one trains on all of it.
    patience = as_u32(fmax(config.hyper("patience", 10.0), 0.0))
    validate_from = as_u64(fmax(config.hyper("validate_from", 5000.0), 10.0))
    train_records = schema.records("train")
    validating = patience > 0 and train_records >= validate_from

    def held_out(i: int) -> bool:
        return validating and i % 10 == 9

    validation = [i for i in range(train_records) if held_out(i)]
    fitted = train_records - len(validation)
    per_epoch = -(-fitted // max(config.batch_size, 1))
    total = config.epochs * per_epoch
    if use_sgd:
        lr = config.hyper("lr", 0.05)
        opt: optim.Optimizer = optim.SGD(
            net.parameters(),
            lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=weight_decay,
            schedule=CosineAnnealingLR(total, f32(lr * f32(0.01))),
        )
    else:
        lr = config.hyper("lr", 3e-3)
        opt = optim.Adam(
            net.parameters(),
            lr,
            weight_decay=weight_decay,
            schedule=CosineAnnealingLR(total, f32(lr * f32(0.01))),
        )

    # A resumed job continues after its last checkpoint with the same state.
    start = model.resume(net, opt)
    step = start * per_epoch
    best: Optional[Best] = None
    for epoch in range(start, config.epochs):
        order = [i for i in data.shuffled("train", epoch) if not held_out(i)]
        loss_sum = 0.0
        batches = 0
        for idx in Batches.over(order, config.batch_size):
            loss_sum += train_step(net, opt, mean, std, idx)
            batches += 1
            step += 1
            report.progress(step, total)
        avg = loss_sum / float(max(batches, 1))
        report.metric(Metric.TRAIN_LOSS, step, avg)
        report.metric(Metric.LEARNING_RATE, step, opt.learning_rate())
        model.checkpoint(epoch + 1, net, opt)
        if not validating:
            continue
        val_loss = summed_loss(net, mean, std, "train", validation)
        if best is None or val_loss < best.loss:
            kept = Best(net, val_loss, epoch, step)
            if schema.records("test") > 0:
                kept.test = evaluate(net, mean, std, "test", test_indices(schema))
            best = kept
        elif epoch - best.epoch >= patience:
            break

    saved = best.tensors() if best is not None else net.named_tensors()
    if schema.records("test") > 0:
        if best is not None:
            correct, n = best.test
        else:
            correct, n = evaluate(net, mean, std, "test", test_indices(schema))
        at = best.step if best is not None else step
        report.metric(Metric.TEST_ACCURACY, at, f32(f32(float(correct)) / f32(float(max(n, 1)))))
    saved.append((MEAN, mean))
    saved.append((STD, std))
    model.save(saved)


def predict(x: chiron.Tensor) -> chiron.Tensor:
    """Class scores `[n, classes]` of raw records `x [n, ..shape]`, with the saved model."""
    saved = model.load()
    mean = saved.pop(MEAN, None)
    std = saved.pop(STD, None)
    if mean is None or std is None:
        raise chiron.InvalidArgument()

    def dim(name: str, axis: int) -> int:
        t = saved.get(name)
        if t is None or axis >= t.dim():
            raise chiron.InvalidArgument()
        return t.shape[axis]

    features = dim("fc1.weight", 1)
    h1 = dim("fc1.weight", 0)
    h2 = dim("fc2.weight", 0)
    classes = dim("fc3.weight", 0)
    with nn.skip_init():
        net = Mlp(features, h1, h2, classes)
    net.load_state_dict(saved)
    return net(standardise(x, mean, std))
