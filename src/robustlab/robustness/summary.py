"""The numbers a run reports about one RPR result (metrics.json's ``test`` blocks).

Here, beside the measure, because both a pipeline (rpr_retrain, rpr_gan_augment) and the shard merge
(robustness/shards.py) summarise a result the same way: the measure needs no pipeline for it.
"""

from __future__ import annotations

import numpy as np

from robustlab.robustness.rpr import RPRResult
from robustlab.stats import clopper_pearson


def summarise(result: RPRResult, num_classes: int) -> dict:
    """Points, clean accuracy, robust ratios (of all points, with its Clopper-Pearson interval, and of correct ones),
    robust points per class and the median retries to failure of the correct points that failed (None when none
    failed)."""
    robust = result.robust
    failed = ~robust & result.correct
    exact = clopper_pearson(int(robust.sum()), len(robust))  # this run's ratio over its points, not over seeds
    return {
        "points": int(len(robust)),
        "clean_accuracy": float(result.correct.mean()),
        "robust_ratio": result.robust_ratio(over="all"),
        "robust_ratio_cp95": [exact.low, exact.high],
        "robust_ratio_of_correct": result.robust_ratio(over="correct"),
        "robust_per_class": np.bincount(result.label[robust], minlength=num_classes).tolist(),
        "median_steps_to_failure": float(np.median(result.steps[failed])) if failed.any() else None,
    }
