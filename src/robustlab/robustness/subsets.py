"""Class-balanced sampling of robust training points (the paper's 1500 per class), and the control:
a random subset of the whole training set with the same class counts, drawn blind to robustness."""

from __future__ import annotations

import logging

import numpy as np

from robustlab.errors import require

log = logging.getLogger(__name__)

SHORTFALL = ("error", "smallest", "up_to")


def balanced_subset(
    index: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int, on_shortfall: str = "error", seed: int = 0
) -> tuple[np.ndarray, dict]:
    """Sample ``per_class`` points of each of the ``num_classes`` classes; return chosen indices and a report.

    When a class has fewer points than asked: ``on_shortfall='error'`` stops with one line;
    ``'smallest'`` takes the smallest class size for every class (and says so in the report);
    ``'up_to'`` takes min(per_class, available) of each class (not balanced; the control then copies
    those class counts).
    """
    require(per_class >= 1, f"rpr.balance.per_class must be >= 1, got {per_class}")
    require(
        on_shortfall in SHORTFALL,
        f"rpr.balance.on_shortfall must be 'error' or 'smallest', got '{on_shortfall}' "
        "(or 'up_to': at most per_class of each class, not balanced)",
    )
    require(len(index) > 0, "no robust training points to sample from; the model is robust on none of them")
    counts = np.bincount(labels, minlength=num_classes)
    classes = np.arange(num_classes)
    if on_shortfall == "up_to":
        return _up_to(index, labels, counts, per_class, seed)
    smallest = int(counts.min())
    taken = per_class
    if smallest < per_class:
        short = {int(c): int(n) for c, n in zip(classes, counts, strict=True) if n < per_class}
        require(
            on_shortfall == "smallest",
            f"asked {per_class} robust points per class but some classes have fewer {short}; lower "
            "rpr.balance.per_class or set rpr.balance.on_shortfall=smallest",
        )
        require(
            smallest >= 1,
            f"no robust training points in class(es) {[c for c, n in short.items() if n == 0]}; M_R cannot be "
            "balanced: train M longer or use a gentler scheme",
        )
        taken = smallest
        log.warning(
            "asked %d robust points per class; classes %s have fewer, so took %d per class (the smallest class)",
            per_class,
            short,
            taken,
        )
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(index[labels == c], size=taken, replace=False) for c in classes])
    report = {
        "per_class_asked": per_class,
        "per_class_taken": taken,
        "shortfall": "none" if taken == per_class else "took smallest class size",
        "available_per_class": {int(c): int(n) for c, n in zip(classes, counts, strict=True)},
        "subset_size": int(len(chosen)),
    }
    return np.sort(chosen), report


def _up_to(
    index: np.ndarray, labels: np.ndarray, counts: np.ndarray, per_class: int, seed: int
) -> tuple[np.ndarray, dict]:
    """At most ``per_class`` of each class: every class keeps what it has up to the cap (not balanced)."""
    taken = np.minimum(counts, per_class)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(index[labels == c], size=int(t), replace=False) for c, t in enumerate(taken)])
    report = {
        "per_class_asked": per_class,
        "per_class_taken": int(taken.min()),  # the smallest class's count, as with 'smallest'
        "class_counts": [int(t) for t in taken],
        "shortfall": "none" if (taken == per_class).all() else "took up to per_class of each class (not balanced)",
        "available_per_class": {int(c): int(n) for c, n in enumerate(counts)},
        "subset_size": int(taken.sum()),
    }
    return np.sort(chosen), report


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def too_small(counts: np.ndarray, min_per_class: int) -> str | None:
    """Why a subset with these class counts must not be trained on (one line), or None when it may."""
    short = {int(c): int(n) for c, n in enumerate(counts) if n < min_per_class}
    if not short:
        return None
    return (
        f"robust subset too small to train on: classes {short} have fewer than rpr.balance.min_per_class="
        f"{min_per_class} robust training images"
    )


def matched_random_subset(index: np.ndarray, labels: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """The control's training points: ``counts[c]`` points of class c drawn at random from ALL of ``index``.

    It sees only the training set's indices and labels and the wanted class counts, never which points are
    robust: the same counts give the same draw whatever the robust labels were. Its random stream
    (seed, 1) is not M_R's (seed), so the two subsets are independent draws.
    """
    labels = np.asarray(labels, dtype=np.int64)
    available = class_counts(labels, len(counts))
    short = {int(c): (int(a), int(n)) for c, (a, n) in enumerate(zip(available, counts, strict=True)) if a < n}
    require(not short, f"the training set has fewer points than the control needs in classes {short} (have, need)")
    rng = np.random.default_rng([seed, 1])
    parts = [rng.choice(np.asarray(index)[labels == c], size=int(n), replace=False) for c, n in enumerate(counts)]
    return np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.int64)
