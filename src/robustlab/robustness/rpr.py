"""Randomized Perturbation Robustness (RPR), the model-agnostic measure of Ilie et al.

For each datapoint x with label y, perturbations R(x) are drawn from the *original* x again and
again; the measure records the retry at which the model first misclassifies R(x). A point is
robust when its clean prediction is correct and no retry up to MAX_STEPS fails. Recording the
step of first failure means one run at MAX_STEPS yields the robust ratio for every smaller
MAX_STEPS (the paper's Figures 3 and 5) without recomputation.

Work is vectorised as a flat batch of (datapoint, retry) pairs per forward pass. Each point's
retry block doubles while it survives (few wasted retries on points that fail early, few rounds
for robust ones), and a point leaves the batch once it fails. Random numbers come from
``counter_rng`` keyed on (seed, dataset index, step), so results do not depend on batch size,
block schedule, device or sharding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from robustlab.errors import RobustlabError, require
from robustlab.robustness import counter_rng as rng
from robustlab.robustness.estimate import flip_estimate
from robustlab.robustness.fastpath import check_options, fast_forward, resolve_batch_size
from robustlab.robustness.perturbations import Perturbation

ScoresFn = Callable[[torch.Tensor], torch.Tensor]

NOT_FAILED = -1  # first_failure of a point no retry fooled
CLEAN_WRONG = 0  # first_failure of a point misclassified before any perturbation


@dataclass
class RPRResult:
    """Per-datapoint outcome of one RPR run (all arrays have one entry per datapoint)."""

    index: np.ndarray  # dataset index of the point (its random numbers derive from it)
    label: np.ndarray
    clean_pred: np.ndarray
    first_failure: np.ndarray  # retry of the first misclassified perturbation; 0 clean-wrong, -1 none
    fail_pred: np.ndarray  # predicted label at that retry; -1 when none
    max_steps: int

    @property
    def correct(self) -> np.ndarray:
        return self.clean_pred == self.label

    @property
    def steps(self) -> np.ndarray:
        """Retries until the first misclassified perturbation; MAX_STEPS when none (0 if clean-wrong)."""
        return np.where(self.first_failure == NOT_FAILED, self.max_steps, self.first_failure)

    def robust_at(self, max_steps: int | None = None) -> np.ndarray:
        """Robust mask had MAX_STEPS been ``max_steps`` (<= the measured one)."""
        m = self.max_steps if max_steps is None else max_steps
        require(0 <= m <= self.max_steps, f"max_steps {m} is outside the measured range 0..{self.max_steps}")
        return self.correct & ((self.first_failure == NOT_FAILED) | (self.first_failure > m))

    @property
    def robust(self) -> np.ndarray:
        return self.robust_at()

    def robust_ratio(self, max_steps: int | None = None, over: str = "all") -> float:
        """Fraction of robust points among all points (``over='all'``) or among correctly classified ones."""
        require(over in ("all", "correct"), f"over must be 'all' or 'correct', got '{over}'")
        robust = self.robust_at(max_steps)
        denominator = len(robust) if over == "all" else int(self.correct.sum())
        return float(robust.sum() / denominator) if denominator else float("nan")

    def curve(self, over: str = "all") -> tuple[np.ndarray, np.ndarray]:
        """Robust ratio for every MAX_STEPS in 0..max_steps, from the one run (one pass over the points)."""
        require(over in ("all", "correct"), f"over must be 'all' or 'correct', got '{over}'")
        grid = np.arange(self.max_steps + 1)
        counted = self.correct & (self.first_failure != CLEAN_WRONG)
        failures = np.bincount(self.first_failure[counted & (self.first_failure > 0)], minlength=self.max_steps + 1)
        robust = counted.sum() - np.cumsum(failures)  # points still unfooled after m retries
        denominator = len(self.index) if over == "all" else int(self.correct.sum())
        return grid, (robust / denominator if denominator else np.full(len(grid), np.nan))

    @property
    def trials(self) -> np.ndarray:
        """Retries that ran (the measure stops at the first failure): 0 for clean-misclassified points."""
        return np.where(self.first_failure == NOT_FAILED, self.max_steps, self.first_failure)

    @property
    def failures(self) -> np.ndarray:
        """Misclassified retries among them: 1 at the first failure, 0 otherwise."""
        return (self.first_failure > 0).astype(np.int64)

    def flip_probability(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p̂, 95 % Clopper–Pearson low, high) of each point's flip probability (robustness.estimate)."""
        return flip_estimate(self.failures, self.trials)

    def columns(self) -> dict[str, np.ndarray]:
        p_hat, p_low, p_high = self.flip_probability()
        return {
            "index": self.index,
            "label": self.label,
            "clean_pred": self.clean_pred,
            "first_failure": self.first_failure,
            "fail_pred": self.fail_pred,
            "steps": self.steps,
            "robust": self.robust.astype(np.int8),
            # Derived from the columns above (from_columns recomputes them): files without them still load.
            "trials": self.trials,
            "failures": self.failures,
            "p_hat": p_hat,
            "p_low": p_low,
            "p_high": p_high,
        }

    @classmethod
    def from_columns(cls, columns, max_steps: int) -> RPRResult:
        get = lambda name: np.asarray(columns[name], dtype=np.int64)  # noqa: E731
        return cls(
            get("index"), get("label"), get("clean_pred"), get("first_failure"), get("fail_pred"), int(max_steps)
        )


def as_scores_fn(
    model: nn.Module | ScoresFn, channels_last: bool = False, compile: bool = False, autocast: str | None = None
) -> tuple[ScoresFn, torch.device]:
    """Wrap any classifier as ``batch -> class scores`` and find the device it wants inputs on.

    The fast-path options (``robustness.fastpath``: channels_last, torch.compile, autocast) apply to
    an nn.Module. They run a copy of it and leave the caller's model as it was. A plain callable runs
    as given.
    """
    if isinstance(model, nn.Module):
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        return fast_forward(model, channels_last, compile, autocast), device
    require(callable(model), f"model must be an nn.Module or a callable batch -> scores, got {type(model).__name__}")
    return model, torch.device("cpu")


def _scores(fn: ScoresFn, x: torch.Tensor) -> torch.Tensor:
    out = fn(x)
    out = torch.as_tensor(out, device=x.device) if not isinstance(out, torch.Tensor) else out
    return out.to(x.device)


def predict(fn: ScoresFn, images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, int]:
    """Clean predictions for all images and the number of classes the model scores."""
    preds, classes = [], 0
    for start in range(0, len(images), batch_size):
        scores = _scores(fn, images[start : start + batch_size])
        require(scores.dim() == 2, f"the model must return scores shaped (batch, classes), got {tuple(scores.shape)}")
        classes = scores.shape[1]
        preds.append(scores.argmax(dim=1))
    return torch.cat(preds), classes


def check_inputs(
    fn: ScoresFn, model, images: torch.Tensor, labels: torch.Tensor, perturbation: Perturbation, max_steps: int
) -> None:
    """Every check that can run before any perturbation work, each failing with one line."""
    require(isinstance(max_steps, int) and max_steps >= 1, f"rpr.max_steps must be a positive integer, got {max_steps}")
    require(len(images) > 0, "the dataset to measure is empty; check the data split and subset sizes")
    require(images.dim() == 4, f"images must be shaped (N, C, H, W), got {tuple(images.shape)}")
    require(
        labels.dim() == 1 and len(labels) == len(images),
        f"need one label per image: {len(labels)} labels for {len(images)} images",
    )
    low, high = float(images.min()), float(images.max())
    require(
        low >= 0.0 and high <= 1.0,
        f"images must lie in [0, 1] (found {low:.3g}..{high:.3g}); perturbations work in pixel space: "
        "normalise inside the model, not in the data transform",
    )
    perturbation.check_images(tuple(images.shape[1:]))
    expected = getattr(model, "input_shape", None)
    require(
        expected is None or tuple(expected) == tuple(images.shape[1:]),
        f"the model expects inputs shaped {tuple(expected or ())}, the dataset has {tuple(images.shape[1:])}; pick "
        "the matching data config",
    )
    try:
        scores = _scores(fn, images[:2])
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise RobustlabError(f"the model rejected inputs shaped {tuple(images.shape[1:])}: {first_line}") from None
    require(scores.dim() == 2, f"the model must return scores shaped (batch, classes), got {tuple(scores.shape)}")
    bad = labels[(labels < 0) | (labels >= scores.shape[1])]
    require(
        len(bad) == 0, f"labels must be in 0..{scores.shape[1] - 1} (the model's classes); found {bad[:5].tolist()}"
    )


def perturb_at(
    perturbation: Perturbation, seed: int, images: torch.Tensor, index: torch.Tensor, step: torch.Tensor
) -> torch.Tensor:
    """The perturbed images that RPR evaluates for (dataset index, retry step): regenerate any retry."""
    return perturbation(images, rng.point_keys(seed, index.to(images.device), step.to(images.device)))


class _Schedule:
    """Which (point, retry) pairs go into the next forward batch."""

    def __init__(self, todo: torch.Tensor, max_steps: int, batch_size: int, min_block: int, max_block: int):
        self.pending, self.max_steps = todo, max_steps
        self.batch_size, self.min_block, self.max_block = batch_size, min_block, max_block
        self.active = todo[:0]

    def blocks(self, done: torch.Tensor) -> torch.Tensor:
        block = done[self.active].clamp(min=self.min_block, max=self.max_block)  # doubling while it survives
        return torch.minimum(block, self.max_steps - done[self.active])

    def next(self, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        room = self.batch_size - int(self.blocks(done).sum())
        if room > 0 and len(self.pending):
            take = -(-room // self.min_block)
            self.active = torch.cat([self.active, self.pending[:take]])
            self.pending = self.pending[take:]
        blocks = self.blocks(done)
        fits = torch.cumsum(blocks, 0) <= self.batch_size
        fits[0] = True  # always make progress, even if one block exceeds the batch
        return self.active[fits], blocks[fits]

    def retire(self, finished: torch.Tensor) -> None:
        self.active = self.active[~torch.isin(self.active, finished)]

    def __bool__(self) -> bool:
        return bool(len(self.active) or len(self.pending))


def measure_rpr(
    model: nn.Module | ScoresFn,
    images: torch.Tensor,
    labels: torch.Tensor,
    perturbation: Perturbation,
    max_steps: int,
    seed: int = 0,
    indices: torch.Tensor | None = None,
    batch_size: int | str = 128,
    min_block: int = 4,
    max_block: int = 64,
    channels_last: bool = False,
    progress: bool = True,
    desc: str = "RPR",
    compile: bool = False,
    autocast: str | None = None,
) -> RPRResult:
    """Measure RPR of ``model`` on every (image, label); returns per-datapoint results.

    ``indices`` are the dataset indices of the rows (default 0..N-1): the random perturbations of a
    point derive from (seed, its index, retry), so a shard of a dataset measured alone gives the same
    numbers as the whole.

    ``batch_size`` (an int, or ``auto``: fill the device), ``channels_last``, ``compile`` and
    ``autocast`` are the fast path (``robustness.fastpath``). Only ``autocast`` changes results.
    """
    # The schedule check keeps its message for int batch sizes; check_options names the bad fast-path value.
    sized = not isinstance(batch_size, int) or batch_size >= 1
    require(sized and 1 <= min_block <= max_block, "rpr needs batch_size >= 1 and 1 <= min_block <= max_block")
    check_options(batch_size, compile, autocast)
    fn, device = as_scores_fn(model, channels_last, compile, autocast)
    images = torch.as_tensor(images).to(device=device, dtype=torch.float32)
    labels = torch.as_tensor(labels).to(device=device, dtype=torch.int64)
    indices = torch.arange(len(images)) if indices is None else torch.as_tensor(indices, dtype=torch.int64)
    require(len(indices) == len(images), f"need one index per image: {len(indices)} indices for {len(images)} images")
    with torch.inference_mode():
        check_inputs(fn, model, images, labels, perturbation, max_steps)
        batch_size = resolve_batch_size(batch_size, fn, images)
        clean_pred, _ = predict(fn, images, batch_size)
        first_failure, fail_pred = _run(
            fn,
            images,
            labels,
            clean_pred,
            perturbation,
            max_steps,
            seed,
            indices.to(device),
            _Schedule(torch.nonzero(clean_pred == labels).flatten(), max_steps, batch_size, min_block, max_block),
            progress,
            desc,
        )
    cpu = lambda t: t.cpu().numpy().astype(np.int64)  # noqa: E731
    return RPRResult(cpu(indices), cpu(labels), cpu(clean_pred), cpu(first_failure), cpu(fail_pred), max_steps)


def _run(fn, images, labels, clean_pred, perturbation, max_steps, seed, indices, schedule, progress, desc):
    n, device = len(images), images.device
    first_failure = torch.full((n,), NOT_FAILED, dtype=torch.int64, device=device)
    first_failure[clean_pred != labels] = CLEAN_WRONG
    fail_pred = torch.full((n,), -1, dtype=torch.int64, device=device)
    done = torch.zeros(n, dtype=torch.int64, device=device)
    bar = tqdm(total=n, desc=desc, unit="pt", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    # The bar counts points finished (of all n) and failures so far (clean-wrong or fooled by a retry).
    # No "robust so far": robust points finish last, so a running robust ratio is biased low early.
    clean_wrong = n - len(schedule.pending)
    bar.update(clean_wrong)  # clean-misclassified points are done (and not robust) at once
    failures = clean_wrong
    while schedule:
        points, blocks = schedule.next(done)
        owner = torch.repeat_interleave(torch.arange(len(points), device=device), blocks)
        offsets = torch.arange(len(owner), device=device) - torch.repeat_interleave(
            torch.cumsum(blocks, 0) - blocks, blocks
        )
        rows = points[owner]
        step = done[rows] + 1 + offsets
        perturbed = perturb_at(perturbation, seed, images[rows], indices[rows], step)
        pred = _scores(fn, perturbed).argmax(dim=1)
        wrong = pred != labels[rows]
        # First wrong retry of each point = smallest flat position among its wrong ones (blocks are in step order).
        sentinel = len(owner)
        first_pos = torch.full((len(points),), sentinel, dtype=torch.int64, device=device)
        first_pos.scatter_reduce_(0, owner[wrong], torch.nonzero(wrong).flatten(), reduce="amin")
        failed = first_pos < sentinel
        failed_rows = points[failed]
        first_failure[failed_rows] = step[first_pos[failed]]
        fail_pred[failed_rows] = pred[first_pos[failed]]
        done[points] += blocks
        finished = points[failed | (done[points] >= max_steps)]
        schedule.retire(finished)
        failures += int(failed.sum())
        bar.update(len(finished))
        bar.set_postfix_str(f"finished {bar.n}/{n}, failures so far {failures}", refresh=False)
    bar.close()
    return first_failure, fail_pred
