"""Throughput of the RPR measure: perturbation-evaluations per second (one evaluation = one
perturbed image classified), on one trained SimpleCNN and one set of test points.

  (a)  naive loop: one datapoint and one retry per forward pass, stop a point at its first failure
  (b)  robustlab's ``measure_rpr`` with the pipeline's settings (read from conf/rpr/default.yaml)
  (c)  plain batched inference of the same model on as many inputs as (b) evaluated, same batch
       size, same memory format (channels_last) and the same scores function as (b)
  (c') the same plain inference in PyTorch's default (contiguous) memory format, for reference

(b)/(c) is the share of plain-inference speed that RPR keeps: everything it spends on perturbing,
scheduling and bookkeeping lowers it. (b) counts useful evaluations only (each point's ``steps``:
its first failing retry, or MAX_STEPS when none failed); the retries ``measure_rpr`` evaluates past
a first failure inside a block are counted by a separate, untimed run and reported as wasted.

Run:  python benchmarks/rpr_throughput.py [--device cpu] [--points 300] [--max-steps 100] ...
Data: --data-root (default $ROBUSTLAB_DATA, else ./data) with MNIST in torchvision's layout;
without it the benchmark runs on synthetic images and says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import cpu_model, load_average  # noqa: E402

from robustlab.data import load_split  # noqa: E402
from robustlab.errors import RobustlabError
from robustlab.models import SimpleCNN
from robustlab.robustness import make_perturbation, measure_rpr, perturb_at
from robustlab.robustness.fastpath import resolve_batch_size
from robustlab.robustness.rpr import as_scores_fn

ROOT = Path(__file__).resolve().parents[1]
RPR_CONFIG = ROOT / "conf" / "rpr" / "default.yaml"
PERTURBATION_CONFIG = ROOT / "conf" / "perturbation" / "pixels.yaml"  # conf/config.yaml's default scheme


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data-root",
        default=os.environ.get("ROBUSTLAB_DATA", "data"),
        help="MNIST root (default: $ROBUSTLAB_DATA, else ./data)",
    )
    p.add_argument(
        "--checkpoint", default=None, help="Lightning checkpoint of a SimpleCNN; default: train one briefly here"
    )
    p.add_argument("--points", type=int, default=300, help="test points measured by (b) (default 300)")
    p.add_argument(
        "--naive-points", type=int, default=30, help="test points timed with the slow naive loop (a) (default 30)"
    )
    p.add_argument("--max-steps", type=int, default=100, help="MAX_STEPS (default 100)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help=f"torch CPU threads (default {torch.get_num_threads()})",
    )
    p.add_argument(
        "--train-images", type=int, default=4000, help="training images for the brief in-script training (default 4000)"
    )
    p.add_argument("--train-epochs", type=int, default=1, help="epochs of the brief in-script training (default 1)")
    p.add_argument(
        "--repeats", type=int, default=3, help="timed repeats of (b), (c), (c'); the median is reported (default 3)"
    )
    p.add_argument(
        "--batch-size",
        default=None,
        help="measure_rpr's batch size: an integer or auto (on CUDA: what fits the free memory); "
        "default: conf/rpr/default.yaml's",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def rpr_settings() -> dict:
    """The pipeline's measure_rpr settings, from conf/rpr/default.yaml (the keys measure_rpr takes)."""
    cfg = yaml.safe_load(RPR_CONFIG.read_text())
    return {key: cfg[key] for key in ("batch_size", "min_block", "max_block", "channels_last")}


def default_perturbation():
    cfg = yaml.safe_load(PERTURBATION_CONFIG.read_text())
    cfg.pop("_target_", None)
    return make_perturbation(**cfg)


def synthetic_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ten smooth random class templates plus noise, in [0, 1]: learnable, not trivially robust."""
    g = torch.Generator().manual_seed(1234)  # the same templates for train and test
    templates = F.avg_pool2d(torch.rand(10, 1, 28, 28, generator=g), 5, stride=1, padding=2)
    templates = (templates - templates.amin((2, 3), keepdim=True)) / (
        templates.amax((2, 3), keepdim=True) - templates.amin((2, 3), keepdim=True)
    )
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = (0.5 * templates[labels] + 0.5 * torch.rand(n, 1, 28, 28, generator=g)).clamp(0, 1)
    return images, labels


def load_data(root: str, seed: int) -> tuple[tuple, tuple, str]:
    try:
        train = load_split("mnist", root, train=True, download=False)
        test = load_split("mnist", root, train=False, download=False)
        return train, test, f"MNIST from {Path(root).resolve()}"
    except RobustlabError as error:
        print(f"NOTE: MNIST not available ({error})")
        print("NOTE: falling back to SYNTHETIC images; rates are still meaningful, robust ratios are not MNIST's")
        return synthetic_split(10000, seed), synthetic_split(2000, seed + 1), "SYNTHETIC (MNIST not found)"


def train_briefly(images, labels, epochs: int, seed: int, device: torch.device) -> SimpleCNN:
    torch.manual_seed(seed)
    model = SimpleCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 128):
            batch = order[start : start + 128]
            x, y = images[batch].to(device), labels[batch].to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


# (a) the obvious implementation -------------------------------------------------------------------------------


def naive_rpr(model, perturbation, images, labels, indices, max_steps: int, seed: int) -> tuple[np.ndarray, int]:
    """One point and one retry per forward pass; returns first_failure per point and the evaluations made."""
    first_failure, evaluations = [], 0
    with torch.no_grad():
        for image, label, index in zip(images, labels, indices, strict=True):
            if model(image[None]).argmax(1).item() != label.item():
                first_failure.append(0)  # clean-wrong: no perturbation evaluated
                continue
            failed = -1
            for step in range(1, max_steps + 1):
                perturbed = perturb_at(
                    perturbation, seed, image[None], index[None], torch.tensor([step], device=image.device)
                )
                evaluations += 1
                if model(perturbed).argmax(1).item() != label.item():
                    failed = step
                    break
            first_failure.append(failed)
    return np.array(first_failure, dtype=np.int64), evaluations


# (c) plain inference ------------------------------------------------------------------------------------------


def plain_inference(fn, inputs: torch.Tensor, batch_size: int) -> None:
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            fn(inputs[start : start + batch_size]).argmax(dim=1)


def timed(fn, device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def count_forwarded_rows(model, run) -> tuple[int, int]:
    """Rows and forward calls that ``run()`` sends through ``model`` (a hook survives as_scores_fn's deepcopy)."""
    counter = {"rows": 0, "calls": 0}

    def hook(_module, args):
        counter["rows"] += args[0].shape[0]
        counter["calls"] += 1

    handle = model.register_forward_pre_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return counter["rows"], counter["calls"]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but CUDA is not available")
    settings = rpr_settings()
    perturbation = default_perturbation()
    bs = settings["batch_size"]

    print("RPR throughput benchmark (benchmarks/rpr_throughput.py)")
    print(
        f"torch {torch.__version__} | python {platform.python_version()} | device {device.type}: {device_name(device)} "
        f"| torch threads {torch.get_num_threads()} (os cpus {os.cpu_count()})"
    )
    print(
        f"load average before the run: {load_average()} (above the cpu count, other processes compete and timings are "
        "noisy)"
    )
    print(f"measure_rpr settings from {RPR_CONFIG.relative_to(ROOT)}: {settings}")
    print(
        f"perturbation from {PERTURBATION_CONFIG.relative_to(ROOT)}: {perturbation.describe()} | max_steps "
        f"{args.max_steps} | seed {args.seed}"
    )

    (train_x, train_y), (test_x, test_y), source = load_data(args.data_root, args.seed)
    if args.checkpoint:
        model = SimpleCNN.load_from_checkpoint(args.checkpoint, map_location=device).to(device).eval()
        print(f"model: SimpleCNN from checkpoint {args.checkpoint}")
    else:
        n_train = min(args.train_images, len(train_x))
        started = time.perf_counter()
        model = train_briefly(train_x[:n_train], train_y[:n_train], args.train_epochs, args.seed, device)
        print(
            f"model: SimpleCNN (default widths) trained here with Adam(lr=1e-3), batch 128, {args.train_epochs} "
            f"epoch(s) on {n_train} training images in {time.perf_counter() - started:.1f}s"
        )

    n = min(args.points, len(test_x))
    images, labels = test_x[:n].to(device), test_y[:n].to(device)
    indices = torch.arange(n, device=device)
    if args.batch_size is not None:  # e.g. auto on a GPU, where 128 leaves it mostly idle
        asked = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
        scores = as_scores_fn(model, settings["channels_last"])[0]
        settings["batch_size"] = bs = resolve_batch_size(asked, scores, images)
        print(f"batch size: {bs} (--batch-size {args.batch_size})")
    print(f"data: {source}; the first {n} test points")

    def run_rpr(count: int = n):
        return measure_rpr(
            model,
            images[:count],
            labels[:count],
            perturbation,
            args.max_steps,
            seed=args.seed,
            indices=indices[:count],
            progress=False,
            **settings,
        )

    # (b) measure_rpr. An untimed first run warms it up and counts its evaluations: the useful ones from the
    # result, all of them with a forward hook; its useful count sizes (c)'s input.
    holder = {}
    rows, calls = count_forwarded_rows(model, lambda: holder.setdefault("r", run_rpr()))
    result = holder["r"]
    useful = int(result.steps.sum())
    evaluated = rows - n - min(n, 2)  # minus the clean predictions and check_inputs' 2-row probe
    print(
        f"points: {n} | clean accuracy {result.correct.mean():.3f} | robust at MAX_STEPS={args.max_steps}: "
        f"{result.robust_ratio():.3f} of all, {result.robust_ratio(over='correct'):.3f} of correct | "
        f"useful evaluations {useful}"
    )

    # (a) naive loop on the first --naive-points points.
    n_naive = min(args.naive_points, n)
    naive_rpr(model, perturbation, images[:3], labels[:3], indices[:3], args.max_steps, args.seed)  # warm-up
    holder = {}
    time_a = timed(
        lambda: holder.setdefault(
            "r",
            naive_rpr(
                model, perturbation, images[:n_naive], labels[:n_naive], indices[:n_naive], args.max_steps, args.seed
            ),
        ),
        device,
    )
    naive_ff, naive_evals = holder["r"]
    agree = int((naive_ff == result.first_failure[:n_naive]).sum())

    # (c) plain inference on as many inputs as (b) evaluated usefully: the same test images, cycled.
    inputs = images[torch.arange(max(useful, 1), device=device) % n].contiguous()
    fast_fn, _ = as_scores_fn(model, channels_last=settings["channels_last"])  # the scores function measure_rpr uses
    plain_fn, _ = as_scores_fn(model, channels_last=False)
    plain_inference(fast_fn, inputs[: 4 * bs], bs)
    plain_inference(plain_fn, inputs[: 4 * bs], bs)
    # (b), (c), (c') interleaved, so that load from other processes hits them alike.
    times_b, times_c, times_c0 = [], [], []
    for _ in range(args.repeats):
        times_b.append(timed(run_rpr, device))
        times_c.append(timed(lambda: plain_inference(fast_fn, inputs, bs), device))
        times_c0.append(timed(lambda: plain_inference(plain_fn, inputs, bs), device))
    time_b, time_c, time_c0 = (statistics.median(t) for t in (times_b, times_c, times_c0))

    rate_a, rate_b, rate_c, rate_c0 = naive_evals / time_a, useful / time_b, len(inputs) / time_c, len(inputs) / time_c0
    fmt = "{:<62} {:>10} {:>9.3f} {:>12.0f}"
    print()
    print("{:<62} {:>10} {:>9} {:>12}".format("path", "evals", "seconds", "evals/s"))
    print(fmt.format(f"(a)  naive loop, batch 1 ({n_naive} points)", naive_evals, time_a, rate_a))
    print(fmt.format(f"(b)  measure_rpr, useful evaluations ({n} points)", useful, time_b, rate_b))
    print(
        fmt.format(
            f"(c)  plain inference, batch {bs}, channels_last={settings['channels_last']}", len(inputs), time_c, rate_c
        )
    )
    print(fmt.format(f"(c') plain inference, batch {bs}, contiguous", len(inputs), time_c0, rate_c0))
    print()
    print(
        f"(b) evaluated {evaluated} perturbed images in {calls - 1 - -(-n // bs)} forward passes for {useful} useful: "
        f"{evaluated - useful} wasted past a first failure ({(evaluated - useful) / max(evaluated, 1):.1%} of its "
        "evaluations; counted with a forward hook in the untimed warm-up run); all evaluations/s "
        f"{evaluated / time_b:.0f}"
    )
    print(
        f"timings over {args.repeats} interleaved repeats (median reported): (b) "
        f"{', '.join(f'{t:.2f}' for t in times_b)} s; "
        f"(c) {', '.join(f'{t:.2f}' for t in times_c)} s; paired (b)/(c) "
        f"{', '.join(f'{c / b:.2f}' for b, c in zip(times_b, times_c, strict=True))}"
    )
    print(
        f"(a) first_failure agrees with (b) on {agree}/{n_naive} points | load average after the run: {load_average()}"
    )
    print(f"ratios: (b)/(c) = {rate_b / rate_c:.2f} (target >= 0.8), (b)/(a) = {rate_b / rate_a:.2f}")


if __name__ == "__main__":
    main()
