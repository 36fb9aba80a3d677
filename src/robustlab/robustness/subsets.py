"""Class-balanced sampling of robust training points (the paper's 1500 per class)."""

from __future__ import annotations

import logging

import numpy as np

from robustlab.errors import require

log = logging.getLogger(__name__)


def balanced_subset(
    index: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int, on_shortfall: str = "error", seed: int = 0
) -> tuple[np.ndarray, dict]:
    """Sample ``per_class`` points of each of the ``num_classes`` classes; return chosen indices and a report.

    When a class has fewer points than asked: ``on_shortfall='error'`` stops with one line;
    ``'smallest'`` takes the smallest class size for every class (and says so in the report).
    """
    require(per_class >= 1, f"rpr.balance.per_class must be >= 1, got {per_class}")
    require(on_shortfall in ("error", "smallest"), f"rpr.balance.on_shortfall must be 'error' or 'smallest', got '{on_shortfall}'")
    require(len(index) > 0, "no robust training points to sample from; the model is robust on none of them")
    counts = np.bincount(labels, minlength=num_classes)
    classes = np.arange(num_classes)
    smallest = int(counts.min())
    taken = per_class
    if smallest < per_class:
        short = {int(c): int(n) for c, n in zip(classes, counts) if n < per_class}
        require(
            on_shortfall == "smallest",
            f"asked {per_class} robust points per class but some classes have fewer {short}; lower rpr.balance.per_class "
            "or set rpr.balance.on_shortfall=smallest",
        )
        require(smallest >= 1, f"no robust training points in class(es) {[c for c, n in short.items() if n == 0]}; M_R cannot be balanced: train M longer or use a gentler scheme")
        taken = smallest
        log.warning("asked %d robust points per class; classes %s have fewer, so took %d per class (the smallest class)", per_class, short, taken)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(index[labels == c], size=taken, replace=False) for c in classes])
    report = {
        "per_class_asked": per_class,
        "per_class_taken": taken,
        "shortfall": "none" if taken == per_class else "took smallest class size",
        "available_per_class": {int(c): int(n) for c, n in zip(classes, counts)},
        "subset_size": int(len(chosen)),
    }
    return np.sort(chosen), report
