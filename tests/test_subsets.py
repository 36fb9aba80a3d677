"""Class-balanced sampling of robust training points for M_R."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from robustlab.errors import RobustlabError
from robustlab.robustness.subsets import balanced_subset, class_counts, matched_random_subset, too_small


def pool(counts: list[int], start: int = 100, seed: int = 0):
    """Robust points: ``counts[c]`` of class c, with distinct dataset indices in shuffled order."""
    labels = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in enumerate(counts)])
    index = start + 3 * np.arange(len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    return index[order], labels[order]


def labels_of(chosen, index, labels):
    lookup = dict(zip(index.tolist(), labels.tolist(), strict=True))
    return np.array([lookup[i] for i in chosen.tolist()])


def test_exact_count_per_class_from_the_pool():
    index, labels = pool([10, 7, 12, 5])
    chosen, report = balanced_subset(index, labels, 4, 5)
    assert len(chosen) == 20 == report["subset_size"]
    assert len(set(chosen.tolist())) == 20  # no point twice
    assert set(chosen.tolist()) <= set(index.tolist())
    assert np.bincount(labels_of(chosen, index, labels), minlength=4).tolist() == [5, 5, 5, 5]
    assert (np.diff(chosen) > 0).all()  # sorted dataset indices
    assert report["per_class_asked"] == 5 and report["per_class_taken"] == 5
    assert report["shortfall"] == "none"
    assert report["available_per_class"] == {0: 10, 1: 7, 2: 12, 3: 5}


def test_deterministic_per_seed_and_different_across_seeds():
    index, labels = pool([30, 30, 30])
    a, _ = balanced_subset(index, labels, 3, 10, seed=4)
    b, _ = balanced_subset(index, labels, 3, 10, seed=4)
    c, _ = balanced_subset(index, labels, 3, 10, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sample_is_random_within_a_class_not_the_first_ones():
    index, labels = pool([50, 50])
    chosen, _ = balanced_subset(index, labels, 2, 10, seed=0)
    first_ten = set(index[labels == 0][:10].tolist()) | set(index[labels == 1][:10].tolist())
    assert set(chosen.tolist()) != first_ten


def test_whole_class_when_asked_for_all_of_it():
    index, labels = pool([4, 4])
    chosen, report = balanced_subset(index, labels, 2, 4)
    assert sorted(chosen.tolist()) == sorted(index.tolist())
    assert report["shortfall"] == "none"


def test_shortfall_is_an_error_by_default():
    index, labels = pool([10, 3, 12, 2])
    with pytest.raises(
        RobustlabError, match=r"asked 5 robust points per class but some classes have fewer \{1: 3, 3: 2\}"
    ) as error:
        balanced_subset(index, labels, 4, 5)
    assert "\n" not in str(error.value)
    assert "rpr.balance.on_shortfall=smallest" in str(error.value)


def test_shortfall_smallest_takes_the_smallest_class_size_and_reports_it(caplog):
    index, labels = pool([10, 3, 12, 6])
    with caplog.at_level(logging.WARNING):
        chosen, report = balanced_subset(index, labels, 4, 5, on_shortfall="smallest")
    assert np.bincount(labels_of(chosen, index, labels), minlength=4).tolist() == [3, 3, 3, 3]
    assert report["per_class_asked"] == 5
    assert report["per_class_taken"] == 3
    assert report["shortfall"] == "took smallest class size"
    assert report["subset_size"] == 12
    assert report["available_per_class"] == {0: 10, 1: 3, 2: 12, 3: 6}
    assert "took 3 per class" in caplog.text


def test_class_with_zero_robust_points_is_an_error_by_default():
    index, labels = pool([5, 0, 5])
    with pytest.raises(RobustlabError, match=r"some classes have fewer \{1: 0\}"):
        balanced_subset(index, labels, 3, 2)


def test_class_missing_at_the_end_is_counted():
    """The highest class absent from the labels still counts as a class with zero points."""
    index, labels = pool([5, 5, 5])
    with pytest.raises(RobustlabError, match=r"\{3: 0, 4: 0\}"):
        balanced_subset(index, labels, 5, 2)


def test_class_with_zero_robust_points_and_smallest_does_not_give_an_empty_subset():
    """'smallest' with a class that has no robust point would take 0 per class: an empty training set
    for M_R (training then crashes in the DataLoader). It must stop with one line instead."""
    index, labels = pool([5, 0, 5])
    with pytest.raises(RobustlabError, match=r"class") as error:
        chosen, report = balanced_subset(index, labels, 3, 2, on_shortfall="smallest")
        # reaching here means no error: show what came back
        pytest.fail(f"got an empty subset silently: {chosen.tolist()} {report}")
    assert "\n" not in str(error.value)


def test_no_robust_points_at_all():
    with pytest.raises(RobustlabError, match=r"no robust training points to sample from"):
        balanced_subset(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 10, 5, on_shortfall="smallest")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(per_class=0), r"rpr\.balance\.per_class must be >= 1, got 0"),
        (dict(per_class=-2), r"rpr\.balance\.per_class must be >= 1, got -2"),
        (
            dict(per_class=2, on_shortfall="drop"),
            r"rpr\.balance\.on_shortfall must be 'error' or 'smallest', got 'drop'",
        ),
    ],
)
def test_bad_settings(kwargs, match):
    index, labels = pool([5, 5])
    with pytest.raises(RobustlabError, match=match):
        balanced_subset(index, labels, 2, **kwargs)


# ---------------------------------------------------------------------------------------------
# The control M_rand and the up_to option
# ---------------------------------------------------------------------------------------------


def test_up_to_takes_at_most_per_class_of_each_class():
    index, labels = pool([10, 3, 12, 0])
    chosen, report = balanced_subset(index, labels, 4, 5, on_shortfall="up_to")
    assert np.bincount(labels_of(chosen, index, labels), minlength=4).tolist() == [5, 3, 5, 0] == report["class_counts"]
    assert report["subset_size"] == 13 and "not balanced" in report["shortfall"]


def test_control_has_exact_class_counts_from_the_whole_training_set():
    index, labels = pool([40, 30, 50], start=0)
    picked = matched_random_subset(index, labels, np.array([7, 0, 12]), seed=3)
    assert np.bincount(labels_of(picked, index, labels), minlength=3).tolist() == [7, 0, 12]
    assert len(set(picked.tolist())) == 19 and set(picked.tolist()) <= set(index.tolist())
    assert (np.diff(picked) > 0).all()


def test_control_draw_is_blind_to_robustness():
    """M_rand's subset depends on the training set, the class counts and the seed only: two different sets of
    robust labels with the same class counts of M_R's subset give the same draw."""
    index, labels = pool([60, 60, 60], start=0)
    rng = np.random.default_rng(1)
    draws = []
    for _ in range(2):
        robust = rng.random(len(index)) < 0.5  # a different robust mask each time
        chosen, report = balanced_subset(index[robust], labels[robust], 3, 10, seed=0)
        counts = class_counts(labels_of(chosen, index, labels), 3)
        draws.append(matched_random_subset(index, labels, counts, seed=0))
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], matched_random_subset(index, labels, counts, seed=1))


def test_control_needs_enough_points_and_too_small_says_why():
    index, labels = pool([3, 30], start=0)
    with pytest.raises(RobustlabError, match=r"fewer points than the control needs in classes \{0: \(3, 5\)\}"):
        matched_random_subset(index, labels, np.array([5, 5]), seed=0)
    assert too_small(np.array([12, 3, 0]), 10) == (
        "robust subset too small to train on: classes {1: 3, 2: 0} have fewer than rpr.balance.min_per_class=10 robust "
        "training images"
    )
    assert too_small(np.array([12, 10]), 10) is None
