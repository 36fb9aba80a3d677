"""A scikit-learn pipeline through the Python API: any callable batch -> scores is a model for RPR."""

from __future__ import annotations

import sys

import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from robustlab.robustness import make_perturbation, measure_rpr


def main() -> dict:
    digits = load_digits()  # 8x8 digits, bundled with scikit-learn (no download)
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(digits.target)
    train, test = slice(0, 1200), slice(1200, 1500)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        x[train].flatten(1).numpy(), y[train].numpy()
    )

    def scores(batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(pipeline.predict_proba(batch.flatten(1).numpy()))

    result = measure_rpr(
        scores, x[test], y[test], make_perturbation("gaussian", sigma=0.2), max_steps=20, seed=0, progress=False
    )
    summary = {
        "points": len(result.index),
        "clean_accuracy": float(result.correct.mean()),
        "robust_ratio": result.robust_ratio(),
    }
    print(
        f"scikit-learn pipeline on {summary['points']} digits: clean accuracy {summary['clean_accuracy']:.4f}, "
        f"robust ratio {summary['robust_ratio']:.4f} (gaussian sigma=0.2, MAX_STEPS=20)"
    )
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
