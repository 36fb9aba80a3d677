"""make crosscheck: the project's FGSM and PGD against ART's on a small trained CNN (skipped without ART)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from conftest import balanced_labels, block_images
from robustlab import crosscheck
from robustlab.errors import RobustlabError


def tiny_data(n: int, seed: int):
    labels = balanced_labels(n, seed)
    images = torch.from_numpy(block_images(labels, 28, 28, 1, seed)).permute(0, 3, 1, 2).float() / 255
    return images, torch.from_numpy(labels.astype(np.int64))


def test_fgsm_and_pgd_agree_with_art_on_a_small_trained_cnn():
    pytest.importorskip("art", reason="the ART cross-check needs the art extra (make extras); .ci/run installs it")
    x_train, y_train = tiny_data(300, 0)
    x_test, y_test = tiny_data(120, 1)
    model = crosscheck.train_cnn(x_train, y_train, 10, epochs=2)
    settings = crosscheck.Settings(epsilons=(0.1, 0.3), pgd_steps=5, batch_size=60)
    rows = crosscheck.compare(model, x_test, y_test, 10, settings)
    assert [(r["attack"], r["eps"]) for r in rows] == [("fgsm", 0.1), ("pgd", 0.1), ("fgsm", 0.3), ("pgd", 0.3)]
    passed, sentence = crosscheck.verdict(rows, 0.995)
    assert passed, sentence
    assert all(r["max_pixel_difference"] < 1e-4 for r in rows)
    clean = float((model(x_test).argmax(1) == y_test).float().mean())
    assert rows[-1]["accuracy_art"] < clean  # the attacks do attack: accuracy falls under eps 0.3
    # A different step size is a different attack: the same comparison must then see disagreement.
    other = crosscheck.Settings(epsilons=(0.3,), pgd_steps=5, pgd_step_size=0.01, batch_size=60)
    mine = crosscheck.ours("pgd", model, x_test, y_test, 0.3, settings)
    theirs = crosscheck.art_attacks(model, (1, 28, 28), 10, 0.3, other)["pgd"].generate(
        x=x_test.numpy(), y=y_test.numpy()
    )
    assert float((mine - torch.from_numpy(theirs)).abs().max()) > 0.1


def test_verdict_names_every_setting_below_the_minimum():
    rows = [
        {"attack": "fgsm", "eps": 0.1, "identical_predictions": 1.0},
        {"attack": "pgd", "eps": 0.3, "identical_predictions": 0.99},
    ]
    passed, sentence = crosscheck.verdict(rows, 0.995)
    assert not passed and sentence == "FAIL: below 99.5% identical adversarial predictions: pgd eps=0.3 (99.00%)"
    assert crosscheck.verdict(rows[:1], 0.995) == (
        True,
        "PASS: FGSM and PGD agree with ART on >= 99.5% of adversarial predictions at every eps (lowest 100.00%)",
    )


def test_without_art_the_crosscheck_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "art" else real(name, *a))
    with pytest.raises(RobustlabError, match=r"pip install 'robustlab\[art\]'"):
        crosscheck.require_art()
