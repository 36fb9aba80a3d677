"""What PyTorch Lightning costs in training: images per second of SimpleCNN trained by a Lightning
Trainer vs a plain PyTorch loop. Both use the same model initialisation, data, batch size, optimizer
(the model's own Adam) and number of epochs.

The Lightning side is what the pipelines run: the ImageClassifier's training_step, with its
self.log calls, but with no logger, checkpointing, progress bar or validation. Times cover the whole
fit() (Trainer set-up included) and the plain loop's epochs. The paths alternate over --repeats and
the median is reported.

Run:  python benchmarks/lightning_overhead.py [--device cpu] [--images 4096] [--epochs 2] ...
Data: MNIST's first --images training images when $ROBUSTLAB_DATA (or --data-root) holds MNIST,
else synthetic images of the same shape.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, markdown, parser, save  # noqa: E402

from robustlab.data import load_split  # noqa: E402
from robustlab.errors import RobustlabError  # noqa: E402
from robustlab.models import SimpleCNN  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = parser(__doc__, "lightning_overhead")
    p.add_argument("--images", type=int, default=4096, help="training images (default 4096)")
    p.add_argument("--batch-size", type=int, default=128, help="default 128, as the pipelines")
    p.add_argument("--epochs", type=int, default=2, help="default 2")
    p.add_argument(
        "--repeats", type=int, default=3, help="alternating repeats of both paths; the median is reported (default 3)"
    )
    p.add_argument(
        "--data-root",
        default=os.environ.get("ROBUSTLAB_DATA"),
        help="MNIST root (default $ROBUSTLAB_DATA; synthetic without it)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def load_images(root: str | None, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    if root:
        try:
            images, labels = load_split("mnist", root, train=True, download=False)
            return images[:n], labels[:n], f"MNIST from {root}"
        except RobustlabError as error:
            print(f"NOTE: MNIST not available ({error}); using synthetic images")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), "synthetic"


def loader(images, labels, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(
        TensorDataset(images, labels),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def fresh_model(seed: int) -> SimpleCNN:
    torch.manual_seed(seed)
    return SimpleCNN()


def plain_fit(data: DataLoader, epochs: int, device: torch.device, seed: int) -> float:
    model = fresh_model(seed).to(device).train()
    optimizer = model.configure_optimizers()
    sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        for x, y in data:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    sync(device)
    return time.perf_counter() - started


def lightning_fit(data: DataLoader, epochs: int, device: torch.device, seed: int) -> float:
    model = fresh_model(seed)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator=device.type,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    sync(device)
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=data)
    sync(device)
    return time.perf_counter() - started


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    # Lightning's informational lines ("GPU available", "fit stopped") would drown the table.
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    for noise in (".*does not have many workers.*", ".*validation_step.*but have no.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", noise)
    info = header("Lightning overhead benchmark (benchmarks/lightning_overhead.py)", device)
    images, labels, source = load_images(args.data_root, args.images, args.seed)
    data = loader(images, labels, args.batch_size, args.seed)
    print(
        f"data: {source}, {len(images)} images | batch {args.batch_size} | epochs {args.epochs} | Adam(lr=1e-3) | "
        "SimpleCNN (32, 64)"
    )

    plain_fit(
        loader(images[:512], labels[:512], args.batch_size, args.seed), 1, device, args.seed
    )  # warm-up: kernels, allocator
    lightning_fit(loader(images[:512], labels[:512], args.batch_size, args.seed), 1, device, args.seed)
    times = {"plain PyTorch loop": [], "Lightning Trainer": []}
    for _ in range(args.repeats):
        times["plain PyTorch loop"].append(plain_fit(data, args.epochs, device, args.seed))
        times["Lightning Trainer"].append(lightning_fit(data, args.epochs, device, args.seed))
    trained = len(images) * args.epochs
    plain = trained / statistics.median(times["plain PyTorch loop"])
    rows = [
        {
            "path": name,
            "seconds (median)": round(statistics.median(t), 3),
            "images/s": round(trained / statistics.median(t), 1),
            "vs plain": round(trained / statistics.median(t) / plain, 3),
            "all seconds": " ".join(f"{s:.2f}" for s in t),
        }
        for name, t in times.items()
    ]
    print()
    print(markdown(rows))
    print(f"ratio Lightning / plain images/s = {rows[1]['vs plain']:.3f}")
    save(rows, args.out, "lightning_overhead", info, vars(args) | {"out": str(args.out), "data": source})


if __name__ == "__main__":
    main()
