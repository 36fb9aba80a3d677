"""RPR beside exact and certified robustness, per point (the paper's "formal verification" future work).

  * The blog's linear 0-vs-1 models (one per ``exact.linear_epsilons``, the robust-hinge epsilon):
    the exact l-inf distance to the boundary per test point (robustness.exact; clipped to [0, 1] and
    not), beside RPR's p̂ under uniform l-inf noise (clipped, like every scheme) at each ``exact.rpr_epsilons``.
  * The CNN (``exact.cnn_checkpoint``, e.g. rpr_inherent's reference model; null: train one here):
    per point an upper bound on the minimal adversarial radius (PGD by bisection) and a certified lower
    bound (IBP by bisection; robustness.minimal_eps), beside the same RPR p̂.
Spearman's rho between p̂ and each distance (over clean-correct points), and per epsilon the share of
RPR-robust points that are certified (exact distance or IBP radius > eps) and, for the CNN, the share
PGD breaks (PGD radius <= eps). Writes linear_<eps>.csv, cnn.csv (one row per point) and metrics.json.

The linear scorer f enters RPR as the two class scores (-f, f) with labels 0/1 for -1/+1, so
argmax reads sign(f) (a score of exactly 0 counts as class 0, not as wrong: immaterial for real weights).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from robustlab import results
from robustlab.config import build
from robustlab.configs.validate import check_exact
from robustlab.data import sample_points
from robustlab.data.binary import BinaryDataModule
from robustlab.errors import require
from robustlab.models import load_classifier
from robustlab.pipelines.measure_cache import measure_options
from robustlab.pipelines.training import fit_classifier, timed
from robustlab.robustness.agreement import spearman
from robustlab.robustness.exact import linear_exact_distance
from robustlab.robustness.minimal_eps import ibp_lower_bound, pgd_upper_bound
from robustlab.robustness.perturbations import UniformLinf
from robustlab.robustness.rpr import RPRResult, measure_rpr

log = logging.getLogger(__name__)

PIPELINE = "rpr_vs_exact"
FINITE = 1e6  # stands for inf (no attack up to eps_max / never reachable) when ranking: ranks are unchanged


class TwoScores(torch.nn.Module):
    """A binary scorer f as class scores (-f, f): RPR's argmax then reads sign(f)."""

    def __init__(self, scorer: torch.nn.Module):
        super().__init__()
        self.scorer = scorer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.scorer(x)
        return torch.stack([-f, f], dim=1)


def rho(p_hat: np.ndarray, distance: np.ndarray, keep: np.ndarray) -> float | None:
    value = spearman(p_hat[keep], np.minimum(distance[keep], FINITE))
    return None if np.isnan(value) else value


def share(mask: np.ndarray, among: np.ndarray) -> float | None:
    return float(mask[among].mean()) if among.any() else None


class RPRVsExact:
    """One run; ``cfg`` is the resolved Hydra config (experiment=rpr_vs_exact)."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir, self.timings = cfg, Path(run_dir), {}
        e = cfg.exact
        # The command line's pre-check ran this already (configs/validate.py); again for direct callers.
        check_exact(OmegaConf.to_container(e, resolve=True))
        self.rpr_eps = [float(v) for v in e.rpr_epsilons]
        self.linear_data = build(e.linear_data)
        require(
            isinstance(self.linear_data, BinaryDataModule),
            "exact.linear_data must be a binary data config (mnist_binary)",
        )
        self.data = build(cfg.data)
        self.cnn = None
        if e.cnn_checkpoint:  # a missing or corrupt checkpoint fails in one line before any work
            self.cnn = load_classifier(get_class(cfg.model._target_), e.cnn_checkpoint)

    def rpr(self, model, points, name: str) -> dict[float, RPRResult]:
        r, out = self.cfg.rpr, {}
        for eps in self.rpr_eps:
            with timed(self.timings, f"rpr_{name}_{eps:g}"):
                out[eps] = measure_rpr(
                    model,
                    points.images,
                    points.labels,
                    UniformLinf(eps),
                    r.max_steps,
                    seed=self.cfg.seed,
                    indices=points.index,
                    **measure_options(r),
                    progress=r.progress,
                    desc=f"RPR {name} eps={eps:g}",
                )
        return out

    def linear(self, epsilon: float) -> dict:
        e = self.cfg.exact
        torch.manual_seed(self.cfg.seed)
        model = build(e.linear_model, epsilon=epsilon, input_shape=self.linear_data.input_shape)
        trainer = OmegaConf.merge(self.cfg.trainer, {"max_epochs": self.cfg.profile.linear_epochs})
        name = f"linear_{epsilon:g}"
        with timed(self.timings, f"train_{name}"):
            fit_classifier(model, self.linear_data, trainer, self.run_dir, name)
        model.eval()
        test = sample_points(self.linear_data.test, e.linear_points, self.cfg.seed)
        with torch.no_grad():
            score = model(test.images)
        exact = {
            clip: linear_exact_distance(test.images, test.labels, model.w, model.b.detach(), clip).numpy()
            for clip in (False, True)
        }
        labels01 = (test.labels > 0).to(torch.int64)
        binary = type(test)(test.images, labels01, test.index)
        runs = self.rpr(TwoScores(model).eval(), binary, name)
        columns = {
            "index": test.index.numpy(),
            "label": test.labels.numpy(),
            "score": score.numpy(),
            "exact_unclipped": exact[False],
            "exact_clipped": exact[True],
        }
        keep = exact[True] > 0
        summary = {"epsilon": epsilon, "points": len(test), "test_accuracy": float(keep.mean()), "per_eps": {}}
        for eps, run in runs.items():
            p_hat, _, _ = run.flip_probability()
            columns |= {f"p_hat_{eps:g}": p_hat, f"robust_{eps:g}": run.robust.astype(np.int8)}
            summary["per_eps"][f"{eps:g}"] = {
                "robust_ratio": run.robust_ratio(),
                "rho_p_hat_exact_clipped": rho(p_hat, exact[True], keep),
                "rho_p_hat_exact_unclipped": rho(p_hat, exact[False], keep),
                "certified_share_of_rpr_robust": share(exact[True] > eps, run.robust),
                "rpr_robust_share_of_certified": share(run.robust, exact[True] > eps),
            }
        results.write_table(self.run_dir / f"{name}.csv", columns)
        return summary

    def cnn_part(self) -> dict:
        cfg, e = self.cfg, self.cfg.exact
        model = self.cnn
        if model is None:
            torch.manual_seed(cfg.seed)
            model = build(cfg.model, input_shape=self.data.input_shape, num_classes=self.data.num_classes)
            with timed(self.timings, "train_cnn"):
                fit_classifier(model, self.data, cfg.trainer, self.run_dir, "cnn")
        model.eval()
        points = sample_points(self.data.test, e.cnn_points, cfg.seed)
        with timed(self.timings, "pgd_bisection"):
            upper = pgd_upper_bound(model, points.images, points.labels, e.eps_max, e.bisection, e.pgd_steps).numpy()
        with timed(self.timings, "ibp_bisection"):
            lower = ibp_lower_bound(model, points.images, points.labels, e.eps_max, e.bisection).numpy()
        runs = self.rpr(model, points, "cnn")
        correct = next(iter(runs.values())).correct
        columns = {
            "index": points.index.numpy(),
            "label": points.labels.numpy(),
            "correct": correct.astype(np.int8),
            "pgd_upper": upper,
            "ibp_lower": lower,
        }
        summary = {
            "points": len(points),
            "test_accuracy": float(correct.mean()),
            "eps_max": e.eps_max,
            "median_pgd_upper": float(np.median(upper[correct])),
            "median_ibp_lower": float(np.median(lower[correct])),
            "rho_pgd_ibp": rho(upper, lower, correct),
            "per_eps": {},
        }
        for eps, run in runs.items():
            p_hat, _, _ = run.flip_probability()
            columns |= {f"p_hat_{eps:g}": p_hat, f"robust_{eps:g}": run.robust.astype(np.int8)}
            summary["per_eps"][f"{eps:g}"] = {
                "robust_ratio": run.robust_ratio(),
                "rho_p_hat_pgd_upper": rho(p_hat, upper, correct),
                "rho_p_hat_ibp_lower": rho(p_hat, lower, correct),
                "certified_share_of_rpr_robust": share(lower > eps, run.robust),
                "pgd_broken_share_of_rpr_robust": share(upper <= eps, run.robust),
            }
        results.write_table(self.run_dir / "cnn.csv", columns)
        return summary

    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        self.linear_data.setup()
        self.data.setup()
        metrics = {
            "pipeline": PIPELINE,
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "max_steps": cfg.rpr.max_steps,
            "rpr_epsilons": self.rpr_eps,
            "cnn_source": cfg.exact.cnn_checkpoint or "trained in this run",
            "linear": {f"{eps:g}": self.linear(float(eps)) for eps in cfg.exact.linear_epsilons},
        }
        metrics["cnn"] = self.cnn_part()
        metrics["timings_s"], metrics["wall_time_s"] = self.timings, round(time.perf_counter() - started, 1)
        metrics["config"] = OmegaConf.to_container(cfg, resolve=True)
        results.write_metrics(self.run_dir, metrics)
        return metrics

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        lines = [
            f"== {PIPELINE} | profile={metrics['profile']} seed={metrics['seed']} | MAX_STEPS={metrics['max_steps']}"
        ]
        for name, m in metrics["linear"].items():
            parts = [
                f"eps {e}: rho {_fmt(v['rho_p_hat_exact_clipped'])}, "
                f"certified {_fmt(v['certified_share_of_rpr_robust'])}"
                for e, v in m["per_eps"].items()
            ]
            lines.append(f"   linear (trained eps {name}), p̂ vs exact clipped distance: " + "; ".join(parts))
        c = metrics["cnn"]
        parts = [
            f"eps {e}: rho PGD {_fmt(v['rho_p_hat_pgd_upper'])} IBP {_fmt(v['rho_p_hat_ibp_lower'])}, "
            f"certified {_fmt(v['certified_share_of_rpr_robust'])}, "
            f"PGD-broken {_fmt(v['pgd_broken_share_of_rpr_robust'])}"
            for e, v in c["per_eps"].items()
        ]
        lines.append("   CNN, p̂ vs minimal-radius bounds: " + "; ".join(parts))
        return lines


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
