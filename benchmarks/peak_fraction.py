"""How much of the machine's arithmetic peak SimpleCNN's forward pass reaches: FLOP/s of the forward
pass at a large batch (FLOPs counted by torch.utils.flop_counter.FlopCounterMode) divided by the
FLOP/s of a large float32 matrix product (the practical peak of this machine and BLAS).

FlopCounterMode counts the convolutions and the linear layer (2 FLOPs per multiply-add). It skips
ReLU and max-pooling, which are memory-bound and add almost nothing to the FLOP count, but their
time counts. So the fraction is a lower bound on how busy the arithmetic units are. The forward pass
is timed in the default and the channels_last memory format.

Run:  python benchmarks/peak_fraction.py [--device cpu] [--batch 1024] [--matmul 2048] ...
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import header, markdown, parser, save  # noqa: E402

from robustlab.models import SimpleCNN  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = parser(__doc__, "peak_fraction")
    p.add_argument("--batch", type=int, default=1024, help="forward batch size (default 1024)")
    p.add_argument("--matmul", type=int, default=2048, help="side n of the n x n float32 matrix product (default 2048)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each; the median is reported (default 5)")
    return p.parse_args()


def median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocation, kernel selection
    times = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(model, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # the peak and the model both in true float32
    torch.backends.cudnn.allow_tf32 = False
    info = header("Peak fraction benchmark (benchmarks/peak_fraction.py)", device)
    torch.manual_seed(0)
    model = SimpleCNN().to(device).eval()
    x = torch.rand(args.batch, 1, 28, 28, device=device)
    flops = forward_flops(model, x)

    a, b = (torch.randn(args.matmul, args.matmul, device=device) for _ in range(2))
    peak = 2 * args.matmul**3 / median_seconds(lambda: a @ b, args.repeats, device)

    rows = [
        {
            "what": f"float32 matmul {args.matmul}x{args.matmul} (peak)",
            "GFLOP": round(2 * args.matmul**3 / 1e9, 3),
            "GFLOP/s": round(peak / 1e9, 2),
            "fraction of peak": 1.0,
        }
    ]
    fast = SimpleCNN().to(device).eval().to(memory_format=torch.channels_last)
    fast.load_state_dict(model.state_dict())
    for name, net, inputs in (
        ("contiguous", model, x),
        ("channels_last", fast, x.contiguous(memory_format=torch.channels_last)),
    ):
        with torch.inference_mode():
            # called right here, within this iteration: the loop variables cannot move on under it
            seconds = median_seconds(lambda: net(inputs), args.repeats, device)  # noqa: B023
        rows.append(
            {
                "what": f"SimpleCNN forward, batch {args.batch}, {name}",
                "GFLOP": round(flops / 1e9, 3),
                "GFLOP/s": round(flops / seconds / 1e9, 2),
                "fraction of peak": round(flops / seconds / peak, 3),
            }
        )
    print(
        f"SimpleCNN forward: {flops / args.batch / 1e6:.2f} MFLOP per image (FlopCounterMode: convolutions and linear)"
    )
    print()
    print(markdown(rows))
    save(
        rows,
        args.out,
        "peak_fraction",
        info,
        vars(args) | {"out": str(args.out), "flops_per_image": flops / args.batch},
    )


if __name__ == "__main__":
    main()
