"""`cnn`: an image classifier for Chiron that sizes itself from the dataset's schema, in Python.

A port of the Rust trainer `trainers/cnn` that makes the same engine calls in the same order
with the same values, so a job gives the same model with either.

Input `[c, h, w]` (e.g. `[1, 28, 28]` Fashion-MNIST, `[3, 32, 32]` CIFAR-10). Blocks of
`conv 3×3 (pad 1, no bias) → batch norm → ReLU → max-pool 2×2` with 32, 64, 128 channels,
added while the feature map is at least 8 pixels wide (two blocks for 28×28, three for
32×32), then `flatten → linear 256 → ReLU → dropout → linear classes`.

Inputs are normalised per channel with statistics measured on the `train` split (saved with
the model, so `predict` applies the same). Three-channel data is augmented with a random
4-pixel crop and horizontal flips (host-side).

Hyper-parameters (all optional): `lr` (0.05), `momentum` (0.9), `weight_decay` (5e-4),
`augment` (1 for 3 channels, else 0), `dropout` (0.25), `hidden` (256),
`stats_records` (records used for the normalisation statistics, 10,000).

Build and try it: `chiron trainer build trainers/python/cnn`, then `chiron trainer test`.
"""

from __future__ import annotations

from typing import Dict, Tuple

import chiron
from chiron import data, model, nn, optim, report
from chiron.data import Augment, Batches
from chiron.numeric import as_u32, as_u64, f32
from chiron.optim.lr_scheduler import CosineAnnealingLR
from chiron.report import Metric
from chiron.vision import channel_stats, evaluate, image_shape, train_epoch

MEAN = "norm.mean"
STD = "norm.std"
#: Channels of the successive blocks.
WIDTHS = (32, 64, 128)


def network(shape: Tuple[int, int, int], hidden: int, dropout: float, classes: int) -> nn.Sequential:
    """The network for `[c, h, w]` inputs (tensors `block{i}.conv.*`, `block{i}.bn.*`, `fc1.*`, `fc2.*`)."""
    channels, h, w = shape
    layers: Dict[str, nn.Module] = {}
    for i, width in enumerate(WIDTHS):
        if min(h, w) < 8:
            break
        layers[f"block{i}"] = nn.Sequential(
            {
                "conv": nn.Conv2d(channels, width, 3, padding=1, bias=False),
                "bn": nn.BatchNorm2d(width),
                "relu": nn.ReLU(),
                "pool": nn.MaxPool2d(2),
            }
        )
        channels = width
        h //= 2
        w //= 2
    flat = channels * h * w
    if flat >= 2**32:
        raise chiron.InvalidShape()
    layers["flatten"] = nn.Flatten(1)
    layers["fc1"] = nn.Linear(flat, hidden)
    layers["relu"] = nn.ReLU()
    if dropout > 0.0:
        layers["dropout"] = nn.Dropout(dropout)
    layers["fc2"] = nn.Linear(hidden, classes)
    return nn.Sequential(layers)


def train(config: chiron.TrainConfig) -> None:
    """Trains on `train` (see the module documentation) and saves the model."""
    schema = data.schema()
    shape = image_shape(schema.shape, 0)
    hidden = as_u32(config.hyper("hidden", 256.0))
    dropout = config.hyper("dropout", 0.25)
    augment_default = 1.0 if shape[0] == 3 else 0.0
    augment = (
        Augment(crop_padding=4, horizontal_flip=True)
        if config.hyper("augment", augment_default) != 0.0
        else None
    )
    stats_records = as_u64(config.hyper("stats_records", 10_000.0))

    normalize = channel_stats(schema, stats_records)
    mean_t = chiron.tensor(normalize.mean, [shape[0]])
    std_t = chiron.tensor(normalize.std, [shape[0]])

    net = network(shape, hidden, dropout, schema.classes)

    per_epoch = len(Batches.shuffled("train", 0, config.batch_size, drop_last=True))
    total = config.epochs * per_epoch
    lr = config.hyper("lr", 0.05)
    opt = optim.SGD(
        net.parameters(),
        lr,
        momentum=config.hyper("momentum", 0.9),
        nesterov=True,
        weight_decay=config.hyper("weight_decay", 5e-4),
        warmup=min(total // 20, 500),
        schedule=CosineAnnealingLR(total, 0.0),
    )

    # A resumed job continues after its last checkpoint with the same state.
    start = model.resume(net, opt)
    step = start * per_epoch
    for epoch in range(start, config.epochs):
        net.train()
        stats, step = train_epoch(
            net, opt, normalize, augment, epoch, config.batch_size, step, total
        )
        report.metric(Metric.TRAIN_LOSS, step, stats.loss)
        report.metric(Metric.TRAIN_ACCURACY, step, stats.accuracy)
        model.checkpoint(epoch + 1, net, opt)

    net.eval()
    if schema.records("test") > 0:
        correct, n = evaluate(schema, net, normalize, "test")
        report.metric(Metric.TEST_ACCURACY, step, f32(f32(float(correct)) / f32(float(max(n, 1)))))

    named = net.named_tensors()
    named.append((MEAN, mean_t))
    named.append((STD, std_t))
    model.save(named)


def predict(x: chiron.Tensor) -> chiron.Tensor:
    """Class scores `[n, classes]` of raw images `x [n, c, h, w]`, with the saved model."""
    shape = image_shape(x.shape, 1)
    saved = model.load()

    def take(name: str) -> chiron.Tensor:
        t = saved.pop(name, None)
        if t is None:
            raise chiron.InvalidArgument()
        return t

    # Read into Python lists; the statistics' tensors are freed right away.
    mean = take(MEAN).to_list()
    std = take(STD).to_list()

    def fc(name: str) -> int:
        t = saved.get(name)
        if t is None or t.dim() == 0:
            raise chiron.InvalidArgument()
        return t.shape[0]

    hidden = fc("fc1.weight")
    classes = fc("fc2.weight")
    with nn.skip_init():
        net = network(shape, hidden, 0.0, classes)
    net.load_state_dict(saved)
    net.eval()
    return net(x.normalize_channels(mean, std))
