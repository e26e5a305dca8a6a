"""PyTorch reference for bench/engine.sh: the engine issue's reference CNN on the CPU.

Model, data and loop mirror bench/engine (native and sandboxed): conv 3->32->64->128 (3x3,
pad 1, bias) each + ReLU + 2x2 max-pool; linear 2048->256, ReLU, linear 256->10;
cross-entropy; SGD lr 0.01, momentum 0.9; batches of 64 consecutive records of random u8
3x32x32 images (scaled to [0, 1] per batch, as the engine's data interface does) with random
labels in 0..10; the loss read back each step. torch.set_num_threads(2).

Training: per repetition a fresh model, WARMUP unmeasured steps, then STEPS timed steps.
Inference (eval mode, no_grad): batches of 1, 64 and 256, the same call count per batch size
as the Rust side. Prints one JSON object (medians over the repetitions, and every run).

PyTorch is never a test or CI dependency; bench/engine.sh installs it into bench/engine/.venv.

Usage: python torch_ref.py [--steps N] [--warmup N] [--reps N] [--records N]
       [--predict-calls N] [--threads N]   (other options are ignored)
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn


def network() -> nn.Sequential:
    """The reference CNN (PyTorch's default initialisation)."""
    layers = []
    channels = 3
    for width in (32, 64, 128):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    layers += [nn.Flatten(1), nn.Linear(128 * 4 * 4, 256), nn.ReLU(), nn.Linear(256, 10)]
    return nn.Sequential(*layers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--records", type=int, default=2048)
    p.add_argument("--predict-calls", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    # Options meant for engine-bench only (--component, --guest) are ignored.
    args, _ = p.parse_known_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = 64
    images = torch.randint(0, 256, (args.records, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.records,), dtype=torch.int64)

    def get_batch(step: int):
        start = (step * batch) % (args.records - batch + 1)
        x = images[start : start + batch].float().div_(255.0)
        return x, labels[start : start + batch]

    train_runs = []
    for _ in range(args.reps):
        model = network()
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()

        def step(i: int) -> None:
            x, y = get_batch(i)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            if not torch.isfinite(loss).item():
                raise SystemExit("non-finite loss")

        for i in range(args.warmup):
            step(i)
        t = time.perf_counter()
        for i in range(args.warmup, args.warmup + args.steps):
            step(i)
        train_runs.append(args.steps * batch / (time.perf_counter() - t))

    model = network().eval()
    predict = []
    with torch.no_grad():
        for b in (1, 64, 256):
            x = images[:b].float().div_(255.0)
            calls = max(args.predict_calls // -(-b // 16), 3)
            per_rep = []
            for _ in range(args.reps):
                model(x)
                times = []
                for _ in range(calls):
                    t = time.perf_counter()
                    model(x)
                    times.append((time.perf_counter() - t) * 1e3)
                per_rep.append(statistics.median(times))
            ms = statistics.median(per_rep)
            predict.append(
                {"batch": b, "ms": ms, "img_s": b / ms * 1e3, "ms_runs": per_rep}
            )

    print(
        json.dumps(
            {
                "torch_version": torch.__version__,
                "threads": torch.get_num_threads(),
                "mkldnn": torch.backends.mkldnn.is_available(),
                "mkl": torch.backends.mkl.is_available(),
                "train_img_s": statistics.median(train_runs),
                "train_img_s_runs": train_runs,
                "infer_img_s": next(r["img_s"] for r in predict if r["batch"] == 64),
                "predict": predict,
            }
        )
    )


if __name__ == "__main__":
    main()
