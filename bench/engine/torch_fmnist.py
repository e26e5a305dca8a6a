"""The `cnn` trainer's recipe on Fashion-MNIST in PyTorch, for the accuracy report beside
`chiron trainer test` (issue 3, item 7).

Same model as trainers/cnn for [1, 28, 28]: two blocks of conv 3x3 (pad 1, no bias) -> batch
norm -> ReLU -> max-pool 2x2 with 32 and 64 channels, flatten, linear 3136 -> 256, ReLU, dropout
0.25, linear 256 -> 10. Same recipe: per-channel normalisation from the first 10,000 training
images; SGD lr 0.05, Nesterov momentum 0.9, weight decay 5e-4, linear warm-up over
min(total/20, 500) steps then cosine to 0; batch 64 with the last partial batch dropped;
no augmentation; torch.set_num_threads(2). Evaluates top-1 accuracy on the 10,000 test images.

Usage: bench/engine/.venv/bin/python bench/engine/torch_fmnist.py [--epochs 4] [--seed 1]
       [--data /usr/share/datasets/fashion-mnist] [--forward-batch 64 --forward-seconds 10]
Prints one JSON object: test_accuracy, epochs, train_seconds, torch version; with
--forward-batch, also forward_inputs_per_s: the trained (or, with --epochs 0, initial) model's
eval-mode forward pass over test images in batches of that size, one batch at a time, for
--forward-seconds (bench/predict.sh sets it beside the service's throughput).
"""

import argparse
import gzip
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


def idx(path: Path) -> np.ndarray:
    """An IDX array (gzip or plain)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def network() -> nn.Sequential:
    layers = []
    channels, size = 1, 28
    for width in (32, 64):
        layers += [
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels, size = width, size // 2
    layers += [
        nn.Flatten(1),
        nn.Linear(channels * size * size, 256),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(256, 10),
    ]
    return nn.Sequential(*layers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--forward-batch", type=int, default=0)
    p.add_argument("--forward-seconds", type=float, default=10.0)
    a = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(a.seed)
    d = Path(a.data)
    x_train = torch.from_numpy(idx(d / "train-images-idx3-ubyte.gz").astype(np.float32))
    y_train = torch.from_numpy(idx(d / "train-labels-idx1-ubyte.gz").astype(np.int64))
    x_test = torch.from_numpy(idx(d / "t10k-images-idx3-ubyte.gz").astype(np.float32))
    y_test = torch.from_numpy(idx(d / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    mean = x_train[:10000].mean().item()
    std = max(x_train[:10000].std(unbiased=False).item(), 1e-3)
    x_train = ((x_train - mean) / std).unsqueeze(1)
    x_test = ((x_test - mean) / std).unsqueeze(1)

    model = network()
    batch = 64
    per_epoch = len(x_train) // batch
    total = a.epochs * per_epoch
    warmup = min(total // 20, 500)
    base = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=base, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)

    def lr_at(t: int) -> float:
        if t < warmup:
            return base * t / warmup
        s = min(t - warmup, total)
        return 0.5 * base * (1 + math.cos(math.pi * s / total))

    loss_fn = nn.CrossEntropyLoss()
    t = 0
    start = time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        g = torch.Generator().manual_seed(a.seed * 1000 + epoch)
        order = torch.randperm(len(x_train), generator=g)
        for i in range(per_epoch):
            for group in opt.param_groups:
                group["lr"] = lr_at(t)
            idx_b = order[i * batch : (i + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx_b]), y_train[idx_b])
            loss.backward()
            opt.step()
            t += 1
    train_seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_test), 256):
            correct += (model(x_test[i : i + 256]).argmax(1) == y_test[i : i + 256]).sum().item()
    result = {
        "test_accuracy": correct / len(x_test),
        "epochs": a.epochs,
        "train_seconds": train_seconds,
        "torch": torch.__version__,
    }
    if a.forward_batch > 0:
        inputs, batches = 0, 0
        with torch.no_grad():
            model(x_test[: a.forward_batch])  # warm-up
            start = time.perf_counter()
            while time.perf_counter() - start < a.forward_seconds:
                i = (batches * a.forward_batch) % (len(x_test) - a.forward_batch)
                model(x_test[i : i + a.forward_batch]).argmax(1)
                inputs += a.forward_batch
                batches += 1
            result["forward_inputs_per_s"] = inputs / (time.perf_counter() - start)
            result["forward_batch"] = a.forward_batch
    print(json.dumps(result))


if __name__ == "__main__":
    main()
