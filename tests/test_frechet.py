"""The download-free quality measures: the Fréchet distance (against a textbook reference with an
explicit matrix square root), the SimpleCNN penultimate features, the class histogram, and the
one-line errors of the quality classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.errors import RobustlabError
from robustlab.evaluation import class_histogram, features, frechet_distance, load_judge, quality_report
from robustlab.models import SimpleCNN


def reference(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), square roots by eigendecomposition."""

    def sqrtm(s):
        w, v = np.linalg.eigh(s)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = sqrtm(sa)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * sqrtm(root @ sb @ root)))


@pytest.mark.parametrize("n_a, n_b, d", [(200, 150, 6), (8, 12, 30)])  # more samples than features, and fewer
def test_frechet_distance_matches_the_reference(n_a, n_b, d):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n_a, d)) @ rng.normal(size=(d, d))
    b = rng.normal(0.3, 1.5, size=(n_b, d))
    assert frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(reference(a, b), rel=1e-6)


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    x = torch.randn(300, 40, generator=torch.Generator().manual_seed(1)).double()
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shifts = [frechet_distance(x, x + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert shifts == sorted(shifts) and shifts[0] > 0
    assert shifts[-1] == pytest.approx(40 * 2.0**2, rel=1e-6)  # a pure shift adds ||shift||^2


def test_frechet_distance_rejects_mismatched_or_too_small_sets():
    with pytest.raises(RobustlabError, match="same D"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(RobustlabError, match="at least 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))


def test_features_are_the_flattened_input_of_the_last_linear():
    cnn = SimpleCNN(channels=(4, 8)).eval()
    images = torch.rand(7, 1, 28, 28)
    f = features(cnn, images, batch_size=3)
    assert f.shape == (7, 8 * 12 * 12) and f.dtype == torch.float64
    with torch.no_grad():
        assert torch.allclose(cnn.net[-1](f.float()), cnn(images), atol=1e-5)


def test_class_histogram_counts_every_image_and_the_report_spots_a_collapse():
    cnn = SimpleCNN(channels=(4, 8)).eval()
    real = torch.rand(30, 1, 28, 28)
    hist = class_histogram(cnn, real, 10)
    assert hist.shape == (10,) and hist.sum() == 30
    collapsed = real[:1].repeat(30, 1, 1, 1)  # one image over and over: one class
    report = quality_report(
        cnn, collapsed, real, 10, other_real=torch.rand(30, 1, 28, 28), intended=torch.zeros(30, dtype=torch.int64)
    )
    assert report["classes_covered"] == 1 and report["class_entropy"] == 0.0
    assert report["frechet_distance"] > report["frechet_distance_real_vs_real"]
    assert "not an FID" in report["feature_net"]


def test_quality_classifier_missing_or_for_other_images_is_one_line(tmp_path):
    with pytest.raises(RobustlabError, match="quality classifier checkpoint not found") as error:
        load_judge(tmp_path / "M.ckpt", (1, 28, 28))
    assert "\n" not in str(error.value) and "quality.classifier" in str(error.value)
    import pytorch_lightning as pl

    trainer = pl.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(SimpleCNN(channels=(4, 8)))
    trainer.save_checkpoint(str(tmp_path / "M.ckpt"))
    with pytest.raises(RobustlabError, match=r"takes \(1, 28, 28\) images, the data has \(3, 32, 32\)"):
        load_judge(tmp_path / "M.ckpt", (3, 32, 32))
