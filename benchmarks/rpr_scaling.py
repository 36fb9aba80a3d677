"""How RPR scales: useful perturbation-evaluations per second (as in rpr_throughput.py) per device,
per number of processes, and per fast-path variant (robustness/fastpath.py).

Variants: eager contiguous (plain PyTorch), channels_last, channels_last + torch.compile, and
channels_last + compile + bf16 autocast. On CUDA, each variant also runs with ``batch_size: auto``.
With P processes, each process measures a disjoint shard of the points with
``measure_rpr(indices=...)`` using --threads threads (default 1). The rate is the whole run's rate:
all useful evaluations divided by the time from the first process's start to the last one's end.
Each process warms up (imports, compilation) before a shared start signal, so the timed part is
RPR only.

Run:  python benchmarks/rpr_scaling.py [--device cpu|cuda|all] [--processes 1,2] [--points 200] ...
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DEFAULT_OUT, header, load_average, markdown, save  # noqa: E402
from rpr_throughput import default_perturbation, load_data, rpr_settings, train_briefly  # noqa: E402

from robustlab.models import SimpleCNN  # noqa: E402
from robustlab.robustness import measure_rpr  # noqa: E402
from robustlab.robustness.fastpath import fast_forward  # noqa: E402

VARIANTS = {  # name -> measure_rpr's fast-path keywords
    "eager contiguous": dict(channels_last=False),
    "channels_last": dict(channels_last=True),
    "channels_last + compile": dict(channels_last=True, compile=True),
    "channels_last + compile + bf16": dict(channels_last=True, compile=True, autocast="bf16"),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--device", default="all", choices=["cpu", "cuda", "all"], help="all: cpu, and cuda when available (default)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--processes", default="1,2", help="CPU process counts, comma-separated (default 1,2); CUDA uses 1")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    p.add_argument("--points", type=int, default=200, help="test points, split over the processes (default 200)")
    p.add_argument("--max-steps", type=int, default=50, help="MAX_STEPS (default 50)")
    p.add_argument(
        "--train-images", type=int, default=4000, help="images for the brief training of the model (default 4000)"
    )
    p.add_argument(
        "--data-root",
        default=os.environ.get("ROBUSTLAB_DATA", "data"),
        help="MNIST root (default $ROBUSTLAB_DATA, else ./data; synthetic if missing)",
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"folder for rpr_scaling.csv/.json (default {DEFAULT_OUT})"
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def measure_shard(rank, processes, state, images, labels, device, threads, options, max_steps, seed, start, results):
    """One process: warm up on a few of its points, wait for all, then time RPR of its shard."""
    torch.set_num_threads(threads)
    model = SimpleCNN().to(device)
    model.load_state_dict(state)
    perturbation = default_perturbation()
    fast_keys = ("channels_last", "compile", "autocast")
    # One fast model for the warm-up and the timed run, so the timed run reuses the compiled code.
    fast = fast_forward(model, **{k: v for k, v in options.items() if k in fast_keys})
    schedule = {k: v for k, v in options.items() if k not in fast_keys}
    rows = torch.arange(rank, len(images), processes)  # disjoint shards; indices keep each point's random numbers
    x, y = images[rows].to(device), labels[rows].to(device)

    def run(n):
        return measure_rpr(
            fast, x[:n], y[:n], perturbation, max_steps, seed=seed, indices=rows[:n], progress=False, **schedule
        )

    run(min(len(rows), 48))  # compiles here, for the shapes the timed run uses after its first batches
    start.wait()
    sync(device)
    began = time.perf_counter()
    result = run(len(rows))
    sync(device)
    results.put((rank, began, time.perf_counter(), int(result.steps.sum()), int(result.robust.sum())))


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_variant(processes: int, state, images, labels, device: str, threads: int, options: dict, args) -> dict:
    if processes == 1:  # in this process: no spawn cost, and CUDA needs no child context
        queue, barrier = _Local(), _NoBarrier()
        measure_shard(0, 1, state, images, labels, device, threads, options, args.max_steps, args.seed, barrier, queue)
        reports = [queue.get()]
    else:
        ctx = mp.get_context("spawn")  # fresh interpreters: no forked OpenMP state
        queue, barrier = ctx.Queue(), ctx.Barrier(processes)
        workers = [
            ctx.Process(
                target=measure_shard,
                args=(
                    rank,
                    processes,
                    state,
                    images,
                    labels,
                    device,
                    threads,
                    options,
                    args.max_steps,
                    args.seed,
                    barrier,
                    queue,
                ),
            )
            for rank in range(processes)
        ]
        for worker in workers:
            worker.start()
        reports = [queue.get() for _ in workers]
        for worker in workers:
            worker.join()
    seconds = max(r[2] for r in reports) - min(r[1] for r in reports)
    useful = sum(r[3] for r in reports)
    return {
        "seconds": seconds,
        "useful_evals": useful,
        "evals_per_s": useful / seconds,
        "robust_ratio": sum(r[4] for r in reports) / len(images),
    }


class _Local:
    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)

    def get(self):
        return self.items.pop(0)


class _NoBarrier:
    def wait(self):
        pass


def plan(args) -> list[tuple[str, int, str, dict]]:
    """(device, processes, variant name, measure_rpr keywords) for every row of the table."""
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    names = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    rows = []
    for device in devices:
        for processes in [int(p) for p in args.processes.split(",")] if device == "cpu" else [1]:
            rows += [(device, processes, name, VARIANTS[name]) for name in names]
        if device == "cuda":
            rows += [(device, 1, name + ", batch auto", VARIANTS[name] | {"batch_size": "auto"}) for name in names]
    return rows


def main() -> None:
    args = parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    info = header(
        "RPR scaling benchmark (benchmarks/rpr_scaling.py)",
        "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu",
    )
    (train_x, train_y), (test_x, test_y), source = load_data(args.data_root, args.seed)
    n_train = min(args.train_images, len(train_x))
    model = train_briefly(train_x[:n_train], train_y[:n_train], 1, args.seed, torch.device("cpu"))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    n = min(args.points, len(test_x))
    images, labels = test_x[:n].clone(), test_y[:n].clone()
    settings = rpr_settings() | {
        "points": n,
        "max_steps": args.max_steps,
        "threads_per_process": args.threads,
        "data": source,
        "perturbation": default_perturbation().describe(),
        "seed": args.seed,
    }
    print(
        f"data: {source}, first {n} test points | MAX_STEPS {args.max_steps} | {settings['perturbation']} | "
        f"model: SimpleCNN trained 1 epoch on {n_train} images | {args.threads} thread(s) per process"
    )

    rows, baseline = [], {}
    for device, processes, name, options in plan(args):
        options = {
            "batch_size": rpr_settings()["batch_size"],
            "min_block": rpr_settings()["min_block"],
            "max_block": rpr_settings()["max_block"],
        } | options
        measured = run_variant(processes, state, images, labels, device, args.threads, options, args)
        baseline.setdefault(
            device, measured["evals_per_s"]
        )  # the device's first row (by default: 1 process, eager contiguous)
        rows.append(
            {
                "device": device,
                "processes": processes,
                "variant": name,
                "threads/process": args.threads,
                "useful evals": measured["useful_evals"],
                "seconds": round(measured["seconds"], 3),
                "evals/s": round(measured["evals_per_s"], 1),
                "vs first row": round(measured["evals_per_s"] / baseline[device], 2),
                "robust ratio": round(measured["robust_ratio"], 4),
            }
        )
        print(f"  {device} x{processes} {name}: {measured['evals_per_s']:.0f} evals/s", flush=True)
    print()
    print(markdown(rows))
    print(f"load average after the run: {load_average()}")
    save(rows, args.out, "rpr_scaling", info, settings)


if __name__ == "__main__":
    main()
