"""M's robust ratio against scheme strength: one trained M, every scheme, a grid of strengths.

For each curve of ``operating_point.curves`` (a scheme, its fixed parameters, the parameter swept and
its strengths) and each strength, RPR of M at ``rpr.max_steps`` on the same seeded test points and, for
curves with ``train: true``, on the same seeded training points. M comes from ``checkpoint`` or the
model cache exactly as in rpr_retrain (no retraining per strength). The run writes operating_point.csv
(one row per curve, strength and split, with the Clopper-Pearson interval of each ratio over its
points), the per-point RPR files under rpr_op/, and metrics.json.
"""

from __future__ import annotations

import logging
import time

from omegaconf import OmegaConf

from robustlab import results
from robustlab.config import build
from robustlab.configs.validate import check_operating_point
from robustlab.data import sample_points
from robustlab.pipelines.measure_cache import measure_options
from robustlab.pipelines.rpr_retrain import RPRRetrain
from robustlab.pipelines.training import accuracy
from robustlab.robustness.calibration import COLUMNS, RESULTS
from robustlab.robustness.rpr import measure_rpr
from robustlab.stats import clopper_pearson

log = logging.getLogger(__name__)


def curve_settings(curve) -> list[dict]:
    """The perturbation config of each strength of one curve (``param`` may name several fields set alike)."""
    params = curve["param"] if isinstance(curve["param"], list) else [curve["param"]]
    strengths = list(curve["strengths"])
    fixed = dict(curve.get("params") or {})
    return [{"name": curve["scheme"], **fixed, **{p: s for p in params}} for s in strengths]


class OperatingPoint(RPRRetrain):
    """One seed's curves; ``cfg`` is the resolved config (experiment=operating_point)."""

    def run(self) -> dict:
        cfg, started = self.cfg, time.perf_counter()
        # The command line's pre-check ran this already (configs/validate.py); again for direct callers.
        check_operating_point(OmegaConf.to_container(cfg.operating_point, resolve=True))
        curves = OmegaConf.to_container(cfg.operating_point.curves, resolve=True)
        self.data.setup()
        settings = {c["name"]: curve_settings(c) for c in curves}
        for c in curves:  # every scheme is built (and its parameters checked) before M is trained
            for s in settings[c["name"]]:
                build({"_target_": "robustlab.robustness.make_perturbation", **s}).check_images(self.data.input_shape)
        model = self.model_m()
        points = {
            "test": sample_points(self.data.test, cfg.rpr.test_points, cfg.seed),
            "train": sample_points(self.data.train, cfg.rpr.train_points, cfg.seed),
        }
        rows = []
        for c in curves:
            splits = ["test", "train"] if c.get("train") else ["test"]
            for setting, strength in zip(settings[c["name"]], c["strengths"], strict=True):
                perturbation = build({"_target_": "robustlab.robustness.make_perturbation", **setting})
                for split in splits:
                    rows.append(self.point(model, perturbation, c, strength, split, points[split]))
        columns = {k: [r[k] for r in rows] for k in COLUMNS}
        results.write_table(self.run_dir / RESULTS, columns)
        metrics = self.metrics() | {"pipeline": "operating_point", "curves": [c["name"] for c in curves]}
        metrics["M"] = {"test_accuracy": accuracy(model, self.data.test)}
        metrics["points"] = {s: len(p) for s, p in points.items()}
        metrics["timings_s"] = self.timings
        metrics["wall_time_s"] = round(time.perf_counter() - started, 1)
        results.write_metrics(self.run_dir, metrics)
        return metrics

    def point(self, model, perturbation, curve: dict, strength, split: str, split_points) -> dict:
        r, name = self.cfg.rpr, f"{curve['name']}_{strength:g}_{split}"
        result = measure_rpr(
            model,
            split_points.images,
            split_points.labels,
            perturbation,
            r.max_steps,
            seed=self.cfg.seed,
            indices=split_points.index,
            **measure_options(r),
            progress=False,
            desc=name,
        )
        results.save_rpr(self.run_dir / "rpr_op" / f"{name}.csv", result)
        robust = int(result.robust.sum())
        exact = clopper_pearson(robust, len(result.robust))
        log.info("%s: robust ratio %.4f (%d of %d)", name, exact.mean, robust, exact.n)
        param = curve["param"] if isinstance(curve["param"], str) else "+".join(curve["param"])
        return {
            "curve": curve["name"],
            "scheme": curve["scheme"],
            "param": param,
            "strength": float(strength),
            "split": split,
            "points": exact.n,
            "robust": robust,
            "robust_ratio": exact.mean,
            "cp_low": exact.low,
            "cp_high": exact.high,
            "clean_accuracy": float(result.correct.mean()),
            "max_steps": int(r.max_steps),
            "seed": int(self.cfg.seed),
        }

    claims = None  # no claims table: the calibration curves are the result

    @staticmethod
    def summary_lines(metrics: dict) -> list[str]:
        return [
            f"== operating_point | profile={metrics['profile']} seed={metrics['seed']} | "
            f"MAX_STEPS={metrics['max_steps']} | curves: {', '.join(metrics['curves'])} | M test accuracy "
            f"{metrics['M']['test_accuracy']:.4f}"
        ]
