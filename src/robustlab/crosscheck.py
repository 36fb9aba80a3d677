"""``make crosscheck``: the project's FGSM and PGD against the Adversarial Robustness Toolbox (ART).

Both attack the same small trained CNN with the same settings: l-infinity, clipped to [0, 1], no
random start, PGD with the same number of steps and step size. For each epsilon the table gives the
share of points whose adversarial predictions are identical under the two implementations, both
accuracies under attack, and the largest pixel difference. The check passes when every share
reaches ``--min-agreement`` (default 99.5 %): the two compute the same attack, and the remaining
disagreements are float rounding on points whose gradient sign is a near tie (ART averages the loss
over the batch, the project sums it).

  python -m robustlab.crosscheck [--data-root DIR] [--train 2000] [--points 500] [--out DIR]

Needs the ``art`` extra (pip install 'robustlab[art]', or make extras).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robustlab.errors import one_line_errors, require
from robustlab.robustness.attacks import fgsm, pgd

EPSILONS = (0.05, 0.1, 0.2, 0.3)
COLUMNS = (
    "attack",
    "eps",
    "points",
    "identical_predictions",
    "accuracy_robustlab",
    "accuracy_art",
    "max_pixel_difference",
)


@dataclass(frozen=True)
class Settings:
    epsilons: tuple[float, ...] = EPSILONS
    pgd_steps: int = 10
    pgd_step_size: float | None = None  # None: 2.5 eps / steps, the project's default
    batch_size: int = 250

    def step_size(self, eps: float) -> float:
        return 2.5 * eps / self.pgd_steps if self.pgd_step_size is None else self.pgd_step_size


def require_art() -> None:
    require(
        importlib.util.find_spec("art") is not None,
        "the cross-check needs the Adversarial Robustness Toolbox: pip install 'robustlab[art]' (or make extras)",
    )


def train_cnn(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 2, seed: int = 0
) -> torch.nn.Module:
    """A small SimpleCNN trained with Adam, seeded: the model both implementations attack."""
    from robustlab.models.simple_cnn import SimpleCNN

    torch.manual_seed(seed)
    model = SimpleCNN(tuple(images.shape[1:]), num_classes, channels=(8, 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=order).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    return model.eval()


def art_attacks(model: torch.nn.Module, input_shape: tuple, num_classes: int, eps: float, settings: Settings) -> dict:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    return {
        "fgsm": FastGradientMethod(
            classifier,
            norm=np.inf,
            eps=eps,
            eps_step=eps,
            targeted=False,
            num_random_init=0,
            batch_size=settings.batch_size,
        ),
        "pgd": ProjectedGradientDescent(
            classifier,
            norm=np.inf,
            eps=eps,
            eps_step=settings.step_size(eps),
            max_iter=settings.pgd_steps,
            targeted=False,
            num_random_init=0,
            batch_size=settings.batch_size,
            verbose=False,
        ),
    }


def ours(name: str, model, x: torch.Tensor, y: torch.Tensor, eps: float, settings: Settings) -> torch.Tensor:
    parts = []
    for start in range(0, len(x), settings.batch_size):
        xb, yb = x[start : start + settings.batch_size], y[start : start + settings.batch_size]
        if name == "fgsm":
            parts.append(fgsm(model, xb, yb, eps, clip=True))
        else:
            parts.append(
                pgd(model, xb, yb, eps, settings.pgd_steps, settings.step_size(eps), clip=True, random_start=False)
            )
    return torch.cat(parts)


def compare(
    model, images: torch.Tensor, labels: torch.Tensor, num_classes: int, settings: Settings = Settings()
) -> list[dict]:
    """One row per (attack, eps): identical adversarial predictions, accuracies, largest pixel difference."""
    require_art()
    rows = []
    with torch.no_grad():

        def predict(x):
            return model(x).argmax(1)

    for eps in settings.epsilons:
        for name, attack in art_attacks(model, tuple(images.shape[1:]), num_classes, eps, settings).items():
            mine = ours(name, model, images, labels, eps, settings)
            theirs = torch.from_numpy(attack.generate(x=images.numpy(), y=labels.numpy()))
            with torch.no_grad():
                pred_mine, pred_theirs = predict(mine), predict(theirs)
            rows.append(
                {
                    "attack": name,
                    "eps": eps,
                    "points": len(images),
                    "identical_predictions": float((pred_mine == pred_theirs).float().mean()),
                    "accuracy_robustlab": float((pred_mine == labels).float().mean()),
                    "accuracy_art": float((pred_theirs == labels).float().mean()),
                    "max_pixel_difference": float((mine - theirs).abs().max()),
                }
            )
    return rows


def verdict(rows: list[dict], minimum: float) -> tuple[bool, str]:
    """Passes when every (attack, eps) reaches ``minimum`` identical predictions; the sentence says which did not."""
    low = [r for r in rows if r["identical_predictions"] < minimum]
    if not low:
        worst = min(r["identical_predictions"] for r in rows)
        sentence = (
            f"PASS: FGSM and PGD agree with ART on >= {minimum:.1%} of adversarial predictions at every eps "
            f"(lowest {worst:.2%})"
        )
        return True, sentence
    named = ", ".join(f"{r['attack']} eps={r['eps']:g} ({r['identical_predictions']:.2%})" for r in low)
    return False, f"FAIL: below {minimum:.1%} identical adversarial predictions: {named}"


def table_lines(rows: list[dict]) -> list[str]:
    head = "| attack | eps | points | identical predictions | accuracy (robustlab) | accuracy (ART) | max pixel diff |"
    lines = [head, "|" + " --- |" * 7]
    for r in rows:
        lines.append(
            f"| {r['attack']} | {r['eps']:g} | {r['points']} | {r['identical_predictions']:.2%} | "
            f"{r['accuracy_robustlab']:.4f} | {r['accuracy_art']:.4f} | {r['max_pixel_difference']:.2g} |"
        )
    return lines


def load_mnist(root: str, train: int, points: int, seed: int):
    from robustlab.data import VisionDataModule

    data = VisionDataModule("mnist", root, download=False, train_subset=train, seed=seed)
    data.setup()
    test = data.test.take(torch.randperm(len(data.test), generator=torch.Generator().manual_seed(seed))[:points])
    return data.train.images, data.train.labels, test.images, test.labels, data.num_classes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robustlab.crosscheck", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-root",
        default=os.environ.get("ROBUSTLAB_DATA", "data"),
        help="MNIST in torchvision's layout (default: $ROBUSTLAB_DATA or data)",
    )
    p.add_argument("--train", type=int, default=2000, help="training images of the small CNN (default: %(default)s)")
    p.add_argument("--points", type=int, default=500, help="test points attacked (default: %(default)s)")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=0.995,
        help="required share of identical predictions (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("ROBUSTLAB_OUTPUT", "outputs")) / "crosscheck",
        help="folder for crosscheck.csv (default: $ROBUSTLAB_OUTPUT/crosscheck)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with one_line_errors():
        require_art()
        require(0 < args.min_agreement <= 1, f"--min-agreement must be in (0, 1], got {args.min_agreement}")
        torch.set_num_threads(1)  # the tiny CNN is no faster on more threads of a shared CPU
        x_train, y_train, x_test, y_test, classes = load_mnist(args.data_root, args.train, args.points, args.seed)
        model = train_cnn(x_train, y_train, classes, seed=args.seed)
        rows = compare(model, x_test, y_test, classes)
    from robustlab import results

    results.write_table(args.out / "crosscheck.csv", {c: [r[c] for r in rows] for c in COLUMNS})
    passed, sentence = verdict(rows, args.min_agreement)
    print("\n".join(table_lines(rows)))
    print(sentence)
    print(f"table: {args.out / 'crosscheck.csv'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
