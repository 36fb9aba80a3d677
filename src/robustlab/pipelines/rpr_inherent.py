"""Is robustness a property of the datapoint? Several models trained on the same data, RPR of each on
the same test points, and the per-point agreement of their robustness (robustness.agreement).

Models (``inherent.architectures``, each a model config; the first is the reference):
  * the reference architecture at training seed ``seed`` and at ``seed + inherent.seed_offset``
    (a training seed sets the weight initialisation and the order of the training batches; the data
    are the same), and every other architecture at training seed ``seed``;
  * the reference model measured again with perturbation seed ``seed + inherent.retest_offset``
    (test–retest: the agreement two measurements of one model reach, the ceiling);
  * the class-only baseline (robustness.agreement.class_only).
Each operating point (``inherent.operating_points``, perturbation configs) gets every RPR run and
every pair. The run folder holds:

  rpr_<point>_<model>.csv          per-point RPR (with p̂ and its interval) of each model and point
  agreement_<point>.csv            one row per pair: kind, kappa, spearman, jaccard, set sizes
  agreement_per_class_<point>.csv  the same measures within each class (the class-only baseline has none there)
  points.npz                       the test images measured (for the hardest_points figure)
  <model>.ckpt, metrics.json       the models, and accuracies, robust ratios, mean agreement per kind, timings
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from robustlab import results
from robustlab.config import build
from robustlab.configs.validate import check_inherent, positive
from robustlab.data import VisionDataModule, sample_points
from robustlab.errors import require
from robustlab.pipelines.measure_cache import measure_options
from robustlab.pipelines.training import accuracy, fit_classifier, timed
from robustlab.robustness import agreement
from robustlab.robustness.calibration import calibrate_scheme
from robustlab.robustness.fastpath import check_options
from robustlab.robustness.rpr import RPRResult, measure_rpr

log = logging.getLogger(__name__)

PIPELINE = "rpr_inherent"
RETEST, SEED, ARCH, CLASS, OTHER = "retest", "training_seed", "architecture", "class_only", "other"
KINDS = (RETEST, SEED, ARCH, CLASS)


def pair_rows(
    runs: dict[str, RPRResult],
    kinds: dict[tuple[str, str], str],
    num_classes: int,
    fraction: float,
    draws: int,
    seed: int,
) -> list[dict]:
    """Agreement of every listed pair of runs, and the class-only baseline for each ordered architecture pair."""
    rows = []
    for (a, b), kind in kinds.items():
        ra, rb = runs[a], runs[b]
        rows.append({"a": a, "b": b, "kind": kind} | agreement.pair(ra.robust, ra.steps, rb.robust, rb.steps, fraction))
        if kind == ARCH:  # A's class rates predicting B, and B's predicting A
            for x, y in ((ra, rb), (rb, ra)):
                base = agreement.class_only(x.robust, x.label, y.robust, y.steps, num_classes, fraction, draws, seed)
                rows.append({"a": f"class_only({a if x is ra else b})", "b": b if x is ra else a, "kind": CLASS} | base)
    return rows


def per_class_rows(
    runs: dict[str, RPRResult], kinds: dict[tuple[str, str], str], num_classes: int, fraction: float
) -> list[dict]:
    rows = []
    for (a, b), kind in kinds.items():
        for c in range(num_classes):
            here = runs[a].label == c
            if here.sum() < 3:
                continue
            ra, rb = runs[a], runs[b]
            rows.append(
                {"class": c, "a": a, "b": b, "kind": kind, "points": int(here.sum())}
                | agreement.pair(ra.robust[here], ra.steps[here], rb.robust[here], rb.steps[here], fraction)
            )
    return rows


def summary(rows: list[dict]) -> dict:
    """Mean of each measure over the pairs of each kind (NaN pairs left out)."""
    out = {}
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if mine:
            out[kind] = {m: _mean([r[m] for r in mine]) for m in ("kappa", "spearman", "jaccard")} | {
                "pairs": len(mine)
            }
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(values)) if values else None


class RPRInherent:
    """One run; ``cfg`` is the resolved Hydra config (experiment=rpr_inherent)."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir, self.timings = cfg, Path(run_dir), {}
        i = cfg.inherent
        # The command line's pre-check ran these already (configs/validate.py); again for direct callers.
        check_inherent(OmegaConf.to_container(i, resolve=True))
        positive("rpr.max_steps", cfg.rpr.max_steps)
        check_options(cfg.rpr.batch_size, cfg.rpr.compile, cfg.rpr.autocast)
        schemes = {str(k): OmegaConf.to_container(v, resolve=True) for k, v in i.operating_points.items()}
        self.calibration = self.calibrate(schemes)
        self.points = {
            k: build(OmegaConf.create(v)) for k, v in schemes.items()
        }  # bad values fail here, before training
        self.architectures = {str(k): v for k, v in i.architectures.items()}
        self.reference = next(iter(self.architectures))
        self.data: VisionDataModule = build(cfg.data)

    def calibrate(self, schemes: dict[str, dict]) -> dict | None:
        """With ``rpr.calibrate.source`` (an operating_point run group), the point ``inherent.calibrated_point`` takes
        its strength from the logged curves of M (the same simple CNN on the same data), as rpr_calibrated does;
        without it, the strength in the config. A curve that never crosses drops that point, and says so."""
        wanted, name = self.cfg.rpr.get("calibrate") or {}, self.cfg.inherent.get("calibrated_point")
        if not wanted.get("source") or not name:
            return None
        require(
            name in schemes,
            f"inherent.calibrated_point={name} is not one of inherent.operating_points ({', '.join(schemes)})",
        )
        record, schemes[name] = calibrate_scheme(
            schemes[name],
            wanted.source,
            wanted.get("split", "test"),
            wanted.get("target"),
            wanted.get("curve"),
            self.cfg.rpr.max_steps,
        )
        if record["used"] is None:
            log.warning("%s; operating point '%s' dropped", record["not_reached"], name)
            del schemes[name]
        return record | {"point": name}

    @property
    def model_names(self) -> list[str]:
        return [
            self.reference,
            f"{self.reference}_seed{self.cfg.seed + self.cfg.inherent.seed_offset}",
            *list(self.architectures)[1:],
        ]

    def train_all(self) -> dict:
        seed, models = self.cfg.seed, {}
        for name in self.model_names:
            arch = self.reference if name.startswith(f"{self.reference}_seed") else name
            training_seed = seed + (self.cfg.inherent.seed_offset if arch != name else 0)
            pl.seed_everything(training_seed, workers=True, verbose=False)
            model = build(
                self.architectures[arch], input_shape=self.data.input_shape, num_classes=self.data.num_classes
            )
            data = copy.copy(self.data)  # same training images; the batches' order follows the training seed
            data.seed = training_seed
            with timed(self.timings, f"train_{name}"):
                fit_classifier(model, data, self.cfg.trainer, self.run_dir, name)
            models[name] = model.eval()
        return models

    def measure(self, model, points, scheme: str, seed: int, name: str) -> RPRResult:
        r = self.cfg.rpr
        with timed(self.timings, f"rpr_{scheme}_{name}"):
            result = measure_rpr(
                model,
                points.images,
                points.labels,
                self.points[scheme],
                r.max_steps,
                seed=seed,
                indices=points.index,
                **measure_options(r),
                progress=r.progress,
                desc=f"RPR {scheme} {name}",
            )
        results.save_rpr(self.run_dir / f"rpr_{scheme}_{name}.csv", result)
        return result

    def run(self) -> dict:
        cfg, i, started = self.cfg, self.cfg.inherent, time.perf_counter()
        self.data.setup()
        for scheme in self.points.values():
            scheme.check_images(self.data.input_shape)
        models = self.train_all()
        points = sample_points(self.data.test, i.test_points, cfg.seed)
        results.write_arrays(
            self.run_dir / "points.npz",
            images=points.images.numpy(),
            labels=points.labels.numpy(),
            index=points.index.numpy(),
        )
        retest = f"{self.reference}_retest"
        names = self.model_names
        kinds = {(names[0], retest): RETEST, (names[0], names[1]): SEED}
        kinds |= {(a, b): ARCH for a, b in itertools.combinations([names[0], *names[2:]], 2)}
        # The remaining pairs fill the figure's matrix; they repeat a kind above, so no mean counts them.
        kinds |= {
            (a, b): OTHER
            for a, b in itertools.combinations([*names, retest], 2)
            if (a, b) not in kinds and (b, a) not in kinds
        }
        main = {pair: kind for pair, kind in kinds.items() if kind != OTHER}
        metrics = self.metrics(models, points)
        for scheme in self.points:
            runs = {name: self.measure(model, points, scheme, cfg.seed, name) for name, model in models.items()}
            runs[retest] = self.measure(models[self.reference], points, scheme, cfg.seed + i.retest_offset, retest)
            rows = pair_rows(runs, kinds, self.data.num_classes, i.least_fraction, i.baseline_draws, cfg.seed)
            results.write_table(self.run_dir / f"agreement_{scheme}.csv", _frame(rows))
            results.write_table(
                self.run_dir / f"agreement_per_class_{scheme}.csv",
                _frame(per_class_rows(runs, main, self.data.num_classes, i.least_fraction)),
            )
            metrics["operating_points"][scheme] = {
                "perturbation": self.points[scheme].describe(),
                "robust_ratio": {name: r.robust_ratio() for name, r in runs.items()},
                "agreement": summary(rows),
            }
            log.info(
                "%s: mean kappa %s", scheme, {k: round(v["kappa"] or float("nan"), 3) for k, v in summary(rows).items()}
            )
        metrics["timings_s"], metrics["wall_time_s"] = self.timings, round(time.perf_counter() - started, 1)
        results.write_metrics(self.run_dir, metrics)
        return metrics

    def metrics(self, models: dict, points) -> dict:
        cfg = self.cfg
        return {
            "pipeline": PIPELINE,
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "data": {"name": cfg.data.name, "train_images": len(self.data.train), "test_points": len(points)},
            "max_steps": cfg.rpr.max_steps,
            "reference": self.reference,
            "models": self.model_names,
            "retest": f"{self.reference}_retest",
            "least_fraction": cfg.inherent.least_fraction,
            "test_accuracy": {name: accuracy(model, self.data.test) for name, model in models.items()},
            "operating_points": {},
            "calibration": self.calibration,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        lines = [
            f"== {PIPELINE} | profile={metrics['profile']} seed={metrics['seed']} | {metrics['data']['test_points']} "
            f"test points, MAX_STEPS={metrics['max_steps']} | models: {', '.join(metrics['models'])}"
        ]
        for scheme, op in metrics["operating_points"].items():
            parts = [
                f"{k} kappa {_fmt(v['kappa'])} rho {_fmt(v['spearman'])} J {_fmt(v['jaccard'])}"
                for k, v in op["agreement"].items()
            ]
            lines.append(f"   {scheme} ({op['perturbation']}): " + "; ".join(parts))
        return lines


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _frame(rows: list[dict]) -> dict[str, list]:
    return {key: [r[key] for r in rows] for key in rows[0]} if rows else {}
