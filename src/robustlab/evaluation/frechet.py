"""Quality of generated images, without any download: a Fréchet distance and a class histogram in
the feature space of the project's own trained classifier (a SimpleCNN checkpoint, e.g. the M of
the RPR run).

THIS IS NOT THE FID. The Fréchet Inception Distance uses Inception-v3 features (2048 numbers from
an ImageNet network); here the features are the SimpleCNN's penultimate layer (the flattened
activations before its last Linear: 9,216 numbers for the (32, 64) CNN on 28 x 28 images). The
formula is the same, ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)), but the numbers are on a
different scale and are comparable only between runs that use the same classifier checkpoint and
the same number of samples (the estimate is biased upwards for small samples). Read them beside
the real-vs-real distance logged with them (two disjoint sets of real images, same sizes).

The class histogram is what that classifier predicts for generated samples: a GAN that collapses
onto a few modes puts most samples into a few classes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from robustlab.errors import require
from robustlab.models import SimpleCNN, load_classifier
from robustlab.robustness.rpr import as_scores_fn, predict


def load_judge(path: str | Path, input_shape: tuple[int, int, int]) -> SimpleCNN:
    """The quality classifier, checked up front (missing, corrupt or for other images: one line)."""
    path = Path(path)
    require(
        path.is_file(),
        f"quality classifier checkpoint not found: {path}; train it first (robustlab experiment=rpr_mnist ...) "
        "or set quality.classifier to a SimpleCNN .ckpt of this dataset (null skips the quality metrics)",
    )
    model = load_classifier(SimpleCNN, path)
    require(
        tuple(model.input_shape) == tuple(input_shape),
        f"quality classifier {path} takes {tuple(model.input_shape)} images, the data has {tuple(input_shape)}",
    )
    return model


def penultimate(model: nn.Module) -> nn.Module:
    """The classifier without its last Linear: images -> the features the class scores are read from."""
    net = getattr(model, "net", None)
    require(
        isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Linear),
        "the quality classifier must hold an nn.Sequential `net` ending in a Linear layer (a SimpleCNN), got "
        f"{type(model).__name__}",
    )
    return net[:-1]


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, D) float64 penultimate features of images in [0, 1]."""
    body = penultimate(model).eval()
    device = next(body.parameters()).device
    out = [
        body(images[i : i + batch_size].to(device)).flatten(1).double().cpu() for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def _row_factor(x: torch.Tensor) -> torch.Tensor:
    """x itself, or R of x = Q R (Q with orthonormal columns) when x has more rows than columns:
    x @ y.T and R @ y.T have the same singular values, and R is only D x D."""
    return x if len(x) <= x.shape[1] else torch.linalg.qr(x, mode="r").R


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples), exactly.

    With centred rows A (n_a x D) and B, S_a = A^T A / (n_a - 1) and S_b likewise, the non-zero
    eigenvalues of S_a S_b are those of (A B^T)(A B^T)^T / ((n_a - 1)(n_b - 1)), so
    tr (S_a S_b)^(1/2) = (sum of the singular values of A B^T) / sqrt((n_a - 1)(n_b - 1)). No D x D
    covariance (9,216^2 for the SimpleCNN) and no matrix square root are ever formed.
    """
    require(
        a.dim() == 2 and b.dim() == 2 and a.shape[1] == b.shape[1],
        f"feature sets must be (N, D) with the same D, got {tuple(a.shape)} and {tuple(b.shape)}",
    )
    require(len(a) >= 2 and len(b) >= 2, f"need at least 2 samples per feature set, got {len(a)} and {len(b)}")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    cross = torch.linalg.svdvals(_row_factor(ca) @ _row_factor(cb).T).sum() / math.sqrt(na * nb)
    distance = (mu_a - mu_b).square().sum() + ca.square().sum() / na + cb.square().sum() / nb - 2 * cross
    return max(float(distance), 0.0)  # rounding can leave identical sets a hair below zero


def predicted_classes(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    fn, device = as_scores_fn(model)
    with torch.inference_mode():
        pred, _ = predict(fn, images.to(device), batch_size)
    return pred.cpu().numpy()


def class_histogram(model: nn.Module, images: torch.Tensor, num_classes: int, batch_size: int = 500) -> np.ndarray:
    """How many of the images the classifier puts into each class."""
    return np.bincount(predicted_classes(model, images, batch_size), minlength=num_classes)


def normalised_entropy(counts: np.ndarray) -> float:
    """Entropy of the class shares over log(K): 1 = every class equally often, 0 = a single class."""
    p = counts / max(counts.sum(), 1)
    p = p[p > 0]
    return max(0.0, float(-(p * np.log(p)).sum() / math.log(len(counts)))) if len(counts) > 1 else 1.0


def quality_report(
    judge: nn.Module,
    generated: torch.Tensor,
    real: torch.Tensor,
    num_classes: int,
    *,
    other_real: torch.Tensor | None = None,
    intended: torch.Tensor | None = None,
    batch_size: int = 500,
) -> dict:
    """Fréchet distance generated vs ``real`` (and ``other_real`` vs ``real``, the floor), class histograms."""
    f_real = features(judge, real, batch_size)
    predicted = predicted_classes(judge, generated, batch_size)
    hist = np.bincount(predicted, minlength=num_classes)
    report = {
        "feature_net": "SimpleCNN penultimate layer (not Inception: not an FID)",
        "generated_images": len(generated),
        "real_images": len(real),
        "frechet_distance": frechet_distance(f_real, features(judge, generated, batch_size)),
        "frechet_distance_real_vs_real": None
        if other_real is None
        else frechet_distance(f_real, features(judge, other_real, batch_size)),
        "generated_classes": hist.tolist(),
        "real_classes": class_histogram(judge, real, num_classes, batch_size).tolist(),
        "class_entropy": normalised_entropy(hist),
        "classes_covered": int((hist > 0.01 * len(generated)).sum()),  # classes holding more than 1% of the samples
    }
    if intended is not None:
        report["classified_as_intended"] = float((predicted == intended.cpu().numpy()).mean())
    return report
